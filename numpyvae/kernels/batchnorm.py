"""BatchNorm2d's fused kernels, over an (N, C, L) view of the input, L = H·W.

These functions know nothing of layers. Each (n, c) plane is one parallel work
item; per-plane partial sums are added per channel in a fixed order afterwards,
so results are bitwise the same at any thread count.

- ``batch_moments``: per-channel mean and biased variance in one pass: each
  plane's sum and squared deviations from its own mean (two passes over a
  plane that sits in L1 cache), combined per channel afterwards (Chan et al.'s
  parallel variance formula) in one serial compiled call.
- ``normalize``: y = (x − μ)·scale + shift per channel.
- ``batchnorm_backward``: (dx, dγ, dβ) from x, μ and 1/σ. It needs no stored
  x̂ (the layer keeps x, which the forward pass had anyway): x̂ = (x − μ)/σ is
  folded into per-channel coefficients instead, which saves writing a whole
  array in forward and reading it back here.
- ``normalize_elu`` and ``batchnorm_elu_backward``: BatchNorm2d followed by ELU, the
  pair ``Sequential`` fuses. Forward reads x and writes y = ELU((x − μ)·scale + shift),
  one pass, never storing the normalised z. Backward takes x and ELU's dout, recomputes
  z, and in pass 1 writes dz = dout·ELU′(z) with its per-plane sums, in pass 2 turns dz
  into dx in place: two passes where the layers one by one make four, and two arrays
  written where they write three.

float32 stays float32: callers pass per-channel arrays of the input's dtype,
and every constant inside a kernel is made with ``x.dtype.type(...)``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

# inlined into the kernels below, and numba's cache stamps this file only: after a change to
# the exponential in elementwise.py, touch this file (or clear __pycache__), or the cached
# kernels keep the old one (as the fused pair did when the select below −87 went)
from .elementwise import exp_nonpositive, expm1_nonpositive

__all__ = ["batch_moments", "normalize", "batchnorm_backward", "normalize_elu",
           "batchnorm_elu_backward"]

# "contract" only (fused multiply-add): no reassociation, NaN and inf semantics kept.
_FMA = {"contract"}
# Sums may also be reassociated, so LLVM can split them over vector lanes: an order
# fixed at compile time, so results stay reproducible.
_SUMS = {"contract", "reassoc"}


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_SUMS)
def _plane_moments(x, sums, sq_devs):
    """sums[n, c] = Σ x[n, c],  sq_devs[n, c] = Σ (x[n, c] − its mean)²."""
    N, C, L = x.shape
    T = x.dtype.type
    inv_L = T(1) / T(L)
    for k in prange(N * C):
        n, c = k // C, k % C
        xs = x[n, c]
        s = T(0)
        for i in range(L):
            s += xs[i]
        mu = s * inv_L
        q = T(0)
        for i in range(L):
            d = xs[i] - mu
            q += d * d
        sums[n, c] = s
        sq_devs[n, c] = q


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_FMA)
def _bn_normalize(x, mean, scale, shift, y):
    N, C, L = x.shape
    for k in prange(N * C):
        n, c = k // C, k % C
        xs, ys = x[n, c], y[n, c]
        mu, a, b = mean[c], scale[c], shift[c]
        for i in range(L):
            ys[i] = (xs[i] - mu) * a + b


@numba.njit(cache=True, error_model="numpy", fastmath=_SUMS)
def _plane_grad_sums(xs, ds, mu):
    """(Σ ds, Σ ds·(xs − mu)) over one plane: the two sums BatchNorm's backward needs."""
    s = xs.dtype.type(0)
    q = xs.dtype.type(0)
    for i in range(xs.size):
        d = ds[i]
        s += d
        q += d * (xs[i] - mu)
    return s, q


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_SUMS)
def _bn_plane_grad_sums(x, dy, mean, sum_dy, sum_dy_xc):
    """sum_dy[n, c] = Σ dy[n, c],  sum_dy_xc[n, c] = Σ dy[n, c]·(x[n, c] − mean[c])."""
    N, C, _ = x.shape
    for k in prange(N * C):
        n, c = k // C, k % C
        sum_dy[n, c], sum_dy_xc[n, c] = _plane_grad_sums(x[n, c], dy[n, c], mean[c])


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_FMA)
def _bn_grad_input(x, dy, mean, a, b, d, dx):
    N, C, L = x.shape
    for k in prange(N * C):
        n, c = k // C, k % C
        xs, ds, out = x[n, c], dy[n, c], dx[n, c]
        mu, ac, bc, dc = mean[c], a[c], b[c], d[c]
        for i in range(L):
            out[i] = ac * ds[i] + (bc * (xs[i] - mu) + dc)


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_FMA)
def _bn_grad_input_inplace(x, mean, a, b, d, dy):
    """dy ← a·dy + (b·(x − μ) + d): ``_bn_grad_input`` writing over its dy. One array in
    and out (not the same array passed twice, whose overlap LLVM would check at run time
    and then run the scalar loop)."""
    N, C, L = x.shape
    for k in prange(N * C):
        n, c = k // C, k % C
        xs, ds = x[n, c], dy[n, c]
        mu, ac, bc, dc = mean[c], a[c], b[c], d[c]
        for i in range(L):
            ds[i] = ac * ds[i] + (bc * (xs[i] - mu) + dc)


