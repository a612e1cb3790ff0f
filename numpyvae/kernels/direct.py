"""The direct path: numba loops for thin convs, where a GEMM would be a matrix-vector product.

Two thin shapes, each turned into small products whose inner loop runs over a
sample's pixels (long, contiguous: it vectorises), written straight into the
output's planes (no rows → planes transpose). With T = C·K·K window entries and
the taps (a, e) of the kernel:

- narrow windows (T small, e.g. a 1-channel input: the CNN's first layer), by the
  windows of one sample, cols (T, Ho·Wo), cols[(c, a, e), (i, j)] = xpad[c, i·s + a, j·s + e]:
      forward      y[n]  = b + W (F, T) @ cols
      grad_weight  [dW | db] += dy[n] (F, Ho·Wo) @ [cols; 1]ᵀ  (a row of ones gives Σ dy)
      grad_input   dcols = Wᵀ (T, F) @ dy[n], then each tap's plane added into dx[n]
- one output channel (F == 1: the CNN's last layer), by the taps: a tap's
  contribution is a shifted copy of one plane the size of the input,
      forward      z = Wₜ (K·K, C) @ x[n] (H·W),  y[n] = b + Σ_taps z[(a, e)] at the tap's shift
      grad_input   D[(a, e)] = dy[n] placed at the tap's shift (0 elsewhere),  dx[n] = W @ D
      grad_weight  dW += x[n] (C, H·W) @ Dᵀ
  so x and dx are read or written once, in full rows, never copied into padded planes.
  ``backward_by_taps`` takes both gradients in one pass over each sample; for a 3×3
  stride-1 conv whose output is its input's size, D's 9 planes are windows of 3 (dy
  shifted by a column, ``_shifted_rows``) that stay in L1.

Out-of-range taps are skipped (``_tap_range``), not read from a zero border: the
scratch arrays (cols, D) are zeroed once per chunk, and every sample then rewrites
the same in-range entries. No sum's order depends on the thread count: samples are
independent, and weight-gradient sums are kept per chunk of samples (set by N
alone) and added in chunk order by the caller.
"""

import numba
import numpy as np
from numba import prange

# fastmath here is only "contract" (fused multiply-add) and, for sums, "reassoc",
# which lets LLVM split a sum over vector lanes: a fixed order chosen at compile
# time, so results stay reproducible. NaN and inf semantics are untouched.


