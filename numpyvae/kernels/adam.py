"""Adam's update fused into one pass over memory per param array.

The readable form is ``numpyvae.nn.adam.adam_update`` (five NumPy lines, each
a pass over the array); this kernel does the same operations in the same order
without fastmath, so its results are bitwise the same (tested). Parallel loops
split fixed chunks of the flat arrays: the same bits at any thread count.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numba import prange

from .elementwise import _CHUNK, _SERIAL_BELOW

__all__ = ["FusedAdam"]


@numba.njit(cache=True, error_model="numpy")
def _adam_chunk(p, g, m, v, b1, one_minus_b1, b2, one_minus_b2, c1, c2, lr, eps):
    for i in range(p.size):
        gi = g[i]
        mi = m[i] * b1 + one_minus_b1 * gi
        vi = v[i] * b2 + one_minus_b2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] -= lr * (mi / c1) / (np.sqrt(vi / c2) + eps)


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _adam_par(p, g, m, v, b1, one_minus_b1, b2, one_minus_b2, c1, c2, lr, eps):
    n = p.size
    for k in prange((n + _CHUNK - 1) // _CHUNK):
        lo, hi = k * _CHUNK, min((k + 1) * _CHUNK, n)
        _adam_chunk(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], b1, one_minus_b1, b2,
                    one_minus_b2, c1, c2, lr, eps)


class FusedAdam:
    """Adam's step over fixed (param, grad) pairs and moments m, v, one fused pass per
    array. Arrays that are not C-contiguous, writeable and of one float dtype go to
    ``fallback(p, g, m, v, t, lr, beta1, beta2, eps)`` (the NumPy form) instead."""

    def __init__(self, pairs: list, m: list, v: list, fallback: Callable[..., None]) -> None:
        self.arrays = [(p, g, mi, vi) for (p, g), mi, vi in zip(pairs, m, v, strict=True)]
        self.flat = [_flat_views(*a) for a in self.arrays]  # views made once, reused
        self.fallback = fallback

    def step(self, t: int, lr: float, beta1: float, beta2: float, eps: float) -> None:
        scalars: dict = {}  # the step's scalars in each dtype, as NumPy casts Python floats
        for arrays, flat in zip(self.arrays, self.flat, strict=True):
            if flat is None:
                self.fallback(*arrays, t, lr, beta1, beta2, eps)
                continue
            T = flat[0].dtype.type
            if T not in scalars:
                scalars[T] = (T(beta1), T(1.0 - beta1), T(beta2), T(1.0 - beta2),
                              T(1.0 - beta1**t), T(1.0 - beta2**t), T(lr), T(eps))
            kernel = _adam_chunk if flat[0].size < _SERIAL_BELOW else _adam_par
            kernel(*flat, *scalars[T])


def _flat_views(*arrays: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """1-D views of arrays that share a float dtype and are C-contiguous, else None."""
    dtype = arrays[0].dtype
    if dtype not in (np.float32, np.float64):
        return None
    if not all(a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable for a in arrays):
        return None
    return tuple(a.reshape(-1) for a in arrays)
