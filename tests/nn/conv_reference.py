"""Plain NumPy reference for the convolution kernels: einsum over the padded input.

Readable, obviously right, and fast enough for test-sized arrays (no Python
loops over the image, only over the K·K kernel taps). The kernels in
``numpyvae.kernels`` must match these on every configuration the tests try.
Results come back in float64 whatever the input dtype.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x: np.ndarray, K: int, s: int, p: int) -> np.ndarray:
    """Every K×K window of the padded input, strided: (N, C, Ho, Wo, K, K)."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
    return sliding_window_view(xp, (K, K), axis=(2, 3))[:, :, ::s, ::s]


def conv2d_reference(x, w, b, stride: int, padding: int) -> np.ndarray:
    """y[n,f,i,j] = b[f] + Σ_{c,a,e} w[f,c,a,e] xpad[n,c,i·s+a,j·s+e]."""
    win = _windows(x, w.shape[2], stride, padding)
    y = np.einsum("nchwae,fcae->nfhw", win, w.astype(np.float64), optimize=True)
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y


def conv2d_grad_input_reference(dy, w, input_hw, stride: int, padding: int) -> np.ndarray:
    """Each kernel tap (a, e) sends Σ_f w[f,:,a,e] dy[n,f] back to the inputs it read."""
    N, F, Ho, Wo = dy.shape
    _, C, K, _ = w.shape
    H, W = input_hw
    s, p = stride, padding
    dxp = np.zeros((N, C, H + 2 * p, W + 2 * p))
    dy64, w64 = dy.astype(np.float64), w.astype(np.float64)
    for a in range(K):
        for e in range(K):
            dxp[:, :, a:a + s * (Ho - 1) + 1:s, e:e + s * (Wo - 1) + 1:s] += np.einsum(
                "nfhw,fc->nchw", dy64, w64[:, :, a, e]
            )
    return dxp[:, :, p:p + H, p:p + W]


def conv2d_grad_weight_reference(dy, x, kernel_size: int, stride: int, padding: int):
    """dw[f,c,a,e] = Σ_{n,i,j} dy[n,f,i,j] xpad[n,c,i·s+a,j·s+e];  db[f] = Σ_{n,i,j} dy[n,f,i,j]."""
    win = _windows(x, kernel_size, stride, padding)
    Ho, Wo = dy.shape[2], dy.shape[3]
    win = win[:, :, :Ho, :Wo]
    dy64 = dy.astype(np.float64)
    dw = np.einsum("nchwae,nfhw->fcae", win, dy64, optimize=True)
    return dw, dy64.sum(axis=(0, 2, 3))


def conv_transpose2d_reference(x, w, b, stride: int, padding: int, output_padding: int):
    """PyTorch's ConvTranspose2d, from its definition rather than from the conv's gradient.

    x (N, C_in, H, W), w (C_in, C_out, K, K). Input pixel (i, j) adds x[n,c,i,j]·w[c,:,:,:]
    into the K×K output block at (i·s − p, j·s − p); the output is
    Hout = (H − 1)s − 2p + K + output_padding rows tall (output_padding extra rows at the end).
    """
    N, C_in, H, W = x.shape
    _, C_out, K, _ = w.shape
    s, p, op = stride, padding, output_padding
    Hout = (H - 1) * s - 2 * p + K + op
    Wout = (W - 1) * s - 2 * p + K + op
    full = np.zeros((N, C_out, (H - 1) * s + K + op, (W - 1) * s + K + op))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for a in range(K):
        for e in range(K):
            full[:, :, a:a + s * (H - 1) + 1:s, e:e + s * (W - 1) + 1:s] += np.einsum(
                "nchw,co->nohw", x64, w64[:, :, a, e]
            )
    y = full[:, :, p:p + Hout, p:p + Wout]
    if b is not None:
        y = y + b.astype(np.float64)[None, :, None, None]
    return y


def conv2d_loops(x, w, b, stride: int, padding: int) -> np.ndarray:
    """The definition, one output at a time: only for tiny arrays, to vouch for the einsum."""
    N, C, H, W = x.shape
    F, _, K, _ = w.shape
    s, p = stride, padding
    Ho, Wo = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    y = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    total = 0.0 if b is None else float(b[f])
                    for c in range(C):
                        for a in range(K):
                            for e in range(K):
                                h, v = i * s + a - p, j * s + e - p
                                if 0 <= h < H and 0 <= v < W:
                                    total += float(w[f, c, a, e]) * float(x[n, c, h, v])
                    y[n, f, i, j] = total
    return y
