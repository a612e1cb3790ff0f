"""Elementwise activations: ELU, Softplus, Sigmoid.

They have no parameters, take any shape and either float dtype, and return the
input's dtype. Each is written so that no intermediate overflows: only e^(−|x|)
(which lies in (0, 1]) or e^(min(x, 0)) is ever exponentiated, so inputs of
magnitude 1e4 give exact limits and no RuntimeWarning.
"""

from __future__ import annotations

import numpy as np

from .base import Layer


def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + e^(−x)) = e^x / (1 + e^x); pick the form whose exponent is ≤ 0."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) = max(x, 0) + log(1 + e^(−|x|))."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class _Elementwise(Layer):
    """Shared input check: any shape, float32 or float64."""

    def _check(self, x: np.ndarray) -> None:
        self._check_input(x, np.ndim(x), "(N, *) of floats")


class ELU(_Elementwise):
    """y = x for x > 0, α(e^x − 1) otherwise. Shapes: x, y (N, *)."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)  # a python float keeps float32 inputs float32

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x)
        # expm1 of min(x, 0): accurate near 0 and never exponentiates a large positive x
        y = np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0)))
        self.cache = x
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, *) → dx (N, *).

        dy/dx = 1 for x > 0, α·e^x otherwise, so dx = dy ⊙ dy/dx.
        """
        x = self._saved()
        return np.where(x > 0, dout, dout * (self.alpha * np.exp(np.minimum(x, 0))))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(_Elementwise):
    """y = log(1 + e^x), a smooth positive version of max(x, 0). Shapes: x, y (N, *)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x)
        self.cache = x
        return softplus(x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, *) → dx (N, *).

        d/dx log(1 + e^x) = e^x / (1 + e^x) = σ(x), so dx = dy ⊙ σ(x).
        """
        x = self._saved()
        return dout * sigmoid(x)


class Sigmoid(_Elementwise):
    """y = σ(x) = 1 / (1 + e^(−x)). Shapes: x, y (N, *)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x)
        y = sigmoid(x)
        self.cache = y
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, *) → dx (N, *).

        dσ/dx = σ(x)(1 − σ(x)) = y(1 − y), so dx = dy ⊙ y(1 − y).
        """
        y = self._saved()
        return dout * y * (1 - y)
