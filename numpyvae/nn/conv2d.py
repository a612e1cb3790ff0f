"""Conv2d: 2-D convolution (cross-correlation, as in PyTorch) over (N, C, H, W) inputs.

The same sum four times, in reading order, from the definition to the kernel:

1. The definition, ``conv2d_naive``: one output pixel = the window under it · W, a loop
   over the output pixels. ``conv2d_naive_backward`` runs the same loop for both gradients.
2. The same sum reordered, ``conv2d_by_offsets`` (and ``conv2d_grad_input_by_offsets``,
   ``conv2d_grad_weight_by_offsets``): loop over the K×K kernel offsets instead; each
   offset is one product over every output pixel at once.
3. im2col, ``conv2d_im2col`` and ``conv2d_im2col_backward``: the windows are the rows of a
   matrix, so the conv is one matrix product; dx adds the rows back where their windows
   were (``col2im``).
4. The kernel: ``numpyvae/kernels/gemm.py`` is im2col in numba, channels-last, a few
   samples at a time, around BLAS calls; it is the layers' default. ``use_kernels = False``
   (on the class or one layer) runs form 2 instead (why: the class docstring).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layer import Layer
from .lazy_kernels import lazy

conv_kernels = lazy("conv")  # unchecked: forward/backward validated x, dout


def _pad(x: np.ndarray, p: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))


def _out_size(H: int, W: int, K: int, s: int, p: int) -> tuple[int, int]:
    return (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1


# -- 1. the definition: one output pixel at a time --------------------------------------
def conv2d_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
                 padding: int) -> np.ndarray:
    """y[n,f,i,j] = b[f] + Σ_{c,di,dj} w[f,c,di,dj]·xpad[n,c,i·s+di, j·s+dj]: the window of
    xpad under output pixel (i, j), dotted with W. x (N, C, H, W), w (F, C, K, K), b (F,) or
    None → y (N, F, Ho, Wo), Ho = (H + 2p − K)//s + 1 (likewise Wo)."""
    N, _, H, W = x.shape
    F, _, K, _ = w.shape
    s, (Ho, Wo) = stride, _out_size(H, W, K, stride, padding)
    xp = _pad(x, padding)
    y = np.zeros((N, F, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i * s:i * s + K, j * s:j * s + K]  # (N, C, K, K)
            y[:, :, i, j] = np.einsum("nchw,fchw->nf", window, w)  # Σ over c, h, w
    if b is not None:
        y += b[:, None, None]
    return y


def conv2d_naive_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int,
                          padding: int) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw) of conv2d_naive, from the same loop: output pixel (i, j) computed
    window · W, so it hands dy[:, :, i, j]·W back to the pixels its window covered,
    and dW gathers dy[:, :, i, j]·window. (db = Σ_{n,i,j} dy.) dy (N, F, Ho, Wo) → dx, dw."""
    _, _, Ho, Wo = dy.shape
    _, _, H, W = x.shape
    K, s, p = w.shape[2], stride, padding
    xp = _pad(x, p)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(Ho):
        for j in range(Wo):
            rows, cols = slice(i * s, i * s + K), slice(j * s, j * s + K)
            dxp[:, :, rows, cols] += np.einsum("nf,fchw->nchw", dy[:, :, i, j], w)  # dY·W
            dw += np.einsum("nf,nchw->fchw", dy[:, :, i, j], xp[:, :, rows, cols])  # dY·window
    return dxp[:, :, p:p + H, p:p + W], dw


# -- 2. the same sum, reordered: one kernel offset at a time -----------------------------
def conv2d_by_offsets(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
                      padding: int) -> np.ndarray:
    """conv2d_naive's sum with its loops swapped: for each kernel offset (di, dj), the input
    pixels it meets are every s-th pixel of xpad from (di, dj), one per output pixel, and
    they are all multiplied by the F×C matrix w[:, :, di, dj] at once. Shapes: conv2d_naive."""
    N, _, H, W = x.shape
    F, _, K, _ = w.shape
    s, (Ho, Wo) = stride, _out_size(H, W, K, stride, padding)
    xp = _pad(x, padding)
    y = np.zeros((N, F, Ho, Wo), dtype=x.dtype)
    for di in range(K):
        for dj in range(K):
            met = xp[:, :, di:di + s * Ho:s, dj:dj + s * Wo:s]  # (N, C, Ho, Wo)
            y += np.einsum("fc,nchw->nfhw", w[:, :, di, dj], met)
    if b is not None:
        y += b[:, None, None]
    return y


def conv2d_grad_input_by_offsets(dy: np.ndarray, w: np.ndarray, input_hw: tuple[int, int],
                                 stride: int, padding: int) -> np.ndarray:
    """dx of conv2d_by_offsets: each offset (di, dj) sends w[:, :, di, dj]ᵀ·dy back to the
    pixels it met; then the padding is cut away. dx (N, C, H, W), (H, W) = input_hw: rows and
    columns the kernel never reaches (input_hw larger than the forward needs) get 0."""
    N, F, Ho, Wo = dy.shape
    _, C, K, _ = w.shape
    (H, W), s, p = input_hw, stride, padding
    dxp = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=dy.dtype)
    for di in range(K):
        for dj in range(K):
            met = dxp[:, :, di:di + s * Ho:s, dj:dj + s * Wo:s]  # a view: += writes into dxp
            met += np.einsum("fc,nfhw->nchw", w[:, :, di, dj], dy)
    return dxp[:, :, p:p + H, p:p + W]


def conv2d_grad_weight_by_offsets(dy: np.ndarray, x: np.ndarray, kernel_size: int,
                                  stride: int, padding: int) -> np.ndarray:
    """dw of conv2d_by_offsets: dw[:, :, di, dj] = Σ_{n,i,j} dy ⊗ (the pixels offset
    (di, dj) met), the same pairs the forward multiplied. dw (F, C, K, K)."""
    N, F, Ho, Wo = dy.shape
    C, K, s = x.shape[1], kernel_size, stride
    xp = _pad(x, padding)
    dw = np.empty((F, C, K, K), dtype=dy.dtype)
    for di in range(K):
        for dj in range(K):
            met = xp[:, :, di:di + s * Ho:s, dj:dj + s * Wo:s]  # what the forward multiplied
            dw[:, :, di, dj] = np.einsum("nfhw,nchw->fc", dy, met)
    return dw


# -- 3. im2col: the windows as the rows of one matrix ------------------------------------
def im2col(xp: np.ndarray, K: int, s: int, Ho: int, Wo: int) -> np.ndarray:
    """xp (N, C, Hp, Wp) padded → (N·Ho·Wo, C·K·K): row (n, i, j) is the window under output
    pixel (i, j), flattened like w[f] (c, di, dj). A strided view, copied once by reshape."""
    windows = np.lib.stride_tricks.sliding_window_view(xp, (K, K), axis=(2, 3))
    windows = windows[:, :, :s * Ho:s, :s * Wo:s]  # (N, C, Ho, Wo, K, K)
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(-1, xp.shape[1] * K * K)


def col2im(cols: np.ndarray, xp_shape: tuple[int, ...], K: int, s: int, Ho: int,
           Wo: int) -> np.ndarray:
    """im2col's adjoint: each row is added back onto the pixels its window covered
    (overlapping windows add up). cols (N·Ho·Wo, C·K·K) → dxp (N, C, Hp, Wp)."""
    N, C = xp_shape[:2]
    windows = cols.reshape(N, Ho, Wo, C, K, K).transpose(0, 3, 1, 2, 4, 5)
    dxp = np.zeros(xp_shape, dtype=cols.dtype)
    for di in range(K):
        for dj in range(K):
            dxp[:, :, di:di + s * Ho:s, dj:dj + s * Wo:s] += windows[..., di, dj]
    return dxp


def conv2d_im2col(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
                  padding: int) -> np.ndarray:
    """y = im2col(x) @ Wᵀ + b, one matrix product: (N·Ho·Wo, C·K·K) @ (C·K·K, F)."""
    N, _, H, W = x.shape
    F, _, K, _ = w.shape
    Ho, Wo = _out_size(H, W, K, stride, padding)
    y = im2col(_pad(x, padding), K, stride, Ho, Wo) @ w.reshape(F, -1).T
    if b is not None:
        y += b
    return y.reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2)


def conv2d_im2col_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int,
                           padding: int) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw): dW = dYᵀ @ im2col(x) (each filter gathers dY·window), and
    dx = col2im(dY @ W) (each window hands dY·W back), the padding cut away."""
    N, F, Ho, Wo = dy.shape
    _, C, H, W = x.shape
    K, s, p = w.shape[2], stride, padding
    xp = _pad(x, p)
    dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, F)  # (N·Ho·Wo, F): one row per window
    dw = (dy_rows.T @ im2col(xp, K, s, Ho, Wo)).reshape(F, C, K, K)
    dxp = col2im(dy_rows @ w.reshape(F, -1), xp.shape, K, s, Ho, Wo)
    return dxp[:, :, p:p + H, p:p + W], dw


