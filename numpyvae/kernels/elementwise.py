"""Fused elementwise kernels: ELU and Sigmoid (Adam's update is in ``adam.py``).

These functions know nothing of layers. Each replaces a chain of NumPy calls
(each of which reads and writes a whole array) by one or two passes over
memory; the layers keep the readable NumPy form as their reference.

- ``elu_forward``/``elu_backward``, ``sigmoid_forward``/``sigmoid_backward``: flat loops, cut into
  fixed chunks of ``_CHUNK`` elements that numba's threads share out.
- ``sigmoid_squared_error``/``sigmoid_squared_error_backward``: the Gaussian likelihood's
  x̂ = σ(out), Σ (x̂ − x)² per image and its gradient, one row (image) per work item: one
  pass each, where NumPy makes five arrays and three passes (and their page faults).

Parallel loops split independent outputs only (fixed chunks of a flat array),
so results are bitwise the same at any thread count. (BatchNorm2d's kernels
are in ``batchnorm.py``.)

float32 stays float32: every constant inside a kernel is made with
``x.dtype.type(...)``, and the callers pass scalars already cast to the
array's dtype (numba, like NumPy 1, would promote float32 · float64 to float64).

numba's ``math.exp`` in a loop is a scalar libm call per element; for float32
we use our own exponential (Cody–Waite range reduction as in Cephes' ``expf``, and
e^r − 1 = r + r²·q(r) with q of degree 4), which LLVM vectorises, within 1 ulp.
float64 (the gradient checks' dtype) keeps libm's ``exp``/``expm1``.

``error_model="numpy"``: a division by zero gives inf or nan as in NumPy, instead
of numba's default Python check, whose branch stops LLVM from vectorising any
loop that divides by an array element.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange, types
from numba.extending import intrinsic, overload

__all__ = [
    "elu_forward",
    "elu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "sigmoid_squared_error",
    "sigmoid_squared_error_backward",
]

# Elements per chunk of a flat parallel loop: a few tens of KB, so each chunk
# streams through cache and the threads get many chunks each.
_CHUNK = 1 << 14
# Below this many elements a parallel region costs more than it saves.
_SERIAL_BELOW = 1 << 18

# "contract" only (fused multiply-add): no reassociation, NaN and inf semantics kept.
_FMA = {"contract"}
# Sums may also be reassociated, so LLVM can split them over vector lanes: an order
# fixed at compile time, so results stay reproducible.
_SUMS = {"contract", "reassoc"}


# ----------------------------------------------------------------------------
# e^v and e^v − 1 for v ≤ 0, vectorisable in float32
# ----------------------------------------------------------------------------
@intrinsic
def _f32_from_bits(typingctx, bits):
    """Reinterpret an int32's bits as a float32 (how 2ⁿ is built from n)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return types.float32(types.int32), codegen


_F = np.float32
_EXP_LOW = _F(-87.0)  # e^−87 ≈ 1.6e−38 is still a normal float32; below, e^v is taken as 0


@numba.njit(fastmath=_FMA)
def _exp_parts32(v):
    """v ∈ [−87, 0] → (2ⁿ, e^r − 1) with e^v = 2ⁿ·e^r, n = round(v/ln 2), |r| ≤ ln2/2."""
    n = np.floor(v * _F(1.44269504) + _F(0.5))
    r = v - n * _F(0.693359375) - n * _F(-2.12194440e-4)  # ln 2 in two parts: r is exact
    # q of degree 4, one FMA fewer than Cephes' degree 5 (fitted to e^r on |r| ≤ ln2/2 by
    # weighted least squares): the largest error over every 7th float32 in [−87, 0] stays
    # 0.74 ulp for e^v − 1 and 0.69 for e^v (Cephes': 0.73 and 0.70); the fused BatchNorm+ELU
    # forward 0.93x, its backward pass 1 0.95x (14x14 planes in cache, 1 thread)
    q = ((((_F(1.37514e-3) * r + _F(8.36892e-3)) * r + _F(4.166953e-2)) * r
          + _F(0.16666518)) * r + _F(0.49999988))
    two_n = _f32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    return two_n, r + r * r * q


# Both take v ≤ 0 (or NaN, whose result the callers discard), as every caller passes
# min(v, 0) or −|v|: no clamp at 0 of their own.
@numba.njit(fastmath=_FMA)
def _exp32(v):
    low = v < _EXP_LOW
    two_n, em1 = _exp_parts32(max(v, _EXP_LOW))
    e = two_n + two_n * em1
    return _F(0.0) if low else e


