"""The conv API: conv2d forward, input gradient and weight gradient.

These functions know nothing of layers. They compute, for a square kernel, an
integer stride s and padding p (cross-correlation, as PyTorch's ``conv2d``):

    x (N, C, H, W),  w (F, C, K, K),  b (F,)  →  y (N, F, Ho, Wo),
    Ho = (H + 2p − K)//s + 1,   Wo = (W + 2p − K)//s + 1,
    y[n, f, i, j] = b[f] + Σ_{c, a, e} w[f, c, a, e] · xpad[n, c, i·s + a, j·s + e].

``ConvTranspose2d`` needs no kernels of its own: its forward pass is
``conv2d_grad_input``, its input gradient is ``conv2d_forward`` and its weight
gradient is ``conv2d_grad_weight`` with the roles of x and dy swapped.
``conv2d_grad_input`` runs by sub-pixel phase on both paths: the output pixels
of one parity class (s² classes) take the same taps, so each class is a stride-1
convolution of dy, written once, with no scatter-add (``_axis_phases``).

Two entry points per operation:

- ``conv2d_forward`` etc., for outside callers (benchmarks, tests): they check
  shapes, dtypes and sizes and raise a clear ValueError, then call
- ``conv2d_forward_unchecked`` etc., which check nothing: the layers call these, having
  validated their input once at their own boundary.

Two ways to run them:

- ``gemm.py``: im2col packing around matrix products (GEMM). The batch is cut
  into chunks of a few samples whose packed windows fit in a core's L2 cache.
  numba's parallel loop hands each worker thread a range of chunks; the worker
  packs a chunk, multiplies it with a single-threaded BLAS call (numba's
  np.dot) and unpacks it while it is still in cache. One thread pool does
  everything, so numba's threads and BLAS's never fight over the cores. The weight
  gradient of a large image with stride (dec.convT3's) skips the im2col: x's
  sub-pixel phases, one product per kernel tap (``gemm.grad_weight_taps``), and so does
  the forward computed beside it (a transposed conv's backward).
- ``direct.py``: loops for thin convs, one output channel (F == 1, the CNN's last
  layer) or one input channel (C == 1, its first), where the GEMM's products would
  be matrix-vector ones: small products over a sample's whole planes instead.

``method="auto"`` picks; ``"gemm"`` and ``"direct"`` force a path (the tests run
both on every configuration).

Parallel loops only ever split independent outputs: chunks of samples (each
owns its planes of y and dx) or (f, c) pairs of dw. No two threads add into the
same element; weight-gradient partial sums are kept per chunk (chunks depend on
the shapes, not the thread count) and added in chunk order. So the results are
bitwise the same at any thread count and under any scheduling. Work buffers
are kept per thread and dtype and reused between calls (``workspace.py``).

All jitted functions use ``cache=True`` and carry no explicit signatures:
float32 compiles when float32 is first used, float64 only when a gradient check
asks for it.
"""

from __future__ import annotations

import numba
import numpy as np

from . import direct, gemm
from .geometry import ConvGeometry, conv_output_size
from .threads import pin_inner_blas
from .workspace import buffer

METHODS = ("auto", "gemm", "direct")

# Bytes of im2col rows each worker packs and multiplies at a time: small enough
# to stay in a core's L2 cache, large enough for an efficient matrix product.
_CHUNK_BYTES = 1 << 19
# The input gradient by phase holds more per sample (dy's plane, a phase's cols and rows, the
# whole output image): its chunks are sized by half as much of the conv's cols. One sample
# of dec.convT3's forward then, not two: 15.7 ms against 17.3 at one thread (the
# working set stays in L2); enc.conv3's input gradient 1.80 against 1.95.
_PHASE_CHUNK_BYTES = 1 << 18
# The weight gradient sums over a chunk's rows inside one product: give it at least this
# many, or tiny images make the products too short to be efficient.
_GRAD_WEIGHT_ROWS = 512
# The direct weight gradient splits the batch into this many chunks of samples,
# each with its own slot of partial sums, added in chunk order at the end.
_DIRECT_CHUNKS = 32
# The weight gradient by tap (``gemm.grad_weight_taps``) multiplies dy's zeros on a grid of
# (Ho + (K − 1)//s) × (Wo + (K − 1)//s) pixels: it is taken while that grid is at most this
# much larger than Ho × Wo (1.15 for dec.convT3's 14 × 14; enc.conv3's 4 × 4 would be 1.56).
_TAPS_MAX_GRID = 1.2
# ... and x has at least this many channels: with fewer, the tap products (C, R) @ (R, F)
# degenerate towards matrix-vector ones while the im2col is narrow anyway (measured with
# C = 1, enc.conv1's, before it took the direct path: 2.47 ms against 2.20 by im2col).
_TAPS_MIN_CHANNELS = 8