def batch_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, L) contiguous → per-channel mean and biased variance, each (C,), x's dtype."""
    N, C, L = x.shape
    sums = np.empty((N, C), dtype=x.dtype)
    sq_devs = np.empty((N, C), dtype=x.dtype)
    _plane_moments(x, sums, sq_devs)
    T = x.dtype.type  # the scalars as NumPy made them: Python floats, then x's dtype
    return _combine_moments(sums, sq_devs, T(L), T(1.0 / L), T(1.0 / (N * L)))


def normalize(x: np.ndarray, mean: np.ndarray, scale: np.ndarray,
              shift: np.ndarray) -> np.ndarray:
    """y = (x − mean)·scale + shift per channel.  x (N, C, L) contiguous, the rest (C,)."""
    y = np.empty_like(x)
    _bn_normalize(x, mean, scale, shift, y)
    return y


def _grad_sums(x: np.ndarray, dy: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per plane Σ dy and Σ dy·(x − mean).  x, dy (N, C, L) contiguous → two (N, C) arrays."""
    N, C, _ = x.shape
    plane_dy = np.empty((N, C), dtype=x.dtype)
    plane_dy_xc = np.empty((N, C), dtype=x.dtype)
    _bn_plane_grad_sums(x, dy, mean, plane_dy, plane_dy_xc)
    return plane_dy, plane_dy_xc


# ----------------------------------------------------------------------------
# Per-channel numbers from the (N, C) per-plane sums, one compiled call each: they were
# ~20 NumPy calls a pair, which took 0.06-0.13 ms a forward inside the CNN step (1 thread;
# ~15 µs on their own: the step's large arrays leave the interpreter's data out of cache).
# Measured with a 64 MB stream before each call, 1 thread: 0.04-0.05 ms less a moments call,
# 0.02-0.10 ms less a backward, 0.58 ms over the six pairs of the CNN step.
# Rows are added in order and nothing is fused (no fastmath), as NumPy's sum(axis=0) and
# its elementwise expressions do: the same bits as the NumPy these replaced.
# ----------------------------------------------------------------------------
@numba.njit(cache=True, error_model="numpy")
def _column_sums(p):
    """p (N, C) → Σ over n of p[n], the rows added in order."""
    out = np.zeros_like(p[0])
    for n in range(p.shape[0]):
        for c in range(p.shape[1]):
            out[c] += p[n, c]
    return out


@numba.njit(cache=True, error_model="numpy")
def _combine_moments(sums, sq_devs, L, inv_L, inv_M):
    """Per-channel mean and biased variance from each plane's sum and squared deviations
    (N, C), L values a plane, M = N·L a channel (L, 1/L, 1/M as scalars of their dtype):
        M·var = Σ sq_devs + L·Σ (plane mean − mean)²  (Chan et al.)."""
    mean = _column_sums(sums) * inv_M
    between = sums * inv_L - mean
    var = (_column_sums(sq_devs) + L * _column_sums(between * between)) * inv_M
    return mean, var


@numba.njit(cache=True, error_model="numpy")
def _grad_coefficients(plane_dy, plane_dy_xc, inv_std, gamma, training, neg_inv_m):
    """dx = a·dy + b·(x − μ) + d per channel: (a, b, d), Σ dy·x̂ and Σ dy from the planes'
    Σ dy and Σ dy·(x − μ), (N, C) each; neg_inv_m = −1/M (see batchnorm_backward)."""
    sum_dy = _column_sums(plane_dy)
    sum_dy_xhat = _column_sums(plane_dy_xc) * inv_std
    a = gamma * inv_std
    if training:
        b = a * inv_std * sum_dy_xhat * neg_inv_m
        d = a * sum_dy * neg_inv_m
    else:
        b = np.zeros_like(a)
        d = np.zeros_like(a)
    return a, b, d, sum_dy_xhat, sum_dy


def batchnorm_backward(x: np.ndarray, dy: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
                       gamma: np.ndarray, training: bool
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dγ, dβ) of y = γ·(x − μ)/σ + β.  x, dy (N, C, H, W) or (N, C, L) of one dtype;
    mean μ, inv_std 1/σ, gamma γ (C,). ``training``: μ and σ were the batch's (they then
    depend on x); otherwise they were constants (the running statistics).

    dγ = Σ dy·x̂,  dβ = Σ dy (over every axis but C), and with x̂ = (x − μ)/σ written out
    per channel (M values each):
        dx = a·dy + b·(x − μ) + d,  a = γ/σ,  b = −a·Σ(dy·x̂)/(M·σ),  d = −a·Σdy/M
    (b = d = 0 in eval mode): the compact formula of ``numpyvae.nn.batchnorm2d``.
    """
    N, C = x.shape[:2]
    x3 = np.ascontiguousarray(x).reshape(N, C, -1)
    dy3 = np.ascontiguousarray(dy).reshape(N, C, -1)
    neg_inv_m = x.dtype.type(-1.0 / (N * x3.shape[2]))
    a, b, d, sum_dy_xhat, sum_dy = _grad_coefficients(*_grad_sums(x3, dy3, mean), inv_std, gamma,
                                                      training, neg_inv_m)
    dx = np.empty_like(x3)
    _bn_grad_input(x3, dy3, mean, a, b, d, dx)
    return dx.reshape(x.shape), sum_dy_xhat, sum_dy


# ----------------------------------------------------------------------------
# BatchNorm2d followed by ELU. Large planes (L ≥ _LONG_PLANE): one (n, c) plane per work
# item, as above. Short planes (7×7, 4×4) would leave the vectorised exponential idle (a
# loop of 49 runs in its scalar tail), so there one sample is one work item: its C planes
# are one flat loop of C·L numbers, with the per-channel constants spelled out per entry
# (C·L numbers, made once per call). Measured at batch 256, 1 thread: the flat form is
# 1.3x faster for 64 planes of 7×7 and 1.8x slower for 32 planes of 28×28.
# ----------------------------------------------------------------------------
_LONG_PLANE = 128


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_FMA)
def _bn_elu_forward_planes(x, mean, scale, shift, alpha, y):
    """y = ELU(z), z = (x − μ)·scale + shift: ``_bn_normalize`` and ELU's kernel in one loop."""
    N, C, L = x.shape
    zero = x.dtype.type(0)
    for k in prange(N * C):
        n, c = k // C, k % C
        xs, ys = x[n, c], y[n, c]
        mu, a, b = mean[c], scale[c], shift[c]
        for i in range(L):
            z = (xs[i] - mu) * a + b
            e = expm1_nonpositive(min(z, zero))
            ys[i] = alpha * e if z <= zero else z  # NaN takes the else branch: it propagates


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_SUMS)
def _bn_elu_grad_sums_planes(x, dy, mean, scale, shift, alpha, dz, sum_dz, sum_dz_xc):
    """Pass 1: dz = dy·ELU′(z), z = (x − μ)·scale + shift recomputed from BN's input, with
    sum_dz[n, c] = Σ dz[n, c] and sum_dz_xc[n, c] = Σ dz[n, c]·(x[n, c] − μ)."""
    N, C, L = x.shape
    T = x.dtype.type
    zero, one = T(0), T(1)
    for k in prange(N * C):
        n, c = k // C, k % C
        xs, ds, dzs = x[n, c], dy[n, c], dz[n, c]
        mu, a, b = mean[c], scale[c], shift[c]
        s = T(0)
        q = T(0)
        for i in range(L):
            xc = xs[i] - mu
            z = xc * a + b
            e = exp_nonpositive(min(z, zero))
            d = ds[i] * (one if z > zero else alpha * e)  # a blend, as in ELU's own kernel
            dzs[i] = d
            s += d
            q += d * xc
        sum_dz[n, c] = s
        sum_dz_xc[n, c] = q


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_FMA)
def _bn_elu_forward(x, mean, scale, shift, alpha, y):
    """y[n] = ELU(z), z = (x[n] − μ)·scale + shift, entry by entry; x, y (N, C·L)."""
    N, CL = x.shape
    zero = x.dtype.type(0)
    for n in prange(N):
        xs, ys = x[n], y[n]
        for i in range(CL):
            z = (xs[i] - mean[i]) * scale[i] + shift[i]
            e = expm1_nonpositive(min(z, zero))
            ys[i] = alpha * e if z <= zero else z  # NaN takes the else branch: it propagates


