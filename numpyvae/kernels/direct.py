"""The direct path: plain numba loops, for convs with a single output channel (F == 1).

There the GEMM would be a matrix-vector product streaming all of cols for two
flops per number. These loops are correct for any shape (the tests run them
on the whole grid) but only fast when F is small.

They work on flattened zero-bordered planes of row length Wp = W + 2p, and
keep outputs with that same row length (the Wp − Wo extra entries at the end
of each row are scratch). Output q = i·Wp + j with tap (a, e) then reads input
s·q + a·Wp + e, so every tap is one long axpy or dot product over q instead
of Ho short ones. A 3×3 stride-1 kernel (the CNN's last layer) gets its nine
taps fused into one pass. The input gradient goes by sub-pixel phase, as the
GEMM path's does: within a phase every tap is a stride-1 shift of dy's plane,
and each pixel of dx is written once, so nothing is scattered.
"""

import numba
import numpy as np
from numba import prange

# fastmath here is only "contract" (fused multiply-add) and, for sums, "reassoc",
# which lets LLVM split a sum over vector lanes: a fixed order chosen at compile
# time, so results stay reproducible. NaN and inf semantics are untouched.


@numba.njit(cache=True)
def _load_plane(x_nc, top, left, Wp, plane):
    """plane[(top + h)·Wp + left + w] = x_nc[h, w]; the plane's zero border is left alone."""
    H, W = x_nc.shape
    for h in range(H):
        src = x_nc[h]
        dst = plane[(top + h) * Wp + left:(top + h) * Wp + left + W]
        for q in range(W):
            dst[q] = src[q]


@numba.njit(cache=True)
def _load_rows(y_nf, Wp, flat):
    """flat[i·Wp + j] = y_nf[i, j] for j < Wo; the entries between rows stay as they are (0)."""
    Ho, Wo = y_nf.shape
    for i in range(Ho):
        src = y_nf[i]
        dst = flat[i * Wp:i * Wp + Wo]
        for q in range(Wo):
            dst[q] = src[q]


@numba.njit(cache=True, fastmath={"contract"})
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


@numba.njit(cache=True, fastmath={"contract"})
def _stencil3(out, w3, plane, Wp, L):
    """out[q] += Σ_{a, e < 3} w3[a, e] · plane[q + a·Wp + e]: a 3×3 stride-1 tap set in one pass."""
    r0 = plane[0:L + 2]
    r1 = plane[Wp:Wp + L + 2]
    r2 = plane[2 * Wp:2 * Wp + L + 2]
    w00, w01, w02 = w3[0, 0], w3[0, 1], w3[0, 2]
    w10, w11, w12 = w3[1, 0], w3[1, 1], w3[1, 2]
    w20, w21, w22 = w3[2, 0], w3[2, 1], w3[2, 2]
    for q in range(L):
        out[q] += (w00 * r0[q] + w01 * r0[q + 1] + w02 * r0[q + 2]
                   + w10 * r1[q] + w11 * r1[q + 1] + w12 * r1[q + 2]
                   + w20 * r2[q] + w21 * r2[q + 1] + w22 * r2[q + 2])


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(d, plane, off, s, L):
    """Σ_{q < L} d[q] · plane[off + s·q]."""
    total = d.dtype.type(0)
    if s == 1:
        src = plane[off:off + L]
        for q in range(L):
            total += d[q] * src[q]
    else:
        src = plane[off:off + s * (L - 1) + 1:s]
        for q in range(L):
            total += d[q] * src[q]
    return total


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dots3(acc, d, plane, Wp, L):
    """acc[a, e] += Σ_{q < L} d[q] · plane[q + a·Wp + e] for a, e < 3: nine dots in one pass."""
    r0 = plane[0:L + 2]
    r1 = plane[Wp:Wp + L + 2]
    r2 = plane[2 * Wp:2 * Wp + L + 2]
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = d.dtype.type(0)
    for q in range(L):
        dq = d[q]
        s00 += dq * r0[q]
        s01 += dq * r0[q + 1]
        s02 += dq * r0[q + 2]
        s10 += dq * r1[q]
        s11 += dq * r1[q + 1]
        s12 += dq * r1[q + 2]
        s20 += dq * r2[q]
        s21 += dq * r2[q + 1]
        s22 += dq * r2[q + 2]
    acc[0, 0] += s00
    acc[0, 1] += s01
    acc[0, 2] += s02
    acc[1, 0] += s10
    acc[1, 1] += s11
    acc[1, 2] += s12
    acc[2, 0] += s20
    acc[2, 1] += s21
    acc[2, 2] += s22


