"""The report's two VAEs (its figures 2 and 3), built from the package's layers.

MLP: 784 → 300 → 100 → 10 → 2z with ELU between, and the mirror image back.
The report's text says the last hidden layer is 20 wide, its printout says 10:
we default to the printout, and ``hidden=(300, 100, 20)`` gives the text's.

CNN, with the spatial arithmetic (out = (in + 2p − k)//s + 1 for a conv,
out = (in − 1)s − 2p + k + output_padding for a transposed conv):

    encoder  (1, 28, 28)
      Conv2d(1→32, k3, s2, p1)   (28 + 2 − 3)//2 + 1 = 14    → (32, 14, 14), BN, ELU
      Conv2d(32→64, k3, s2, p1)  (14 + 2 − 3)//2 + 1 = 7     → (64, 7, 7),   BN, ELU
      Conv2d(64→32, k3, s2, p1)  (7 + 2 − 3)//2 + 1 = 4      → (32, 4, 4),   BN, ELU
      Flatten 32·4·4 = 512, Dense(512 → 2z)
    decoder  (z,)
      Dense(z → 512), Reshape (32, 4, 4)            (no activation here: the printout lists none)
      ConvTranspose2d(32→64, k3, s2, p1)        (4 − 1)·2 − 2 + 3 = 7       → (64, 7, 7),   BN, ELU
      ConvTranspose2d(64→32, k3, s2, p1, op1)   (7 − 1)·2 − 2 + 3 + 1 = 14  → (32, 14, 14), BN, ELU
      ConvTranspose2d(32→32, k3, s2, p1, op1)   (14 − 1)·2 − 2 + 3 + 1 = 28 → (32, 28, 28), BN, ELU
      Conv2d(32→1, k3, s1, p1)                  (28 + 2 − 3)//1 + 1 = 28    → (1, 28, 28)

The report's printout lists ConvTranspose2d(512, 64, …) right after Dense(z → 512):
a 512-channel 1×1 input gives 1 → 1 → 2 → 4 pixels, never 28×28, so the
512 numbers are read as a (32, 4, 4) map, the mirror of the encoder's.

Conditional (``num_classes`` = K > 0): a ``ConcatLabels`` layer appends onehot(y)
where each network first becomes a vector. The MLP's encoder sees [x, onehot(y)]
(784 + K → 300) and its decoder [z, onehot(y)] (z + K → 10); the CNN's encoder
appends it to the flattened features (512 + K → 2z) and its decoder to z (z + K → 512).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..nn import (
    ELU,
    BatchNorm2d,
    ConcatLabels,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Flatten,
    Reshape,
    Sequential,
)
from .vae import VAE

IMAGE_SHAPE = (1, 28, 28)  # (C, H, W) of one MNIST / Fashion-MNIST image
PIXELS = math.prod(IMAGE_SHAPE)  # 784
NUM_CLASSES = 10  # digit (or garment) classes: a conditional model's one-hot width
ARCHS = ("mlp", "cnn")
DEFAULT_HIDDEN = (300, 100, 10)


def _mlp(widths: Sequence[int], dtype: Any, rng: np.random.Generator) -> list:
    """Dense layers through ``widths`` (in, *hidden, out) with ELU between (none after the
    last). The one check of the hidden widths, for every MLP built here."""
    hidden = tuple(widths[1:-1])
    if not hidden or min(hidden) < 1:
        raise ValueError(f"MLP hidden widths must be positive (at least one), got {hidden}")
    layers: list = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(Dense(a, b, dtype=dtype, rng=rng))
        if i < len(widths) - 2:
            layers.append(ELU())
    return layers


def _labels(num_classes: int) -> list:
    """[ConcatLabels(K)] for a conditional model, [] for a plain one."""
    if num_classes < 0 or num_classes == 1:
        raise ValueError(f"num_classes must be 0 (not conditional) or >= 2, got {num_classes}")
    return [ConcatLabels(num_classes)] if num_classes else []


def mlp_encoder_decoder(
    code_width: int,
    latent_dim: int,
    hidden: Sequence[int],
    dtype: Any,
    rng: np.random.Generator | None,
    num_classes: int = 0,
) -> tuple[Sequential, Sequential]:
    """784 (+K) → hidden… → code_width, and latent_dim (+K) → …hidden reversed → 784 →
    (1, 28, 28); K = num_classes one-hot label columns for a conditional model."""
    hidden = tuple(int(h) for h in hidden)
    rng = np.random.default_rng() if rng is None else rng
    k = num_classes
    encoder = Sequential(
        Flatten(), *_labels(k), *_mlp((PIXELS + k, *hidden, code_width), dtype, rng)
    )
    decoder = Sequential(
        *_labels(k), *_mlp((latent_dim + k, *hidden[::-1], PIXELS), dtype, rng),
        Reshape(*IMAGE_SHAPE),
    )
    return encoder, decoder


def build_mlp_vae(
    latent_dim: int,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    c: float = 0.05,
    dtype: Any = np.float32,
    rng: np.random.Generator | None = None,
    output_activation: str = "sigmoid",
    likelihood: str = "gaussian",
    num_classes: int = 0,
) -> VAE:
    """The report's MLP VAE (figure 2): 784-300-100-10-2z and its mirror."""
    encoder, decoder = mlp_encoder_decoder(2 * latent_dim, latent_dim, hidden, dtype, rng,
                                           num_classes)
    return VAE(encoder, decoder, latent_dim, c=c, output_activation=output_activation,
               likelihood=likelihood)