@numba.njit(cache=True, error_model="numpy", fastmath=_FMA)
def _elu_grad_of_normalized(xs, ds, mean, scale, shift, alpha, dzs):
    """dzs = ds·ELU′(z), z = (xs − μ)·scale + shift recomputed from BN's input (C·L entries)."""
    zero, one = xs.dtype.type(0), xs.dtype.type(1)
    for i in range(xs.size):
        z = (xs[i] - mean[i]) * scale[i] + shift[i]
        e = exp_nonpositive(min(z, zero))
        dzs[i] = ds[i] * (one if z > zero else alpha * e)  # a blend, as in ELU's own kernel


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_SUMS)
def _bn_elu_grad_sums(x, dy, mean, scale, shift, alpha, dz, sum_dz, sum_dz_xc):
    """Pass 1: dz = dy·ELU′(z), then per plane sum_dz[n, c] = Σ dz[n, c] and
    sum_dz_xc[n, c] = Σ dz[n, c]·(x[n, c] − μ_c), while the sample is in cache. (N, C, L)."""
    N, C, L = x.shape
    for n in prange(N):
        _elu_grad_of_normalized(x[n].reshape(C * L), dy[n].reshape(C * L), mean, scale, shift,
                                alpha, dz[n].reshape(C * L))
        for c in range(C):
            sum_dz[n, c], sum_dz_xc[n, c] = _plane_grad_sums(x[n, c], dz[n, c], mean[c * L])