# ----------------------------------------------------------------------------
# Checks, for the public functions only
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


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"conv kernels: method must be one of {METHODS}, got {method!r}")


def _check_bias(b: np.ndarray | None, n: int, dtype: np.dtype, name: str) -> None:
    if b is not None and (b.shape != (n,) or b.dtype != dtype):
        raise ValueError(f"{name}: expected bias of shape ({n},) and dtype {dtype}, "
                         f"got {b.shape} {b.dtype}")


# ----------------------------------------------------------------------------
# Public API: check, then call the unchecked internal
# ----------------------------------------------------------------------------
def channel_sum(a: np.ndarray) -> np.ndarray:
    """Σ over n, h, w of a (N, C, H, W) array → (C,), same dtype (a bias gradient)."""
    if a.ndim != 4 or a.dtype not in (np.float32, np.float64):
        raise ValueError(f"channel_sum: expected a float (N, C, H, W) array, "
                         f"got shape {a.shape} dtype {a.dtype}")
    return channel_sum_unchecked(a)


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
    _check_method(method)
    H, W = x.shape[2:]
    F, Cw, K, _ = w.shape
    s, p = int(stride), int(padding)
    if K != w.shape[3]:
        raise ValueError(f"conv2d_forward: expected a square kernel, got weight shape {w.shape}")
    if Cw != x.shape[1]:
        raise ValueError(f"conv2d_forward: x has {x.shape[1]} channels but w expects {Cw}")
    if conv_output_size(H, K, s, p) < 1 or conv_output_size(W, K, s, p) < 1:
        raise ValueError(f"conv2d_forward: input {H}x{W} with padding {p} is smaller than "
                         f"the kernel {K}x{K}")
    _check_bias(b, F, x.dtype, "conv2d_forward")
    return conv2d_forward_unchecked(x, w, b, s, p, method=method)


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
    _check_method(method)
    F, Ho, Wo = dy.shape[1:]
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
    _check_bias(bias, C, dy.dtype, "conv2d_grad_input")
    return conv2d_grad_input_unchecked(dy, w, (H, W), s, p, bias=bias, method=method)


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
    _check_method(method)
    N, _, Ho, Wo = dy.shape
    Nx, _, H, W = x.shape
    K, s, p = int(kernel_size), int(stride), int(padding)
    if Nx != N:
        raise ValueError(f"conv2d_grad_weight: dy has batch {N} but x has batch {Nx}")
    if K < 1 or conv_output_size(H, K, s, p) != Ho or conv_output_size(W, K, s, p) != Wo:
        raise ValueError(
            f"conv2d_grad_weight: input {H}x{W} with kernel {K}, stride {s}, padding {p} "
            f"does not give dy's size {Ho}x{Wo}"
        )
    return conv2d_grad_weight_unchecked(dy, x, K, s, p, method=method)


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    stride: int,
    padding: int,
    *,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dw, db) of conv2d: ``conv2d_grad_input`` and ``conv2d_grad_weight`` together.

    dy (N, F, Ho, Wo), x (N, C, H, W), w (F, C, K, K) → dx (N, C, H, W), dw (F, C, K, K),
    db (F,). With one output channel (F == 1, the direct path) both come from one pass over
    each sample, which reads x and writes dx once (``direct.backward_by_taps``).
    """
    _check_common("conv2d_backward", dy, w, stride, padding)
    _check_method(method)
    F, C, K = w.shape[0], w.shape[1], w.shape[2]
    s, p = int(stride), int(padding)
    if x.ndim != 4 or x.dtype != dy.dtype or x.shape[1] != C or K != w.shape[3]:
        raise ValueError(f"conv2d_backward: expected x of shape (N, {C}, H, W) and dtype "
                         f"{dy.dtype} for a square weight, got x {x.shape} {x.dtype}, "
                         f"weight {w.shape}")
    N, _, H, W = x.shape
    expected = (N, F, conv_output_size(H, K, s, p), conv_output_size(W, K, s, p))
    if dy.shape != expected or min(expected[2:]) < 1:
        raise ValueError(f"conv2d_backward: x {x.shape} with weight {w.shape}, stride {s}, "
                         f"padding {p} gives dy of shape {expected}, got {dy.shape}")
    return conv2d_backward_unchecked(dy, x, w, s, p, method=method)


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
    _check_method(method)
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
    return conv2d_forward_and_grad_weight_unchecked(x, w, d, s, p, method=method)


# ----------------------------------------------------------------------------
# Internals: no checks (the caller vouches for its arguments)
# ----------------------------------------------------------------------------
def _use_direct(method: str, F: int, C: int) -> bool:
    # one channel in or out: the GEMM's products would be matrix-vector ones (enc.conv1, 1 → 32,
    # batch 256, 1 thread: the direct path takes 0.5-0.7x the GEMM path's time a direction)
    return method == "direct" or (method == "auto" and (F == 1 or C == 1))


def _bias_or_zeros(b: np.ndarray | None, n: int, dtype: np.dtype) -> np.ndarray:
    return np.zeros(n, dtype=dtype) if b is None else np.ascontiguousarray(b)


def _direct_chunks(N: int) -> int:
    """Direct path: a few chunks of samples per thread, each with its own scratch planes."""
    return max(1, min(N, 4 * numba.get_num_threads()))


def _gemm_setup(x_shape: tuple[int, ...], F: int, K: int, s: int, p: int, Ho: int, Wo: int,
                dtype: np.dtype, min_rows: int = 1
                ) -> tuple[ConvGeometry, np.ndarray, np.ndarray, np.ndarray]:
    """The geometry (with samples per chunk), and per-worker scratch planes, cols and rows.

    x_shape is the packed input's (N, C, H, W). A chunk holds about _CHUNK_BYTES of cols,
    and at least ``min_rows`` rows. Also pins the inner BLAS to one thread.
    """
    pin_inner_blas()
    N, C, H, W = x_shape
    dtype = np.dtype(dtype)
    L = Ho * Wo
    per_chunk = max(_CHUNK_BYTES // (L * K * K * C * dtype.itemsize), -(-min_rows // L))
    per_chunk = max(1, min(N, per_chunk))
    workers = max(1, min(numba.get_num_threads(), -(-N // per_chunk)))
    planes = buffer("planes", (workers, H + 2 * p, (W + 2 * p) * C), dtype)
    cols = buffer("cols", (workers, per_chunk * L * K * K * C), dtype)
    rows = buffer("rows", (workers, per_chunk * L * F), dtype)
    return ConvGeometry(K, s, p, Ho, Wo, per_chunk), planes, cols, rows


def _direct_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, s: int, p: int,
                    y: np.ndarray) -> None:
    """By the taps when F == 1, else by each sample's windows (see ``direct.py``)."""
    N, C, H, W = x.shape
    F, K = w.shape[0], w.shape[2]
    Ho, Wo = y.shape[2:]
    n_chunks = _direct_chunks(N)
    if F == 1:
        z = buffer("planes", (n_chunks, K * K, H, W), x.dtype)
        wt = np.ascontiguousarray(w.reshape(C, K * K).T)
        direct.forward_by_taps(x, wt, b[0], K, s, p, z, y)
        return
    cols = buffer("cols", (n_chunks, C * K * K, Ho, Wo), x.dtype)
    direct.forward_by_windows(x, w.reshape(F, C * K * K), b, K, s, p, cols,
                              y.reshape(N, F, Ho * Wo))


