"""The interface every layer shares.

A layer is a function y = f(x; params) that can also run backwards:

    y = layer.forward(x)        # keeps what backward needs in self.cache
    dx = layer.backward(dy)     # returns dL/dx, writes dL/dparam into self.grads

``params`` and ``grads`` have the same keys and the same shapes. ``backward``
overwrites ``grads[k][...]`` in place; it never accumulates and never rebinds
the arrays, so the (param, grad) pairs an optimizer holds stay valid for the
life of the layer. Optimizer steps and checkpoint loads also write into
``params[k][...]`` in place, for the same reason.

State that is not learned (BatchNorm's running statistics) lives in
``buffers``.

``needs_input_grad = False`` tells a layer that nothing upstream wants dL/dx
(the first layer of an encoder, whose input is the data): Dense and Conv2d
then skip that product and return None, and ``Sequential`` stops there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Layer:
    """Base class: holds params, grads, buffers, the cache and the mode."""

    def __init__(self, dtype: Any = np.float32) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"{type(self).__name__}: dtype must be float32 or float64, got {self.dtype}"
            )
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.cache: Any = None
        self.training = True
        self.needs_input_grad = True

    # -- the two methods a layer implements -------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    # -- shared plumbing --------------------------------------------------
    def add_param(self, name: str, value: np.ndarray) -> None:
        """Register a learnable array and its gradient buffer (zeros, same shape)."""
        value = np.ascontiguousarray(value, dtype=self.dtype)
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def train(self) -> Layer:
        self.training = True
        return self

    def eval(self) -> Layer:
        self.training = False
        return self

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(param, grad) pairs, in a fixed order, for the optimizer."""
        return [(self.params[k], self.grads[k]) for k in self.params]

    def named_parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(name, param, grad) triples, in the same order as parameters()."""
        return [(k, self.params[k], self.grads[k]) for k in self.params]

    def named_arrays(self) -> dict[str, np.ndarray]:
        """Every array a checkpoint must hold: params, then buffers, by name."""
        out = {f"param.{k}": v for k, v in self.params.items()}
        out.update({f"buffer.{k}": v for k, v in self.buffers.items()})
        return out

    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def _saved(self) -> Any:
        """The forward cache, or a clear error if backward comes first."""
        if self.cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward: "
                "run forward(x) first so the layer has its inputs to differentiate"
            )
        return self.cache

    def _check_input(self, x: np.ndarray, ndim: int | tuple[int, ...], what: str) -> None:
        """Raise a ValueError naming the layer, what it expected and what came."""
        name = type(self).__name__
        if not isinstance(x, np.ndarray):
            raise ValueError(f"{name}: expected a NumPy array {what}, got {type(x).__name__}")
        ndims = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in ndims:
            raise ValueError(
                f"{name}: expected input of shape {what} ({' or '.join(map(str, ndims))} dims), "
                f"got shape {x.shape}"
            )
        if x.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name}: expected a float32 or float64 input, got dtype {x.dtype}")
        if self.params and x.dtype != self.dtype:
            raise ValueError(
                f"{name}: input dtype {x.dtype} does not match the layer's dtype {self.dtype}; "
                f"build the layer with dtype=np.{x.dtype} or cast the input"
            )

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        n = self.num_params()
        count = f"  # {n:,} params" if n else ""
        return f"{type(self).__name__}({self.extra_repr()}){count}"
