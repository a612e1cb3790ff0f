"""The convolutions straight from their definitions: the independent oracles for the tests.

Each loops over pixels the way the definition reads (one output pixel, or one
input pixel, at a time) and only vectorises over the batch and the channels, so
it shares no structure with the layers' NumPy forms (which loop over the K×K
kernel offsets) or with the kernels (im2col + BLAS, or direct stencils).
Results come back in float64 whatever the input dtype.
"""

from __future__ import annotations

import numpy as np


def _pad64(x: np.ndarray, p: int) -> np.ndarray:
    return np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (p, p), (p, p)))


def conv2d_definition(x, w, b, stride: int, padding: int) -> np.ndarray:
    """y[n,f,i,j] = b[f] + Σ_{c,a,e} w[f,c,a,e]·xpad[n,c,i·s+a, j·s+e], one (i, j) at a time.

    x (N, C, H, W), w (F, C, K, K), b (F,) or None → y (N, F, Ho, Wo).
    """
    N, C, H, W = x.shape
    F, _, K, _ = w.shape
    s, p = stride, padding
    Ho, Wo = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    xp, w64 = _pad64(x, p), np.asarray(w, np.float64)
    y = np.zeros((N, F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i * s:i * s + K, j * s:j * s + K]  # (N, C, K, K)
            y[:, :, i, j] = np.einsum("ncae,fcae->nf", window, w64)
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def conv2d_grad_definition(dy, x, w, stride: int, padding: int):
    """(dx, dw, db) of conv2d_definition given dy = ∂L/∂y: the same loop, run backwards.

    Output pixel (i, j) read window = xpad[:, :, i·s:i·s+K, j·s:j·s+K] and gave
    y[:, :, i, j] = Σ window·w, so it hands dy[:, :, i, j]·w back to that window and
    adds dy[:, :, i, j] ⊗ window to dw. dy (N, F, Ho, Wo), x (N, C, H, W), w (F, C, K, K).
    """
    N, F, Ho, Wo = dy.shape
    _, C, H, W = x.shape
    K, s, p = w.shape[2], stride, padding
    xp, w64, dy64 = _pad64(x, p), np.asarray(w, np.float64), np.asarray(dy, np.float64)
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape)
    for i in range(Ho):
        for j in range(Wo):
            rows, cols = slice(i * s, i * s + K), slice(j * s, j * s + K)
            dxp[:, :, rows, cols] += np.einsum("nf,fcae->ncae", dy64[:, :, i, j], w64)
            dw += np.einsum("nf,ncae->fcae", dy64[:, :, i, j], xp[:, :, rows, cols])
    return dxp[:, :, p:p + H, p:p + W], dw, dy64.sum(axis=(0, 2, 3))


def conv_transpose2d_definition(x, w, b, stride: int, padding: int, output_padding: int):
    """PyTorch's ConvTranspose2d from its own definition, not from the conv's gradient.

    x (N, C_in, H, W), w (C_in, C_out, K, K). Input pixel (i, j) stamps x[n,:,i,j]·w into
    the K×K block at (i·s, j·s) of a full-size output; then p rows/columns are cropped
    from each side, and output_padding extra rows/columns stay at the bottom/right:
    Hout = (H − 1)s − 2p + K + output_padding.
    """
    N, C_in, H, W = x.shape
    _, C_out, K, _ = w.shape
    s, p, op = stride, padding, output_padding
    Hout = (H - 1) * s - 2 * p + K + op
    Wout = (W - 1) * s - 2 * p + K + op
    full = np.zeros((N, C_out, (H - 1) * s + K + op, (W - 1) * s + K + op))
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    for i in range(H):
        for j in range(W):
            full[:, :, i * s:i * s + K, j * s:j * s + K] += np.einsum(
                "nc,coae->noae", x64[:, :, i, j], w64)
    y = full[:, :, p:p + Hout, p:p + Wout]
    if b is not None:
        y = y + np.asarray(b, np.float64)[None, :, None, None]
    return y
