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

from .layers import Sequential
from .layers.activations import Sigmoid
from .layers.base import Layer
from .layers.shape import Flatten, Reshape
from .models import DEFAULT_HIDDEN, IMAGE_SHAPE, PIXELS, _mlp
from .vae import OUTPUT_ACTIVATIONS, Losses


class Autoencoder:
    """A deterministic autoencoder around an encoder (x → (N, z)) and a decoder (z → x̂ logits).

    Shapes: x (N, 1, 28, 28) for the report's MLP; z (N, latent_dim).
    """

    def __init__(
        self,
        encoder: Layer,
        decoder: Layer,
        latent_dim: int,
        c: float = 0.05,
        output_activation: str = "sigmoid",
    ) -> None:
        if latent_dim < 1:
            raise ValueError(f"Autoencoder: latent_dim must be >= 1, got {latent_dim}")
        if not c > 0:
            raise ValueError(f"Autoencoder: the scale c must be > 0, got {c}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"Autoencoder: output_activation must be one of {OUTPUT_ACTIVATIONS}, "
                f"got {output_activation!r}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = int(latent_dim)
        self.c = float(c)
        self.output_activation = output_activation
        self.sigmoid = Sigmoid() if output_activation == "sigmoid" else None
        self.cache: np.ndarray | None = None

    # -- modes and parameters ---------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        return self.parameters()[0][0].dtype

    def train(self) -> Autoencoder:
        self.encoder.train()
        self.decoder.train()
        return self

    def eval(self) -> Autoencoder:
        self.encoder.eval()
        self.decoder.eval()
        return self

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.encoder.parameters() + self.decoder.parameters()

    def named_parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return [(f"encoder.{n}", p, g) for n, p, g in self.encoder.named_parameters()] + [
            (f"decoder.{n}", p, g) for n, p, g in self.decoder.named_parameters()
        ]

    def named_arrays(self) -> dict[str, np.ndarray]:
        """Parameters and buffers by name: what a checkpoint stores."""
        out = {f"encoder.{k}": v for k, v in self.encoder.named_arrays().items()}
        out.update({f"decoder.{k}": v for k, v in self.decoder.named_arrays().items()})
        return out

    def num_params(self) -> int:
        return self.encoder.num_params() + self.decoder.num_params()

    # -- inference ----------------------------------------------------------
    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The code z (N, latent_dim) and a variance of zeros (the VAE's (m, v) interface)."""
        z = self._encode(x)
        return z, np.zeros_like(z)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Images for codes z (N, latent_dim)."""
        logits = self.decoder.forward(np.ascontiguousarray(z, dtype=self.dtype))
        return self.sigmoid.forward(logits) if self.sigmoid else logits

    def sample(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Decode n draws z ~ N(0, I). Nothing made the codes follow that prior: this shows
        what sampling an autoencoder's latent space gives."""
        rng = np.random.default_rng() if rng is None else rng
        return self.decode(rng.standard_normal((n, self.latent_dim), dtype=self.dtype))

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.decode(self._encode(x))

    # -- training -----------------------------------------------------------
    def forward(
        self, x: np.ndarray, eps: np.ndarray | None = None, rng: np.random.Generator | None = None
    ) -> Losses:
        """Mean losses over the batch x. ``eps`` and ``rng`` are accepted for the VAE's
        interface and ignored: nothing is sampled."""
        z = self._encode(x)
        logits = self.decoder.forward(z)
        x_hat = self.sigmoid.forward(logits) if self.sigmoid else logits
        if x_hat.shape != x.shape:
            raise ValueError(
                f"Autoencoder: the decoder gives shape {x_hat.shape[1:]} per image, the data "
                f"{x.shape[1:]}"
            )
        diff = x_hat - x
        recon = float(np.mean(np.sum(diff * diff, axis=tuple(range(1, x.ndim))))) / (2 * self.c)
        self.cache = diff
        return Losses(recon, recon, 0.0)

    def backward(self) -> None:
        """Write dL/dθ into every layer's grads, for L = mean over the batch.

        dL/dx̂ = (x̂ − x) / (cN), then back through the sigmoid, the decoder and the encoder.
        """
        if self.cache is None:
            raise RuntimeError("Autoencoder.backward called before forward: run forward(x) first")
        diff = self.cache
        dx_hat = diff * (1 / (self.c * diff.shape[0]))
        dlogits = self.sigmoid.backward(dx_hat) if self.sigmoid else dx_hat
        self.encoder.backward(self.decoder.backward(dlogits))

    def _encode(self, x: np.ndarray) -> np.ndarray:
        z = self.encoder.forward(x)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"Autoencoder: the encoder must output (N, latent_dim) = (N, {self.latent_dim}), "
                f"got {z.shape} for input {x.shape}"
            )
        return z

    def __repr__(self) -> str:
        enc = repr(self.encoder).replace("\n", "\n  ")
        dec = repr(self.decoder).replace("\n", "\n  ")
        return (
            f"Autoencoder(latent_dim={self.latent_dim}, c={self.c}, "
            f"output={self.output_activation})  # {self.num_params():,} params\n"
            f"  (encoder): {enc}\n  (decoder): {dec}"
        )


def build_mlp_autoencoder(
    latent_dim: int,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    c: float = 0.05,
    dtype: Any = np.float32,
    rng: np.random.Generator | None = None,
    output_activation: str = "sigmoid",
) -> Autoencoder:
    """The VAE's MLP as a plain autoencoder: 784-300-100-10-z and the VAE's decoder."""
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError(f"build_mlp_autoencoder: hidden widths must be positive, got {hidden}")
    rng = np.random.default_rng() if rng is None else rng
    encoder = Sequential(Flatten(), *_mlp((PIXELS, *hidden, latent_dim), dtype, rng))
    decoder = Sequential(
        *_mlp((latent_dim, *hidden[::-1], PIXELS), dtype, rng), Reshape(*IMAGE_SHAPE)
    )
    return Autoencoder(encoder, decoder, latent_dim, c=c, output_activation=output_activation)
