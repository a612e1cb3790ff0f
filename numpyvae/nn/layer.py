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

Inference: ``layer.infer(x)`` gives the same y as ``forward`` in the layer's
current mode, but keeps nothing: the cache a pending ``backward`` needs is left
as it was, and no buffer (BatchNorm's running statistics) moves. Encoding,
decoding and sampling run through it, so they may happen between a training
forward and its backward. A layer made of layers (``Sequential``) runs its
children's ``infer``. Every one keeps the pending backward the same way:
``with pending_backward_kept(node):`` around the forward.

Validation happens once, at the layer's boundary: ``forward`` starts with
``self.check_input(x, shape)`` and ``backward`` with
``self.check_dout(dout, shape, dtype)``; both raise a ValueError that names
the layer, what it expected and what came. What runs below them (the math,
the kernels) checks nothing again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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

    def infer(self, x: np.ndarray) -> np.ndarray:
        """y = f(x) in the current mode, keeping nothing: no cache, no buffer update."""
        with pending_backward_kept(self):
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

    def check_input(self, x: Any, shape: tuple[int | None, ...] | None = None) -> None:
        """Raise a ValueError unless x is a float array of the given shape.

        ``shape`` lists the expected sizes, None where any size goes, e.g.
        (None, 784) for (N, 784); None itself allows any shape with a batch axis.
        The batch (the first axis) must not be empty. A layer with parameters
        also needs x in its own dtype.
        """
        name, what = type(self).__name__, _shape_text  # the text only for an error message
        if not isinstance(x, np.ndarray):
            raise ValueError(f"{name}: expected a NumPy array of shape {what(shape)}, "
                             f"got {type(x).__name__}")
        if shape is not None and x.ndim != len(shape):
            raise ValueError(f"{name}: expected input of shape {what(shape)} ({len(shape)} dims),"
                             f" got shape {x.shape}")
        for axis, (got, want) in enumerate(zip(x.shape, shape or (), strict=False)):
            if want is not None and got != want:
                unit = "channels" if len(shape) == 4 and axis == 1 else "values on axis"
                raise ValueError(f"{name}: expected input of shape {what(shape)}, got shape "
                                 f"{x.shape} ({got} {unit} where {want} are expected)")
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"{name}: expected a batch of at least 1 sample, "
                             f"got shape {x.shape}")
        if x.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name}: expected a float32 or float64 input, got dtype {x.dtype}")
        if self.params and x.dtype != self.dtype:
            raise ValueError(
                f"{name}: input dtype {x.dtype} does not match the layer's dtype {self.dtype}; "
                f"build the layer with dtype=np.{x.dtype} or cast the input"
            )

    def check_dout(self, dout: Any, shape: tuple[int, ...], dtype: Any) -> None:
        """Raise a ValueError unless dout has forward's output shape and dtype."""
        if (not isinstance(dout, np.ndarray) or dout.shape != tuple(shape)
                or dout.dtype != np.dtype(dtype)):
            got = (f"shape {dout.shape} dtype {dout.dtype}" if isinstance(dout, np.ndarray)
                   else type(dout).__name__)
            raise ValueError(f"{type(self).__name__}.backward: expected dout of shape "
                             f"{tuple(shape)} and dtype {np.dtype(dtype)}, got {got}")

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        n = self.num_params()
        count = f"  # {n:,} params" if n else ""
        return f"{type(self).__name__}({self.extra_repr()}){count}"


@contextlib.contextmanager
def pending_backward_kept(node: Any) -> Iterator[None]:
    """Run a forward inside to keep nothing: ``node.cache`` and its ``buffers`` (if any)
    are put back as they were on the way out. The one mechanism behind every ``infer``
    (and the likelihoods' ``log_prob``)."""
    cache = node.cache
    buffers = {k: v.copy() for k, v in getattr(node, "buffers", {}).items()}
    try:
        yield
    finally:
        node.cache = cache
        for k, v in buffers.items():
            node.buffers[k][...] = v


def _shape_text(shape: tuple[int | None, ...] | None) -> str:
    """(None, 784) → "(N, 784)", (None, 3, None, None) → "(N, 3, H, W)": free axes by name;
    None (any shape with a batch axis) → "(N, ...)"."""
    if shape is None:
        return "(N, ...)"
    names = {2: "ND", 3: "NCL", 4: "NCHW"}.get(len(shape), "N" + "ABCDEFGHIJ")
    parts = [names[i] if s is None else str(s) for i, s in enumerate(shape)]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