@numba.njit(cache=True)
def _tap_range(n_out, n_in, a, s, p):
    """The outputs lo ≤ i < hi (of n_out) whose tap a lies inside the input:
    0 ≤ i·s + a − p < n_in."""
    lo = max(0, -((a - p) // s))
    hi = min(n_out, (n_in - 1 + p - a) // s + 1)
    return lo, max(lo, hi)


@numba.njit(cache=True)
def _gather_tap(src, a, e, s, p, dst, add):
    """dst[i, j] (+)= src[i·s + a − p, j·s + e − p] where that is inside src.
    src (H, W), dst (Ho, Wo)."""
    H, W = src.shape
    Ho, Wo = dst.shape
    i0, i1 = _tap_range(Ho, H, a, s, p)
    j0, j1 = _tap_range(Wo, W, e, s, p)
    w0 = j0 * s + e - p
    for i in range(i0, i1):  # 2-d indexing: with a strided slice view, 1.5x the time
        h = i * s + a - p
        if add:
            for q in range(j1 - j0):
                dst[i, j0 + q] += src[h, w0 + s * q]
        else:
            for q in range(j1 - j0):
                dst[i, j0 + q] = src[h, w0 + s * q]


@numba.njit(cache=True)
def _scatter_tap(src, a, e, s, p, dst, add):
    """dst[i·s + a − p, j·s + e − p] (+)= src[i, j] where that is inside dst.
    src (Ho, Wo), dst (H, W). Within one tap no two (i, j) meet the same pixel."""
    Ho, Wo = src.shape
    H, W = dst.shape
    i0, i1 = _tap_range(Ho, H, a, s, p)
    j0, j1 = _tap_range(Wo, W, e, s, p)
    w0 = j0 * s + e - p
    for i in range(i0, i1):
        r = src[i, j0:j1]
        d = dst[i * s + a - p, w0:w0 + s * (j1 - j0):s]
        if add:
            for q in range(j1 - j0):
                d[q] += r[q]
        else:
            for q in range(j1 - j0):
                d[q] = r[q]


@numba.njit(cache=True, fastmath={"contract"})
def _add_row_product(A, m, B, o):
    """o += Σ_k A[m, k]·B[k]: one row of out, four rows of B per pass over it."""
    Kd, L = B.shape
    for k in range(0, Kd - 3, 4):
        a0, a1, a2, a3 = A[m, k], A[m, k + 1], A[m, k + 2], A[m, k + 3]
        b0, b1, b2, b3 = B[k], B[k + 1], B[k + 2], B[k + 3]
        for q in range(L):
            o[q] += a0 * b0[q] + a1 * b1[q] + a2 * b2[q] + a3 * b3[q]
    for k in range(Kd - Kd % 4, Kd):
        ak, bk = A[m, k], B[k]
        for q in range(L):
            o[q] += ak * bk[q]


@numba.njit(cache=True, fastmath={"contract"})
def _product(A, B, bias, out):
    """out[m] = bias[m] + Σ_k A[m, k]·B[k]  (A (M, Kd), B (Kd, L), out (M, L)).

    The inner loop runs over a row of L contiguous pixels and vectorises. A pass updates
    four rows of out from four rows of B (16 multiply-adds per 4 loads of B, 4 of out and
    4 stores): one row at a time, loads and stores, not the multiply-adds, set the pace."""
    M, Kd = A.shape
    L = B.shape[1]
    k4 = Kd - Kd % 4  # rows k4 … Kd − 1 of B go one per pass, the first with the bias
    for m in range(0, M - 3, 4):
        o0, o1, o2, o3 = out[m], out[m + 1], out[m + 2], out[m + 3]
        c0, c1, c2, c3 = bias[m], bias[m + 1], bias[m + 2], bias[m + 3]
        z = A.dtype.type(0)
        bk = B[min(k4, Kd - 1)]
        a0, a1, a2, a3 = (A[m, k4], A[m + 1, k4], A[m + 2, k4], A[m + 3, k4]) if k4 < Kd \
            else (z, z, z, z)
        for q in range(L):
            v = bk[q]
            o0[q] = c0 + a0 * v
            o1[q] = c1 + a1 * v
            o2[q] = c2 + a2 * v
            o3[q] = c3 + a3 * v
        for k in range(k4 + 1, Kd):
            bk = B[k]
            a0, a1, a2, a3 = A[m, k], A[m + 1, k], A[m + 2, k], A[m + 3, k]
            for q in range(L):
                v = bk[q]
                o0[q] += a0 * v
                o1[q] += a1 * v
                o2[q] += a2 * v
                o3[q] += a3 * v
        for k in range(0, k4, 4):
            b0, b1, b2, b3 = B[k], B[k + 1], B[k + 2], B[k + 3]
            a0, a1, a2, a3 = A[m, k:k + 4], A[m + 1, k:k + 4], A[m + 2, k:k + 4], A[m + 3, k:k + 4]
            for q in range(L):
                v0, v1, v2, v3 = b0[q], b1[q], b2[q], b3[q]
                o0[q] += a0[0] * v0 + a0[1] * v1 + a0[2] * v2 + a0[3] * v3
                o1[q] += a1[0] * v0 + a1[1] * v1 + a1[2] * v2 + a1[3] * v3
                o2[q] += a2[0] * v0 + a2[1] * v1 + a2[2] * v2 + a2[3] * v3
                o3[q] += a3[0] * v0 + a3[1] * v1 + a3[2] * v2 + a3[3] * v3
    for m in range(M - M % 4, M):
        o = out[m]
        bm = bias[m]
        for q in range(L):
            o[q] = bm
        _add_row_product(A, m, B, o)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(a, b):
    """Σ_q a[q]·b[q], summed in vector lanes."""
    total = a.dtype.type(0)
    for q in range(a.shape[0]):
        total += a[q] * b[q]
    return total


@numba.njit(cache=True)
def _add3(row, t, s0, s1, s2):
    row[t] += s0
    row[t + 1] += s1
    row[t + 2] += s2


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dots4x3(A, m, B, t, acc):
    """acc[m + u, t + v] += Σ_q A[m + u, q]·B[t + v, q] for u < 4, v < 3: 12 sums in one
    pass, 7 loads for 12 multiply-adds (a 3×3 kernel's 9 taps are 3 such column blocks)."""
    a0, a1, a2, a3 = A[m], A[m + 1], A[m + 2], A[m + 3]
    b0, b1, b2 = B[t], B[t + 1], B[t + 2]
    s00 = s01 = s02 = s10 = s11 = s12 = A.dtype.type(0)
    s20 = s21 = s22 = s30 = s31 = s32 = A.dtype.type(0)
    for q in range(A.shape[1]):
        u0, u1, u2, u3 = a0[q], a1[q], a2[q], a3[q]
        v0, v1, v2 = b0[q], b1[q], b2[q]
        s00 += u0 * v0
        s01 += u0 * v1
        s02 += u0 * v2
        s10 += u1 * v0
        s11 += u1 * v1
        s12 += u1 * v2
        s20 += u2 * v0
        s21 += u2 * v1
        s22 += u2 * v2
        s30 += u3 * v0
        s31 += u3 * v1
        s32 += u3 * v2
    _add3(acc[m], t, s00, s01, s02)
    _add3(acc[m + 1], t, s10, s11, s12)
    _add3(acc[m + 2], t, s20, s21, s22)
    _add3(acc[m + 3], t, s30, s31, s32)


@numba.njit(cache=True)
def _dots(A, B, acc):
    """acc[m, t] += Σ_q A[m, q]·B[t, q]  (A (M, L), B (T, L)): blocks of 4×3 sums, the
    rows and columns left over one dot product at a time."""
    M = A.shape[0]
    T = B.shape[0]
    Mb, Tb = M - M % 4, T - T % 3
    for m in range(0, Mb, 4):
        for t in range(0, Tb, 3):
            _dots4x3(A, m, B, t, acc)
    for m in range(M):
        for t in range(Tb if m < Mb else 0, T):
            acc[m, t] += _dot(A[m], B[t])


@numba.njit(cache=True)
def _windows(x_n, K, s, p, cols):
    """cols[(c, a, e), i, j] = x_n[c, i·s + a − p, j·s + e − p], in-range entries only
    (the rest stay as they are: zero).  x_n (C, H, W), cols (C·K·K, Ho, Wo)."""
    for c in range(x_n.shape[0]):
        for a in range(K):
            for e in range(K):
                _gather_tap(x_n[c], a, e, s, p, cols[(c * K + a) * K + e], False)


@numba.njit(cache=True)
def _flat_span(H, W, a, e, p):
    """Stride 1, output the size of the input, planes flattened: tap (a, e) is the shift
    (a − p)·W + e − p. Returns it and the outputs [lo, hi) of the rows it reaches whose
    shifted index stays inside the plane (the rest would read only wrapped columns)."""
    r = a - p
    shift = r * W + e - p
    lo = max(max(0, -r) * W, -shift)
    hi = min(min(H, H - r) * W, H * W - shift)
    return shift, lo, max(lo, hi)


@numba.njit(cache=True)
def _zero_wrapped(plane, d):
    """Zero the columns of plane (H, W) that a flattened shift by d columns wraps into (the
    last −d ones if d < 0, the first d if d > 0): no tap reads them in range, so a
    flattened pass picks up zeros there instead of a neighbouring row's pixels."""
    H, W = plane.shape
    c0, c1 = (W + d, W) if d < 0 else (0, d)
    for h in range(H):
        for w in range(c0, c1):
            plane[h, w] = 0


@numba.njit(cache=True)
def _flat_place(d_n, K, p, D):
    """_place_taps for a stride-1 conv whose output is the size of its input (the CNN's last
    layer): each tap is one long copy of the flattened plane instead of one per row."""
    H, W = d_n.shape
    src = d_n.reshape(H * W)
    for a in range(K):
        for e in range(K):
            t = a * K + e
            shift, lo, hi = _flat_span(H, W, a, e, p)
            dst = D[t].reshape(H * W)[lo + shift:hi + shift]
            part = src[lo:hi]
            for q in range(hi - lo):
                dst[q] = part[q]
            _zero_wrapped(D[t], e - p)


@numba.njit(cache=True)
def _place_taps(d_n, K, s, p, D):
    """D[(a, e), i·s + a − p, j·s + e − p] = d_n[i, j], in-range entries only (the rest stay
    zero).  d_n (Ho, Wo), D (K·K, H, W)."""
    if s == 1 and d_n.shape[0] == D.shape[1] and d_n.shape[1] == D.shape[2]:
        _flat_place(d_n, K, p, D)
        return
    for a in range(K):
        for e in range(K):
            _scatter_tap(d_n, a, e, s, p, D[a * K + e], False)


@numba.njit(cache=True)
def _flat_sum(z, K, p, y_n):
    """_sum_taps for a stride-1 conv whose output is the size of its input: one long add
    per tap over flattened planes (z's wrapped columns zeroed first: only reads that
    fall outside the plane land there)."""
    H, W = y_n.shape
    dst = y_n.reshape(H * W)
    for a in range(K):
        for e in range(K):
            t = a * K + e
            _zero_wrapped(z[t], e - p)
            shift, lo, hi = _flat_span(H, W, a, e, p)
            src = z[t].reshape(H * W)[lo + shift:hi + shift]
            out = dst[lo:hi]
            for q in range(hi - lo):
                out[q] += src[q]


@numba.njit(cache=True)
def _sum_taps(z, K, s, p, y_n):
    """y_n[i, j] += Σ_{a, e} z[(a, e), i·s + a − p, j·s + e − p] over in-range taps.
    z (K·K, H, W), y_n (Ho, Wo)."""
    if s == 1 and y_n.shape[0] == z.shape[1] and y_n.shape[1] == z.shape[2]:
        _flat_sum(z, K, p, y_n)
        return
    for a in range(K):
        for e in range(K):
            _gather_tap(z[a * K + e], a, e, s, p, y_n, True)


@numba.njit(cache=True)
def _shifted_rows(d_n, K, p, E):
    """E[e, r, w] = d_n[r − p, w − e + p], in-range entries only (the rest stay as they are:
    zero).  d_n (H, W), E (K, H + K − 1, W). For a stride-1 conv whose output is the size
    of its input (K = 2p + 1), D[(a, e)] of ``_place_taps`` is E[e] from row K − 1 − a on:
    one plane per column shift, the row shifts are offsets into it (K planes, not K·K)."""
    H, W = d_n.shape
    for e in range(K):
        j0, j1 = max(0, e - p), min(W, W + e - p)
        for h in range(H):
            src = d_n[h]
            dst = E[e, h + K - 1 - p]
            for w in range(j0, j1):
                dst[w] = src[w - e + p]


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _both_gradients_3x3(E, wc, bc, xc, dxc, accc):
    """One channel c of a 3×3 stride-1 'same' conv with one output channel, both gradients in
    one pass over its pixels q (flattened, L = H·W), D[(a, e)][q] = E[e][(2 − a)·W + q]:
        dxc[q] = bc + Σ_{a,e} wc[(a, e)]·D[(a, e)][q],   accc[(a, e)] += Σ_q xc[q]·D[(a, e)][q].
    x's row is loaded once for 18 multiply-adds; E (3 short planes) stays in L1."""
    L, W = xc.shape[0], E.shape[2]
    e0, e1, e2 = E[0].reshape(-1), E[1].reshape(-1), E[2].reshape(-1)
    d00, d01, d02 = e0[2 * W:2 * W + L], e1[2 * W:2 * W + L], e2[2 * W:2 * W + L]
    d10, d11, d12 = e0[W:W + L], e1[W:W + L], e2[W:W + L]
    d20, d21, d22 = e0[:L], e1[:L], e2[:L]
    w00, w01, w02, w10, w11, w12, w20, w21, w22 = (wc[0], wc[1], wc[2], wc[3], wc[4], wc[5],
                                                    wc[6], wc[7], wc[8])
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = xc.dtype.type(0)
    for q in range(L):
        t00, t01, t02 = d00[q], d01[q], d02[q]
        t10, t11, t12 = d10[q], d11[q], d12[q]
        t20, t21, t22 = d20[q], d21[q], d22[q]
        dxc[q] = bc + (w00 * t00 + w01 * t01 + w02 * t02 + w10 * t10 + w11 * t11
                       + w12 * t12 + w20 * t20 + w21 * t21 + w22 * t22)
        v = xc[q]
        s00 += v * t00
        s01 += v * t01
        s02 += v * t02
        s10 += v * t10
        s11 += v * t11
        s12 += v * t12
        s20 += v * t20
        s21 += v * t21
        s22 += v * t22
    accc[0] += s00
    accc[1] += s01
    accc[2] += s02
    accc[3] += s10
    accc[4] += s11
    accc[5] += s12
    accc[6] += s20
    accc[7] += s21
    accc[8] += s22


@numba.njit(cache=True)
def _backward_sample(dy_n, x_n, w2, bias, K, s, p, by_rows, scratch, dx_n, acc):
    """Both gradients of one sample (see ``backward_by_taps``).  dy_n (Ho, Wo),
    x_n and dx_n (C, H·W), acc (C, K·K) += this sample's weight gradient."""
    C = x_n.shape[0]
    if by_rows:  # 3×3, stride 1, output the size of the input
        _shifted_rows(dy_n, K, p, scratch)
        for c in range(C):
            _both_gradients_3x3(scratch, w2[c], bias[c], x_n[c], dx_n[c], acc[c])
        return
    KK, H, W = scratch.shape
    _place_taps(dy_n, K, s, p, scratch)
    flat = scratch.reshape(KK, H * W)
    _product(w2, flat, bias, dx_n)
    _dots(x_n, flat, acc)


@numba.njit(cache=True)
def _sample_range(chunk, n_chunks, N):
    """Chunk ``chunk`` of ``n_chunks`` near-equal ranges of N items: [lo, hi)."""
    return chunk * N // n_chunks, (chunk + 1) * N // n_chunks


@numba.njit(parallel=True, cache=True)
def forward_by_windows(x, w2, b, K, s, p, cols, y):
    """y[n] (F, Ho·Wo) = b + w2 (F, C·K·K) @ cols of x[n].  cols: (chunks, C·K·K, Ho, Wo)."""
    N = x.shape[0]
    n_chunks, T, Ho, Wo = cols.shape
    for chunk in prange(n_chunks):
        c_ = cols[chunk]
        c_[:, :, :] = 0
        flat = c_.reshape(T, Ho * Wo)
        lo, hi = _sample_range(chunk, n_chunks, N)
        for n in range(lo, hi):
            _windows(x[n], K, s, p, c_)
            _product(w2, flat, b, y[n])


@numba.njit(parallel=True, cache=True)
def forward_by_taps(x, wt, b0, K, s, p, z, y):
    """F == 1: z (K·K, H·W) = wt (K·K, C) @ x[n] (C, H·W), then y[n, 0] = b0 + Σ_{a, e} of
    z[(a, e)] read at (i·s + a − p, j·s + e − p).  z: (chunks, K·K, H, W)."""
    N, C = x.shape[0], x.shape[1]
    n_chunks, KK, H, W = z.shape
    no_bias = np.zeros(KK, dtype=x.dtype)
    for chunk in prange(n_chunks):
        zc = z[chunk]
        flat = zc.reshape(KK, H * W)
        lo, hi = _sample_range(chunk, n_chunks, N)
        for n in range(lo, hi):
            _product(wt, x[n].reshape(C, H * W), no_bias, flat)
            y_n = y[n, 0]
            y_n[:, :] = b0
            _sum_taps(zc, K, s, p, y_n)


@numba.njit(parallel=True, cache=True)
def grad_input_by_windows(dy, w2t, bias, K, s, p, dcols, dx):
    """dx[n, c] = bias[c] + Σ_{a, e} dcols[(c, a, e)] put back at (i·s + a − p, j·s + e − p),
    dcols (C·K·K, Ho·Wo) = w2t (C·K·K, F) @ dy[n] (F, Ho·Wo).  dcols: (chunks, C·K·K, Ho, Wo)."""
    N, C = dx.shape[0], dx.shape[1]
    n_chunks, T, Ho, Wo = dcols.shape
    no_bias = np.zeros(T, dtype=dy.dtype)
    for chunk in prange(n_chunks):
        dc = dcols[chunk]
        flat = dc.reshape(T, Ho * Wo)
        lo, hi = _sample_range(chunk, n_chunks, N)
        for n in range(lo, hi):
            _product(w2t, dy[n].reshape(dy.shape[1], Ho * Wo), no_bias, flat)
            for c in range(C):
                dx_nc = dx[n, c]
                dx_nc[:, :] = bias[c]
                for a in range(K):
                    for e in range(K):
                        _scatter_tap(dc[(c * K + a) * K + e], a, e, s, p, dx_nc, True)


@numba.njit(parallel=True, cache=True)
def grad_input_by_taps(dy, w2, bias, K, s, p, D, dx):
    """F == 1: dx[n] (C, H·W) = bias + w2 (C, K·K) @ D, D[(a, e)] = dy[n, 0] placed at
    (i·s + a − p, j·s + e − p), zero elsewhere.  D: (chunks, K·K, H, W)."""
    N = dy.shape[0]
    n_chunks, KK, H, W = D.shape
    for chunk in prange(n_chunks):
        Dc = D[chunk]
        Dc[:, :, :] = 0
        flat = Dc.reshape(KK, H * W)
        lo, hi = _sample_range(chunk, n_chunks, N)
        for n in range(lo, hi):
            _place_taps(dy[n, 0], K, s, p, Dc)
            _product(w2, flat, bias, dx[n])


@numba.njit(parallel=True, cache=True)
def grad_weight_by_windows(dy, x, K, s, p, per_chunk, cols, partials):
    """partials[chunk] (F, C·K·K + 1) = Σ over the chunk's samples of dy[n] (F, Ho·Wo) @ colsᵀ,
    cols' last row all ones: its column is Σ dy[n], the bias gradient, taken while dy[n] is
    in cache (a second pass over dy would read it again). Worker k takes a range of chunks;
    cols: (workers, C·K·K + 1, Ho, Wo)."""
    N, F = dy.shape[0], dy.shape[1]
    n_workers, T, Ho, Wo = cols.shape
    n_chunks = partials.shape[0]
    for k in prange(n_workers):
        c_ = cols[k]
        c_[:, :, :] = 0
        c_[T - 1, :, :] = 1
        flat = c_.reshape(T, Ho * Wo)
        first, last = _sample_range(k, n_workers, n_chunks)
        for chunk in range(first, last):
            acc = partials[chunk]
            acc[:, :] = 0
            for n in range(chunk * per_chunk, min(N, (chunk + 1) * per_chunk)):
                _windows(x[n], K, s, p, c_)
                _dots(dy[n].reshape(F, Ho * Wo), flat, acc)


@numba.njit(parallel=True, cache=True)
def grad_weight_by_taps(dy, x, K, s, p, per_chunk, D, partials):
    """F == 1: partials[chunk] (C, K·K) = Σ over the chunk's samples of x[n] (C, H·W) @ Dᵀ,
    D[(a, e)] = dy[n, 0] placed at the tap's shift.  D: (workers, K·K, H, W)."""
    N, C = x.shape[0], x.shape[1]
    n_workers, KK, H, W = D.shape
    n_chunks = partials.shape[0]
    for k in prange(n_workers):
        Dk = D[k]
        Dk[:, :, :] = 0
        flat = Dk.reshape(KK, H * W)
        first, last = _sample_range(k, n_workers, n_chunks)
        for chunk in range(first, last):
            acc = partials[chunk]
            acc[:, :] = 0
            for n in range(chunk * per_chunk, min(N, (chunk + 1) * per_chunk)):
                _place_taps(dy[n, 0], K, s, p, Dk)
                _dots(x[n].reshape(C, H * W), flat, acc)


@numba.njit(parallel=True, cache=True)
def backward_by_taps(dy, x, w2, bias, K, s, p, per_chunk, by_rows, scratch, partials, dx):
    """F == 1, both gradients in one pass over each sample: x[n] is read once and dx[n]
    written once, while dy[n]'s shifted planes stay in cache. With D[(a, e)] = dy[n, 0] placed
    at the tap's shift,
        dx[n] (C, H·W) = bias + w2 (C, K·K) @ D,   partials[chunk] (C, K·K) = Σ_n x[n] @ Dᵀ
    over the chunk's samples. scratch: (workers, K·K, H, W) holding D, or if ``by_rows`` (3×3,
    stride 1, output the input's size) (workers, 3, H + 2, W) holding ``_shifted_rows``."""
    N, C = x.shape[0], x.shape[1]
    n_workers = scratch.shape[0]
    n_chunks = partials.shape[0]
    for k in prange(n_workers):
        sk = scratch[k]
        sk[:, :, :] = 0
        first, last = _sample_range(k, n_workers, n_chunks)
        for chunk in range(first, last):
            acc = partials[chunk]
            acc[:, :] = 0
            for n in range(chunk * per_chunk, min(N, (chunk + 1) * per_chunk)):
                _backward_sample(dy[n, 0], x[n].reshape(C, -1), w2, bias, K, s, p, by_rows, sk,
                                 dx[n], acc)


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
