"""The Variational Autoencoder: encoder, reparameterization, decoder, loss, and backward.

Forward, for a batch x of N images (the report, section 3):

    [m, h] = encoder(x)                 (N, 2z) split into mean m and h
    v      = softplus(h) + 1e-8         variance, kept positive
    z      = m + sqrt(v) ⊙ ε            ε ~ N(0, I): the reparameterization trick
    x̂      = sigmoid(decoder(z))        reconstruction in [0, 1]

Loss per image (a Gaussian decoder N(x̂, cI) and the prior N(0, I)):

    recon = Σ_pixels (x − x̂)² / (2c)
    KL    = ½ Σ_latent (v + m² − 1 − log v)

The loss of a batch is the mean over its images, as in the report.
"""

from __future__ import annotations

import numpy as np

from .encoder_decoder import OUTPUT_ACTIVATIONS, EncoderDecoder, Losses
from .layers.activations import Softplus
from .layers.base import Layer

__all__ = ["VAE", "Losses", "OUTPUT_ACTIVATIONS", "VARIANCE_FLOOR"]

VARIANCE_FLOOR = 1e-8


class VAE(EncoderDecoder):
    """A VAE around any encoder (x → (N, 2z)) and decoder (z → x̂'s pre-activation).

    Shapes: x (N, 1, 28, 28) for the report's models; z (N, latent_dim).
    """

    def __init__(
        self,
        encoder: Layer,
        decoder: Layer,
        latent_dim: int,
        c: float = 0.05,
        output_activation: str = "sigmoid",
    ) -> None:
        super().__init__(encoder, decoder, latent_dim, c, output_activation)
        self.softplus = Softplus()

    # -- inference ----------------------------------------------------------
    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The posterior q(z|x) = N(m, v): returns m and v, each (N, latent_dim)."""
        out = self.encoder.forward(x)
        self._check_encoder_output(out, x, 2 * self.latent_dim)
        m, h = out[:, : self.latent_dim], out[:, self.latent_dim :]
        return m, self.softplus.forward(h) + VARIANCE_FLOOR

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """Decode the posterior mean: the deterministic reconstruction of x."""
        m, _ = self.encode(x)
        return self.decode(m)

    # -- training: forward to the loss, backward from it -------------------
    def forward(
        self, x: np.ndarray, eps: np.ndarray | None = None, rng: np.random.Generator | None = None
    ) -> Losses:
        """Run the model on a batch and return its mean losses.

        ε comes from the caller when given (the gradient check holds it fixed),
        else from ``rng``.
        """
        n, z_dim = x.shape[0], self.latent_dim
        out = self.encoder.forward(x)
        self._check_encoder_output(out, x, 2 * z_dim)
        m, h = out[:, :z_dim], out[:, z_dim:]
        if eps is None:
            rng = np.random.default_rng() if rng is None else rng
            eps = rng.standard_normal((n, z_dim), dtype=out.dtype)
        elif eps.shape != (n, z_dim):
            raise ValueError(f"VAE.forward: eps must have shape {(n, z_dim)}, got {eps.shape}")
        eps = eps.astype(out.dtype, copy=False)
        v = self.softplus.forward(h) + VARIANCE_FLOOR
        s = np.sqrt(v)
        z = m + s * eps
        logits = self.decoder.forward(z)
        x_hat = self._output(logits)
        self._check_reconstruction(x_hat, x)
        diff = x_hat - x
        recon = np.sum(diff * diff, axis=tuple(range(1, x.ndim))) / (2 * self.c)
        kl = 0.5 * np.sum(v + m * m - 1 - np.log(v), axis=1)
        self.cache = {"x": x, "m": m, "v": v, "s": s, "eps": eps, "diff": diff}
        recon_mean, kl_mean = float(np.mean(recon)), float(np.mean(kl))
        return Losses(recon_mean + kl_mean, recon_mean, kl_mean)

    def backward(self) -> None:
        """Write dL/dθ into every layer's grads, for L = mean over the batch.

        dL/dx̂ = (x̂ − x) / (cN);  then back through the sigmoid and the decoder to dL/dz.
        dL/dm = dL/dz + m/N;  dL/dv = dL/dz ⊙ ε / (2√v) + (1 − 1/v) / (2N);
        dL/dh = dL/dv ⊙ softplus'(h), and [dL/dm, dL/dh] goes back through the encoder.
        """
        m, v, s, eps, diff = (self._saved()[k] for k in ("m", "v", "s", "eps", "diff"))
        n = diff.shape[0]
        dx_hat = diff * (1 / (self.c * n))
        dlogits = self._output_backward(dx_hat)
        dz = self.decoder.backward(dlogits)
        dm = dz + m * (1 / n)
        dv = dz * eps / (2 * s) + (1 - 1 / v) * (0.5 / n)
        dh = self.softplus.backward(dv)
        self.encoder.backward(np.concatenate([dm, dh], axis=1))
