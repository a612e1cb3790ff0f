"""a @ b for the Dense layers: each product where it runs fastest.

- Small products (below ``SERIAL_BELOW`` multiply-adds; the CNN's Dense layers) run
  as one single-threaded BLAS call on the calling thread: a multi-threaded call costs
  more than it saves there, and leaves BLAS threads spinning beside numba's pool.
  These give the same bits at any thread count.
- Large products (the MLP's 784 × 300 layers) go to NumPy's multi-threaded BLAS.
  Its inner sums are split by thread count, so a float32 (256×784)@(784×300)
  product differs by up to 6e-5 between 1 and 2 threads; training records its
  thread count for that reason. Cutting the output into fixed row blocks, each one
  single-threaded BLAS call inside numba's parallel loop (the conv GEMM path's
  scheme), makes them bitwise thread-invariant too, but measured 1.4-1.6x slower
  per MLP step at 2 threads (benchmarks/paired.py, 2026-11-30), so it is not used.

``matmul`` checks its arguments (for callers outside the package);
``matmul_unchecked`` is what the layers call, having checked their input already.
"""

from __future__ import annotations

import numba
import numpy as np

from .threads import pin_inner_blas

# Below this many multiply-adds a product takes tens of microseconds on one core.
SERIAL_BELOW = 1 << 21


@numba.njit(cache=True)
def _dot_into(a, b, out):
    np.dot(a, b, out)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b for 2-D float arrays of one dtype: a (M, K), b (K, N) → (M, N), written into
    ``out`` (C-contiguous, (M, N), same dtype) if given."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: expected (M, K) @ (K, N), got shapes {a.shape} and {b.shape}")
    if a.dtype not in (np.float32, np.float64) or b.dtype != a.dtype:
        raise ValueError(f"matmul: expected float32 or float64 arrays of one dtype, "
                         f"got {a.dtype} and {b.dtype}")
    shape = (a.shape[0], b.shape[1])
    if out is not None and (out.shape != shape or out.dtype != a.dtype
                            or not out.flags.c_contiguous):
        raise ValueError(f"matmul: expected a C-contiguous out of shape {shape} and dtype "
                         f"{a.dtype}, got {out.shape} {out.dtype}")
    return matmul_unchecked(a, b, out)


def matmul_unchecked(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``matmul`` without the checks: a (M, K), b (K, N) of one float dtype."""
    if a.shape[0] * a.shape[1] * b.shape[1] >= SERIAL_BELOW:
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    # numba's np.dot takes C- or F-ordered operands; anything else is copied once
    a = a if (a.flags.c_contiguous or a.flags.f_contiguous) else np.ascontiguousarray(a)
    b = b if (b.flags.c_contiguous or b.flags.f_contiguous) else np.ascontiguousarray(b)
    pin_inner_blas()
    _dot_into(a, b, out)
    return out
