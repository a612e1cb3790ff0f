"""ConvTranspose2d: the transposed convolution (PyTorch semantics), used to upsample. Its
definition is the loops below; its fast forms are Conv2d's run the other way round."""

from __future__ import annotations

from typing import Any

import numpy as np

from .conv2d import (
    _check_hyper,
    _pad,
    conv2d_by_offsets,
    conv2d_grad_input_by_offsets,
    conv2d_grad_weight_by_offsets,
)
from .layer import Layer
from .lazy_kernels import lazy

conv_kernels = lazy("conv")  # unchecked: forward/backward validated x, dout


def conv_transpose2d_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
                           padding: int, output_padding: int) -> np.ndarray:
    """Input pixel (i, j) stamps W, scaled by x[n, :, i, j], onto the K×K block at (i·s, j·s)
    of a full-size output; then p rows/columns are cut from each side (output_padding
    extra ones stay at the bottom/right). x (N, C_in, H, W), w (C_in, C_out, K, K), b (C_out,)
    or None → y (N, C_out, Hout, Wout), Hout = (H − 1)s − 2p + K + output_padding."""
    N, _, H, W = x.shape
    _, C_out, K, _ = w.shape
    s, p, op = stride, padding, output_padding
    full = np.zeros((N, C_out, (H - 1) * s + K + op, (W - 1) * s + K + op), dtype=x.dtype)
    for i in range(H):
        for j in range(W):
            full[:, :, i * s:i * s + K, j * s:j * s + K] += np.einsum("nc,cohw->nohw",
                                                                     x[:, :, i, j], w)
    y = full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]
    return y if b is None else y + b[:, None, None]


