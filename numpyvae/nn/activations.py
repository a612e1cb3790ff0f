"""Elementwise activations: ELU, Softplus, Sigmoid, and the functions σ and softplus.

The functions ``sigmoid``, ``sigmoid_fast`` and ``softplus`` are stateless math
for callers that need only a value (the likelihoods, the VAE's encode); the
layers are nodes of a network that also run backwards.

They have no parameters, take any shape and either float dtype, and return the
input's dtype. Each is written so that no intermediate overflows: only e^(−|x|)
(which lies in (0, 1]) or e^(min(x, 0)) is ever exponentiated, so inputs of
magnitude 1e4 give exact limits and no RuntimeWarning.

ELU and Sigmoid run fused numba kernels (``numpyvae.kernels.elementwise``)
unless ``use_kernels`` is False. The NumPy reference the kernels are tested
against is ELU's ``_forward_numpy``/``_backward_numpy``, and for Sigmoid the
function ``sigmoid`` and the one-line backward in ``Sigmoid.backward``.
"""

from __future__ import annotations

import numpy as np

from .layer import Layer
from .lazy_kernels import lazy

elementwise = lazy("elementwise")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + e^(−x)) = e^x / (1 + e^x); pick the form whose exponent is ≤ 0.

    The readable NumPy form, the reference the fused kernel is tested against.
    """
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_fast(x: np.ndarray) -> np.ndarray:
    """σ(x) for a float32/float64 array by the fused kernel that ``Sigmoid.forward`` runs:
    the same values as ``sigmoid`` to a few ulp, about 10× faster on a batch of images
    (what a likelihood computes at every training step)."""
    return elementwise.sigmoid_forward(x)


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) = max(x, 0) + log(1 + e^(−|x|))."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class ELU(Layer):
    """y = x for x > 0, α(e^x − 1) otherwise. Shapes: x, y (N, *)."""

    use_kernels = True

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)  # a python float keeps float32 inputs float32

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        self.cache = x
        if self.use_kernels:
            return elementwise.elu_forward(x, self.alpha)
        return self._forward_numpy(x)

    def _forward_numpy(self, x: np.ndarray) -> np.ndarray:
        # expm1 of min(x, 0): accurate near 0 and never exponentiates a large positive x
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0)))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, *) → dx (N, *)."""
        x = np.asarray(self._saved())  # an array, or z = BN(x) kept by Sequential's fused path
        self.check_dout(dout, x.shape, x.dtype)
        if self.use_kernels:
            return elementwise.elu_backward(x, dout, self.alpha)
        return self._backward_numpy(dout, x)

    def _backward_numpy(self, dout: np.ndarray, x: np.ndarray) -> np.ndarray:
        """dy/dx = 1 for x > 0, α·e^x otherwise, so dx = dy ⊙ dy/dx."""
        return np.where(x > 0, dout, dout * (self.alpha * np.exp(np.minimum(x, 0))))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(Layer):
    """y = log(1 + e^x), a smooth positive version of max(x, 0). Shapes: x, y (N, *)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        self.cache = x
        return softplus(x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, *) → dx (N, *).

        d/dx log(1 + e^x) = e^x / (1 + e^x) = σ(x), so dx = dy ⊙ σ(x).
        """
        x = self._saved()
        self.check_dout(dout, x.shape, x.dtype)
        return dout * sigmoid(x)


class Sigmoid(Layer):
    """y = σ(x) = 1 / (1 + e^(−x)). Shapes: x, y (N, *)."""

    use_kernels = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        y = sigmoid_fast(x) if self.use_kernels else sigmoid(x)
        self.cache = y
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, *) → dx (N, *).

        dσ/dx = σ(x)(1 − σ(x)) = y(1 − y), so dx = dy ⊙ y(1 − y).
        """
        y = self._saved()
        self.check_dout(dout, y.shape, y.dtype)
        if self.use_kernels:
            return elementwise.sigmoid_backward(y, dout)
        return dout * y * (1 - y)

