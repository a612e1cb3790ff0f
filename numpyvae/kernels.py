"""Convolution kernels: conv2d forward, input gradient and weight gradient.

These functions know nothing of layers. They compute, for a square kernel, an
integer stride s and padding p (cross-correlation, as PyTorch's ``conv2d``):

    x (N, C, H, W),  w (F, C, K, K),  b (F,)  →  y (N, F, Ho, Wo),
    Ho = (H + 2p − K)//s + 1,   Wo = (W + 2p − K)//s + 1,
    y[n, f, i, j] = b[f] + Σ_{c, a, e} w[f, c, a, e] · xpad[n, c, i·s + a, j·s + e].

``ConvTranspose2d`` needs no kernels of its own: its forward pass is
``conv2d_grad_input``, its input gradient is ``conv2d_forward`` and its weight
gradient is ``conv2d_grad_weight`` with the roles of x and dy swapped.

How they run fast: each call is lowered onto one large matrix product (GEMM)
done by NumPy's BLAS, with parallel numba loops doing the packing around it.
With P = N·Ho·Wo and cols = im2col(x), one column per output pixel:

    cols (C·K·K, P)      cols[(c, a, e), (n, i, j)] = xpad[n, c, i·s + a, j·s + e]
    forward:       Y  = W @ cols                       (F, P), then + b
    grad_input:    dcols = Wᵀ @ dY,  dx = col2im(dcols)   (col2im sums overlapping windows)
    grad_weight:   dW = dY @ colsᵀ,  db = Σ_{n, i, j} dY

When F == 1 or C == 1 the GEMM degenerates into a matrix-vector product that
streams the whole cols buffer for a handful of flops, so direct numba loops run
instead (``method="auto"`` picks; ``"gemm"`` and ``"direct"`` force a path, for
tests).

Parallel loops only ever split independent outputs: (n, c) planes of dx, (n, f)
planes of y, (f, c) pairs of dw, rows of cols. No two threads add into the same
element and every sum runs in a fixed order, so results do not depend on the
thread count or on scheduling. Work buffers (cols and the transposed dy) are
kept per thread and dtype and reused between calls, since allocating and
page-faulting tens of MB each step costs as much as the packing itself.

All jitted functions use ``cache=True`` and carry no explicit signatures:
float32 compiles when float32 is first used, float64 only when a gradient check
asks for it.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import prange

__all__ = [
    "conv2d_forward",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv_output_size",
    "channel_sum",
    "clear_workspace",
]

_METHODS = ("auto", "gemm", "direct")


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """(size + 2p − K)//s + 1: how many kernel positions fit along one axis."""
    return (size + 2 * padding - kernel_size) // stride + 1


# ----------------------------------------------------------------------------
# Work buffers, reused between calls
# ----------------------------------------------------------------------------
_workspace: dict[tuple[int, str, str], np.ndarray] = {}


