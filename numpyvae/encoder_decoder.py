"""What the VAE and the plain autoencoder share: two networks, a decoder output, plumbing.

The training loop, checkpoints, ``load_run`` and the figures use only this
interface (plus each model's ``forward`` returning ``Losses`` and ``backward``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers.activations import Sigmoid
from .layers.base import Layer

OUTPUT_ACTIVATIONS = ("sigmoid", "identity")


@dataclass
class Losses:
    """Mean over the batch of each term: loss = recon + kl."""

    loss: float
    recon: float
    kl: float

    def as_dict(self) -> dict[str, float]:
        return {"loss": self.loss, "recon": self.recon, "kl": self.kl}


class EncoderDecoder:
    """An encoder, a decoder and the decoder's output activation (sigmoid or identity)."""

    def __init__(
        self,
        encoder: Layer,
        decoder: Layer,
        latent_dim: int,
        c: float = 0.05,
        output_activation: str = "sigmoid",
    ) -> None:
        name = type(self).__name__
        if latent_dim < 1:
            raise ValueError(f"{name}: latent_dim must be >= 1, got {latent_dim}")
        if not c > 0:
            raise ValueError(f"{name}: the balance c must be > 0, got {c}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"{name}: output_activation must be one of {OUTPUT_ACTIVATIONS}, "
                f"got {output_activation!r}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = int(latent_dim)
        self.c = float(c)
        self.output_activation = output_activation
        self.sigmoid = Sigmoid() if output_activation == "sigmoid" else None
        self.cache = None

    # -- modes and parameters ---------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        return self.parameters()[0][0].dtype

    def train(self) -> EncoderDecoder:
        self.encoder.train()
        self.decoder.train()
        return self

    def eval(self) -> EncoderDecoder:
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

    # -- the decoder side -----------------------------------------------------
    def decode(self, z: np.ndarray) -> np.ndarray:
        """The decoder's mean f(z): (N, latent_dim) → images."""
        return self._output(self.decoder.forward(np.ascontiguousarray(z, dtype=self.dtype)))

    def sample(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Decode n draws from the prior z ~ N(0, I)."""
        rng = np.random.default_rng() if rng is None else rng
        return self.decode(rng.standard_normal((n, self.latent_dim), dtype=self.dtype))

    def _output(self, logits: np.ndarray) -> np.ndarray:
        return self.sigmoid.forward(logits) if self.sigmoid else logits

    def _output_backward(self, dx_hat: np.ndarray) -> np.ndarray:
        return self.sigmoid.backward(dx_hat) if self.sigmoid else dx_hat

    def _check_reconstruction(self, x_hat: np.ndarray, x: np.ndarray) -> None:
        if x_hat.shape != x.shape:
            raise ValueError(
                f"{type(self).__name__}: the decoder gives shape {x_hat.shape[1:]} per image, "
                f"the data {x.shape[1:]}"
            )

    def _check_encoder_output(self, out: np.ndarray, x: np.ndarray, width: int) -> None:
        if out.ndim != 2 or out.shape[1] != width:
            raise ValueError(
                f"{type(self).__name__}: the encoder must output (N, {width}) for latent_dim "
                f"{self.latent_dim}, got {out.shape} for input {x.shape}"
            )

    def _saved(self):
        if self.cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward: run forward(x) first"
            )
        return self.cache

    def __repr__(self) -> str:
        enc = repr(self.encoder).replace("\n", "\n  ")
        dec = repr(self.decoder).replace("\n", "\n  ")
        return (
            f"{type(self).__name__}(latent_dim={self.latent_dim}, c={self.c}, "
            f"output={self.output_activation})  # {self.num_params():,} params\n"
            f"  (encoder): {enc}\n  (decoder): {dec}"
        )
