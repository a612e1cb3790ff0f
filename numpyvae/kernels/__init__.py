"""Convolution kernels: conv2d forward, input gradient and weight gradient.

These functions know nothing of layers. They compute, for a square kernel, an
integer stride s and padding p (cross-correlation, as PyTorch's ``conv2d``):

    x (N, C, H, W),  w (F, C, K, K),  b (F,)  →  y (N, F, Ho, Wo),
    Ho = (H + 2p − K)//s + 1,   Wo = (W + 2p − K)//s + 1,
    y[n, f, i, j] = b[f] + Σ_{c, a, e} w[f, c, a, e] · xpad[n, c, i·s + a, j·s + e].

``ConvTranspose2d`` needs no kernels of its own: its forward pass is
``conv2d_grad_input``, its input gradient is ``conv2d_forward`` and its weight
gradient is ``conv2d_grad_weight`` with the roles of x and dy swapped.

Two ways to run them:

- ``gemm.py``: im2col packing around matrix products (GEMM). The batch is cut
  into chunks of a few samples whose packed windows fit in a core's L2 cache.
  numba's parallel loop hands each worker thread a range of chunks; the worker
  packs a chunk, multiplies it with a single-threaded BLAS call (numba's
  np.dot) and unpacks it while it is still in cache. One thread pool does
  everything, so numba's threads and BLAS's never fight over the cores.
- ``direct.py``: plain loops, used when F == 1 (the CNN's last layer), where the
  GEMM would degenerate into a matrix-vector product.

``method="auto"`` picks; ``"gemm"`` and ``"direct"`` force a path (the tests run
both on every configuration).

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

from . import direct, gemm

__all__ = [
    "conv2d_forward",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv2d_forward_and_grad_weight",
    "conv_output_size",
    "channel_sum",
    "clear_workspace",
]

_METHODS = ("auto", "gemm", "direct")

# Bytes of im2col rows each worker packs and multiplies at a time: small enough
# to stay in a core's L2 cache, large enough for an efficient matrix product.
_CHUNK_BYTES = 1 << 19
_GRAD_WEIGHT_ROWS = 512
# The direct weight gradient splits the batch into this many chunks of samples,
# each with its own slot of partial sums, added in chunk order at the end.
_DIRECT_CHUNKS = 32


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
        _workspace.pop(key, None)  # let the old one go before allocating the larger one
        buf = np.empty(size, dtype=dtype)
        _workspace[key] = buf
    return buf[:size].reshape(shape)


def clear_workspace() -> None:
    """Free the cached work buffers (they are rebuilt on the next call)."""
    _workspace.clear()


# ----------------------------------------------------------------------------
# The BLAS inside the GEMM path stays single-threaded
# ----------------------------------------------------------------------------
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
            if lib.user_api == "blas" and str(Path(lib.filepath).resolve()).startswith(homes)
        ]
        _inner_blas.append(found)
    for lib in _inner_blas[0]:
        if lib.num_threads != 1:
            lib.set_num_threads(1)


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------
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


def _n_chunks(N: int) -> int:
    """Direct path: a few chunks of samples per thread, each with its own scratch planes."""
    return max(1, min(N, 4 * numba.get_num_threads()))


def _gemm_buffers(N: int, C: int, F: int, H: int, W: int, K: int, p: int, L: int,
                  dtype: np.dtype, min_rows: int = 1
                  ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Samples per chunk, and per-worker scratch planes, cols and rows buffers.

    A chunk holds about _CHUNK_BYTES of cols, and at least ``min_rows`` rows.
    """
    dtype = np.dtype(dtype)
    nb = max(_CHUNK_BYTES // (L * K * K * C * dtype.itemsize), -(-min_rows // L))
    nb = max(1, min(N, nb))
    workers = max(1, min(numba.get_num_threads(), -(-N // nb)))
    planes = _buffer("planes", (workers, H + 2 * p, (W + 2 * p) * C), dtype)
    cols = _buffer("cols", (workers, nb * L * K * K * C), dtype)
    rows = _buffer("rows", (workers, nb * L * F), dtype)
    return nb, planes, cols, rows


def _direct_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, s: int, p: int,
                    y: np.ndarray) -> None:
    N, C, H, W = x.shape
    Ho, Wo = y.shape[2:]
    n_chunks, Wp = _n_chunks(N), W + 2 * p
    planes = _buffer("planes", (n_chunks, C, (H + 2 * p) * Wp), x.dtype)
    outs = _buffer("rows", (n_chunks, (Ho - 1) * Wp + Wo), x.dtype)
    direct.forward(x, w, b, s, p, planes, outs, y)


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
    direct.channel_sum(a.reshape(a.shape[0], a.shape[1], -1), out)
    return out


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
        _direct_forward(x, w, b, s, p, y)
        return y
    _pin_inner_blas()
    nb, planes, cols, rows = _gemm_buffers(N, C, F, H, W, K, p, Ho * Wo, x.dtype)
    Wk = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(K * K * C, F)
    gemm.forward(x, Wk, b, K, s, p, Ho, Wo, nb, planes, cols, rows, y)
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
        if s == 1 and p <= K - 1:
            # at stride 1 the input gradient is itself a convolution: dy, padded by K − 1 − p,
            # against the kernel turned 180° with its channel axes swapped
            w_flip = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
            _direct_forward(dy, w_flip, bias, 1, K - 1 - p, dx)
            return dx
        n_chunks, Wp = _n_chunks(N), W + 2 * p
        planes = _buffer("planes", (n_chunks, C, (H + 2 * p) * Wp), dy.dtype)
        rows = _buffer("rows", (n_chunks, (Ho - 1) * Wp + Wo), dy.dtype)
        direct.grad_input(dy, w, s, p, bias, planes, rows, dx)
        return dx
    _pin_inner_blas()
    nb, planes, cols, rows = _gemm_buffers(N, C, F, H, W, K, p, Ho * Wo, dy.dtype)
    Wt = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(F, K * K * C)
    gemm.grad_input(dy, Wt, bias, K, s, p, nb, planes, cols, rows, dx)
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
        Wp = W + 2 * p
        nb = -(-N // _DIRECT_CHUNKS)  # samples per chunk: set by N alone, not the threads
        n_chunks = -(-N // nb)
        workers = min(numba.get_num_threads(), n_chunks)
        planes = _buffer("planes", (workers, (H + 2 * p) * Wp), dy.dtype)
        rows = _buffer("rows", (workers, F, (Ho - 1) * Wp + Wo), dy.dtype)
        partials = _buffer("partials", (n_chunks, F, C * K * K), dy.dtype)
        direct.grad_weight(dy, x, K, s, p, nb, planes, rows,
                           partials.reshape(n_chunks, F, C, K, K))
        dw = np.empty((F, C * K * K), dtype=dy.dtype)
        gemm.sum_chunks(partials, dw)
        return dw.reshape(F, C, K, K), db
    _pin_inner_blas()
    # the weight gradient sums over a chunk's rows inside one product: give it at least
    # _GRAD_WEIGHT_ROWS of them, or tiny images make the products too short to be efficient
    nb, planes, cols, rows = _gemm_buffers(N, C, F, H, W, K, p, Ho * Wo, dy.dtype,
                                           min_rows=_GRAD_WEIGHT_ROWS)
    partials = _buffer("partials", (-(-N // nb), F, K * K * C), dy.dtype)
    gemm.grad_weight(dy, x, K, s, p, nb, planes, cols, rows, partials)
    dWkt = np.empty((F, K * K * C), dtype=dy.dtype)  # columns ordered (a, e, c)
    gemm.sum_chunks(partials, dWkt)
    return np.ascontiguousarray(dWkt.reshape(F, K, K, C).transpose(0, 3, 1, 2)), db


def conv2d_forward_and_grad_weight(
    x: np.ndarray,
    w: np.ndarray,
    d: np.ndarray,
    stride: int,
    padding: int,
    *,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """(conv2d_forward(x, w, None, s, p), conv2d_grad_weight(d, x, K, s, p)[0]) in one pass.

    Both read the windows of x, so the GEMM path packs each chunk of x once and
    runs both products on it. x (N, C, H, W), w (F, C, K, K), d (N, F, Ho, Wo)
    → y (N, F, Ho, Wo), dw (F, C, K, K). (ConvTranspose2d's backward is exactly
    this pair, with x = dY and d = its input.)
    """
    _check_common("conv2d_forward_and_grad_weight", x, w, stride, padding)
    N, C, H, W = x.shape
    F, K = w.shape[0], w.shape[2]
    s, p = int(stride), int(padding)
    Ho, Wo = conv_output_size(H, K, s, p), conv_output_size(W, K, s, p)
    if w.shape[1] != C or w.shape[3] != K or Ho < 1 or Wo < 1:
        raise ValueError(f"conv2d_forward_and_grad_weight: weight {w.shape} does not fit "
                         f"input {x.shape} with stride {s}, padding {p}")
    if d.shape != (N, F, Ho, Wo) or d.dtype != x.dtype:
        raise ValueError(f"conv2d_forward_and_grad_weight: expected d of shape "
                         f"{(N, F, Ho, Wo)} and dtype {x.dtype}, got {d.shape} {d.dtype}")
    if _pick(method, F) == "direct":
        y = conv2d_forward(x, w, None, s, p, method=method)
        return y, conv2d_grad_weight(d, x, K, s, p, method=method)[0]
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    d = np.ascontiguousarray(d)
    _pin_inner_blas()
    nb, planes, cols, rows = _gemm_buffers(N, C, F, H, W, K, p, Ho * Wo, x.dtype,
                                           min_rows=_GRAD_WEIGHT_ROWS)
    partials = _buffer("partials", (-(-N // nb), F, K * K * C), x.dtype)
    Wk = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(K * K * C, F)
    y = np.empty((N, F, Ho, Wo), dtype=x.dtype)
    gemm.forward_and_grad_weight(x, Wk, np.zeros(F, x.dtype), d, K, s, p, Ho, Wo, nb, planes,
                                 cols, rows, y, partials)
    dWkt = np.empty((F, K * K * C), dtype=x.dtype)  # columns ordered (a, e, c)
    gemm.sum_chunks(partials, dWkt)
    return y, np.ascontiguousarray(dWkt.reshape(F, K, K, C).transpose(0, 3, 1, 2))
