"""The GEMM path: im2col packing around single-threaded BLAS calls.

With L = Ho·Wo output pixels per sample and one row of ``cols`` per pixel:

    cols (L, K·K·C)      cols[(i, j), (a, e, c)] = xpad[c, i·s + a, j·s + e]
    forward:       Y  = cols @ Wk                   (L, F), Wk[(a, e, c), f] = w[f, c, a, e]
    grad_weight:   dWkᵀ = Σ_samples dYᵀ @ cols
    grad_input:    by sub-pixel phase, with no scatter-add:
                   dx[c, s·u + rh − p, s·v + rw − p] = Σ_taps Σ_f w[f, c, a, e]·dy[f, i, j]
                   for the taps a = rh + s·t (e = rw + s·t′) that reach that parity class
                   (4, 2, 2 and 1 of 9 for K = 3, s = 2), from dy[f, u − t, v − t′]: each class
                   is a stride-1 convolution, cols (pixels, taps·F) @ (taps·F, C), and every
                   pixel of dx is written once. (A transposed conv's forward pass is this.)
                   When F > C that im2col would be the wider one: then dcols = dY @ Wkᵀ
                   (L, K·K·C) and each pixel of dx gathers the taps that reach it.

To pack, a sample is copied channels-last into a zero-bordered scratch plane
(Hp, Wp·C): a window row is then K·C contiguous numbers, so im2col is runs of
contiguous copies that vectorise, with no bounds tests (the border supplies
the padding's zeros).

The drivers split the batch into fixed chunks of ``g.samples_per_chunk``
samples (the number depends on the shapes only, never on the thread count).
Worker k of ``n_workers`` takes a contiguous range of chunks and packs,
multiplies and unpacks each one inside its own cache-sized buffers; the matrix
product is a single-threaded BLAS call (numba's np.dot), so there is one thread
pool and no hand-offs between numba's threads and BLAS's. A chunk's result is
the same whichever worker computes it, and weight-gradient partial sums are
stored per chunk and added in chunk order afterwards.

``g`` is a ``ConvGeometry`` (kernel_size, stride, padding, out_h, out_w,
samples_per_chunk).
"""

import numba
import numpy as np
from numba import prange

from . import blas

# A sample this small (bytes) is loaded in tiles of 8 channels: each write then fills 8
# contiguous numbers instead of one number per stride of C. Batch 256, one thread, paired
# processes (new/old): enc.conv3's x (64, 7, 7) forward 0.80, grad_weight 0.85, dec.convT1's
# backward 0.91 and its forward ((32, 4, 4) dy) 0.91. Larger samples lose by tile: enc.conv2's
# (32, 14, 14) forward 1.06, grad_weight 1.04 (alone its loads run 0.58 ms against 1.20, but
# not between the products), a (32, 28, 28) plane 6.4 ms against 4.7.
_TILE_LOAD_BYTES = 1 << 14


@numba.njit(cache=True)
def _load_channels_last(x_n, top, left, plane):
    """plane[top + h, (left + w)·C + c] = x_n[c, h, w]; the plane's zero border is left alone."""
    C, H, W = x_n.shape
    tiled = C * H * W * x_n.itemsize <= _TILE_LOAD_BYTES
    c_tiled = C - C % 8 if tiled else 0
    for h in range(H):
        dst = plane[h + top, left * C:(left + W) * C]
        for c0 in range(0, c_tiled, 8):
            for q in range(W):
                run = dst[q * C + c0:q * C + c0 + 8]
                for i in range(8):
                    run[i] = x_n[c0 + i, h, q]
    for c in range(c_tiled, C):  # the channels left over, one at a time
        for h in range(H):
            src = x_n[c, h]
            dst = plane[h + top, left * C + c:(left + W) * C:C]
            for q in range(W):
                dst[q] = src[q]


