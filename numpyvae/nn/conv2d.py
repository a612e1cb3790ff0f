"""Conv2d: 2-D convolution (cross-correlation, as in PyTorch) over (N, C, H, W) inputs.

The math, runnable: ``conv2d_numpy`` and its two gradients ``conv2d_grad_input_numpy``
and ``conv2d_grad_weight_numpy``. All three walk the same K×K kernel offsets (a, e) and
read the same strided slice of the padded input, so each gradient is visibly the forward
run backwards. ``numpyvae.kernels`` computes exactly these, fast (the layers' default);
set ``use_kernels = False`` on the class or on one layer to run the NumPy forms.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels import conv as conv_kernels  # unchecked: forward/backward validated x, dout
from .layer import Layer


def _tap(a: int, e: int, s: int, Ho: int, Wo: int) -> tuple[slice, slice, slice, slice]:
    """Where kernel offset (a, e) meets the padded input: rows a, a+s, …, a+s(Ho−1) (likewise
    columns), one per output pixel. Index a (N, C, Hp, Wp) array with it: (N, C, Ho, Wo)."""
    return (slice(None), slice(None), slice(a, a + s * (Ho - 1) + 1, s),
            slice(e, e + s * (Wo - 1) + 1, s))


def _pad(x: np.ndarray, p: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))


def conv2d_numpy(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
                 padding: int) -> np.ndarray:
    """y[n,f,i,j] = b[f] + Σ_{c,a,e} w[f,c,a,e]·xpad[n,c,i·s+a, j·s+e].

    x (N, C, H, W), w (F, C, K, K), b (F,) or None → y (N, F, Ho, Wo),
    Ho = (H + 2p − K)//s + 1. Summed one kernel offset (a, e) at a time: each offset
    multiplies the input pixels it meets (one per output pixel) by the F×C matrix w[:, :, a, e].
    """
    N, C, H, W = x.shape
    F, _, K, _ = w.shape
    s, p = stride, padding
    Ho, Wo = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    xp = _pad(x, p)
    y = np.zeros((N, F, Ho, Wo), dtype=x.dtype)
    for a in range(K):
        for e in range(K):
            y += np.einsum("fc,nchw->nfhw", w[:, :, a, e], xp[_tap(a, e, s, Ho, Wo)])
    if b is not None:
        y += b[:, None, None]
    return y


def conv2d_grad_input_numpy(dy: np.ndarray, w: np.ndarray, input_hw: tuple[int, int],
                            stride: int, padding: int) -> np.ndarray:
    """dx = ∂L/∂x of conv2d_numpy: each offset (a, e) sends w[:, :, a, e]ᵀ·dy back to the
    pixels it read, dxpad[n,c,i·s+a, j·s+e] += Σ_f w[f,c,a,e]·dy[n,f,i,j]; then the padding
    is cut away.

    dy (N, F, Ho, Wo), w (F, C, K, K) → dx (N, C, H, W), (H, W) = input_hw. Rows and columns
    the kernel never reaches (input_hw larger than the forward needs) get 0.
    """
    N, F, Ho, Wo = dy.shape
    _, C, K, _ = w.shape
    H, W = input_hw
    s, p = stride, padding
    dxp = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=dy.dtype)
    for a in range(K):
        for e in range(K):
            dxp[_tap(a, e, s, Ho, Wo)] += np.einsum("fc,nfhw->nchw", w[:, :, a, e], dy)
    return dxp[:, :, p:p + H, p:p + W]


def conv2d_grad_weight_numpy(dy: np.ndarray, x: np.ndarray, kernel_size: int, stride: int,
                             padding: int) -> np.ndarray:
    """dw = ∂L/∂w of conv2d_numpy: dw[f,c,a,e] = Σ_{n,i,j} dy[n,f,i,j]·xpad[n,c,i·s+a, j·s+e],
    the same pairs of pixels the forward multiplied, summed over the batch and the image.

    dy (N, F, Ho, Wo), x (N, C, H, W) → dw (F, C, K, K). (The bias gradient is Σ_{n,i,j} dy.)
    """
    N, F, Ho, Wo = dy.shape
    C, K, s = x.shape[1], kernel_size, stride
    xp = _pad(x, padding)
    dw = np.empty((F, C, K, K), dtype=dy.dtype)
    for a in range(K):
        for e in range(K):
            dw[:, :, a, e] = np.einsum("nfhw,nchw->fc", dy, xp[_tap(a, e, s, Ho, Wo)])
    return dw


class Conv2d(Layer):
    """y = conv2d(x, W) + b with a square K×K kernel, stride s and zero padding p.

    Shapes: x (N, C, H, W), weight W (F, C, K, K), bias b (F,), y (N, F, Ho, Wo),
    Ho = (H + 2p − K)//s + 1 (likewise Wo).

    Each output pixel is a dot product of W with the K×K window of the padded
    input under it: ``conv2d_numpy`` above, which ``use_kernels = False`` runs.
    By default ``numpyvae.kernels`` computes the same thing, fast: the windows are
    packed into a matrix (im2col) and the sum becomes one BLAS matrix product.

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
        K, s, p = self.kernel_size, self.stride, self.padding
        return (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1

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
            y = self._forward_numpy(x)
        self.cache = x
        return y

    def _forward_numpy(self, x: np.ndarray) -> np.ndarray:
        return conv2d_numpy(x, self.params["weight"], self.params.get("bias"), self.stride,
                            self.padding)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, F, Ho, Wo) → dx (N, C, H, W) (None if ``needs_input_grad`` is off)."""
        x = self._saved()
        self.check_dout(dout, (x.shape[0], self.out_channels, *self.output_size(*x.shape[2:])),
                        x.dtype)
        if not self.use_kernels:
            return self._backward_numpy(dout, x)
        dw, db = conv_kernels.conv2d_grad_weight_unchecked(dout, x, self.kernel_size,
                                                           self.stride, self.padding)
        self.grads["weight"][...] = dw
        if "bias" in self.grads:
            self.grads["bias"][...] = db
        if not self.needs_input_grad:
            return None
        return conv_kernels.conv2d_grad_input_unchecked(dout, self.params["weight"], x.shape[2:],
                                         self.stride, self.padding)

    def _backward_numpy(self, dout: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        """y = Σ W·window + b, so dW = Σ dY·window (conv2d_grad_weight_numpy), db = Σ_{n,h,w} dY,
        and each window hands dY·W back to the pixels it covered (conv2d_grad_input_numpy)."""
        s, p = self.stride, self.padding
        self.grads["weight"][...] = conv2d_grad_weight_numpy(dout, x, self.kernel_size, s, p)
        if "bias" in self.grads:
            self.grads["bias"][...] = dout.sum(axis=(0, 2, 3))
        if not self.needs_input_grad:
            return None
        return conv2d_grad_input_numpy(dout, self.params["weight"], x.shape[2:], s, p)

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