class Conv2d(Layer):
    """y = conv2d(x, W) + b with a square K×K kernel, stride s and zero padding p.

    Shapes: x (N, C, H, W), weight W (F, C, K, K), bias b (F,), y (N, F, Ho, Wo),
    Ho = (H + 2p − K)//s + 1 (likewise Wo).

    The module's four forms compute it (see above). ``use_kernels = False`` runs the sum by
    offsets: on the report's CNN it is the fastest NumPy form (im2col copies every pixel K²
    times and took twice as long, batch 256), and it needs no extra memory.

    Initialisation is PyTorch's default: W and b ~ U(−1/√fan_in, 1/√fan_in),
    fan_in = C·K².
    """

    use_kernels = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(dtype)
        _check_hyper("Conv2d", in_channels, out_channels, kernel_size, stride, padding)
        rng = np.random.default_rng() if rng is None else rng
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        K = self.kernel_size
        bound = 1.0 / np.sqrt(in_channels * K * K)
        self.add_param("weight", rng.uniform(-bound, bound, (out_channels, in_channels, K, K)))
        if bias:
            self.add_param("bias", rng.uniform(-bound, bound, out_channels))

    def output_size(self, H: int, W: int) -> tuple[int, int]:
        """(Ho, Wo) for an H×W input."""
        return _out_size(H, W, self.kernel_size, self.stride, self.padding)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) → y (N, F, Ho, Wo)."""
        self.check_input(x, (None, self.in_channels, None, None))
        _, C, H, W = x.shape
        K, p = self.kernel_size, self.padding
        if H + 2 * p < K or W + 2 * p < K:
            raise ValueError(f"Conv2d: expected a spatial size of at least {K - 2 * p}x{K - 2 * p} "
                             f"for kernel {K} with padding {p}, got {H}x{W}")
        if self.use_kernels:
            y = conv_kernels.conv2d_forward_unchecked(
                x, self.params["weight"], self.params.get("bias"), self.stride, self.padding)
        else:
            y = conv2d_by_offsets(x, self.params["weight"], self.params.get("bias"), self.stride,
                                  self.padding)
        self.cache = x
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, F, Ho, Wo) → dx (N, C, H, W) (None if ``needs_input_grad`` is off)."""
        x = self._saved()
        self.check_dout(dout, (x.shape[0], self.out_channels, *self.output_size(*x.shape[2:])),
                        x.dtype)
        if not self.use_kernels:
            return self._backward_numpy(dout, x)
        if self.needs_input_grad:  # both at once: one pass over x for a thin output
            dx, dw, db = conv_kernels.conv2d_backward_unchecked(dout, x, self.params["weight"],
                                                                self.stride, self.padding)
        else:
            dx = None
            dw, db = conv_kernels.conv2d_grad_weight_unchecked(dout, x, self.kernel_size,
                                                               self.stride, self.padding)
        self.grads["weight"][...] = dw
        if "bias" in self.grads:
            self.grads["bias"][...] = db
        return dx

    def _backward_numpy(self, dout: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        """y = Σ W·window + b, so dW = Σ dY·window, db = Σ_{n,h,w} dY, and each window hands
        dY·W back to the pixels it covered; summed here one kernel offset at a time."""
        s, p = self.stride, self.padding
        self.grads["weight"][...] = conv2d_grad_weight_by_offsets(dout, x, self.kernel_size, s,
                                                                  p)
        if "bias" in self.grads:
            self.grads["bias"][...] = dout.sum(axis=(0, 2, 3))
        if not self.needs_input_grad:
            return None
        return conv2d_grad_input_by_offsets(dout, self.params["weight"], x.shape[2:], s, p)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        s += f", stride={self.stride}"
        if self.padding:
            s += f", padding={self.padding}"
        if "bias" not in self.params:
            s += ", bias=False"
        return s


def _check_hyper(name: str, c_in: int, c_out: int, k: int, stride: int, padding: int) -> None:
    """Constructor arguments: positive channels, kernel and stride; padding ≥ 0."""
    for label, v, low in (("in_channels", c_in, 1), ("out_channels", c_out, 1),
                          ("kernel_size", k, 1), ("stride", stride, 1), ("padding", padding, 0)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
            raise ValueError(f"{name}: expected {label} to be an integer >= {low}, got {v!r}")
