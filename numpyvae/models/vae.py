"""The Variational Autoencoder: encoder, reparameterization, decoder, loss, and backward.

Forward, for a batch x of N images (the report, section 3), four nodes in a row:

    [m, h]  = encoder(x)                      (N, 2z) split into mean m and h
    [z, kl] = reparameterize([m, h])          v = softplus(h) + 1e-8, z = m + √v ⊙ ε,
                                              kl per latent dimension, ε ~ N(0, I)
                                              (``nn/reparameterize.py``)
    out     = decoder(z)                      x̂ = sigmoid(out), reconstruction in [0, 1]
    recon   = likelihood.nll(x, out)          −log p(x|z) up to a constant

Loss per image (a Gaussian decoder N(x̂, cI) and the prior N(0, I)):

    recon = Σ_pixels (x − x̂)² / (2c)
    KL    = ½ Σ_latent (v + m² − 1 − log v)

Backward is the same chain in reverse. ``encode``, ``decode``, ``sample`` and
``reconstruct`` run the networks through ``infer`` and the functions
(``softplus``): they keep nothing, so they may run between a forward and its backward.

The loss of a batch is the mean over its images, as in the report. Training may
optimise another objective than this −ELBO (``beta`` and ``free_bits``, set by
the training loop; defaults 1 and 0 give −ELBO itself):

    objective = recon + β · Σ_j max(λ, KL_j)     KL_j = batch mean of dimension j's KL

with λ = ``free_bits`` (Kingma et al. 2016; λ = 0 is the plain KL). ``forward``
returns both: ``loss`` is always −ELBO, ``objective`` what ``backward`` differentiates.
With
``likelihood="bernoulli"`` recon is the binary cross-entropy instead
(``likelihoods.py``); with class labels y the encoder and decoder also see
onehot(y) (the conditional VAE, ``architectures.py``).
"""

from __future__ import annotations

import numpy as np

from ..nn.activations import softplus
from ..nn.layer import Layer
from ..nn.reparameterize import VARIANCE_FLOOR, Reparameterize
from .encoder_decoder import OUTPUT_ACTIVATIONS, EncoderDecoder, Losses

__all__ = ["VAE", "Losses", "OUTPUT_ACTIVATIONS", "VARIANCE_FLOOR"]


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
        self.reparameterize = Reparameterize()
        self.beta = 1.0  # the weight on the KL in the objective (the loop sets it per batch)
        self.free_bits = 0.0  # λ: each dimension's batch-mean KL counts as at least λ nats

    # -- inference: infer and functions only, so a pending backward is untouched ----
    def encode(self, x: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The posterior q(z|x) = N(m, v): returns m and v, each (N, latent_dim)."""
        m, h = self._split(self._encoder_output(x, y, infer=True))
        return m, softplus(h) + VARIANCE_FLOOR

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
        its mean losses: encoder → reparameterize → decoder → likelihood. ``loss`` is
        −ELBO; ``objective`` adds ``beta`` and ``free_bits`` (the module's docstring).

        ε comes from the caller when given (the gradient check holds it fixed),
        else from ``rng``.
        """
        n, z_dim = x.shape[0], self.latent_dim
        m_h = self._encoder_output(x, y, infer=False)
        if eps is None:
            rng = np.random.default_rng() if rng is None else rng
            eps = rng.standard_normal((n, z_dim), dtype=m_h.dtype)
        elif eps.shape != (n, z_dim):
            raise ValueError(f"VAE.forward: eps must have shape {(n, z_dim)}, got {eps.shape}")
        self.reparameterize.set_noise(eps.astype(m_h.dtype, copy=False))
        z_kl = self.reparameterize.forward(m_h)
        z, kl_dims = np.ascontiguousarray(z_kl[:, :z_dim]), z_kl[:, z_dim:]
        if self.free_bits > 0:
            kl_j = np.mean(kl_dims, axis=0)  # (Z,) batch-mean KL of each dimension
            kl_mean, kl_term = float(np.sum(kl_j)), float(np.sum(np.maximum(self.free_bits, kl_j)))
            above = kl_j > self.free_bits
        else:
            kl_mean = kl_term = float(np.mean(np.sum(kl_dims, axis=1)))
            above = None
        recon = self.likelihood.nll(x, self.decoder.forward(z))
        self.cache = (n, self.beta, above)
        recon_mean = float(np.mean(recon))
        return Losses(recon_mean + kl_mean, recon_mean, kl_mean,
                      recon_mean + self.beta * kl_term)

    def backward(self, dloss: float = 1.0) -> None:
        """Write dL/dθ into every layer's grads, for L = dloss · objective (module docstring),
        β and λ as in the forward.

        The chain in reverse: each image's recon weighs dloss/N in L and its kl β·dloss/N,
        so likelihood → d out, decoder → dz, reparameterize([dz, dkl]) → [dm, dh], encoder.
        Free bits: ∂ max(λ, KL_j)/∂KL_j is 1 where KL_j > λ and 0 where KL_j < λ (a kink
        at KL_j = λ, where the gradient check must not sit): a dimension below λ gets no
        gradient from the KL, only from the reconstruction, so dkl is (N, Z) with column j
        β·dloss/N · [KL_j > λ].
        """
        n, beta, above = self._saved()
        w = dloss / n
        dz = self.decoder.backward(self.likelihood.backward(w))
        dkl = np.full_like(dz, beta * w)
        if above is not None:
            dkl *= above  # 0 in the columns of dimensions below λ
        self.encoder.backward(self.reparameterize.backward(np.concatenate([dz, dkl], axis=1)))

    @property
    def encoder_width(self) -> int:
        """Columns of the encoder's output: [m, h], (N, 2·latent_dim)."""
        return 2 * self.latent_dim

    def _split(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return out[:, : self.latent_dim], out[:, self.latent_dim :]