def _buffer(slot: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A reusable uninitialised array of ``shape``; one per (thread, slot, dtype)."""
    key = (threading.get_ident(), slot, dtype.str)
    size = int(np.prod(shape))
    buf = _workspace.get(key)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        _workspace[key] = buf
    return buf[:size].reshape(shape)


def clear_workspace() -> None:
    """Free the cached work buffers (they are rebuilt on the next call)."""
    _workspace.clear()


# ----------------------------------------------------------------------------
# Index helpers
# ----------------------------------------------------------------------------
@numba.njit(cache=True, inline="always")
def _tap_range(tap, stride, padding, size, n_out):
    """Outputs i in [lo, hi) whose tap ``tap`` reads an input inside [0, size).

    Output i, tap a reads input index i·s + a − p. Computing the valid range
    once keeps bounds tests out of the inner loops, so they vectorise.
    """
    lo = 0
    if padding > tap:
        lo = (padding - tap + stride - 1) // stride
    hi = 0
    top = size + padding - tap  # need i·s < top
    if top > 0:
        hi = min(n_out, (top + stride - 1) // stride)
    if hi < lo:
        hi = lo
    return lo, hi


# ----------------------------------------------------------------------------
# Packing kernels for the GEMM path
# ----------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def _im2col(x, K, s, p, Ho, Wo, cols):
    """cols[(c, a, e), (n, i, j)] = xpad[n, c, i·s + a, j·s + e]  (zeros in the padding)."""
    N, C, H, W = x.shape
    KK = K * K
    HoWo = Ho * Wo
    # one (n, c) input plane per iteration: it stays in L1 while its K·K rows are written
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        for a in range(K):
            ilo, ihi = _tap_range(a, s, p, H, Ho)
            for e in range(K):
                jlo, jhi = _tap_range(e, s, p, W, Wo)
                row = c * KK + a * K + e
                base = n * HoWo
                for i in range(Ho):
                    o = base + i * Wo
                    if i < ilo or i >= ihi:
                        for j in range(Wo):
                            cols[row, o + j] = 0
                    else:
                        h = i * s + a - p
                        for j in range(jlo):
                            cols[row, o + j] = 0
                        for j in range(jlo, jhi):
                            cols[row, o + j] = x[n, c, h, j * s + e - p]
                        for j in range(jhi, Wo):
                            cols[row, o + j] = 0


@numba.njit(parallel=True, cache=True)
def _col2im(dcols, K, s, p, Ho, Wo, bias, dx):
    """dx[n, c] = bias[c] + every window's column of dcols added back where it was read."""
    N, C, H, W = dx.shape
    KK = K * K
    HoWo = Ho * Wo
    # each iteration owns one (n, c) plane of dx: no two threads add into one element
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        fill = bias[c]
        for h in range(H):
            for w in range(W):
                dx[n, c, h, w] = fill
        for a in range(K):
            ilo, ihi = _tap_range(a, s, p, H, Ho)
            for e in range(K):
                jlo, jhi = _tap_range(e, s, p, W, Wo)
                row = c * KK + a * K + e
                for i in range(ilo, ihi):
                    h = i * s + a - p
                    o = n * HoWo + i * Wo
                    for j in range(jlo, jhi):
                        dx[n, c, h, j * s + e - p] += dcols[row, o + j]


@numba.njit(parallel=True, cache=True)
def _rows_to_batch(Y, b, y):
    """y[n, f, l] = Y[f, n·L + l] + b[f]:  (F, N·L) → (N, F, L)."""
    N, F, L = y.shape
    for t in prange(N * F):
        n = t // F
        f = t - n * F
        bf = b[f]
        o = n * L
        for q in range(L):
            y[n, f, q] = Y[f, o + q] + bf


@numba.njit(parallel=True, cache=True)
def _batch_to_rows(dy, dY):
    """dY[f, n·L + l] = dy[n, f, l]:  (N, F, L) → (F, N·L)."""
    N, F, L = dy.shape
    for t in prange(F * N):
        f = t // N
        n = t - f * N
        o = n * L
        for q in range(L):
            dY[f, o + q] = dy[n, f, q]


@numba.njit(parallel=True, cache=True)
def _channel_sum(a, out):
    """out[c] = Σ_{n, l} a[n, c, l] for a (N, C, L), in a fixed order per channel."""
    N, C, L = a.shape
    for c in prange(C):
        # a vector of per-position partial sums vectorises; a scalar sum would not
        acc = np.zeros(L, dtype=a.dtype)
        for n in range(N):
            for q in range(L):
                acc[q] += a[n, c, q]
        total = acc[0] * 0
        for q in range(L):
            total += acc[q]
        out[c] = total


# ----------------------------------------------------------------------------
# Direct kernels for thin layers (F == 1 or C == 1)
# ----------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def _forward_direct(x, w, b, s, p, y):
    """y[n, f] = b[f] + Σ_{c, a, e} w[f, c, a, e] · (shifted, strided x[n, c])."""
    N, C, H, W = x.shape
    F = w.shape[0]
    K = w.shape[2]
    Ho = y.shape[2]
    Wo = y.shape[3]
    for t in prange(N * F):
        n = t // F
        f = t - n * F
        fill = b[f]
        for i in range(Ho):
            for j in range(Wo):
                y[n, f, i, j] = fill
        for c in range(C):
            for a in range(K):
                ilo, ihi = _tap_range(a, s, p, H, Ho)
                for e in range(K):
                    jlo, jhi = _tap_range(e, s, p, W, Wo)
                    wv = w[f, c, a, e]
                    for i in range(ilo, ihi):
                        h = i * s + a - p
                        for j in range(jlo, jhi):
                            y[n, f, i, j] += wv * x[n, c, h, j * s + e - p]


@numba.njit(parallel=True, cache=True)
def _grad_input_direct(dy, w, s, p, bias, dx):
    """dx[n, c] = bias[c] + Σ_{f, a, e} w[f, c, a, e] · dy[n, f], scattered to the inputs read."""
    N, C, H, W = dx.shape
    F = w.shape[0]
    K = w.shape[2]
    Ho = dy.shape[2]
    Wo = dy.shape[3]
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        fill = bias[c]
        for h in range(H):
            for q in range(W):
                dx[n, c, h, q] = fill
        for f in range(F):
            for a in range(K):
                ilo, ihi = _tap_range(a, s, p, H, Ho)
                for e in range(K):
                    jlo, jhi = _tap_range(e, s, p, W, Wo)
                    wv = w[f, c, a, e]
                    for i in range(ilo, ihi):
                        h = i * s + a - p
                        for j in range(jlo, jhi):
                            dx[n, c, h, j * s + e - p] += wv * dy[n, f, i, j]


@numba.njit(parallel=True, cache=True)
def _grad_weight_direct(dy, x, K, s, p, dw):
    """dw[f, c, a, e] = Σ_{n, i, j} dy[n, f, i, j] · xpad[n, c, i·s + a, j·s + e]."""
    N, C, H, W = x.shape
    F = dy.shape[1]
    Ho = dy.shape[2]
    Wo = dy.shape[3]
    for t in prange(F * C):
        f = t // C
        c = t - f * C
        # per-(a, e, j) partial sums: vectorise over j and keep a fixed summation order
        acc = np.zeros((K, K, Wo), dtype=dw.dtype)
        for n in range(N):
            for a in range(K):
                ilo, ihi = _tap_range(a, s, p, H, Ho)
                for e in range(K):
                    jlo, jhi = _tap_range(e, s, p, W, Wo)
                    for i in range(ilo, ihi):
                        h = i * s + a - p
                        for j in range(jlo, jhi):
                            acc[a, e, j] += dy[n, f, i, j] * x[n, c, h, j * s + e - p]
        for a in range(K):
            for e in range(K):
                total = acc[a, e, 0] * 0
                for j in range(Wo):
                    total += acc[a, e, j]
                dw[f, c, a, e] = total


# ----------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------
def channel_sum(a: np.ndarray) -> np.ndarray:
    """Σ over n, h, w of a (N, C, H, W) array → (C,), same dtype (a bias gradient)."""
    if a.ndim != 4 or a.dtype not in (np.float32, np.float64):
        raise ValueError(f"channel_sum: expected a float (N, C, H, W) array, "
                         f"got shape {a.shape} dtype {a.dtype}")
    a = np.ascontiguousarray(a)
    out = np.empty(a.shape[1], dtype=a.dtype)
    _channel_sum(a.reshape(a.shape[0], a.shape[1], -1), out)
    return out


def _check_common(name: str, a: np.ndarray, w: np.ndarray, stride: int, padding: int) -> None:
    if a.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{name}: expected 4-D arrays, got shapes {a.shape} and {w.shape}")
    if a.dtype not in (np.float32, np.float64) or a.dtype != w.dtype:
        raise ValueError(
            f"{name}: expected float32 or float64 arrays of one dtype, got {a.dtype} and {w.dtype}"
        )
    if int(stride) < 1 or int(padding) < 0:
        raise ValueError(f"{name}: expected stride >= 1 and padding >= 0, "
                         f"got stride={stride}, padding={padding}")


def _pick(method: str, F: int, C: int) -> str:
    if method not in _METHODS:
        raise ValueError(f"conv kernels: method must be one of {_METHODS}, got {method!r}")
    if method == "auto":
        return "direct" if F == 1 or C == 1 else "gemm"
    return method


def _bias_or_zeros(b: np.ndarray | None, n: int, dtype: np.dtype, name: str) -> np.ndarray:
    if b is None:
        return np.zeros(n, dtype=dtype)
    if b.shape != (n,) or b.dtype != dtype:
        raise ValueError(f"{name}: expected bias of shape ({n},) and dtype {dtype}, "
                         f"got {b.shape} {b.dtype}")
    return np.ascontiguousarray(b)


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int,
    padding: int,
    *,
    method: str = "auto",
) -> np.ndarray:
    """y = conv2d(x, w) + b.   x (N, C, H, W), w (F, C, K, K), b (F,) or None → y (N, F, Ho, Wo)."""
    _check_common("conv2d_forward", x, w, stride, padding)
    N, C, H, W = x.shape
    F, Cw, K, _ = w.shape
    s, p = int(stride), int(padding)
    if K != w.shape[3]:
        raise ValueError(f"conv2d_forward: expected a square kernel, got weight shape {w.shape}")
    if Cw != C:
        raise ValueError(f"conv2d_forward: x has {C} channels but w expects {Cw}")
    Ho, Wo = conv_output_size(H, K, s, p), conv_output_size(W, K, s, p)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"conv2d_forward: input {H}x{W} with padding {p} is smaller than "
                         f"the kernel {K}x{K}")
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    b = _bias_or_zeros(b, F, x.dtype, "conv2d_forward")
    y = np.empty((N, F, Ho, Wo), dtype=x.dtype)
    if _pick(method, F, C) == "direct":
        _forward_direct(x, w, b, s, p, y)
        return y
    P = N * Ho * Wo
    cols = _buffer("cols", (C * K * K, P), x.dtype)
    _im2col(x, K, s, p, Ho, Wo, cols)
    Y = _buffer("rows", (F, P), x.dtype)
    np.matmul(w.reshape(F, C * K * K), cols, out=Y)
    _rows_to_batch(Y, b, y.reshape(N, F, Ho * Wo))
    return y