@numba.njit(cache=True)
def _im2col_sample(x_n, g, plane, cols):
    """cols[(i, j), (a, e, c)] = xpad_n[c, i·s + a, j·s + e], for one sample x_n (C, H, W)."""
    C = x_n.shape[0]
    K, s = g.kernel_size, g.stride
    KC = K * C
    _load_channels_last(x_n, g.padding, g.padding, plane)
    for i in range(g.out_h):
        for j in range(g.out_w):
            r = i * g.out_w + j
            for a in range(K):
                # kernel row a of this window: K pixels × C channels, contiguous in the plane
                src = plane[i * s + a, j * s * C:j * s * C + KC]
                dst = cols[r, a * KC:(a + 1) * KC]
                for q in range(KC):
                    dst[q] = src[q]


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
def _pixels_to_planes(pixels, b, y_n):
    """y_n[c, l] = pixels[l, c] + b[c], eight pixels at a time: each plane then takes eight
    contiguous numbers per visit while the block read (8·C numbers) stays in L1. For a
    whole output image (L = H·W); on short blocks (the forward's chunks) ``_rows_to_planes``
    measured faster."""
    C, L = y_n.shape
    whole = L - L % 8
    for l0 in range(0, whole, 8):
        block = pixels[l0:l0 + 8]
        for c in range(C):
            bc = b[c]
            dst = y_n[c, l0:l0 + 8]
            for i in range(8):
                dst[i] = block[i, c] + bc
    for c in range(C):
        for q in range(whole, L):
            y_n[c, q] = pixels[q, c] + b[c]


@numba.njit(cache=True)
def _planes_to_rows(dy_n, rows):
    """rows[l, f] = dy_n[f, l]:  (F, L) → (L, F)."""
    F, L = dy_n.shape
    for f in range(F):
        src = dy_n[f]
        dst = rows[:, f]
        for q in range(L):
            dst[q] = src[q]


# ----------------------------------------------------------------------------
# The input gradient by output phase: stride-1 convolutions, no scatter-add
# ----------------------------------------------------------------------------
@numba.njit(cache=True)
def _pack_phase(plane, F, ph, top, left, cols):
    """One sample's cols for one output phase (rows of ``phases`` in ``grad_input``):
    cols[(u, v), (ta, te, f)] = dy[f, u − (Ta − 1) + ta, v − (Te − 1) + te], read from the
    channels-last plane (zeros outside dy); a tap row (te, f) is Te·F contiguous numbers."""
    Ta, Te, u0, U, v0, V = ph[2], ph[3], ph[4], ph[5], ph[6], ph[7]
    run = Te * F
    for du in range(U):
        for dv in range(V):
            r = du * V + dv
            c0 = (v0 + dv - (Te - 1) + left) * F
            for ta in range(Ta):
                src = plane[u0 + du - (Ta - 1) + ta + top, c0:c0 + run]
                dst = cols[r, ta * run:(ta + 1) * run]
                for q in range(run):
                    dst[q] = src[q]


@numba.njit(cache=True)
def _unpack_phase(rows, ph, s, p, W, pixels):
    """pixels[(s·u + rh − p)·W + s·v + rw − p] = rows[(u, v)]: a phase's C-vectors into place
    in the sample's channels-last (H·W, C) output."""
    C = rows.shape[1]
    rh, rw, u0, U, v0, V = ph[0], ph[1], ph[4], ph[5], ph[6], ph[7]
    for du in range(U):
        first = (s * (u0 + du) + rh - p) * W + s * v0 + rw - p
        for dv in range(V):
            src = rows[du * V + dv]
            dst = pixels[first + s * dv]
            for c in range(C):
                dst[c] = src[c]


@numba.njit(cache=True)
def _fill_phase(ph, s, p, W, pixels):
    """Zeros at a phase's pixels when no kernel tap reaches them (stride > kernel)."""
    rh, rw, u0, U, v0, V = ph[0], ph[1], ph[4], ph[5], ph[6], ph[7]
    for du in range(U):
        first = (s * (u0 + du) + rh - p) * W + s * v0 + rw - p
        for dv in range(V):
            pixels[first + s * dv] = 0


