"""Conv2d: 2-D convolution (cross-correlation, as in PyTorch) over (N, C, H, W) inputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import kernels
from .layer import Layer


class Conv2d(Layer):
    """y = conv2d(x, W) + b with a square K×K kernel, stride s and zero padding p.

    Shapes: x (N, C, H, W), weight W (F, C, K, K), bias b (F,), y (N, F, Ho, Wo),
    Ho = (H + 2p − K)//s + 1 (likewise Wo).

    The math, in readable NumPy (each output pixel is a dot product of W with
    the K×K window of the padded input under it):

        xp  = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        win = sliding_window_view(xp, (K, K), axis=(2, 3))[:, :, ::s, ::s]  # (N, C, Ho, Wo, K, K)
        y   = np.einsum("nchwij,fcij->nfhw", win, W) + b[:, None, None]

    ``numpyvae.kernels`` computes exactly this, fast: the windows are packed
    into a matrix (im2col) and the einsum becomes one BLAS matrix product.

    Initialisation is PyTorch's default: W and b ~ U(−1/√fan_in, 1/√fan_in),
    fan_in = C·K².
    """

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
        y = kernels.conv2d_forward(x, self.params["weight"], self.params.get("bias"),
                                   self.stride, self.padding)
        self.cache = x
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, F, Ho, Wo) → dx (N, C, H, W) (None if ``needs_input_grad`` is off).

        y = Σ W·window, so dW[f,c,i,j] = Σ_{n,h,w} dY[n,f,h,w]·win[n,c,h,w,i,j], db = Σ_{n,h,w} dY,
        and each window hands dY·W back to the pixels it covered: dxp[win] += Σ_f dY[n,f,h,w] W[f].
        """
        x = self._saved()
        _check_grad_shape("Conv2d", dout, (x.shape[0], self.out_channels,
                                           *self.output_size(*x.shape[2:])), x.dtype)
        dw, db = kernels.conv2d_grad_weight(dout, x, self.kernel_size, self.stride, self.padding)
        self.grads["weight"][...] = dw
        if "bias" in self.grads:
            self.grads["bias"][...] = db
        if not self.needs_input_grad:
            return None
        return kernels.conv2d_grad_input(dout, self.params["weight"], x.shape[2:],
                                         self.stride, self.padding)

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


def _check_grad_shape(name: str, dout: np.ndarray, shape: tuple[int, ...], dtype) -> None:
    """backward's dout must have forward's output shape and dtype."""
    if not isinstance(dout, np.ndarray) or dout.shape != tuple(shape) or dout.dtype != dtype:
        got = (f"shape {dout.shape} dtype {dout.dtype}" if isinstance(dout, np.ndarray)
               else type(dout).__name__)
        raise ValueError(f"{name}.backward: expected dout of shape {tuple(shape)} and dtype "
                         f"{np.dtype(dtype)}, got {got}")
