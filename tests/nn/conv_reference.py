"""The convolutions by a route of their own: the independent oracle the tests hold every form to.

The package's four forms (the per-window loops, the sum by kernel offsets, im2col and
the numba kernels, in ``numpyvae/nn/conv2d.py`` and ``numpyvae/kernels/``) are never
tested against one another alone. Here the forward is SciPy's cross-correlation
(``scipy.signal.correlate``), strided by keeping every s-th output; the gradients are
the adjoint (a full ``scipy.signal.convolve`` of dy with the zeros between its pixels
put back) and a correlation of x with that dy. ``tests/nn/test_conv_forms.py`` derives
them from the forward: the adjoint identity and finite differences.
Results come back in float64 whatever the input dtype.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import convolve, correlate


def _pad64(x: np.ndarray, p: int) -> np.ndarray:
    return np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (p, p), (p, p)))


def _dilate(y: np.ndarray, s: int) -> np.ndarray:
    """y (N, C, h, w) with s − 1 zeros between neighbours: (N, C, (h−1)s+1, (w−1)s+1)."""
    N, C, h, w = y.shape
    out = np.zeros((N, C, (h - 1) * s + 1, (w - 1) * s + 1))
    out[:, :, ::s, ::s] = y
    return out


def conv2d_definition(x, w, b, stride: int, padding: int) -> np.ndarray:
    """y[n,f] = b[f] + (Σ_c correlate(xpad[n,c], w[f,c], valid))[::s, ::s].

    x (N, C, H, W), w (F, C, K, K), b (F,) or None → y (N, F, Ho, Wo). SciPy's valid
    correlation of (N, C, Hp, Wp) with (1, C, K, K) sums over c and leaves one n each.
    """
    xp, w64 = _pad64(x, padding), np.asarray(w, np.float64)
    y = np.stack([correlate(xp, w64[f][None], mode="valid")[:, 0, ::stride, ::stride]
                  for f in range(w64.shape[0])], axis=1)
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def _stamp(g: np.ndarray, w: np.ndarray, s: int, size: tuple[int, int], p: int) -> np.ndarray:
    """out[n,o] = Σ_c convolve(dilate(g)[n,c], w[c,o], full), zero-extended to size + 2p,
    then p cropped from each side: every pixel of g stamps its w[c, o] at (i·s, j·s)."""
    gd, w64 = _dilate(np.asarray(g, np.float64), s), np.asarray(w, np.float64)
    N, (C_in, C_out) = g.shape[0], w64.shape[:2]
    full = np.zeros((N, C_out, size[0] + 2 * p, size[1] + 2 * p))
    for c in range(C_in):
        for o in range(C_out):
            block = convolve(gd[:, c], w64[c, o][None], mode="full")  # (N, (h−1)s+K, ...)
            full[:, o, :block.shape[1], :block.shape[2]] += block
    return full[:, :, p:p + size[0], p:p + size[1]]


def conv2d_grad_definition(dy, x, w, stride: int, padding: int):
    """(dx, dw, db) of conv2d_definition given dy = ∂L/∂y.

    dx is the adjoint of the strided correlation: dy, zeros put back between its pixels,
    fully convolved with w (each dy pixel stamps w where its window was), padding cut.
    dw[f,c] = Σ_n correlate(xpad[n,c], dilate(dy)[n,f], valid): each weight meets the input
    pixels at its offset, one per output pixel. db = Σ_{n,i,j} dy.
    """
    x64, w64, dy64 = (np.asarray(a, np.float64) for a in (x, w, dy))
    (_, C, H, W), (F, _, K, _) = x64.shape, w64.shape
    s, p = stride, padding
    dx = _stamp(dy64, w64, s, (H, W), p)  # w (F, C, K, K): dy's F channels stamp onto C
    dyd, xp = _dilate(dy64, s), _pad64(x64, p)
    reach_h, reach_w = dyd.shape[2] + K - 1, dyd.shape[3] + K - 1  # rows the windows touch
    dw = np.empty((F, C, K, K))
    for f in range(F):
        for c in range(C):
            dw[f, c] = correlate(xp[:, c, :reach_h, :reach_w], dyd[:, f], mode="valid")[0]
    return dx, dw, dy64.sum(axis=(0, 2, 3))


def conv_transpose2d_definition(x, w, b, stride: int, padding: int, output_padding: int):
    """PyTorch's ConvTranspose2d: input pixel (i, j) stamps x[n,:,i,j]·w into the K×K block at
    (i·s, j·s) of a full-size output (a full convolution of the dilated x with w); then p
    rows/columns are cropped from each side, and output_padding extra rows/columns stay at
    the bottom/right: Hout = (H − 1)s − 2p + K + output_padding.

    x (N, C_in, H, W), w (C_in, C_out, K, K) → y (N, C_out, Hout, Wout).
    """
    N, C_in, H, W = x.shape
    K, s, p, op = w.shape[2], stride, padding, output_padding
    size = ((H - 1) * s - 2 * p + K + op, (W - 1) * s - 2 * p + K + op)
    y = _stamp(x, w, s, size, p)
    if b is not None:
        y = y + np.asarray(b, np.float64)[None, :, None, None]
    return y
