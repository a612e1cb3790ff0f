"""BatchNorm2d then ELU in one pass: the kernel path ``Sequential`` takes for that pair.

The layers stay two objects with their own arrays. ``forward`` leaves each the cache its own
forward would, except that ELU's input z = BN(x) is a recipe (``NormalizedInput``), made into
an array only if ELU's own backward needs it: when ``use_kernels`` went off in between, or the
BatchNorm ran again. The NumPy reference is the two layers' own forms, one after the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import ELU
from .batchnorm2d import BatchNorm2d
from .lazy_kernels import lazy

kernels = lazy()


class NormalizedInput:
    """z = (x − μ)·scale + shift (N, C, H, W), computed when read as an array."""

    def __init__(self, x3: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                 shift: np.ndarray, bn_cache: Any, shape: tuple[int, ...]) -> None:
        self.x3, self.mean, self.scale, self.shift = x3, mean, scale, shift
        self.bn_cache, self.shape = bn_cache, shape

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        z = kernels.normalize(self.x3, self.mean, self.scale, self.shift).reshape(self.shape)
        return z if dtype is None else z.astype(dtype)


def fusable(bn: Any, elu: Any) -> bool:
    return (isinstance(bn, BatchNorm2d) and isinstance(elu, ELU) and bn.use_kernels
            and elu.use_kernels)


def forward(bn: BatchNorm2d, elu: ELU, x: np.ndarray) -> np.ndarray:
    """elu.forward(bn.forward(x)), reading x once for the statistics and once for y."""
    bn._check_batch(x)
    x3 = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
    mean, inv_std = bn._kernel_statistics(x3)
    scale, shift = bn.params["weight"] * inv_std, bn.params["bias"].copy()
    y = kernels.normalize_elu(x3, mean, scale, shift, elu.alpha)
    bn.cache = ((x3.reshape(x.shape), mean), inv_std, bn.training)
    elu.cache = NormalizedInput(x3, mean, scale, shift, bn.cache, x.shape)
    return y.reshape(x.shape)


def pending(bn: Any, elu: Any) -> bool:
    """Did ``forward`` make both caches, and may the fused backward run on them?"""
    return (fusable(bn, elu) and isinstance(elu.cache, NormalizedInput)
            and elu.cache.bn_cache is bn.cache)


def backward(bn: BatchNorm2d, elu: ELU, dout: np.ndarray) -> np.ndarray:
    """bn.backward(elu.backward(dout)) in two passes; writes BatchNorm's dγ and dβ."""
    (x, mean), inv_std, was_training = bn._saved()
    z = elu._saved()
    elu.check_dout(dout, x.shape, x.dtype)
    dx, dgamma, dbeta = kernels.batchnorm_elu_backward(
        x, dout, mean, inv_std, bn.params["weight"], z.scale, z.shift, elu.alpha, was_training)
    bn.grads["weight"][...] = dgamma
    bn.grads["bias"][...] = dbeta
    return dx