@numba.njit(parallel=True, cache=True)
def forward(x, w, b, s, p, planes, outs, y):
    """y[n, f] = b[f] + Σ_{c, a, e} w[f, c, a, e] · (padded x[n, c] from (a, e), step s)."""
    N, C, H, W = x.shape
    F, K = w.shape[0], w.shape[2]
    Ho, Wo = y.shape[2], y.shape[3]
    Wp = W + 2 * p
    L = (Ho - 1) * Wp + Wo
    n_chunks = planes.shape[0]
    for chunk in prange(n_chunks):
        sample_planes = planes[chunk]
        sample_planes[:, :] = 0
        out = outs[chunk]
        for n in range(chunk * N // n_chunks, (chunk + 1) * N // n_chunks):
            for c in range(C):
                _load_plane(x[n, c], p, p, Wp, sample_planes[c])
            for f in range(F):
                out[:] = 0
                for c in range(C):
                    if K == 3 and s == 1:
                        _stencil3(out, w[f, c], sample_planes[c], Wp, L)
                    else:
                        for a in range(K):
                            for e in range(K):
                                _axpy(out, w[f, c, a, e], sample_planes[c], a * Wp + e, s, L)
                bf = b[f]
                for i in range(Ho):
                    src = out[i * Wp:i * Wp + Wo]
                    dst = y[n, f, i]
                    for j in range(Wo):
                        dst[j] = src[j] + bf


@numba.njit(cache=True)
def _write_phase(out, Wd, ph, s, p, bc, dx_nc):
    """dx_nc[s·u + rh − p, s·v + rw − p] = out[(u − u0)·Wd + v − v0] + bc over the phase."""
    rh, rw, u0, U, v0, V = ph[0], ph[1], ph[4], ph[5], ph[6], ph[7]
    w0 = s * v0 + rw - p
    for du in range(U):
        src = out[du * Wd:du * Wd + V]
        dst = dx_nc[s * (u0 + du) + rh - p, w0:w0 + s * (V - 1) + 1:s]
        for q in range(V):
            dst[q] = src[q] + bc


@numba.njit(parallel=True, cache=True)
def grad_input(dy, w, phases, top, left, Wd, s, p, bias, planes, outs, dx):
    """dx[n, c] = bias[c] + Σ_f Σ_taps w[f, c, a, e]·dy[n, f], one sub-pixel phase at a time
    (rows of ``phases`` as in ``gemm.grad_input``): within a phase every tap is a stride-1
    shift of dy's zero-bordered plane (row length Wd), so each is one contiguous axpy, and
    each pixel of dx is written once (no scatter-add)."""
    N, C = dx.shape[0], dx.shape[1]
    F = w.shape[0]
    n_chunks = planes.shape[0]
    for chunk in prange(n_chunks):
        dplanes = planes[chunk]
        dplanes[:, :] = 0
        out = outs[chunk]
        for n in range(chunk * N // n_chunks, (chunk + 1) * N // n_chunks):
            for f in range(F):
                _load_plane(dy[n, f], top, left, Wd, dplanes[f])
            for c in range(C):
                for i in range(phases.shape[0]):
                    ph = phases[i]
                    rh, rw, Ta, Te, u0, U, v0 = ph[0], ph[1], ph[2], ph[3], ph[4], ph[5], ph[6]
                    Lq = (U - 1) * Wd + ph[7]
                    out[:Lq] = 0
                    for f in range(F):
                        for ta in range(Ta):
                            for te in range(Te):
                                # output (u, v) reads dy[f, u − ta, v − te]
                                off = (u0 - ta + top) * Wd + v0 - te + left
                                _axpy(out, w[f, c, rh + s * ta, rw + s * te], dplanes[f], off,
                                      1, Lq)
                    _write_phase(out, Wd, ph, s, p, bias[c], dx[n, c])


@numba.njit(parallel=True, cache=True)
def grad_weight(dy, x, g, planes, rows, partials):
    """partials[chunk, f, c, a, e] = Σ over the chunk's samples n, and i, j, of
    dy[n, f, i, j] · xpad[n, c, i·s + a, j·s + e].  g: the ConvGeometry."""
    K, s, p, samples_per_chunk = g.kernel_size, g.stride, g.padding, g.samples_per_chunk
    N, C, H, W = x.shape
    F, Ho, Wo = dy.shape[1], dy.shape[2], dy.shape[3]
    Wp = W + 2 * p
    L = (Ho - 1) * Wp + Wo
    n_chunks = partials.shape[0]
    n_workers = planes.shape[0]
    # worker k takes a range of chunks of samples; each chunk's sums go to its own slot
    for k in prange(n_workers):
        plane = planes[k]
        plane[:] = 0
        d = rows[k]
        d[:, :] = 0
        for chunk in range(k * n_chunks // n_workers, (k + 1) * n_chunks // n_workers):
            acc = partials[chunk]
            acc[:, :, :, :] = 0
            for n in range(chunk * samples_per_chunk, min(N, (chunk + 1) * samples_per_chunk)):
                for f in range(F):
                    _load_rows(dy[n, f], Wp, d[f])
                for c in range(C):
                    _load_plane(x[n, c], p, p, Wp, plane)
                    for f in range(F):
                        if K == 3 and s == 1:
                            _dots3(acc[f, c], d[f], plane, Wp, L)
                        else:
                            for a in range(K):
                                for e in range(K):
                                    acc[f, c, a, e] += _dot(d[f], plane, a * Wp + e, s, L)


@numba.njit(parallel=True, cache=True)
def channel_sum(a, out):
    """out[c] = Σ_{n, l} a[n, c, l] for a (N, C, L), in a fixed order per channel."""
    N, C, L = a.shape
    for c in prange(C):
        # a vector of per-position partial sums vectorises; a scalar sum would not
        acc = np.zeros(L, dtype=a.dtype)
        for n in range(N):
            src = a[n, c]
            for q in range(L):
                acc[q] += src[q]
        total = a.dtype.type(0)
        for q in range(L):
            total += acc[q]
        out[c] = total