def _per_entry(v: np.ndarray, L: int) -> np.ndarray:
    """(C,) → (C·L,): each channel's value repeated over its plane."""
    return np.ascontiguousarray(np.repeat(v, L))


def normalize_elu(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, shift: np.ndarray,
                  alpha: float) -> np.ndarray:
    """y = ELU((x − mean)·scale + shift) per channel, one pass.  x (N, C, L) contiguous,
    mean, scale, shift (C,) of x's dtype; ELU(z) = z for z > 0, α(e^z − 1) otherwise."""
    N, C, L = x.shape
    y = np.empty_like(x)
    a = x.dtype.type(alpha)
    if L >= _LONG_PLANE:
        _bn_elu_forward_planes(x, mean, scale, shift, a, y)
    else:
        _bn_elu_forward(x.reshape(N, C * L), _per_entry(mean, L), _per_entry(scale, L),
                        _per_entry(shift, L), a, y.reshape(N, C * L))
    return y


def batchnorm_elu_backward(x: np.ndarray, dy: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
                           gamma: np.ndarray, scale: np.ndarray, shift: np.ndarray, alpha: float,
                           training: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dγ, dβ) of BatchNorm2d then ELU, given dy = ∂L/∂(ELU's output): ELU's backward,
    dz = dy·ELU′(z) with z = (x − μ)·scale + shift as the forward made it, then
    ``batchnorm_backward`` of dz. x, dy (N, C, H, W) of one dtype; the rest (C,)."""
    N, C = x.shape[:2]
    x3 = np.ascontiguousarray(x).reshape(N, C, -1)
    dy3 = np.ascontiguousarray(dy).reshape(N, C, -1)
    L = x3.shape[2]
    # pass 1 writes dz into the array pass 2 turns into dx in place: no third array, whose
    # writing and reading back cost 10-25% of the backward at the CNN's shapes
    dz = np.empty_like(x3)
    plane_dz = np.empty((N, C), dtype=x.dtype)
    plane_dz_xc = np.empty((N, C), dtype=x.dtype)
    a = x.dtype.type(alpha)
    if L >= _LONG_PLANE:
        _bn_elu_grad_sums_planes(x3, dy3, mean, scale, shift, a, dz, plane_dz, plane_dz_xc)
    else:
        _bn_elu_grad_sums(x3, dy3, _per_entry(mean, L), _per_entry(scale, L),
                          _per_entry(shift, L), a, dz, plane_dz, plane_dz_xc)
    a, b, d, sum_dz_xhat, sum_dz = _grad_coefficients(plane_dz, plane_dz_xc, inv_std, gamma,
                                                      training, x.dtype.type(-1.0 / (N * L)))
    _bn_grad_input_inplace(x3, mean, a, b, d, dz)  # pass 2: dz becomes dx
    return dz.reshape(x.shape), sum_dz_xhat, sum_dz
