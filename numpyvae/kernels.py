"""Convolution kernels: conv2d forward, input gradient and weight gradient.

These functions know nothing of layers. They compute, for a square kernel, an
integer stride s and padding p (cross-correlation, as PyTorch's ``conv2d``):

    x (N, C, H, W),  w (F, C, K, K),  b (F,)  →  y (N, F, Ho, Wo),
    Ho = (H + 2p − K)//s + 1,   Wo = (W + 2p − K)//s + 1,
    y[n, f, i, j] = b[f] + Σ_{c, a, e} w[f, c, a, e] · xpad[n, c, i·s + a, j·s + e].

``ConvTranspose2d`` needs no kernels of its own: its forward pass is
``conv2d_grad_input``, its input gradient is ``conv2d_forward`` and its weight
gradient is ``conv2d_grad_weight`` with the roles of x and dy swapped.

How they run fast: each call is lowered onto matrix products (GEMM). With
L = Ho·Wo output pixels per sample and one row of ``cols`` per pixel (im2col):

    cols (L, K·K·C)      cols[(i, j), (a, e, c)] = xpad[c, i·s + a, j·s + e]
    forward:       Y  = cols @ Wk                   (L, F), Wk[(a, e, c), f] = w[f, c, a, e]
    grad_input:    dcols = dY @ Wkᵀ,  dx = col2im(dcols)   (col2im adds overlapping windows)
    grad_weight:   dWk = Σ_samples colsᵀ @ dY,  db = Σ_{n, i, j} dY

The batch is cut into chunks of a few samples whose cols fit in a core's L2
cache. numba's parallel loop hands each worker thread a range of chunks; the
worker packs a chunk, multiplies it with a single-threaded BLAS call (numba's
np.dot) and unpacks it while it is still in cache. One thread pool does
everything, so numba's threads and BLAS's never fight over the cores.

To pack, a sample is copied channels-last into a zero-bordered scratch plane
(Hp, Wp·C): a window row is then K·C contiguous numbers, so im2col and col2im
are runs of contiguous copies and adds that vectorise, with no bounds tests
(the border supplies the padding's zeros). The arrays the functions take and
return stay (N, C, H, W).

When F == 1 (a conv down to one channel, like the CNN's last layer) the GEMM
would be a matrix-vector product streaming all of ``cols`` for two flops per
number, so direct numba loops run instead (``method="auto"`` picks;
``"gemm"`` and ``"direct"`` force a path, for tests).

Parallel loops only ever split independent outputs: chunks of samples (each
owns its planes of y and dx) or (f, c) pairs of dw. No two threads add into the
same element; weight-gradient partial sums are kept per chunk (chunks depend on
the shapes, not the thread count) and added in chunk order. So the results are
bitwise the same at any thread count and under any scheduling. Work buffers
are kept per thread and dtype and reused between calls.

All jitted functions use ``cache=True`` and carry no explicit signatures:
float32 compiles when float32 is first used, float64 only when a gradient check
asks for it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

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
    key = (threading.get_ident(), slot, np.dtype(dtype).str)
    size = int(np.prod(shape))
    buf = _workspace.get(key)
    if buf is None or buf.size < size:
        buf = None  # let the old one go before allocating the larger one
        _workspace.pop(key, None)
        buf = np.empty(size, dtype=dtype)
        _workspace[key] = buf
    return buf[:size].reshape(shape)


def clear_workspace() -> None:
    """Free the cached work buffers (they are rebuilt on the next call)."""
    _workspace.clear()


# Bytes of im2col rows each worker packs and multiplies at a time: small enough
# to stay in a core's L2 cache, large enough for an efficient matrix product.
_CHUNK_BYTES = 1 << 19

_inner_blas: list = []  # threadpoolctl controllers of the BLAS that numba's np.dot calls


def _pin_inner_blas() -> None:
    """Keep the BLAS behind numba's np.dot single-threaded.

    The GEMM path calls np.dot from inside numba's parallel loop, one call per
    worker thread. That BLAS is SciPy's own OpenBLAS (NumPy's is a separate
    library with its own thread count, untouched here); if it also spawned
    threads, two pools would fight over the same cores. Checked on every call
    because a process-wide BLAS thread limit may have raised it since.
    """
    if not _inner_blas:
        import scipy
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba calls)
        from threadpoolctl import ThreadpoolController

        # SciPy's wheels keep their OpenBLAS in scipy.libs/ (or inside scipy/); a BLAS
        # shared with NumPy (system or conda builds) lives elsewhere and is left alone
        pkg = Path(scipy.__file__).resolve().parent
        homes = (str(pkg) + os.sep, str(pkg) + ".libs" + os.sep)
        found = [
            lib for lib in ThreadpoolController().lib_controllers
            if lib.user_api == "blas"
            and str(Path(lib.filepath).resolve()).startswith(homes)
        ]
        _inner_blas.append(found)
    for lib in _inner_blas[0]:
        if lib.num_threads != 1:
            lib.set_num_threads(1)


def _n_chunks(N: int) -> int:
    """Samples are handed out in a few chunks per thread, each with its own scratch plane."""
    return max(1, min(N, 4 * numba.get_num_threads()))


# ----------------------------------------------------------------------------
# The GEMM path: one sample's packing, then parallel drivers over chunks
# ----------------------------------------------------------------------------
@numba.njit(cache=True)
def _load_channels_last(x_n, p, sc):
    """sc[p + h, (p + w)·C + c] = x_n[c, h, w]; sc's zero border is left alone."""
    C, H, W = x_n.shape
    for c in range(C):
        for h in range(H):
            src = x_n[c, h]
            dst = sc[h + p, p * C + c:(p + W) * C:C]
            for q in range(W):
                dst[q] = src[q]


