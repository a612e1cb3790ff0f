"""a @ b with the same bits at any thread count: the Dense layers' matrix products.

A multi-threaded BLAS splits a product's inner sums differently for different
thread counts (a float32 (256×784)@(784×300) product differs by up to 6e-5
between 1 and 2 threads), so a run at ``--threads 1`` and one at
``--threads 2`` would drift apart. Here the rows of the output are cut into
blocks whose size is set by the shapes alone; numba's threads share out the
blocks, and each block is one single-threaded BLAS call (numba's np.dot, the
BLAS ``threads.pin_inner_blas`` keeps at one thread), the conv GEMM path's
scheme. A block's result does not depend on which thread computes it, so the
product is bitwise the same at any thread count.

Small products (below ``SERIAL_BELOW`` multiply-adds) are a single block on
the calling thread: a parallel region would cost more than it saves.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .threads import pin_inner_blas

# Below this many multiply-adds a product takes tens of microseconds on one core.
SERIAL_BELOW = 1 << 21
# Rows of the output per block: enough for BLAS to run near full speed on each block, few
# enough that the MLP's products (256 or 784 rows) give two threads work to share.
BLOCK_ROWS = 128


@numba.njit(cache=True)
def _dot_into(a, b, out):
    np.dot(a, b, out)


@numba.njit(parallel=True, cache=True)
def _dot_by_row_blocks(a, b, block_rows, out):
    """out[r0:r1] = a[r0:r1] @ b for fixed blocks of ``block_rows`` rows, in parallel."""
    M = a.shape[0]
    for blk in prange((M + block_rows - 1) // block_rows):
        r0 = blk * block_rows
        r1 = min(M, r0 + block_rows)
        np.dot(a[r0:r1], b, out[r0:r1])


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b for 2-D float arrays of one dtype: a (M, K), b (K, N) → (M, N), written into
    ``out`` (C-contiguous, (M, N), same dtype) if given. Bitwise the same at any thread count.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: expected (M, K) @ (K, N), got shapes {a.shape} and {b.shape}")
    if a.dtype not in (np.float32, np.float64) or b.dtype != a.dtype:
        raise ValueError(f"matmul: expected float32 or float64 arrays of one dtype, "
                         f"got {a.dtype} and {b.dtype}")
    shape = (a.shape[0], b.shape[1])
    if out is None:
        out = np.empty(shape, dtype=a.dtype)
    elif out.shape != shape or out.dtype != a.dtype or not out.flags.c_contiguous:
        raise ValueError(f"matmul: expected a C-contiguous out of shape {shape} and dtype "
                         f"{a.dtype}, got {out.shape} {out.dtype}")
    # row blocks of a must be contiguous; b may be either layout (BLAS reads it transposed)
    a = np.ascontiguousarray(a)
    if not (b.flags.c_contiguous or b.flags.f_contiguous):
        b = np.ascontiguousarray(b)
    pin_inner_blas()
    if a.shape[0] * a.shape[1] * b.shape[1] < SERIAL_BELOW:
        _dot_into(a, b, out)
    else:
        _dot_by_row_blocks(a, b, BLOCK_ROWS, out)
    return out
