"""The GEMM path: im2col / col2im packing around single-threaded BLAS calls.

With L = Ho·Wo output pixels per sample and one row of ``cols`` per pixel:

    cols (L, K·K·C)      cols[(i, j), (a, e, c)] = xpad[c, i·s + a, j·s + e]
    forward:       Y  = cols @ Wk                   (L, F), Wk[(a, e, c), f] = w[f, c, a, e]
    grad_input:    dcols = dY @ Wkᵀ,  dx = col2im(dcols)   (col2im adds overlapping windows)
    grad_weight:   dWkᵀ = Σ_samples dYᵀ @ cols

To pack, a sample is copied channels-last into a zero-bordered scratch plane
(Hp, Wp·C): a window row is then K·C contiguous numbers, so im2col and col2im
are runs of contiguous copies and adds that vectorise, with no bounds tests
(the border supplies the padding's zeros).
"""

import numba
import numpy as np
from numba import prange


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
def forward(x, Wk, b, K, s, p, Ho, Wo, nb, planes, cols, rows, y):
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
def grad_input(dy, Wt, bias, K, s, p, nb, planes, cols, rows, dx):
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
def grad_weight(dy, x, K, s, p, nb, planes, cols, rows, partials):
    """partials[chunk] = dYᵀ @ cols over that chunk's samples: (F, K·K·C)."""
    N, F, Ho, Wo = dy.shape
    KKC = partials.shape[2]
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
            dYt = rows[k, :F * m * L].reshape((F, m * L))  # dy's planes side by side
            for t in range(m):
                _im2col_sample(x[n0 + t], K, s, p, Ho, Wo, sc, cl[t * L:(t + 1) * L])
                for f in range(F):
                    src = dy[n0 + t, f].reshape(L)
                    dst = dYt[f, t * L:(t + 1) * L]
                    for q in range(L):
                        dst[q] = src[q]
            np.dot(dYt, cl, partials[ch])


@numba.njit(parallel=True, cache=True)
def forward_and_grad_weight(x, Wk, b, d, K, s, p, Ho, Wo, nb, planes, cols, rows, y, partials):
    """y = conv2d(x) + b and partials[chunk] = dᵀ @ cols, from one im2col of each chunk of x."""
    N = x.shape[0]
    KKC, F = Wk.shape
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
            np.dot(cl, Wk, rw)
            for t in range(m):
                _rows_to_planes(rw[t * L:(t + 1) * L], b, y[n0 + t].reshape((F, L)))
            dt = rows[k, :F * m * L].reshape((F, m * L))  # rows is free again: y is written
            for t in range(m):
                for f in range(F):
                    src = d[n0 + t, f].reshape(L)
                    dst = dt[f, t * L:(t + 1) * L]
                    for q in range(L):
                        dst[q] = src[q]
            np.dot(dt, cl, partials[ch])


@numba.njit(parallel=True, cache=True)
def sum_chunks(partials, out):
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