@numba.njit(cache=True)
def _im2col_sample(x_n, K, s, p, Ho, Wo, sc, cols):
    """cols[(i, j), (a, e, c)] = xpad_n[c, i·s + a, j·s + e], for one sample x_n (C, H, W)."""
    C = x_n.shape[0]
    KC = K * C
    _load_channels_last(x_n, p, sc)
    for i in range(Ho):
        for j in range(Wo):
            r = i * Wo + j
            for a in range(K):
                # kernel row a of this window: K pixels × C channels, contiguous in sc
                src = sc[i * s + a, j * s * C:j * s * C + KC]
                dst = cols[r, a * KC:(a + 1) * KC]
                for q in range(KC):
                    dst[q] = src[q]


@numba.njit(cache=True)
def _col2im_sample(dcols, K, s, p, Ho, Wo, bias, sc, dx_n):
    """dx_n[c, h, w] = bias[c] + Σ of dcols over every window entry that read (h, w)."""
    C, H, W = dx_n.shape
    KC = K * C
    sc[:, :] = 0
    for i in range(Ho):
        for j in range(Wo):
            r = i * Wo + j
            for a in range(K):
                src = dcols[r, a * KC:(a + 1) * KC]
                dst = sc[i * s + a, j * s * C:j * s * C + KC]
                for q in range(KC):
                    dst[q] += src[q]
    for c in range(C):
        bc = bias[c]
        for h in range(H):
            src = sc[h + p, p * C + c:(p + W) * C:C]
            dst = dx_n[c, h]
            for q in range(W):
                dst[q] = src[q] + bc


@numba.njit(cache=True)
def _rows_to_planes(rows, b, y_n):
    """y_n[f, l] = rows[l, f] + b[f]:  (L, F) → (F, L), adding the bias."""
    F, L = y_n.shape
    for f in range(F):
        src = rows[:, f]
        dst = y_n[f]
        bf = b[f]
        for q in range(L):
            dst[q] = src[q] + bf


