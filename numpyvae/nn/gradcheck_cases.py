"""Gradient-check cases for the layers of numpyvae.nn: each a float64 layer and its input.

A ``Case`` names a layer and a configuration; ``build(rng)`` returns (layer, x). The
report (``python -m numpyvae.gradcheck``) prints one row per case and the tests run
each; ``numpyvae.models.gradcheck_cases`` adds the VAE family's and joins both lists.
A case is written here once, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .activations import ELU, Sigmoid, Softplus
from .batchnorm2d import BatchNorm2d
from .concat_labels import ConcatLabels
from .conv2d import Conv2d
from .conv_transpose2d import ConvTranspose2d
from .dense import Dense
from .layer import Layer
from .reparameterize import Reparameterize
from .sequential import Sequential
from .shape import Flatten, Reshape

F64 = np.float64
Builder = Callable[[np.random.Generator], tuple[Layer, np.ndarray]]


@dataclass
class Case:
    """One configuration of one layer: ``build(rng)`` returns (float64 layer, input).

    ``max_entries`` caps the entries checked per tensor (None: the checker's default),
    for cases whose every forward is costly (a whole model).
    """

    layer: str
    config: str
    build: Builder
    max_entries: int | None = None

    @property
    def id(self) -> str:
        return f"{self.layer}: {self.config}"


def signed_away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Both signs, |x| in [0.05, 2]: crosses ELU's kink at 0 without any entry sitting on it
    (a finite difference across the kink would measure neither one-sided slope)."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.05, 2.0, size=shape)


def batchnorm(channels: int, rng: np.random.Generator, training: bool) -> BatchNorm2d:
    """BatchNorm2d with non-trivial γ, β and running statistics, so eval mode tests something."""
    return set_batchnorm_state(BatchNorm2d(channels, dtype=F64), rng, training)


def set_batchnorm_state(bn: Layer, rng: np.random.Generator, training: bool) -> Layer:
    """Draw γ ~ U(0.5, 1.5), β ~ N(0, 1), running mean ~ N(0, 1) and running variance
    ~ U(0.5, 2) into a BatchNorm layer's arrays, in that order, and set its mode."""
    c = bn.params["weight"].shape
    bn.params["weight"][...] = rng.uniform(0.5, 1.5, c)
    bn.params["bias"][...] = rng.normal(size=c)
    bn.buffers["running_mean"][...] = rng.normal(size=c)
    bn.buffers["running_var"][...] = rng.uniform(0.5, 2.0, c)
    return bn.train() if training else bn.eval()


def _conv2d(*args, **kwargs) -> Conv2d:
    return Conv2d(*args, dtype=F64, **kwargs)


def _conv_transpose2d(*args, **kwargs) -> ConvTranspose2d:
    return ConvTranspose2d(*args, dtype=F64, **kwargs)


def _dense(*args, **kwargs) -> Dense:
    return Dense(*args, dtype=F64, **kwargs)


def _concat_labels(rng: np.random.Generator, n: int, num_classes: int) -> ConcatLabels:
    layer = ConcatLabels(num_classes)
    layer.set_labels(rng.integers(0, num_classes, n))
    return layer


def _reparameterize(rng: np.random.Generator, n: int, z: int) -> tuple[Layer, np.ndarray]:
    layer = Reparameterize()
    layer.set_noise(rng.standard_normal((n, z)))
    m_h = np.concatenate([rng.standard_normal((n, z)), 2 * rng.standard_normal((n, z))], axis=1)
    return layer, m_h


def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def cases() -> list[Case]:
    """Every nn layer in the configurations that matter (strides, padding, modes, no bias)."""
    normal = _normal
    return [
        Case("Dense", "5 → 4, x (3, 5)", lambda r: (_dense(5, 4, rng=r), normal(r, 3, 5))),
        Case("Dense", "4 → 6, bias=False, x (2, 4)",
             lambda r: (_dense(4, 6, bias=False, rng=r), normal(r, 2, 4))),
        Case("Dense", "3 → 2, batch of 1", lambda r: (_dense(3, 2, rng=r), normal(r, 1, 3))),
        Case("BatchNorm2d", "train, x (4, 3, 3, 2)",
             lambda r: (batchnorm(3, r, training=True), 1 + 2 * normal(r, 4, 3, 3, 2))),
        Case("BatchNorm2d", "train, 1×1 maps, x (5, 2, 1, 1)",
             lambda r: (batchnorm(2, r, training=True), normal(r, 5, 2, 1, 1))),
        Case("BatchNorm2d", "eval (running stats), x (4, 3, 3, 2)",
             lambda r: (batchnorm(3, r, training=False), 1 + 2 * normal(r, 4, 3, 3, 2))),
        Case("ELU", "alpha=1.0, x of both signs, |x| ≥ 0.05",
             lambda r: (ELU(), signed_away_from_zero(r, (4, 6)))),
        Case("ELU", "alpha=0.5, x (2, 3, 2, 2)",
             lambda r: (ELU(alpha=0.5), signed_away_from_zero(r, (2, 3, 2, 2)))),
        Case("Softplus", "x ~ N(0, 4²), x (4, 6)", lambda r: (Softplus(), 4 * normal(r, 4, 6))),
        Case("Sigmoid", "x ~ N(0, 4²), x (4, 6)", lambda r: (Sigmoid(), 4 * normal(r, 4, 6))),
        Case("Flatten", "(2, 3, 2, 2) → (2, 12)", lambda r: (Flatten(), normal(r, 2, 3, 2, 2))),
        Case("Reshape", "(2, 12) → (2, 3, 2, 2)", lambda r: (Reshape(3, 2, 2), normal(r, 2, 12))),
        Case("Conv2d", "3 → 4, k3 s1 p1, x (2, 3, 5, 5)",
             lambda r: (_conv2d(3, 4, 3, stride=1, padding=1, rng=r), normal(r, 2, 3, 5, 5))),
        Case("Conv2d", "3 → 2, k3 s2 p1, x (2, 3, 6, 5)",
             lambda r: (_conv2d(3, 2, 3, stride=2, padding=1, rng=r), normal(r, 2, 3, 6, 5))),
        Case("Conv2d", "2 → 3, k2 s2 p0, bias=False, x (1, 2, 5, 4)",
             lambda r: (_conv2d(2, 3, 2, stride=2, bias=False, rng=r), normal(r, 1, 2, 5, 4))),
        Case("ConvTranspose2d", "3 → 2, k3 s1 p1, x (2, 3, 4, 4)",
             lambda r: (_conv_transpose2d(3, 2, 3, stride=1, padding=1, rng=r),
                        normal(r, 2, 3, 4, 4))),
        Case("ConvTranspose2d", "3 → 2, k3 s2 p1, x (2, 3, 3, 4)",
             lambda r: (_conv_transpose2d(3, 2, 3, stride=2, padding=1, rng=r),
                        normal(r, 2, 3, 3, 4))),
        Case("ConvTranspose2d", "3 → 2, k3 s2 p1 op1, x (2, 3, 3, 3)",
             lambda r: (_conv_transpose2d(3, 2, 3, stride=2, padding=1, output_padding=1, rng=r),
                        normal(r, 2, 3, 3, 3))),
        Case("ConcatLabels", "(4, 5) + one-hot of 3 classes",
             lambda r: (_concat_labels(r, 4, 3), normal(r, 4, 5))),
        Case("Reparameterize", "[m, h] (3, 2·4) → [z, kl] (3, 2·4), ε fixed",
             lambda r: _reparameterize(r, 3, 4)),
    ] + _chains()


def _chains() -> list[Case]:
    """Layers in a Sequential: the chain rule across them, as the models use them."""
    normal = _normal
    return [
        Case("Sequential", "Dense → ELU → Dense → Softplus",
             lambda r: (Sequential(_dense(6, 5, rng=r), ELU(), _dense(5, 3, rng=r), Softplus()),
                        signed_away_from_zero(r, (4, 6)))),
        Case("Sequential", "Dense, Reshape, BN(train), ELU, Flatten, Dense, Sigmoid",
             lambda r: (Sequential(_dense(5, 6, rng=r), Reshape(3, 1, 2),
                                   batchnorm(3, r, training=True), ELU(), Flatten(),
                                   _dense(6, 2, rng=r), Sigmoid()),
                        normal(r, 4, 5))),
        Case("Sequential", "Conv2d → BN(train) → ELU: conv bias grad is 0",
             lambda r: (Sequential(_conv2d(2, 3, 3, padding=1, rng=r),
                                   batchnorm(3, r, training=True), ELU()),
                        normal(r, 2, 2, 4, 4))),
        Case("Sequential", "mini decoder: Dense, ConvT op1, BN, Conv2d",
             lambda r: (Sequential(_dense(3, 8, rng=r), Reshape(2, 2, 2),
                                   _conv_transpose2d(2, 3, 3, stride=2, padding=1,
                                                     output_padding=1, rng=r),
                                   batchnorm(3, r, training=True), ELU(),
                                   _conv2d(3, 1, 3, padding=1, rng=r), Sigmoid()),
                        normal(r, 3, 3))),
    ]