def conv2d_grad_input(
    dy: np.ndarray,
    w: np.ndarray,
    input_hw: tuple[int, int],
    stride: int,
    padding: int,
    *,
    bias: np.ndarray | None = None,
    method: str = "auto",
) -> np.ndarray:
    """dx = ∂L/∂x of conv2d given dy = ∂L/∂y.   dy (N, F, Ho, Wo), w (F, C, K, K) → dx (N, C, H, W).

    ``input_hw`` = (H, W) may include rows/columns the kernel never reaches
    (their gradient is 0); that is what ConvTranspose2d's output_padding needs.
    ``bias`` (C,), if given, is added to every dx[:, c] (ConvTranspose2d's bias).
    """
    _check_common("conv2d_grad_input", dy, w, stride, padding)
    N, F, Ho, Wo = dy.shape
    Fw, C, K, _ = w.shape
    H, W = (int(v) for v in input_hw)
    s, p = int(stride), int(padding)
    if K != w.shape[3]:
        raise ValueError(f"conv2d_grad_input: expected a square kernel, got weight shape {w.shape}")
    if Fw != F:
        raise ValueError(f"conv2d_grad_input: dy has {F} channels but w produces {Fw}")
    if conv_output_size(H, K, s, p) != Ho or conv_output_size(W, K, s, p) != Wo:
        raise ValueError(
            f"conv2d_grad_input: input size {H}x{W} gives output "
            f"{conv_output_size(H, K, s, p)}x{conv_output_size(W, K, s, p)} "
            f"with kernel {K}, stride {s}, padding {p}, but dy is {Ho}x{Wo}"
        )
    dy = np.ascontiguousarray(dy)
    w = np.ascontiguousarray(w)
    bias = _bias_or_zeros(bias, C, dy.dtype, "conv2d_grad_input")
    dx = np.empty((N, C, H, W), dtype=dy.dtype)
    if _pick(method, F, C) == "direct":
        _grad_input_direct(dy, w, s, p, bias, dx)
        return dx
    P = N * Ho * Wo
    dY = _buffer("rows", (F, P), dy.dtype)
    _batch_to_rows(dy.reshape(N, F, Ho * Wo), dY)
    dcols = _buffer("cols", (C * K * K, P), dy.dtype)
    np.matmul(w.reshape(F, C * K * K).T, dY, out=dcols)
    _col2im(dcols, K, s, p, Ho, Wo, bias, dx)
    return dx