@numba.njit(cache=True)
def _planes_to_rows(dy_n, rows):
    """rows[l, f] = dy_n[f, l]:  (F, L) → (L, F)."""
    F, L = dy_n.shape
    for f in range(F):
        src = dy_n[f]
        dst = rows[:, f]
        for q in range(L):
            dst[q] = src[q]


# The drivers split the batch into fixed chunks of ``nb`` samples (the number
# depends on the shapes only, never on the thread count). Worker k of
# ``n_workers`` takes a contiguous range of chunks and packs, multiplies and
# unpacks each one inside its own cache-sized buffers; the matrix product is a
# single-threaded BLAS call (numba's np.dot), so there is one thread pool and
# no hand-offs between numba's threads and BLAS's. A chunk's result is the same
# whichever worker computes it, and weight-gradient partial sums are stored per
# chunk and added in chunk order afterwards.
@numba.njit(parallel=True, cache=True)
def _forward_gemm(x, Wk, b, K, s, p, Ho, Wo, nb, planes, cols, rows, y):
    """y = conv2d(x) + b, chunk by chunk: cols = im2col(x), Y = cols @ Wk, y = Yᵀ + b."""
    N = x.shape[0]
    KKC, F = Wk.shape
    L = Ho * Wo
    n_chunks = (N + nb - 1) // nb
    n_workers = planes.shape[0]
    for k in prange(n_workers):
        sc = planes[k]
        sc[:, :] = 0
        for ch in range(k * n_chunks // n_workers, (k + 1) * n_chunks // n_workers):
            n0 = ch * nb
            m = min(nb, N - n0)
            cl = cols[k, :m * L * KKC].reshape((m * L, KKC))
            rw = rows[k, :m * L * F].reshape((m * L, F))
            for t in range(m):
                _im2col_sample(x[n0 + t], K, s, p, Ho, Wo, sc, cl[t * L:(t + 1) * L])
            np.dot(cl, Wk, rw)
            for t in range(m):
                _rows_to_planes(rw[t * L:(t + 1) * L], b, y[n0 + t].reshape((F, L)))


@numba.njit(parallel=True, cache=True)
def _grad_input_gemm(dy, Wt, bias, K, s, p, nb, planes, cols, rows, dx):
    """dx = col2im(dY @ Wkᵀ) + bias, chunk by chunk."""
    N, F, Ho, Wo = dy.shape
    KKC = Wt.shape[1]
    L = Ho * Wo
    n_chunks = (N + nb - 1) // nb
    n_workers = planes.shape[0]
    for k in prange(n_workers):
        sc = planes[k]
        for ch in range(k * n_chunks // n_workers, (k + 1) * n_chunks // n_workers):
            n0 = ch * nb
            m = min(nb, N - n0)
            cl = cols[k, :m * L * KKC].reshape((m * L, KKC))
            rw = rows[k, :m * L * F].reshape((m * L, F))
            for t in range(m):
                _planes_to_rows(dy[n0 + t].reshape((F, L)), rw[t * L:(t + 1) * L])
            np.dot(rw, Wt, cl)
            for t in range(m):
                _col2im_sample(cl[t * L:(t + 1) * L], K, s, p, Ho, Wo, bias, sc, dx[n0 + t])


@numba.njit(parallel=True, cache=True)
def _grad_weight_gemm(dy, x, K, s, p, nb, planes, cols, rows, partials):
    """partials[chunk] = colsᵀ @ dY over that chunk's samples."""
    N, F, Ho, Wo = dy.shape
    KKC = partials.shape[1]
    L = Ho * Wo
    n_chunks = partials.shape[0]
    n_workers = planes.shape[0]
    for k in prange(n_workers):
        sc = planes[k]
        sc[:, :] = 0
        for ch in range(k * n_chunks // n_workers, (k + 1) * n_chunks // n_workers):
            n0 = ch * nb
            m = min(nb, N - n0)
            cl = cols[k, :m * L * KKC].reshape((m * L, KKC))
            rw = rows[k, :m * L * F].reshape((m * L, F))
            for t in range(m):
                _im2col_sample(x[n0 + t], K, s, p, Ho, Wo, sc, cl[t * L:(t + 1) * L])
                _planes_to_rows(dy[n0 + t].reshape((F, L)), rw[t * L:(t + 1) * L])
            np.dot(cl.T, rw, partials[ch])


@numba.njit(parallel=True, cache=True)
def _sum_chunks(partials, out):
    """out = Σ_chunk partials[chunk], in chunk order for every entry."""
    n_chunks, R, F = partials.shape
    for r in prange(R):
        dst = out[r]
        for f in range(F):
            dst[f] = partials[0, r, f]
        for ch in range(1, n_chunks):
            src = partials[ch, r]
            for f in range(F):
                dst[f] += src[f]


@numba.njit(parallel=True, cache=True)
def _channel_sum(a, out):
    """out[c] = Σ_{n, l} a[n, c, l] for a (N, C, L), in a fixed order per channel."""
    N, C, L = a.shape
    for c in prange(C):
        # a vector of per-position partial sums vectorises; a scalar sum would not
        acc = np.zeros(L, dtype=a.dtype)
        for n in range(N):
            src = a[n, c]
            for q in range(L):
                acc[q] += src[q]
        total = acc[0] * 0
        for q in range(L):
            total += acc[q]
        out[c] = total


# ----------------------------------------------------------------------------
# Direct kernels (used for F == 1; correct for any shape)
# ----------------------------------------------------------------------------
# They work on flattened zero-bordered planes of row length Wp = W + 2p and
# keep outputs with that same row length (the Wp − Wo extra entries per row
# are scratch). Output q = i·Wp + j, tap (a, e) then reads input
# s·q + a·Wp + e: every tap is one long axpy or dot product over q, instead of
# Ho short ones.
@numba.njit(cache=True)
def _load_plane(x_nc, p, Wp, plane):
    """plane[(p + h)·Wp + p + w] = x_nc[h, w]; the plane's zero border is left alone."""
    H, W = x_nc.shape
    for h in range(H):
        src = x_nc[h]
        dst = plane[(p + h) * Wp + p:(p + h) * Wp + p + W]
        for q in range(W):
            dst[q] = src[q]


@numba.njit(cache=True)
def _load_rows(y_nf, Wp, flat):
    """flat[i·Wp + j] = y_nf[i, j] for j < Wo; the columns between stay as they are (zero)."""
    Ho, Wo = y_nf.shape
    for i in range(Ho):
        src = y_nf[i]
        dst = flat[i * Wp:i * Wp + Wo]
        for q in range(Wo):
            dst[q] = src[q]


@numba.njit(cache=True)
def _axpy(out, wv, plane, off, s, L):
    """out[q] += wv · plane[off + s·q] for q < L."""
    if s == 1:
        src = plane[off:off + L]  # a contiguous view: this loop vectorises
        for q in range(L):
            out[q] += wv * src[q]
    else:
        src = plane[off:off + s * (L - 1) + 1:s]
        for q in range(L):
            out[q] += wv * src[q]


@numba.njit(cache=True)
def _axpy_scatter(plane, off, s, wv, d, L):
    """plane[off + s·q] += wv · d[q] for q < L."""
    if s == 1:
        dst = plane[off:off + L]
        for q in range(L):
            dst[q] += wv * d[q]
    else:
        dst = plane[off:off + s * (L - 1) + 1:s]
        for q in range(L):
            dst[q] += wv * d[q]


@numba.njit(cache=True)
def _mul_acc(acc, d, plane, off, s, L):
    """acc[q] += d[q] · plane[off + s·q] for q < L (per-q partial sums of a dot product)."""
    if s == 1:
        src = plane[off:off + L]
        for q in range(L):
            acc[q] += d[q] * src[q]
    else:
        src = plane[off:off + s * (L - 1) + 1:s]
        for q in range(L):
            acc[q] += d[q] * src[q]


@numba.njit(parallel=True, cache=True)
def _forward_direct(x, w, b, s, p, planes, outs, y):
    """y[n, f] = b[f] + Σ_{c, a, e} w[f, c, a, e] · (padded x[n, c] from (a, e), step s)."""
    N, C, H, W = x.shape
    F, K = w.shape[0], w.shape[2]
    Ho, Wo = y.shape[2], y.shape[3]
    Wp = W + 2 * p
    L = (Ho - 1) * Wp + Wo
    n_chunks = planes.shape[0]
    for ch in prange(n_chunks):
        sc = planes[ch]
        sc[:, :] = 0
        out = outs[ch]
        for n in range(ch * N // n_chunks, (ch + 1) * N // n_chunks):
            for c in range(C):
                _load_plane(x[n, c], p, Wp, sc[c])
            for f in range(F):
                out[:] = 0
                for c in range(C):
                    for a in range(K):
                        for e in range(K):
                            _axpy(out, w[f, c, a, e], sc[c], a * Wp + e, s, L)
                bf = b[f]
                for i in range(Ho):
                    src = out[i * Wp:i * Wp + Wo]
                    dst = y[n, f, i]
                    for j in range(Wo):
                        dst[j] = src[j] + bf


@numba.njit(parallel=True, cache=True)
def _grad_input_direct(dy, w, s, p, bias, planes, rows, dx):
    """Padded dx[n, c] from (a, e), step s  +=  w[f, c, a, e] · dy[n, f]; then crop, + bias."""
    N, C, H, W = dx.shape
    F, K = w.shape[0], w.shape[2]
    Ho, Wo = dy.shape[2], dy.shape[3]
    Wp = W + 2 * p
    L = (Ho - 1) * Wp + Wo
    n_chunks = planes.shape[0]
    for ch in prange(n_chunks):
        sc = planes[ch]
        d = rows[ch]
        d[:] = 0  # the columns between rows must add zeros
        for n in range(ch * N // n_chunks, (ch + 1) * N // n_chunks):
            sc[:, :] = 0
            for f in range(F):
                _load_rows(dy[n, f], Wp, d)
                for c in range(C):
                    for a in range(K):
                        for e in range(K):
                            _axpy_scatter(sc[c], a * Wp + e, s, w[f, c, a, e], d, L)
            for c in range(C):
                bc = bias[c]
                for h in range(H):
                    src = sc[c, (h + p) * Wp + p:(h + p) * Wp + p + W]
                    dst = dx[n, c, h]
                    for q in range(W):
                        dst[q] = src[q] + bc


@numba.njit(parallel=True, cache=True)
def _grad_weight_direct(dy, x, K, s, p, planes, rows, acc, dw):
    """dw[f, c, a, e] = Σ_{n, i, j} dy[n, f, i, j] · xpad[n, c, i·s + a, j·s + e]."""
    N, C, H, W = x.shape
    F, Ho, Wo = dy.shape[1], dy.shape[2], dy.shape[3]
    Wp = W + 2 * p
    L = (Ho - 1) * Wp + Wo
    # one (f, c) pair per iteration, with its own plane, dy rows and partial sums
    for t in prange(F * C):
        f = t // C
        c = t - f * C
        sc = planes[t]
        sc[:] = 0
        d = rows[t]
        d[:] = 0
        ac = acc[t]
        ac[:, :] = 0
        for n in range(N):
            _load_plane(x[n, c], p, Wp, sc)
            _load_rows(dy[n, f], Wp, d)
            for a in range(K):
                for e in range(K):
                    _mul_acc(ac[a * K + e], d, sc, a * Wp + e, s, L)
        for a in range(K):
            for e in range(K):
                part = ac[a * K + e]
                total = part[0] * 0
                for q in range(L):
                    total += part[q]
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


def _pick(method: str, F: int) -> str:
    if method not in _METHODS:
        raise ValueError(f"conv kernels: method must be one of {_METHODS}, got {method!r}")
    if method == "auto":
        return "direct" if F == 1 else "gemm"
    return method


def _bias_or_zeros(b: np.ndarray | None, n: int, dtype: np.dtype, name: str) -> np.ndarray:
    if b is None:
        return np.zeros(n, dtype=dtype)
    if b.shape != (n,) or b.dtype != dtype:
        raise ValueError(f"{name}: expected bias of shape ({n},) and dtype {dtype}, "
                         f"got {b.shape} {b.dtype}")
    return np.ascontiguousarray(b)


def _gemm_buffers(N: int, C: int, F: int, H: int, W: int, K: int, p: int, L: int,
                  dtype: np.dtype) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Samples per chunk, and per-worker scratch planes, cols and rows buffers."""
    dtype = np.dtype(dtype)
    nb = max(1, min(N, _CHUNK_BYTES // (L * K * K * C * dtype.itemsize)))
    workers = max(1, min(numba.get_num_threads(), -(-N // nb)))
    planes = _buffer("planes", (workers, H + 2 * p, (W + 2 * p) * C), dtype)
    cols = _buffer("cols", (workers, nb * L * K * K * C), dtype)
    rows = _buffer("rows", (workers, nb * L * F), dtype)
    return nb, planes, cols, rows


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
    if _pick(method, F) == "direct":
        n_chunks, Wp = _n_chunks(N), W + 2 * p
        planes = _buffer("planes", (n_chunks, C, (H + 2 * p) * Wp), x.dtype)
        outs = _buffer("rows", (n_chunks, (Ho - 1) * Wp + Wo), x.dtype)
        _forward_direct(x, w, b, s, p, planes, outs, y)
        return y
    _pin_inner_blas()
    nb, planes, cols, rows = _gemm_buffers(N, C, F, H, W, K, p, Ho * Wo, x.dtype)
    Wk = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(K * K * C, F)
    _forward_gemm(x, Wk, b, K, s, p, Ho, Wo, nb, planes, cols, rows, y)
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
    if _pick(method, F) == "direct":
        n_chunks, Wp = _n_chunks(N), W + 2 * p
        planes = _buffer("planes", (n_chunks, C, (H + 2 * p) * Wp), dy.dtype)
        rows = _buffer("rows", (n_chunks, (Ho - 1) * Wp + Wo), dy.dtype)
        _grad_input_direct(dy, w, s, p, bias, planes, rows, dx)
        return dx
    _pin_inner_blas()
    nb, planes, cols, rows = _gemm_buffers(N, C, F, H, W, K, p, Ho * Wo, dy.dtype)
    Wt = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(F, K * K * C)
    _grad_input_gemm(dy, Wt, bias, K, s, p, nb, planes, cols, rows, dx)
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
    if _pick(method, F) == "direct":
        dw = np.empty((F, C, K, K), dtype=dy.dtype)
        Wp = W + 2 * p
        L = (Ho - 1) * Wp + Wo
        planes = _buffer("planes", (F * C, (H + 2 * p) * Wp), dy.dtype)
        rows = _buffer("rows", (F * C, L), dy.dtype)
        acc = _buffer("partials", (F * C, K * K, L), dy.dtype)
        _grad_weight_direct(dy, x, K, s, p, planes, rows, acc, dw)
        return dw, db
    _pin_inner_blas()
    nb, planes, cols, rows = _gemm_buffers(N, C, F, H, W, K, p, Ho * Wo, dy.dtype)
    partials = _buffer("partials", (-(-N // nb), K * K * C, F), dy.dtype)
    _grad_weight_gemm(dy, x, K, s, p, nb, planes, cols, rows, partials)
    dWk = np.empty((K * K * C, F), dtype=dy.dtype)  # rows ordered (a, e, c)
    _sum_chunks(partials, dWk)
    return np.ascontiguousarray(dWk.reshape(K, K, C, F).transpose(3, 2, 0, 1)), db
