"""BatchNorm2d's fused kernels, over an (N, C, L) view of the input, L = H·W.

These functions know nothing of layers. Each (n, c) plane is one parallel work
item; per-plane partial sums are added per channel in a fixed order afterwards,
so results are bitwise the same at any thread count.

- ``batch_moments``: per-channel mean and biased variance in one pass: each
  plane's sum and squared deviations from its own mean (two passes over a
  plane that sits in L1 cache), combined per channel afterwards (Chan et al.'s
  parallel variance formula) by NumPy.
- ``normalize``: y = (x − μ)·scale + shift per channel.
- ``batchnorm_backward``: (dx, dγ, dβ) from x, μ and 1/σ. It needs no stored
  x̂ (the layer keeps x, which the forward pass had anyway): x̂ = (x − μ)/σ is
  folded into per-channel coefficients instead, which saves writing a whole
  array in forward and reading it back here.

float32 stays float32: callers pass per-channel arrays of the input's dtype,
and every constant inside a kernel is made with ``x.dtype.type(...)``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

__all__ = ["batch_moments", "normalize", "batchnorm_backward"]

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


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_SUMS)
def _bn_plane_grad_sums(x, dy, mean, sum_dy, sum_dy_xc):
    """sum_dy[n, c] = Σ dy[n, c],  sum_dy_xc[n, c] = Σ dy[n, c]·(x[n, c] − mean[c])."""
    N, C, L = x.shape
    T = x.dtype.type
    for k in prange(N * C):
        n, c = k // C, k % C
        xs, ds = x[n, c], dy[n, c]
        mu = mean[c]
        s = T(0)
        q = T(0)
        for i in range(L):
            d = ds[i]
            s += d
            q += d * (xs[i] - mu)
        sum_dy[n, c] = s
        sum_dy_xc[n, c] = q


@numba.njit(cache=True, error_model="numpy", parallel=True, fastmath=_FMA)
def _bn_grad_input(x, dy, mean, a, b, d, dx):
    N, C, L = x.shape
    for k in prange(N * C):
        n, c = k // C, k % C
        xs, ds, out = x[n, c], dy[n, c], dx[n, c]
        mu, ac, bc, dc = mean[c], a[c], b[c], d[c]
        for i in range(L):
            out[i] = ac * ds[i] + (bc * (xs[i] - mu) + dc)


def batch_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, L) contiguous → per-channel mean and biased variance, each (C,), x's dtype."""
    N, C, L = x.shape
    sums = np.empty((N, C), dtype=x.dtype)
    sq_devs = np.empty((N, C), dtype=x.dtype)
    _plane_moments(x, sums, sq_devs)
    # combine the planes per channel (N·C numbers: NumPy, in a fixed order):
    # M·var = Σ sq_devs + L·Σ (plane mean − mean)²  (Chan et al.)
    mean = sums.sum(axis=0) * (1.0 / (N * L))
    between = sums * (1.0 / L) - mean
    var = (sq_devs.sum(axis=0) + L * (between * between).sum(axis=0)) * (1.0 / (N * L))
    return mean, var


def normalize(x: np.ndarray, mean: np.ndarray, scale: np.ndarray,
              shift: np.ndarray) -> np.ndarray:
    """y = (x − mean)·scale + shift per channel.  x (N, C, L) contiguous, the rest (C,)."""
    y = np.empty_like(x)
    _bn_normalize(x, mean, scale, shift, y)
    return y


def _grad_sums(x: np.ndarray, dy: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel Σ dy and Σ dy·(x − mean).  x, dy (N, C, L) contiguous → two (C,) arrays."""
    N, C, _ = x.shape
    plane_dy = np.empty((N, C), dtype=x.dtype)
    plane_dy_xc = np.empty((N, C), dtype=x.dtype)
    _bn_plane_grad_sums(x, dy, mean, plane_dy, plane_dy_xc)
    return plane_dy.sum(axis=0), plane_dy_xc.sum(axis=0)


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
    sum_dy, sum_dy_xc = _grad_sums(x3, dy3, mean)
    sum_dy_xhat = sum_dy_xc * inv_std
    a = gamma * inv_std
    if training:
        m = N * x3.shape[2]
        b = a * inv_std * sum_dy_xhat * (-1.0 / m)
        d = a * sum_dy * (-1.0 / m)
    else:
        b = d = np.zeros_like(a)
    dx = np.empty_like(x3)
    _bn_grad_input(x3, dy3, mean, a, b, d, dx)
    return dx.reshape(x.shape), sum_dy_xhat, sum_dy