@numba.njit(cache=True)
def _axis_reach(n, K, s, p, n_win):
    """For each output index h < n along one axis, the taps that reach it: count[h] pairs
    reach[h, k] = (a, i), the tap a and the window i = (h + p − a)/s (0 ≤ i < n_win)."""
    count = np.zeros(n, np.int64)
    reach = np.zeros((n, K, 2), np.int64)
    for h in range(n):
        for a in range((h + p) % s, K, s):
            i = (h + p - a) // s
            if 0 <= i < n_win:
                reach[h, count[h]] = a, i
                count[h] += 1
    return count, reach


@numba.njit(cache=True)
def _gather_sample(dcols, g, rows_reach, cols_reach, W, pixels):
    """pixels[h·W + w] = Σ over the taps (a, e) that reach (h, w) of dcols[(i, j), (a, e, ·)],
    i = (h + p − a)/s, j = (w + p − e)/s (``_axis_reach``'s tables for h and w): each output
    pixel sums its own 4, 2, 2 or 1 contributions (K = 3, s = 2), the first one copied, and is
    written once. The tables spare the inner loops their divisions and bounds tests: 0.93x the
    time of testing every tap (enc.conv2's input gradient, dec.convT2's forward)."""
    K, Wo = g.kernel_size, g.out_w
    C = pixels.shape[1]
    (na, ai), (ne, ej) = rows_reach, cols_reach
    for h in range(ai.shape[0]):
        for w in range(W):
            acc = pixels[h * W + w]
            if na[h] == 0 or ne[w] == 0:
                acc[:] = 0
                continue
            for x in range(na[h]):
                for y in range(ne[w]):
                    o = (ai[h, x, 0] * K + ej[w, y, 0]) * C
                    src = dcols[ai[h, x, 1] * Wo + ej[w, y, 1], o:o + C]
                    if x + y == 0:
                        for c in range(C):
                            acc[c] = src[c]
                    else:
                        for c in range(C):
                            acc[c] += src[c]