@numba.njit(fastmath=_FMA)
def _expm1_32(v):
    # No select for v < −87: there 2ⁿ = 2⁻¹²⁶ and the sum below rounds to −1 exactly, the
    # value the select gave (3 of ~30 vector ops gone: 0.354 -> 0.309 ns an entry for the
    # fused BatchNorm+ELU forward, 1 thread, in L2; bitwise the same results)
    two_n, em1 = _exp_parts32(max(v, _EXP_LOW))
    # e^v − 1 = 2ⁿ(e^r − 1) + (2ⁿ − 1): exact near 0, where n = 0
    return two_n * em1 + (two_n - _F(1.0))


def exp_nonpositive(v: float) -> float:
    """e^v for v ≤ 0 (inside jitted code: vectorisable in float32, libm in float64)."""
    return math.exp(v)


def expm1_nonpositive(v: float) -> float:
    """e^v − 1 for v ≤ 0 (inside jitted code: vectorisable in float32, libm in float64)."""
    return math.expm1(v)


@overload(exp_nonpositive)
def _exp_nonpositive_impl(v):
    if v == types.float32:
        return lambda v: _exp32(v)
    return lambda v: math.exp(v)


@overload(expm1_nonpositive)
def _expm1_nonpositive_impl(v):
    if v == types.float32:
        return lambda v: _expm1_32(v)
    return lambda v: math.expm1(v)


# ----------------------------------------------------------------------------
# Flat elementwise kernels
# ----------------------------------------------------------------------------
@numba.njit(cache=True, error_model="numpy", fastmath=_FMA)
def _elu_forward_chunk(x, alpha, y):
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        e = expm1_nonpositive(min(v, zero))
        y[i] = alpha * e if v <= zero else v  # NaN takes the else branch: it propagates


@numba.njit(cache=True, error_model="numpy", fastmath=_FMA)
def _elu_backward_chunk(x, dy, alpha, dx):
    zero, one = x.dtype.type(0), x.dtype.type(1)
    for i in range(x.size):
        v = x[i]
        e = exp_nonpositive(min(v, zero))
        # dy·1 is dy exactly; choosing the factor, not the result, compiles to a blend
        # instead of a branch that random signs would mispredict (twice as fast)
        dx[i] = dy[i] * (one if v > zero else alpha * e)


@numba.njit(cache=True, error_model="numpy", fastmath=_FMA)
def _sigmoid_chunk(x, y):
    zero, one = x.dtype.type(0), x.dtype.type(1)
    for i in range(x.size):
        v = x[i]
        e = exp_nonpositive(-abs(v))  # e^(−|x|) ∈ (0, 1]: never overflows
        y[i] = (one if v >= zero else e) / (one + e)


