"""Flatten and Reshape: they move no numbers, so backward only undoes the reshape."""

from __future__ import annotations

import math

import numpy as np

from .layer import Layer


class Flatten(Layer):
    """(N, d1, d2, ...) → (N, d1·d2·...), like PyTorch's ``Flatten()`` (start_dim=1)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)
        if x.ndim < 2:
            raise ValueError(
                f"Flatten: expected input of shape (N, ...) with at least 2 dims, "
                f"got shape {x.shape}"
            )
        self.cache = (x.shape, x.dtype)
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, d1·d2·...) → dx (N, d1, d2, ...).

        Each output is one input, unchanged: the Jacobian is the identity, so dx is dy
        put back in x's shape.
        """
        x_shape, dtype = self._saved()
        self.check_dout(dout, (x_shape[0], math.prod(x_shape[1:])), dtype)
        return dout.reshape(x_shape)


class Reshape(Layer):
    """(N, D) → (N, *shape), with D = prod(shape); e.g. Reshape(32, 4, 4) turns (N, 512)
    into (N, 32, 4, 4). Any input (N, ...) with the right number of values per sample works.
    """

    def __init__(self, *shape: int) -> None:
        super().__init__()
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if not shape or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
            raise ValueError(f"Reshape: expected positive integer sizes, got {shape}")
        self.shape = tuple(int(s) for s in shape)
        self.size = math.prod(self.shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        what = f"(N, {self.size}) or (N, ...) with {self.size} values per sample"
        self.check_input(x)
        if x.ndim < 2 or math.prod(x.shape[1:]) != self.size:
            raise ValueError(f"Reshape: expected input of shape {what}, got shape {x.shape}")
        self.cache = (x.shape, x.dtype)
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, *shape) → dx in the input's shape: the Jacobian is the identity."""
        x_shape, dtype = self._saved()
        self.check_dout(dout, (x_shape[0], *self.shape), dtype)
        return dout.reshape(x_shape)

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.shape))