def _sum_chunks_to_weight(partials: np.ndarray, F: int, C: int, K: int) -> np.ndarray:
    """Σ of the GEMM path's per-chunk (F, K·K·C) partials, as dw (F, C, K, K)."""
    dWkt = np.empty((F, K * K * C), dtype=partials.dtype)  # columns ordered (a, e, c)
    gemm.sum_chunks(partials, dWkt)
    return np.ascontiguousarray(dWkt.reshape(F, K, K, C).transpose(0, 3, 1, 2))


def _axis_phases(n_out: int, n_in: int, K: int, s: int, p: int
                 ) -> tuple[list[tuple[int, int, int, int]], int, int]:
    """One axis of the input gradient, by phase r = (h + p) mod s of output index h.

    Output h = s·u + r − p receives taps a = r, r + s, … < K (T of them), from input
    u − t for tap a = r + s·t: a stride-1 correlation over u. Returns [(r, T, u0, U)] for
    the U outputs u0 … u0 + U − 1 of each phase, and the zero border (before, after) the
    input needs so that every tap of every phase reads inside it.
    """
    phases, before, after = [], 0, 0
    for r in range(s):
        T = len(range(r, K, s))
        u0, u_last = -((r - p) // s), (p + n_out - 1 - r) // s
        U = max(0, u_last - u0 + 1)
        phases.append((r, T, u0, U))
        if T and U:
            before, after = max(before, T - 1 - u0), max(after, u_last - (n_in - 1))
    return phases, before, after


def _phase_table(H: int, W: int, Ho: int, Wo: int, K: int, s: int, p: int
                 ) -> tuple[list[tuple[int, ...]], tuple[int, int, int, int]]:
    """Both axes' phases combined: [(rh, rw, Ta, Te, u0, U, v0, V)] for every class with
    pixels, and dy's zero border (top, bottom, left, right) that all their taps need."""
    rows_ph, top, bottom = _axis_phases(H, Ho, K, s, p)
    cols_ph, left, right = _axis_phases(W, Wo, K, s, p)
    table = [(rh, rw, Ta, Te, u0, U, v0, V) for rh, Ta, u0, U in rows_ph
             for rw, Te, v0, V in cols_ph if U and V]
    return table, (top, bottom, left, right)


def _direct_grad_input(dy: np.ndarray, w: np.ndarray, s: int, p: int, bias: np.ndarray,
                       dx: np.ndarray) -> None:
    """By the taps when F == 1, else by each sample's windows (see ``direct.py``)."""
    N, F, Ho, Wo = dy.shape
    C, H, W = dx.shape[1:]
    K = w.shape[2]
    n_chunks = _direct_chunks(N)
    if F == 1:
        D = buffer("planes", (n_chunks, K * K, H, W), dy.dtype)
        direct.grad_input_by_taps(dy, w.reshape(C, K * K), bias, K, s, p, D,
                                  dx.reshape(N, C, H * W))
        return
    dcols = buffer("cols", (n_chunks, C * K * K, Ho, Wo), dy.dtype)
    w2t = np.ascontiguousarray(w.reshape(F, C * K * K).T)
    direct.grad_input_by_windows(dy, w2t, bias, K, s, p, dcols, dx)


def _direct_weight_chunks(N: int) -> tuple[int, int, int]:
    """(samples per chunk, chunks, workers) of a direct weight gradient: _DIRECT_CHUNKS chunks
    set by N alone (never by the threads), each with its own slot of partial sums."""
    per_chunk = -(-N // _DIRECT_CHUNKS)
    n_chunks = -(-N // per_chunk)
    return per_chunk, n_chunks, min(numba.get_num_threads(), n_chunks)


def _direct_grad_weight(dy: np.ndarray, x: np.ndarray, K: int, s: int, p: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(dw, db) by the taps when F == 1, else by each sample's windows, which also sum dy for
    db on the way: partial sums per chunk of samples (chunks set by N alone, not the threads),
    added in chunk order."""
    N, F, Ho, Wo = dy.shape
    C, H, W = x.shape[1:]
    per_chunk, n_chunks, workers = _direct_weight_chunks(N)
    T = C * K * K
    if F == 1:
        D = buffer("planes", (workers, K * K, H, W), dy.dtype)
        partials = buffer("partials", (n_chunks, C, K * K), dy.dtype)
        direct.grad_weight_by_taps(dy, x, K, s, p, per_chunk, D, partials)
    else:  # one more row of cols, all ones: the last column of partials is Σ dy
        cols = buffer("cols", (workers, T + 1, Ho, Wo), dy.dtype)
        partials = buffer("partials", (n_chunks, F, T + 1), dy.dtype)
        direct.grad_weight_by_windows(dy, x, K, s, p, per_chunk, cols, partials)
    sums = np.empty(partials.shape[1:], dtype=dy.dtype)
    gemm.sum_chunks(partials, sums)
    if F == 1:
        return sums.reshape(F, C, K, K), channel_sum_unchecked(dy)
    return np.ascontiguousarray(sums[:, :T]).reshape(F, C, K, K), sums[:, T].copy()


def _direct_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, s: int, p: int,
                     dx: np.ndarray) -> np.ndarray:
    """F == 1: dx (written into) and dw in one pass per sample (``direct.backward_by_taps``),
    the weight gradient's partial sums kept per chunk as in ``_direct_grad_weight``. A 3×3
    stride-1 conv whose output is its input's size keeps dy's 3 column shifts (H + 2 rows
    each) instead of the 9 tap planes: they stay in L1. Returns dw (1, C, K, K)."""
    N = dy.shape[0]
    C, H, W = x.shape[1:]
    K = w.shape[2]
    per_chunk, n_chunks, workers = _direct_weight_chunks(N)
    by_rows = K == 3 and s == 1 and dy.shape[2:] == (H, W)
    shape = (workers, K, H + K - 1, W) if by_rows else (workers, K * K, H, W)
    scratch = buffer("planes", shape, dy.dtype)
    partials = buffer("partials", (n_chunks, C, K * K), dy.dtype)
    direct.backward_by_taps(dy, x, w.reshape(C, K * K), np.zeros(C, dy.dtype), K, s, p,
                            per_chunk, by_rows, scratch, partials, dx.reshape(N, C, H * W))
    dw = np.empty((C, K * K), dtype=dy.dtype)
    gemm.sum_chunks(partials, dw)
    return dw.reshape(1, C, K, K)


def _gemm_grad_input_gathered(dy: np.ndarray, w: np.ndarray, s: int, p: int, bias: np.ndarray,
                              dx: np.ndarray) -> None:
    """dx = conv2d's input gradient + bias when dy has more channels than dx (F > C): the
    phases' im2col would be taps·F wide, so instead one product dY @ Wkᵀ gives every
    window's K·K·C contributions, and each pixel of dx gathers the 4, 2, 2 or 1 of them
    that reach it (a gather, written once: no scatter-add)."""
    N, F, Ho, Wo = dy.shape
    C, H, W = dx.shape[1:]
    K = w.shape[2]
    per_chunk = max(1, min(N, _CHUNK_BYTES // (Ho * Wo * K * K * C * dy.dtype.itemsize)))
    workers = max(1, min(numba.get_num_threads(), -(-N // per_chunk)))
    pin_inner_blas()
    rows = buffer("rows", (workers, per_chunk * Ho * Wo * F), dy.dtype)
    cols = buffer("cols", (workers, per_chunk * Ho * Wo * K * K * C), dy.dtype)
    pixels = buffer("pixels", (workers, H * W, C), dy.dtype)
    Wt = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(F, K * K * C)
    gemm.grad_input_gathered(dy, Wt, bias, ConvGeometry(K, s, p, Ho, Wo, per_chunk), rows, cols,
                             pixels, dx)


def _gemm_grad_input(dy: np.ndarray, w: np.ndarray, s: int, p: int, bias: np.ndarray,
                     dx: np.ndarray) -> None:
    """dx = conv2d's input gradient + bias by sub-pixel phases: output pixels of one parity
    class (s² classes) take the same taps (4, 2, 2, 1 of 9 for K = 3, s = 2), so each class
    is one product (pixels, taps·F) @ (taps·F, C) and nothing overlaps."""
    N, F, Ho, Wo = dy.shape
    C, H, W = dx.shape[1:]
    K = w.shape[2]
    if F > C:
        _gemm_grad_input_gathered(dy, w, s, p, bias, dx)
        return
    table, (top, bottom, left, right) = _phase_table(H, W, Ho, Wo, K, s, p)
    blocks, offsets = [], [0]
    for rh, rw, Ta, Te, *_ in table:
        # (ta, te, f): w[f, c, rh + s·(Ta − 1 − ta), rw + s·(Te − 1 − te)]
        sub = w[:, :, rh::s, rw::s][:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
        blocks.append(sub.reshape(-1))  # (Ta·Te·F, C)
        offsets.append(offsets[-1] + Ta * Te * F)
    phases = np.array([ph + (o,) for ph, o in zip(table, offsets, strict=False)],
                      dtype=np.int64).reshape(-1, 9)
    w_phases = np.ascontiguousarray(np.concatenate(blocks) if blocks
                                    else np.zeros(0, dy.dtype))
    # chunks sized by the im2col of the conv this reverses: about _PHASE_CHUNK_BYTES of cols
    per_chunk = max(1, min(N, _PHASE_CHUNK_BYTES // (Ho * Wo * K * K * C * dy.dtype.itemsize)))
    workers = max(1, min(numba.get_num_threads(), -(-N // per_chunk)))
    L_max = int(max((ph[5] * ph[7] for ph in table), default=0))
    LKK_max = int(max((ph[5] * ph[7] * ph[2] * ph[3] * F for ph in table), default=0))
    pin_inner_blas()
    planes = buffer("planes", (workers, per_chunk, top + Ho + bottom, (left + Wo + right) * F),
                    dy.dtype)
    planes[...] = 0  # the borders; the interior is loaded sample by sample
    cols = buffer("cols", (workers, max(1, per_chunk * LKK_max)), dy.dtype)
    rows = buffer("rows", (workers, max(1, per_chunk * L_max * C)), dy.dtype)
    g = ConvGeometry(K, s, p, Ho, Wo, per_chunk)
    pixels = buffer("pixels", (workers, per_chunk, H * W, C), dy.dtype)
    gemm.grad_input(dy, w_phases, phases, bias, g, top, left, planes, cols, rows, pixels, dx)


def _tap_tables(H: int, W: int, Ho: int, Wo: int, K: int, s: int, p: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Where x goes in its phases, for ``gemm.grad_weight_taps``: row h of x to phase row
    (rh, u) = ((h + p) mod s, (h + p)//s), or u = −1 when no tap of that phase reads it
    (u ≥ Ho + Ta − 1, Ta = its taps); and for each column phase rw the pixels v_lo ≤ v < v_hi
    that hold x (0 ≤ s·v + rw − p < W) and are read (v < Wo + Te − 1)."""
    def taps(r: int) -> int:
        return len(range(r, K, s))

    rows_to = np.empty((H, 2), dtype=np.int64)
    for h in range(H):
        rh, u = (h + p) % s, (h + p) // s
        rows_to[h] = rh, (u if taps(rh) and u < Ho + taps(rh) - 1 else -1)
    cols_from = np.zeros((s, 2), dtype=np.int64)
    for rw in range(s):
        v_lo = -((rw - p) // s)
        v_hi = min(Wo + taps(rw) - 1, (W - 1 + p - rw) // s + 1)
        if taps(rw) and v_hi > max(v_lo, 0):
            cols_from[rw] = max(v_lo, 0), v_hi
    return rows_to, cols_from


def _taps_grid(Ho: int, Wo: int, K: int, s: int) -> tuple[int, int]:
    """The grid (Hph, Wph) of ``gemm.grad_weight_taps``: the output's, plus the farthest tap."""
    return Ho + (K - 1) // s, Wo + (K - 1) // s


def _takes_taps(C: int, Ho: int, Wo: int, K: int, s: int) -> bool:
    """Whether the weight gradient goes by tap (``_TAPS_MAX_GRID``, ``_TAPS_MIN_CHANNELS``)."""
    Hph, Wph = _taps_grid(Ho, Wo, K, s)
    return C >= _TAPS_MIN_CHANNELS and Hph * Wph <= _TAPS_MAX_GRID * Ho * Wo


def _taps_sample_bytes(C: int, F: int, Ho: int, Wo: int, K: int, s: int, itemsize: int) -> int:
    """One sample's share of ``gemm.grad_weight_taps``'s buffers: x's s² phases and dy."""
    Hph, Wph = _taps_grid(Ho, Wo, K, s)
    return (s * s * C + F) * Hph * Wph * itemsize


def _gemm_taps(dy: np.ndarray, x: np.ndarray, w: np.ndarray | None, K: int, s: int, p: int
               ) -> tuple[np.ndarray | None, np.ndarray]:
    """(conv2d(x, w) or None, dw) by tap on x's phases (``gemm.grad_weight_taps``): one
    product per tap and chunk each; chunks of about _CHUNK_BYTES of phases and pixels, set
    by the shapes alone."""
    N, F, Ho, Wo = dy.shape
    C, H, W = x.shape[1:]
    Hph, Wph = _taps_grid(Ho, Wo, K, s)
    per_sample = _taps_sample_bytes(C, F, Ho, Wo, K, s, dy.dtype.itemsize)
    per_chunk = max(1, min(N, _CHUNK_BYTES // per_sample))
    n_chunks = -(-N // per_chunk)
    workers = max(1, min(numba.get_num_threads(), n_chunks))
    pin_inner_blas()
    tail = (K - 1) // s * (Wph + 1)  # the farthest tap's offset past the last grid pixel
    planes = buffer("planes", (workers, s * s, C, per_chunk * Hph * Wph + tail), dy.dtype)
    pixels = buffer("pixels", (workers, per_chunk * Hph * Wph, F), dy.dtype)
    partials = buffer("partials", (n_chunks, K * K, C, F), dy.dtype)
    if w is None:
        Wt, grids, y = np.zeros((0, F, C), dy.dtype), np.zeros((workers, 0), dy.dtype), None
    else:  # Wt[a·K + e, f, c] = w[f, c, a, e]
        Wt = np.ascontiguousarray(w.transpose(2, 3, 0, 1)).reshape(K * K, F, C)
        grids = buffer("rows", (workers, F * per_chunk * Hph * Wph), dy.dtype)
        y = np.empty((N, F, Ho, Wo), dtype=dy.dtype)
    rows_to, cols_from = _tap_tables(H, W, Ho, Wo, K, s, p)
    gemm.grad_weight_taps(x, Wt, dy, ConvGeometry(K, s, p, Ho, Wo, per_chunk), Wph, rows_to,
                          cols_from, planes, pixels, grids, dy[:0] if y is None else y, partials)
    dw = np.empty((K * K, C * F), dtype=dy.dtype)
    gemm.sum_chunks(partials.reshape(n_chunks, K * K, C * F), dw)
    return y, np.ascontiguousarray(dw.reshape(K, K, C, F).transpose(3, 2, 0, 1))


def channel_sum_unchecked(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    out = np.empty(a.shape[1], dtype=a.dtype)
    direct.channel_sum(a.reshape(a.shape[0], a.shape[1], -1), out)
    return out


def conv2d_forward_unchecked(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
                    padding: int, *, method: str = "auto") -> np.ndarray:
    N, C, H, W = x.shape
    F, K = w.shape[0], w.shape[2]
    s, p = stride, padding
    Ho, Wo = conv_output_size(H, K, s, p), conv_output_size(W, K, s, p)
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    b = _bias_or_zeros(b, F, x.dtype)
    y = np.empty((N, F, Ho, Wo), dtype=x.dtype)
    if _use_direct(method, F, C):
        _direct_forward(x, w, b, s, p, y)
        return y
    g, planes, cols, rows = _gemm_setup(x.shape, F, K, s, p, Ho, Wo, x.dtype)
    Wk = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(K * K * C, F)
    gemm.forward(x, Wk, b, g, planes, cols, rows, y)
    return y


def conv2d_grad_input_unchecked(dy: np.ndarray, w: np.ndarray, input_hw: tuple[int, int],
                                stride: int, padding: int, *, bias: np.ndarray | None = None,
                       method: str = "auto") -> np.ndarray:
    N, F, Ho, Wo = dy.shape
    C = w.shape[1]
    H, W = input_hw
    s, p = stride, padding
    dy = np.ascontiguousarray(dy)
    w = np.ascontiguousarray(w)
    bias = _bias_or_zeros(bias, C, dy.dtype)
    dx = np.empty((N, C, H, W), dtype=dy.dtype)
    if _use_direct(method, F, C):
        _direct_grad_input(dy, w, s, p, bias, dx)
        return dx
    _gemm_grad_input(dy, w, s, p, bias, dx)
    return dx


def conv2d_grad_weight_unchecked(dy: np.ndarray, x: np.ndarray, kernel_size: int, stride: int,
                        padding: int, *, method: str = "auto"
                        ) -> tuple[np.ndarray, np.ndarray]:
    N, F, Ho, Wo = dy.shape
    C, H, W = x.shape[1:]
    K, s, p = kernel_size, stride, padding
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x)
    if _use_direct(method, F, C):
        return _direct_grad_weight(dy, x, K, s, p)
    db = channel_sum_unchecked(dy)
    if _takes_taps(C, Ho, Wo, K, s):
        return _gemm_taps(dy, x, None, K, s, p)[1], db
    g, planes, cols, rows = _gemm_setup(x.shape, F, K, s, p, Ho, Wo, dy.dtype,
                                        min_rows=_GRAD_WEIGHT_ROWS)
    partials = buffer("partials", (-(-N // g.samples_per_chunk), F, K * K * C), dy.dtype)
    gemm.grad_weight(dy, x, g, planes, cols, rows, partials)
    return _sum_chunks_to_weight(partials, F, C, K), db


def conv2d_backward_unchecked(dy: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int,
                              padding: int, *, method: str = "auto"
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    F, C = w.shape[:2]
    if not (F == 1 and _use_direct(method, F, C)):
        dw, db = conv2d_grad_weight_unchecked(dy, x, w.shape[2], stride, padding, method=method)
        return conv2d_grad_input_unchecked(dy, w, x.shape[2:], stride, padding,
                                           method=method), dw, db
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x)
    dx = np.empty(x.shape, dtype=dy.dtype)
    dw = _direct_backward(dy, x, np.ascontiguousarray(w), stride, padding, dx)
    return dx, dw, channel_sum_unchecked(dy)


def conv2d_forward_and_grad_weight_unchecked(x: np.ndarray, w: np.ndarray, d: np.ndarray,
                                             stride: int, padding: int, *, method: str = "auto"
                                    ) -> tuple[np.ndarray, np.ndarray]:
    N, C, H, W = x.shape
    F, K = w.shape[0], w.shape[2]
    s, p = stride, padding
    if _use_direct(method, F, C):
        y = conv2d_forward_unchecked(x, w, None, s, p, method=method)
        return y, conv2d_grad_weight_unchecked(d, x, K, s, p, method=method)[0]
    Ho, Wo = d.shape[2:]
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    d = np.ascontiguousarray(d)
    if _takes_taps(C, Ho, Wo, K, s):
        return _gemm_taps(d, x, w, K, s, p)
    g, planes, cols, rows = _gemm_setup(x.shape, F, K, s, p, Ho, Wo, x.dtype,
                                        min_rows=_GRAD_WEIGHT_ROWS)
    partials = buffer("partials", (-(-N // g.samples_per_chunk), F, K * K * C), x.dtype)
    Wk = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(K * K * C, F)
    y = np.empty((N, F, Ho, Wo), dtype=x.dtype)
    gemm.forward_and_grad_weight(x, Wk, np.zeros(F, x.dtype), d, g, planes, cols, rows, y,
                                 partials)
    return y, _sum_chunks_to_weight(partials, F, C, K)