# ----------------------------------------------------------------------------
# One chunk of samples: the steps the drivers share
# ----------------------------------------------------------------------------
@numba.njit(cache=True)
def _chunks_of_worker(k, n_workers, n_chunks):
    """The contiguous range of chunks worker k of n_workers takes."""
    return range(k * n_chunks // n_workers, (k + 1) * n_chunks // n_workers)


@numba.njit(cache=True)
def _chunk_samples(chunk, samples_per_chunk, N):
    """(first sample, number of samples) of a chunk; the last chunk may be short."""
    first = chunk * samples_per_chunk
    return first, min(samples_per_chunk, N - first)


@numba.njit(cache=True)
def _pack_chunk(x, first, m, g, plane, cols):
    """im2col of samples first … first + m − 1, one block of L rows each: cols (m·L, K·K·C)."""
    L = g.out_h * g.out_w
    for t in range(m):
        _im2col_sample(x[first + t], g, plane, cols[t * L:(t + 1) * L])


@numba.njit(cache=True)
def _forward_chunk(x, Wk, b, first, m, g, plane, cols, rows, y):
    """y[first:first + m] = conv2d of those samples + b: pack, one product, unpack."""
    F = Wk.shape[1]
    L = g.out_h * g.out_w
    _pack_chunk(x, first, m, g, plane, cols)
    np.dot(cols, Wk, rows)
    for t in range(m):
        _rows_to_planes(rows[t * L:(t + 1) * L], b, y[first + t].reshape((F, L)))


@numba.njit(cache=True)
def _weight_grad_chunk(d, first, m, cols, planes_side_by_side, partial):
    """partial = dᵀ @ cols over the chunk, with cols already packed; d (N, F, Ho, Wo)."""
    F = d.shape[1]
    L = d.shape[2] * d.shape[3]
    for t in range(m):
        for f in range(F):
            src = d[first + t, f].reshape(L)
            dst = planes_side_by_side[f, t * L:(t + 1) * L]
            for q in range(L):
                dst[q] = src[q]
    np.dot(planes_side_by_side, cols, partial)


# ----------------------------------------------------------------------------
# Drivers: one parallel loop over workers, each taking a range of chunks
# ----------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def forward(x, Wk, b, g, planes, cols, rows, y):
    """y = conv2d(x) + b, chunk by chunk: cols = im2col(x), Y = cols @ Wk, y = Yᵀ + b."""
    N = x.shape[0]
    KKC, F = Wk.shape
    L = g.out_h * g.out_w
    n_chunks = (N + g.samples_per_chunk - 1) // g.samples_per_chunk
    n_workers = planes.shape[0]
    for k in prange(n_workers):
        plane = planes[k]
        plane[:, :] = 0
        for chunk in _chunks_of_worker(k, n_workers, n_chunks):
            first, m = _chunk_samples(chunk, g.samples_per_chunk, N)
            _forward_chunk(x, Wk, b, first, m, g, plane,
                           cols[k, :m * L * KKC].reshape((m * L, KKC)),
                           rows[k, :m * L * F].reshape((m * L, F)), y)


@numba.njit(parallel=True, cache=True)
def grad_input(dy, w_phases, phases, bias, g, top, left, planes, cols, rows, pixels, dx):
    """dx = Σ over taps of w·dy + bias, one output phase at a time (see ``_pack_phase``).

    phases (n_phases, 9) int64 rows (rh, rw, Ta, Te, u0, U, v0, V, offset): output pixels
    (s·u + rh − p, s·v + rw − p) for u0 ≤ u < u0 + U, v0 ≤ v < v0 + V, whose Ta·Te taps'
    (Ta·Te·F, C) weight matrix starts at row ``offset`` of w_phases (flat, C-ordered).
    dy's planes sit channels-last in ``planes`` with ``top`` rows and ``left`` columns of
    zeros before them. Each output pixel is written once: there is no scatter-add.
    """
    N, F = dy.shape[0], dy.shape[1]
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    s, p, spc = g.stride, g.padding, g.samples_per_chunk
    n_chunks = (N + spc - 1) // spc
    n_workers = planes.shape[0]
    for k in prange(n_workers):
        for chunk in _chunks_of_worker(k, n_workers, n_chunks):
            first, m = _chunk_samples(chunk, spc, N)
            for t in range(m):
                _load_channels_last(dy[first + t], top, left, planes[k, t])
            for i in range(phases.shape[0]):
                ph = phases[i]
                L, KK = ph[5] * ph[7], ph[2] * ph[3] * F
                if KK == 0:  # no tap reaches these pixels (stride > kernel): the bias alone
                    for t in range(m):
                        _fill_phase(ph, s, p, W, pixels[k, t])
                    continue
                chunk_cols = cols[k, :m * L * KK].reshape((m * L, KK))
                chunk_rows = rows[k, :m * L * C].reshape((m * L, C))
                for t in range(m):
                    _pack_phase(planes[k, t], F, ph, top, left, chunk_cols[t * L:(t + 1) * L])
                np.dot(chunk_cols, w_phases[ph[8] * C:(ph[8] + KK) * C].reshape((KK, C)),
                       chunk_rows)
                for t in range(m):
                    _unpack_phase(chunk_rows[t * L:(t + 1) * L], ph, s, p, W, pixels[k, t])
            for t in range(m):
                _pixels_to_planes(pixels[k, t], bias, dx[first + t].reshape((C, H * W)))


@numba.njit(parallel=True, cache=True)
def grad_input_gathered(dy, Wt, bias, g, rows, cols, pixels, dx):
    """dx = Σ of (dY @ Wkᵀ)'s window entries over the taps reaching each pixel, + bias: for
    F > C, where one product (pixels of dy, F) @ (F, K·K·C) is cheaper than the phases'
    (taps·F)-wide im2col. Each output pixel gathers its taps and is written once."""
    N, F = dy.shape[0], dy.shape[1]
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    KKC = Wt.shape[1]
    L = g.out_h * g.out_w
    spc = g.samples_per_chunk
    n_chunks = (N + spc - 1) // spc
    n_workers = pixels.shape[0]
    K, s, p = g.kernel_size, g.stride, g.padding
    rows_reach = _axis_reach(H, K, s, p, g.out_h)
    cols_reach = _axis_reach(W, K, s, p, g.out_w)
    for k in prange(n_workers):
        for chunk in _chunks_of_worker(k, n_workers, n_chunks):
            first, m = _chunk_samples(chunk, spc, N)
            chunk_rows = rows[k, :m * L * F].reshape((m * L, F))
            chunk_cols = cols[k, :m * L * KKC].reshape((m * L, KKC))
            for t in range(m):
                _planes_to_rows(dy[first + t].reshape((F, L)), chunk_rows[t * L:(t + 1) * L])
            np.dot(chunk_rows, Wt, chunk_cols)
            for t in range(m):
                _gather_sample(chunk_cols[t * L:(t + 1) * L], g, rows_reach, cols_reach, W,
                               pixels[k])
                _rows_to_planes(pixels[k], bias, dx[first + t].reshape((C, H * W)))


@numba.njit(parallel=True, cache=True)
def grad_weight(dy, x, g, planes, cols, rows, partials):
    """partials[chunk] = dYᵀ @ cols over that chunk's samples: (F, K·K·C)."""
    N, F = dy.shape[0], dy.shape[1]
    KKC = partials.shape[2]
    L = g.out_h * g.out_w
    n_chunks = partials.shape[0]
    n_workers = planes.shape[0]
    for k in prange(n_workers):
        plane = planes[k]
        plane[:, :] = 0
        for chunk in _chunks_of_worker(k, n_workers, n_chunks):
            first, m = _chunk_samples(chunk, g.samples_per_chunk, N)
            chunk_cols = cols[k, :m * L * KKC].reshape((m * L, KKC))
            _pack_chunk(x, first, m, g, plane, chunk_cols)
            _weight_grad_chunk(dy, first, m, chunk_cols,
                               rows[k, :F * m * L].reshape((F, m * L)), partials[chunk])


@numba.njit(parallel=True, cache=True)
def forward_and_grad_weight(x, Wk, b, d, g, planes, cols, rows, y, partials):
    """y = conv2d(x) + b and partials[chunk] = dᵀ @ cols, from one im2col of each chunk of x."""
    N = x.shape[0]
    KKC, F = Wk.shape
    L = g.out_h * g.out_w
    n_chunks = partials.shape[0]
    n_workers = planes.shape[0]
    for k in prange(n_workers):
        plane = planes[k]
        plane[:, :] = 0
        for chunk in _chunks_of_worker(k, n_workers, n_chunks):
            first, m = _chunk_samples(chunk, g.samples_per_chunk, N)
            chunk_cols = cols[k, :m * L * KKC].reshape((m * L, KKC))
            _forward_chunk(x, Wk, b, first, m, g, plane, chunk_cols,
                           rows[k, :m * L * F].reshape((m * L, F)), y)
            # rows is free again once y is written: it takes d's planes side by side
            _weight_grad_chunk(d, first, m, chunk_cols,
                               rows[k, :F * m * L].reshape((F, m * L)), partials[chunk])


# ----------------------------------------------------------------------------
# The weight gradient by tap, without im2col
# ----------------------------------------------------------------------------
@numba.njit(cache=True)
def _load_phases(x_n, rows_to, cols_from, s, p, Wph, first, planes):
    """planes[rh·s + rw, c, first + u·Wph + v] = x_n[c, h, s·v + rw − p] for each row h of x
    with rows_to[h] = (phase rh, u) (u < 0: no tap reads it), v in cols_from[rw] = (v_lo,
    v_hi). x stays channel-major, so a row is a strided read and a contiguous write with no
    transposition; the entries no tap reads are zeros, written once per call. The runs are
    views from their first pixel on: indices ≥ 0 spare the loop numba's wraparound tests
    (5.9 ms against 8.4 for the batch of dec.convT3, one thread), and s = 2 is spelled out."""
    C, H = x_n.shape[0], x_n.shape[1]
    for c in range(C):
        for h in range(H):
            rh, u = rows_to[h, 0], rows_to[h, 1]
            if u < 0:
                continue
            o = first + u * Wph
            for rw in range(s):
                v0, v1 = cols_from[rw, 0], cols_from[rw, 1]
                src = x_n[c, h, s * v0 + rw - p:]
                dst = planes[rh * s + rw, c, o + v0:o + v1]
                if s == 2:
                    for j in range(dst.shape[0]):
                        dst[j] = src[2 * j]
                else:
                    for j in range(dst.shape[0]):
                        dst[j] = src[s * j]


@numba.njit(cache=True)
def _load_pixels(dy_n, Wph, first, pixels):
    """pixels[first + u·Wph + v, f] = dy_n[f, u, v]: dy channels-last on the phases' grid
    (its other grid pixels are zeros, written once per call)."""
    F, Ho, Wo = dy_n.shape
    for f in range(F):
        for u in range(Ho):
            src = dy_n[f, u]
            o = first + u * Wph
            for v in range(Wo):
                pixels[o + v, f] = src[v]


@numba.njit(cache=True)
def _load_taps_chunk(x, dy, first, m, rows_to, cols_from, g, Wph, planes_k, pixels_k):
    """x's phases and dy's pixels of samples first … first + m − 1, one grid of P pixels each."""
    P = (g.out_h + (g.kernel_size - 1) // g.stride) * Wph
    for t in range(m):
        _load_phases(x[first + t], rows_to, cols_from, g.stride, g.padding, Wph, t * P,
                     planes_k)
        _load_pixels(dy[first + t], Wph, t * P, pixels_k)


@numba.njit(cache=True)
def _tap_partials(planes_k, pixels_k, K, s, Wph, R, partial):
    """partial[a·K + e] (C, F) = phase (a mod s, e mod s)[:, off:off + R] @ pixels[:R],
    off = (a//s)·Wph + e//s: each tap's share of dw over the chunk's R grid pixels."""
    C, F = partial.shape[1], partial.shape[2]
    for a in range(K):
        for e in range(K):
            off = (a // s) * Wph + e // s
            phase = planes_k[(a % s) * s + e % s]
            blas.gemm(ord("N"), ord("N"), F, C, R, 1.0, pixels_k, F, phase[:, off:],
                      phase.shape[1], 0.0, partial[a * K + e], F)


@numba.njit(cache=True)
def _tap_forward(planes_k, Wt, K, s, Wph, R, grid):
    """grid (F, R) = Σ over taps of Wt[a·K + e] (F, C) @ phase[:, off:off + R]: the conv's
    output on the chunk's grid, the taps added by the product itself (β = 1 after the first)."""
    F, C = Wt.shape[1], Wt.shape[2]
    for a in range(K):
        for e in range(K):
            off = (a // s) * Wph + e // s
            phase = planes_k[(a % s) * s + e % s]
            blas.gemm(ord("N"), ord("N"), R, F, C, 1.0, phase[:, off:], phase.shape[1],
                      Wt[a * K + e], C, 0.0 if a + e == 0 else 1.0, grid, R)


@numba.njit(cache=True)
def _grid_to_planes(grid, first, m, P, Wph, y):
    """y[first + t, f, u, v] = grid[f, t·P + u·Wph + v]: the valid pixels of the grid."""
    F, Ho, Wo = y.shape[1], y.shape[2], y.shape[3]
    for t in range(m):
        for f in range(F):
            for u in range(Ho):
                src = grid[f, t * P + u * Wph:]
                dst = y[first + t, f, u]
                for v in range(Wo):
                    dst[v] = src[v]


@numba.njit(cache=True)
def _taps_worker(k, n_workers, x, Wt, dy, g, Wph, rows_to, cols_from, planes, pixels, grids,
                 y, partials):
    """Worker k's chunks of ``grad_weight_taps``, and of the forward too when Wt has taps."""
    N, F = dy.shape[0], dy.shape[1]
    K, s, spc = g.kernel_size, g.stride, g.samples_per_chunk
    P = (g.out_h + (K - 1) // s) * Wph
    planes[k] = 0  # the entries no sample writes stay zero from here on
    pixels[k] = 0
    for chunk in _chunks_of_worker(k, n_workers, partials.shape[0]):
        first, m = _chunk_samples(chunk, spc, N)
        _load_taps_chunk(x, dy, first, m, rows_to, cols_from, g, Wph, planes[k], pixels[k])
        _tap_partials(planes[k], pixels[k], K, s, Wph, m * P, partials[chunk])
        if Wt.shape[0]:
            grid = grids[k, :F * m * P].reshape((F, m * P))
            _tap_forward(planes[k], Wt, K, s, Wph, m * P, grid)
            _grid_to_planes(grid, first, m, P, Wph, y)


@numba.njit(parallel=True, cache=True)
def grad_weight_taps(x, Wt, dy, g, Wph, rows_to, cols_from, planes, pixels, grids, y, partials):
    """partials[chunk, a·K + e] = Σ over the chunk's pixels of x ⊗ dy at tap (a, e): (C, F);
    with weights Wt (K·K, F, C) (else an empty array), also y = conv2d(x, w) from the same
    phases (the transposed conv's backward, as ``forward_and_grad_weight``).

    x is split into its s² phases on a grid of Hph × Wph pixels per sample (Hph = Ho +
    (K − 1)//s), samples one after another along the grid; dy sits on the same grid, zero
    outside its Ho × Wo. Tap (a, e) reads phase (a mod s, e mod s) at a fixed offset
    (a//s)·Wph + e//s from dy's pixel, so its partial is one product, that slice of the
    phase (C, R) @ dY (R, F), over the chunk's R grid pixels: no im2col at all. The grid's
    extra pixels multiply dy's zeros; so do the farthest taps' last reads, past R (the
    phases' zeros, or samples of this call's earlier chunks); the forward computes them and
    drops them. ``planes`` (workers, s², C, R_max + tail), ``pixels`` (workers, R_max, F),
    ``grids`` (workers, F·R_max) for the forward; rows_to, cols_from: see ``_load_phases``.

    The worker's body is a function of its own: compiled inside the parallel loop, the same
    loops ran the loading 1.4x slower (8.4 ms against 6.0 for dec.convT3, one thread).
    """
    n_workers = planes.shape[0]
    for k in prange(n_workers):
        _taps_worker(k, n_workers, x, Wt, dy, g, Wph, rows_to, cols_from, planes, pixels, grids,
                     y, partials)


@numba.njit(parallel=True, cache=True)
def sum_chunks(partials, out):
    """out = Σ_chunk partials[chunk], in chunk order for every entry."""
    n_chunks, R, F = partials.shape
    for r in prange(R):
        dst = out[r]
        for f in range(F):
            dst[f] = partials[0, r, f]
        for chunk in range(1, n_chunks):
            src = partials[chunk, r]
            for f in range(F):
                dst[f] += src[f]
