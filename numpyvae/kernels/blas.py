"""One BLAS matrix product with its leading dimensions, transposes and β, callable from
numba code (numba's ``np.dot`` takes contiguous operands only and always overwrites).

    gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

is Fortran's xGEMM, column-major: C (m × n) = α·op(A)·op(B) + β·C, with op(X) = X or Xᵀ as
trans_x is 'N' or 'T' (pass ord('N') / ord('T')), A, B and C the arrays' first elements
and ld* their column strides in elements. A C-ordered (rows, cols) array is the
column-major (cols × rows) matrix, its transpose: so row-major Y = P @ Q is
gemm('N', 'N', cols(Y), rows(Y), …, Q, ld(Q), P, ld(P), …, Y, ld(Y)).

It calls the same single-threaded library as numba's ``np.dot`` (SciPy's OpenBLAS, through
numba's own ``numba_xxgemm`` helper), so ``threads.pin_inner_blas`` covers it too.
"""

import numpy as np
from numba import types
from numba.extending import overload
from numba.np.linalg import ensure_blas

ensure_blas()  # numba's helper finds SciPy's BLAS, as np.dot does


def _signature(dtype: types.Type) -> types.Type:
    ptr = types.CPointer(dtype)
    return types.intc(types.char, types.char, types.char, types.intp, types.intp, types.intp,
                      ptr, ptr, types.intp, ptr, types.intp, ptr, ptr, types.intp)


def gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):  # noqa: ANN001, ANN201
    """Defined for numba code only (see the module docstring)."""
    raise NotImplementedError("blas.gemm is called from numba-compiled code")


@overload(gemm)
def _gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):  # noqa: ANN001, ANN202
    xxgemm = types.ExternalFunction("numba_xxgemm", _signature(a.dtype))
    kind = ord("s") if a.dtype == types.float32 else ord("d")

    def impl(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        scalars = np.empty(2, a.dtype)
        scalars[0], scalars[1] = alpha, beta
        xxgemm(kind, trans_a, trans_b, m, n, k, scalars[:1].ctypes, a.ctypes, lda, b.ctypes, ldb,
               scalars[1:].ctypes, c.ctypes, ldc)
    return impl
