"""The VAE family: the VAE and the autoencoder, p(x|z), the report's architectures, IWAE."""