def conv2d_grad_weight(
    dy: np.ndarray,
    x: np.ndarray,
    kernel_size: int,
    stride: int,
    padding: int,
    *,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """(dw, db) of conv2d.   dy (N, F, Ho, Wo), x (N, C, H, W) → dw (F, C, K, K), db (F,)."""
    _check_common("conv2d_grad_weight", dy, x, stride, padding)
    N, F, Ho, Wo = dy.shape
    Nx, C, H, W = x.shape
    K, s, p = int(kernel_size), int(stride), int(padding)
    if Nx != N:
        raise ValueError(f"conv2d_grad_weight: dy has batch {N} but x has batch {Nx}")
    if K < 1 or conv_output_size(H, K, s, p) != Ho or conv_output_size(W, K, s, p) != Wo:
        raise ValueError(
            f"conv2d_grad_weight: input {H}x{W} with kernel {K}, stride {s}, padding {p} "
            f"does not give dy's size {Ho}x{Wo}"
        )
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x)
    db = channel_sum(dy)
    if _pick(method, F, C) == "direct":
        dw = np.empty((F, C, K, K), dtype=dy.dtype)
        _grad_weight_direct(dy, x, K, s, p, dw)
        return dw, db
    P = N * Ho * Wo
    dY = _buffer("rows", (F, P), dy.dtype)
    _batch_to_rows(dy.reshape(N, F, Ho * Wo), dY)
    cols = _buffer("cols", (C * K * K, P), dy.dtype)
    _im2col(x, K, s, p, Ho, Wo, cols)
    dw = dY @ cols.T
    return dw.reshape(F, C, K, K), db