@numba.njit(cache=True, error_model="numpy")
def _sigmoid_backward_chunk(y, dy, dx):
    one = y.dtype.type(1)
    for i in range(y.size):
        dx[i] = dy[i] * y[i] * (one - y[i])


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _elu_forward_par(x, alpha, y):
    n = x.size
    for k in prange((n + _CHUNK - 1) // _CHUNK):
        lo, hi = k * _CHUNK, min((k + 1) * _CHUNK, n)
        _elu_forward_chunk(x[lo:hi], alpha, y[lo:hi])


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _elu_backward_par(x, dy, alpha, dx):
    n = x.size
    for k in prange((n + _CHUNK - 1) // _CHUNK):
        lo, hi = k * _CHUNK, min((k + 1) * _CHUNK, n)
        _elu_backward_chunk(x[lo:hi], dy[lo:hi], alpha, dx[lo:hi])


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _sigmoid_par(x, y):
    n = x.size
    for k in prange((n + _CHUNK - 1) // _CHUNK):
        lo, hi = k * _CHUNK, min((k + 1) * _CHUNK, n)
        _sigmoid_chunk(x[lo:hi], y[lo:hi])


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _sigmoid_backward_par(y, dy, dx):
    n = y.size
    for k in prange((n + _CHUNK - 1) // _CHUNK):
        lo, hi = k * _CHUNK, min((k + 1) * _CHUNK, n)
        _sigmoid_backward_chunk(y[lo:hi], dy[lo:hi], dx[lo:hi])


@numba.njit(cache=True, error_model="numpy", fastmath=_SUMS)
def _squared_distance(a, b):
    """Σ (a − b)² over one row."""
    s = a.dtype.type(0)
    for i in range(a.size):
        d = a[i] - b[i]
        s += d * d
    return s


@numba.njit(cache=True, error_model="numpy", fastmath=_FMA)
def _sigmoid_squared_error_rows(out, x, x_hat, sq, lo, hi):
    """Rows lo..hi: x̂ = σ(out) by Sigmoid's own kernel (the same bits), then Σ (x̂ − x)²
    while the row is in cache."""
    for n in range(lo, hi):
        _sigmoid_chunk(out[n], x_hat[n])
        sq[n] = _squared_distance(x_hat[n], x[n])


@numba.njit(cache=True, error_model="numpy", fastmath=_FMA)
def _sigmoid_squared_error_grad_rows(x_hat, x, k, dout, lo, hi):
    """Rows lo..hi: d out = (x̂ − x)·k_n·x̂·(1 − x̂), multiplied in the NumPy form's order."""
    one = x_hat.dtype.type(1)
    for n in range(lo, hi):
        h, xs, d, kn = x_hat[n], x[n], dout[n], k[n]
        for i in range(h.size):
            d[i] = (h[i] - xs[i]) * kn * h[i] * (one - h[i])


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _sigmoid_squared_error_par(out, x, x_hat, sq):
    for n in prange(out.shape[0]):
        _sigmoid_squared_error_rows(out, x, x_hat, sq, n, n + 1)


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _sigmoid_squared_error_grad_par(x_hat, x, k, dout):
    for n in prange(x_hat.shape[0]):
        _sigmoid_squared_error_grad_rows(x_hat, x, k, dout, n, n + 1)


def _rows(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(a.shape[0], -1)


def sigmoid_squared_error(out: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x̂ = σ(out) (out's shape) and Σ (x̂ − x)² over each image (N,). out, x (N, ...) of one
    shape and float dtype."""
    o, xr = _rows(out), _rows(x)
    x_hat = np.empty_like(o)
    sq = np.empty(o.shape[0], dtype=o.dtype)
    if o.size < _SERIAL_BELOW:
        _sigmoid_squared_error_rows(o, xr, x_hat, sq, 0, o.shape[0])
    else:
        _sigmoid_squared_error_par(o, xr, x_hat, sq)
    return x_hat.reshape(out.shape), sq


def sigmoid_squared_error_backward(x_hat: np.ndarray, x: np.ndarray, k: np.ndarray
                                   ) -> np.ndarray:
    """d/d out of Σ_n k_n·Σ (x̂ − x)²/2, x̂ = σ(out): (x̂ − x)·k_n·x̂(1 − x̂). x̂, x (N, ...);
    k (N,), one factor per image, of x̂'s dtype."""
    h, xr = _rows(x_hat), _rows(x)
    dout = np.empty_like(h)
    if h.size < _SERIAL_BELOW:
        _sigmoid_squared_error_grad_rows(h, xr, k, dout, 0, h.shape[0])
    else:
        _sigmoid_squared_error_grad_par(h, xr, k, dout)
    return dout.reshape(x_hat.shape)


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def elu_forward(x: np.ndarray, alpha: float) -> np.ndarray:
    """y = x for x > 0, α(e^x − 1) otherwise. Any shape; y has x's shape and dtype."""
    xf = _flat(x)
    y = np.empty_like(xf)
    a = x.dtype.type(alpha)
    if xf.size < _SERIAL_BELOW:
        _elu_forward_chunk(xf, a, y)
    else:
        _elu_forward_par(xf, a, y)
    return y.reshape(x.shape)


def elu_backward(x: np.ndarray, dy: np.ndarray, alpha: float) -> np.ndarray:
    """dx = dy for x > 0, dy·α·e^x otherwise. x, dy of one shape and dtype."""
    xf, dyf = _flat(x), _flat(dy)
    dx = np.empty_like(xf)
    a = x.dtype.type(alpha)
    if xf.size < _SERIAL_BELOW:
        _elu_backward_chunk(xf, dyf, a, dx)
    else:
        _elu_backward_par(xf, dyf, a, dx)
    return dx.reshape(x.shape)


def sigmoid_forward(x: np.ndarray) -> np.ndarray:
    """y = 1 / (1 + e^(−x)), from e^(−|x|) only. Any shape; y has x's shape and dtype."""
    xf = _flat(x)
    y = np.empty_like(xf)
    if xf.size < _SERIAL_BELOW:
        _sigmoid_chunk(xf, y)
    else:
        _sigmoid_par(xf, y)
    return y.reshape(x.shape)


def sigmoid_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx = dy·y·(1 − y) from the forward output y. y, dy of one shape and dtype."""
    yf, dyf = _flat(y), _flat(dy)
    dx = np.empty_like(yf)
    if yf.size < _SERIAL_BELOW:
        _sigmoid_backward_chunk(yf, dyf, dx)
    else:
        _sigmoid_backward_par(yf, dyf, dx)
    return dx.reshape(y.shape)
