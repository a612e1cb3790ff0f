"""The plain autoencoder the report sets beside the VAE (its figure 1).

The same MLP as the VAE, but the code is deterministic and there is no KL term:

    z  = encoder(x)                      (N, z): the code itself, nothing is sampled
    x̂  = sigmoid(decoder(z))             reconstruction in [0, 1]

Loss per image: the squared error scaled as the VAE's reconstruction term,

    recon = Σ_pixels (x − x̂)² / (2c)

so that its ``recon`` column reads on the same scale as a VAE's (multiply by 2c
for the plain sum of squared errors). With no KL, c only scales the loss, which
Adam all but ignores. The batch loss is the mean over its images; ``kl`` is 0.

The encoder ends in Dense(10 → z) rather than the VAE's Dense(10 → 2z): there is
no variance to predict, and an unused half would only carry zero gradients.

The interface is the VAE's (``forward`` returning ``Losses``, ``backward``,
``parameters``, ``encode``, ``decode``, ``sample``, ``reconstruct``), so the
training loop, checkpoints, ``load_run`` and the figures work unchanged.
``encode`` returns the code and a variance of zeros: the posterior is a point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .architectures import DEFAULT_HIDDEN, mlp_encoder_decoder
from .encoder_decoder import EncoderDecoder, Losses


class Autoencoder(EncoderDecoder):
    """A deterministic autoencoder around an encoder (x → (N, z)) and a decoder (z → x̂ logits).

    Shapes: x (N, 1, 28, 28) for the report's MLP; z (N, latent_dim).
    """

    # -- inference: infer only, so a pending backward is untouched ----------------
    def encode(self, x: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The code z (N, latent_dim) and a variance of zeros (the VAE's (m, v) interface)."""
        z = self._encoder_output(x, y, infer=True)
        return z, np.zeros_like(z)

    def reconstruct(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        return self.decode(self._encoder_output(x, y, infer=True), y)

    # -- training -----------------------------------------------------------
    def forward(
        self,
        x: np.ndarray,
        eps: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        y: np.ndarray | None = None,
    ) -> Losses:
        """Mean losses over the batch x. ``eps`` and ``rng`` are accepted for the VAE's
        interface and ignored: nothing is sampled."""
        z = self._encoder_output(x, y, infer=False)
        recon = float(np.mean(self.likelihood.nll(x, self.decoder.forward(z))))
        self.cache = len(x)
        return Losses(recon, recon, 0.0)

    def backward(self, dloss: float = 1.0) -> None:
        """Write dL/dθ into every layer's grads, for L = dloss · (mean loss over the batch).

        Each image's recon weighs dloss/N: likelihood → d out, then the decoder, the encoder.
        """
        w = dloss / self._saved()
        self.encoder.backward(self.decoder.backward(self.likelihood.backward(w)))


def build_mlp_autoencoder(
    latent_dim: int,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    c: float = 0.05,
    dtype: Any = np.float32,
    rng: np.random.Generator | None = None,
    output_activation: str = "sigmoid",
    likelihood: str = "gaussian",
) -> Autoencoder:
    """The VAE's MLP as a plain autoencoder: 784-300-100-10-z and the VAE's decoder."""
    encoder, decoder = mlp_encoder_decoder(latent_dim, latent_dim, hidden, dtype, rng)
    return Autoencoder(encoder, decoder, latent_dim, c=c, output_activation=output_activation,
                       likelihood=likelihood)
