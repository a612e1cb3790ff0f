"""The Variational Autoencoder: encoder, reparameterization, decoder, loss, and backward.

Forward, for a batch x of N images (the report, section 3):

    [m, h] = encoder(x)                 (N, 2z) split into mean m and h
    v      = softplus(h) + 1e-8         variance, kept positive
    z      = m + sqrt(v) ⊙ ε            ε ~ N(0, I): the reparameterization trick
    x̂      = sigmoid(decoder(z))        reconstruction in [0, 1]

Loss per image (a Gaussian decoder N(x̂, cI) and the prior N(0, I)):

    recon = Σ_pixels (x − x̂)² / (2c)
    KL    = ½ Σ_latent (v + m² − 1 − log v)

The loss of a batch is the mean over its images, as in the report. With
``likelihood="bernoulli"`` recon is the binary cross-entropy instead
(``likelihoods.py``); with class labels y the encoder and decoder also see
onehot(y) (the conditional VAE, ``models.py``).
"""

from __future__ import annotations

import numpy as np

from ..nn.activations import Softplus
from ..nn.layer import Layer
from .encoder_decoder import OUTPUT_ACTIVATIONS, EncoderDecoder, Losses

__all__ = ["VAE", "Losses", "OUTPUT_ACTIVATIONS", "VARIANCE_FLOOR"]

VARIANCE_FLOOR = 1e-8


class VAE(EncoderDecoder):
    """A VAE around any encoder (x → (N, 2z)) and decoder (z → x̂'s pre-activation).

    Shapes: x (N, 1, 28, 28) for the report's models; z (N, latent_dim); labels y (N,).
    """

    def __init__(
        self,
        encoder: Layer,
        decoder: Layer,
        latent_dim: int,
        c: float = 0.05,
        output_activation: str = "sigmoid",
        likelihood: str = "gaussian",
    ) -> None:
        super().__init__(encoder, decoder, latent_dim, c, output_activation, likelihood)
        self.softplus = Softplus()

    # -- inference ----------------------------------------------------------
    def encode(self, x: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The posterior q(z|x) = N(m, v): returns m and v, each (N, latent_dim)."""
        self._set_labels(y, len(x))
        out = self.encoder.forward(x)
        self._check_encoder_output(out, x, 2 * self.latent_dim)
        m, h = out[:, : self.latent_dim], out[:, self.latent_dim :]
        return m, self.softplus.forward(h) + VARIANCE_FLOOR

    def reconstruct(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """Decode the posterior mean: the deterministic reconstruction of x."""
        m, _ = self.encode(x, y)
        return self.decode(m, y)

    # -- training: forward to the loss, backward from it -------------------
    def forward(
        self,
        x: np.ndarray,
        eps: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        y: np.ndarray | None = None,
    ) -> Losses:
        """Run the model on a batch (and its labels y, for a conditional model) and return
        its mean losses.

        ε comes from the caller when given (the gradient check holds it fixed),
        else from ``rng``.
        """
        n, z_dim = x.shape[0], self.latent_dim
        self._set_labels(y, n)
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
        recon = self.likelihood.nll(x, logits)
        kl = 0.5 * np.sum(v + m * m - 1 - np.log(v), axis=1)
        self.cache = {"m": m, "v": v, "s": s, "eps": eps}
        recon_mean, kl_mean = float(np.mean(recon)), float(np.mean(kl))
        return Losses(recon_mean + kl_mean, recon_mean, kl_mean)

    def backward(self) -> None:
        """Write dL/dθ into every layer's grads, for L = mean over the batch.

        dL/dlogits = d recon/dlogits / N (Gaussian: (x̂ − x)/(cN) back through the sigmoid;
        Bernoulli: (sigmoid(logits) − x)/N); then back through the decoder to dL/dz.
        dL/dm = dL/dz + m/N;  dL/dv = dL/dz ⊙ ε / (2√v) + (1 − 1/v) / (2N);
        dL/dh = dL/dv ⊙ softplus'(h), and [dL/dm, dL/dh] goes back through the encoder.
        """
        m, v, s, eps = (self._saved()[k] for k in ("m", "v", "s", "eps"))
        n = m.shape[0]
        dlogits = self.likelihood.backward(1 / n)
        dz = self.decoder.backward(dlogits)
        dm = dz + m * (1 / n)
        dv = dz * eps / (2 * s) + (1 - 1 / v) * (0.5 / n)
        dh = self.softplus.backward(dv)
        self.encoder.backward(np.concatenate([dm, dh], axis=1))