def conv_transpose2d_naive_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int,
                                    padding: int) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw) of conv_transpose2d_naive, from the same loop: input pixel (i, j) stamped
    x[:, :, i, j]·W onto a block, so it gets back Σ block(dY)·W, and dW gathers
    x[:, :, i, j] ⊗ block(dY). (db = Σ_{n,i,j} dY.) dy (N, C_out, Hout, Wout) → dx, dw."""
    _, _, H, W = x.shape
    K, s = w.shape[2], stride
    dfull = _pad(dy, padding)  # the full-size output's gradient: the cut rows got none
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for i in range(H):
        for j in range(W):
            block = dfull[:, :, i * s:i * s + K, j * s:j * s + K]  # (N, C_out, K, K)
            dx[:, :, i, j] = np.einsum("nohw,cohw->nc", block, w)  # Σ block(dY)·W
            dw += np.einsum("nc,nohw->cohw", x[:, :, i, j], block)  # x ⊗ block(dY)
    return dx, dw


class ConvTranspose2d(Layer):
    """y = conv_transpose2d(x, W) + b: each input pixel stamps a scaled K×K kernel into the output.

    Shapes: x (N, C_in, H, W), weight W (C_in, C_out, K, K), bias b (C_out,),
    y (N, C_out, Hout, Wout), Hout = (H − 1)s − 2p + K + output_padding (likewise Wout).
    output_padding (< stride) adds rows/columns at the bottom/right, so a stride-2
    layer can reach both 13 and 14 from 7.

    Stamping each input pixel's x·W into the output is exactly what Conv2d's input
    gradient does with dY (compare ``conv2d_naive_backward``), so a transposed
    convolution IS the input gradient of a Conv2d(C_out → C_in) sharing this
    weight, and its backward is that Conv2d run forwards. ``use_kernels = False``
    runs Conv2d's sum by offsets, which says so in code; by default the same kernels run
    it: forward = conv2d_grad_input, backward = conv2d_forward (for dx) and
    conv2d_grad_weight (for dW), together in conv2d_forward_and_grad_weight.
    output_padding is then just a larger input_hw for that input gradient: the
    conv's kernel never reaches the last output_padding rows/columns of the padded
    output, which is why two output sizes share one input size.

    Initialisation is PyTorch's default: W and b ~ U(−1/√fan_in, 1/√fan_in),
    where PyTorch takes fan_in from the weight's second axis: C_out·K².
    """

    use_kernels = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        output_padding: int = 0,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(dtype)
        _check_hyper("ConvTranspose2d", in_channels, out_channels, kernel_size, stride, padding)
        if (not isinstance(output_padding, (int, np.integer)) or isinstance(output_padding, bool)
                or not 0 <= output_padding < stride):
            raise ValueError(
                f"ConvTranspose2d: expected output_padding to be an integer in [0, stride) = "
                f"[0, {stride}), got {output_padding!r}"
            )
        rng = np.random.default_rng() if rng is None else rng
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.output_padding = int(output_padding)
        K = self.kernel_size
        bound = 1.0 / np.sqrt(out_channels * K * K)
        self.add_param("weight", rng.uniform(-bound, bound, (in_channels, out_channels, K, K)))
        if bias:
            self.add_param("bias", rng.uniform(-bound, bound, out_channels))

    def output_size(self, H: int, W: int) -> tuple[int, int]:
        """(Hout, Wout) for an H×W input."""
        K, s, p, op = self.kernel_size, self.stride, self.padding, self.output_padding
        return (H - 1) * s - 2 * p + K + op, (W - 1) * s - 2 * p + K + op

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C_in, H, W) → y (N, C_out, Hout, Wout)."""
        self.check_input(x, (None, self.in_channels, None, None))
        _, C, H, W = x.shape
        Hout, Wout = self.output_size(H, W)
        if H < 1 or W < 1 or Hout < 1 or Wout < 1:
            raise ValueError(f"ConvTranspose2d: input {H}x{W} is too small for kernel "
                             f"{self.kernel_size} with padding {self.padding}: the output would "
                             f"be {Hout}x{Wout}")
        if self.use_kernels:
            y = conv_kernels.conv2d_grad_input_unchecked(
                x, self.params["weight"], (Hout, Wout), self.stride, self.padding,
                bias=self.params.get("bias"))
        else:
            y = self._forward_numpy(x)
        self.cache = x
        return y

    def _forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """Conv2d's input gradient, with x in the place of dY, plus the bias."""
        y = conv2d_grad_input_by_offsets(x, self.params["weight"], self.output_size(*x.shape[2:]),
                                    self.stride, self.padding)
        if "bias" in self.params:
            y += self.params["bias"][:, None, None]
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, C_out, Hout, Wout) → dx (N, C_in, H, W) (None if ``needs_input_grad`` is off).
        """
        x = self._saved()
        self.check_dout(dout, (x.shape[0], self.out_channels, *self.output_size(*x.shape[2:])),
                        x.dtype)
        if not self.use_kernels:
            return self._backward_numpy(dout, x)
        s, p = self.stride, self.padding
        if self.needs_input_grad:
            # dX = conv2d(dY, W) and dW = conv2d_grad_weight(x, dY) both read dY's windows: one
            # call computes the pair and packs them once
            dx, dw = conv_kernels.conv2d_forward_and_grad_weight_unchecked(
                dout, self.params["weight"], x, s, p)
        else:
            dw = conv_kernels.conv2d_grad_weight_unchecked(x, dout, self.kernel_size, s, p)[0]
            dx = None
        self.grads["weight"][...] = dw
        if "bias" in self.grads:
            self.grads["bias"][...] = conv_kernels.channel_sum_unchecked(dout)
        return dx

    def _backward_numpy(self, dout: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        """y is the adjoint of a conv, so its adjoint is the conv: dX = conv2d(dY, W);
        dW = the conv's weight gradient with x and dY swapped,
        dW[c,o,a,e] = Σ_{n,i,j} x[n,c,i,j]·dYpad[n,o,i·s+a,j·s+e];  db = Σ_{n,h,w} dY."""
        s, p = self.stride, self.padding
        self.grads["weight"][...] = conv2d_grad_weight_by_offsets(x, dout, self.kernel_size, s, p)
        if "bias" in self.grads:
            self.grads["bias"][...] = dout.sum(axis=(0, 2, 3))
        if not self.needs_input_grad:
            return None
        return conv2d_by_offsets(dout, self.params["weight"], None, s, p)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        s += f", stride={self.stride}"
        if self.padding:
            s += f", padding={self.padding}"
        if self.output_padding:
            s += f", output_padding={self.output_padding}"
        if "bias" not in self.params:
            s += ", bias=False"
        return s