def _conv_block(layer, channels: int, dtype: Any) -> list:
    return [layer, BatchNorm2d(channels, dtype=dtype), ELU()]


def build_cnn_vae(
    latent_dim: int,
    c: float = 0.05,
    dtype: Any = np.float32,
    rng: np.random.Generator | None = None,
    output_activation: str = "sigmoid",
    likelihood: str = "gaussian",
    num_classes: int = 0,
) -> VAE:
    """The report's CNN VAE (figure 3), with the decoder fixed to reach 28×28 (see above)."""
    rng = np.random.default_rng() if rng is None else rng
    kw = {"dtype": dtype, "rng": rng}
    k = num_classes
    encoder = Sequential(
        *_conv_block(Conv2d(IMAGE_SHAPE[0], 32, 3, stride=2, padding=1, **kw), 32, dtype),
        *_conv_block(Conv2d(32, 64, 3, stride=2, padding=1, **kw), 64, dtype),
        *_conv_block(Conv2d(64, 32, 3, stride=2, padding=1, **kw), 32, dtype),
        Flatten(),
        *_labels(k),
        Dense(512 + k, 2 * latent_dim, **kw),
    )
    decoder = Sequential(
        *_labels(k),
        Dense(latent_dim + k, 512, **kw),
        Reshape(32, 4, 4),
        *_conv_block(ConvTranspose2d(32, 64, 3, stride=2, padding=1, **kw), 64, dtype),
        *_conv_block(
            ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1, **kw), 32, dtype
        ),
        *_conv_block(
            ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1, **kw), 32, dtype
        ),
        Conv2d(32, IMAGE_SHAPE[0], 3, stride=1, padding=1, **kw),
    )
    return VAE(encoder, decoder, latent_dim, c=c, output_activation=output_activation,
               likelihood=likelihood)


def build_vae(arch: str, latent_dim: int, hidden: Sequence[int] = DEFAULT_HIDDEN, **kw: Any
              ) -> VAE:
    """Either model by name: ``arch`` is "mlp" or "cnn"; ``kw`` as for the builders
    (c, dtype, rng, output_activation, likelihood, num_classes)."""
    if arch == "mlp":
        return build_mlp_vae(latent_dim, hidden=hidden, **kw)
    if arch == "cnn":
        return build_cnn_vae(latent_dim, **kw)
    raise ValueError(f"unknown architecture {arch!r}: expected one of {', '.join(ARCHS)}")
