"""Correct layers written differently from the package's, as a learner might: a four-loop
Conv2d, an im2col Conv2d, a ConvTranspose2d built on a Conv2d, a staged BatchNorm2d.

The grader and the replay must pass every one of them; ``planted`` makes a 1% mistake in
one of them (in dx or dW) that they must still catch.
"""

from __future__ import annotations

import numpy as np

from numpyvae.nn import Layer


def _conv_init(layer, c_in, c_out, k, fan_in, rng, bias, w_shape):
    rng = np.random.default_rng() if rng is None else rng
    bound = 1.0 / np.sqrt(fan_in * k * k)
    layer.add_param("weight", rng.uniform(-bound, bound, w_shape))
    if bias:
        layer.add_param("bias", rng.uniform(-bound, bound, c_out))


class LoopConv2d(Layer):
    """Conv2d from the formula, four loops over (n, f, i, j) in forward and backward."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype=np.float32, rng=None):
        super().__init__(dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        _conv_init(self, in_channels, out_channels, kernel_size, in_channels, rng, bias,
                   (out_channels, in_channels, kernel_size, kernel_size))

    def _out(self, H, W):
        K, s, p = self.kernel_size, self.stride, self.padding
        return (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1

    def forward(self, x):
        self.check_input(x, (None, self.in_channels, None, None))
        N, _, H, W = x.shape
        K, s, p = self.kernel_size, self.stride, self.padding
        Ho, Wo = self._out(H, W)
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        w = self.params["weight"]
        y = np.zeros((N, self.out_channels, Ho, Wo), dtype=x.dtype)
        for n in range(N):
            for f in range(self.out_channels):
                for i in range(Ho):
                    for j in range(Wo):
                        y[n, f, i, j] = np.sum(xp[n, :, i * s:i * s + K, j * s:j * s + K] * w[f])
        if "bias" in self.params:
            y += self.params["bias"][:, None, None]
        self.cache = x
        return y

    def backward(self, dout):
        x = self._saved()
        N, C, H, W = x.shape
        K, s, p = self.kernel_size, self.stride, self.padding
        self.check_dout(dout, (N, self.out_channels, *self._out(H, W)), x.dtype)
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        w = self.params["weight"]
        dxp, dw = np.zeros_like(xp), np.zeros_like(w)
        for n in range(N):
            for f in range(self.out_channels):
                for i in range(dout.shape[2]):
                    for j in range(dout.shape[3]):
                        g = dout[n, f, i, j]
                        dw[f] += g * xp[n, :, i * s:i * s + K, j * s:j * s + K]
                        dxp[n, :, i * s:i * s + K, j * s:j * s + K] += g * w[f]
        self.grads["weight"][...] = dw
        if "bias" in self.grads:
            self.grads["bias"][...] = dout.sum(axis=(0, 2, 3))
        return dxp[:, :, p:p + H, p:p + W]


def im2col(xp, K, s, Ho, Wo):
    """(N, C, Hp, Wp) → (N·Ho·Wo, C·K·K): one row per output pixel, its window flattened."""
    N, C = xp.shape[:2]
    cols = np.empty((N, Ho, Wo, C, K, K), dtype=xp.dtype)
    for i in range(Ho):
        for j in range(Wo):
            cols[:, i, j] = xp[:, :, i * s:i * s + K, j * s:j * s + K]
    return cols.reshape(N * Ho * Wo, C * K * K)


def col2im(cols, shape, K, s, Ho, Wo):
    """The adjoint of im2col: each row's window added back where it was read."""
    N, C = shape[:2]
    out = np.zeros(shape, dtype=cols.dtype)
    c6 = cols.reshape(N, Ho, Wo, C, K, K)
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i * s:i * s + K, j * s:j * s + K] += c6[:, i, j]
    return out


class Im2colConv2d(LoopConv2d):
    """Conv2d as one matrix product of the windows (im2col) with the flattened weight."""

    def forward(self, x):
        self.check_input(x, (None, self.in_channels, None, None))
        N, _, H, W = x.shape
        K, s, p = self.kernel_size, self.stride, self.padding
        Ho, Wo = self._out(H, W)
        cols = im2col(np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))), K, s, Ho, Wo)
        y = cols @ self.params["weight"].reshape(self.out_channels, -1).T  # (N·Ho·Wo, F)
        if "bias" in self.params:
            y += self.params["bias"]
        self.cache = (x, cols)
        return y.reshape(N, Ho, Wo, -1).transpose(0, 3, 1, 2)

    def backward(self, dout):
        x, cols = self._saved()
        N, C, H, W = x.shape
        K, s, p = self.kernel_size, self.stride, self.padding
        Ho, Wo = self._out(H, W)
        self.check_dout(dout, (N, self.out_channels, Ho, Wo), x.dtype)
        d2 = dout.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)  # (N·Ho·Wo, F)
        w2 = self.params["weight"].reshape(self.out_channels, -1)
        self.grads["weight"][...] = (d2.T @ cols).reshape(self.params["weight"].shape)
        if "bias" in self.grads:
            self.grads["bias"][...] = d2.sum(axis=0)
        dxp = col2im(d2 @ w2, (N, C, H + 2 * p, W + 2 * p), K, s, Ho, Wo)
        return dxp[:, :, p:p + H, p:p + W]


class ConvTransposeOnConv2d(Layer):
    """ConvTranspose2d as the input gradient of an Im2colConv2d(out → in) sharing the weight:
    forward runs the conv's backward, backward runs the conv's forward (for dx) and its
    weight gradient with the roles of x and dY swapped."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, bias=True, dtype=np.float32, rng=None):
        super().__init__(dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.output_padding = output_padding
        _conv_init(self, in_channels, out_channels, kernel_size, out_channels, rng, bias,
                   (in_channels, out_channels, kernel_size, kernel_size))
        self.conv = Im2colConv2d(out_channels, in_channels, kernel_size, stride, padding,
                                 bias=False, dtype=dtype, rng=np.random.default_rng(0))
        self.conv.params["weight"] = self.params["weight"]  # shared: (C_in, C_out, K, K)
        self.conv.grads["weight"] = np.zeros_like(self.params["weight"])

    def forward(self, x):
        self.check_input(x, (None, self.in_channels, None, None))
        N, _, H, W = x.shape
        K, s, p, op = self.kernel_size, self.stride, self.padding, self.output_padding
        Hout, Wout = (H - 1) * s - 2 * p + K + op, (W - 1) * s - 2 * p + K + op
        # the conv's cache as if it had read an (N, C_out, Hout, Wout) input of zeros
        self.conv.cache = (np.zeros((N, self.out_channels, Hout, Wout), dtype=x.dtype), None)
        y = self._conv_input_grad(x, (N, self.out_channels, Hout, Wout))
        if "bias" in self.params:
            y = y + self.params["bias"][:, None, None]
        self.cache = (x, (Hout, Wout))
        return y

    def _conv_input_grad(self, dy, shape):
        c = self.conv
        K, s, p = c.kernel_size, c.stride, c.padding
        N, _, Ho, Wo = dy.shape
        d2 = dy.transpose(0, 2, 3, 1).reshape(-1, c.out_channels)
        w2 = c.params["weight"].reshape(c.out_channels, -1)
        H, W = shape[2:]
        dxp = col2im(d2 @ w2, (N, shape[1], H + 2 * p, W + 2 * p), K, s, Ho, Wo)
        return dxp[:, :, p:p + H, p:p + W]

    def backward(self, dout):
        x, (Hout, Wout) = self._saved()
        self.check_dout(dout, (x.shape[0], self.out_channels, Hout, Wout), x.dtype)
        dx = self.conv.forward(dout)  # the conv's forward with dY as its input
        self.conv.backward(x)  # its weight gradient with x in the place of its dY
        self.grads["weight"][...] = self.conv.grads["weight"]
        if "bias" in self.grads:
            self.grads["bias"][...] = dout.sum(axis=(0, 2, 3))
        return dx


class StagedBatchNorm2d(Layer):
    """BatchNorm2d one node at a time: x → μ → xc = x − μ → var → istd → x̂ → y, and backward
    through each node in reverse, summing the paths by hand."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__(dtype)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.add_param("weight", np.ones(num_features))
        self.add_param("bias", np.zeros(num_features))
        self.buffers["running_mean"] = np.zeros(num_features, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=self.dtype)

    def forward(self, x):
        self.check_input(x, (None, self.num_features, None, None))
        xt = x.transpose(1, 0, 2, 3).reshape(self.num_features, -1)  # (C, M)
        M = xt.shape[1]
        if self.training:
            mu = xt.sum(axis=1) / M
            xc = xt - mu[:, None]
            var = (xc * xc).sum(axis=1) / M
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm[...] = (1 - self.momentum) * rm + self.momentum * mu
            rv[...] = (1 - self.momentum) * rv + self.momentum * var * M / (M - 1)
        else:
            xc = xt - self.buffers["running_mean"][:, None]
            var = self.buffers["running_var"].copy()
        istd = (var + self.eps) ** -0.5
        xhat = xc * istd[:, None]
        y = self.params["weight"][:, None] * xhat + self.params["bias"][:, None]
        self.cache = (x.shape, xc, istd, xhat, self.training)
        N, C, H, W = x.shape
        return y.reshape(C, N, H, W).transpose(1, 0, 2, 3)

    def backward(self, dout):
        shape, xc, istd, xhat, training = self._saved()
        self.check_dout(dout, shape, xc.dtype)
        N, C, H, W = shape
        dy = dout.transpose(1, 0, 2, 3).reshape(C, -1)
        M = dy.shape[1]
        self.grads["weight"][...] = (dy * xhat).sum(axis=1)
        self.grads["bias"][...] = dy.sum(axis=1)
        dxhat = dy * self.params["weight"][:, None]
        dxc = dxhat * istd[:, None]  # x̂ = xc · istd, through xc
        if training:
            distd = (dxhat * xc).sum(axis=1)  # through istd
            dvar = distd * -0.5 * istd**3  # istd = (var + eps)^(-1/2)
            dxc = dxc + dvar[:, None] * 2 * xc / M  # var = Σ xc² / M
            dmu = -dxc.sum(axis=1)  # xc = x − μ
            dx = dxc + dmu[:, None] / M  # μ = Σ x / M
        else:
            dx = dxc
        return dx.reshape(C, N, H, W).transpose(1, 0, 2, 3)


def planted(cls, where: str, factor: float = 1.01):
    """cls with its dx (where="dx") or its weight gradient (where="dW") scaled by factor."""

    def backward(self, dout):
        dx = cls.backward(self, dout)
        if where == "dW":
            self.grads["weight"][...] *= factor
            return dx
        return None if dx is None else dx * factor

    return type(f"{cls.__name__}_{where}x{factor}", (cls,), {"backward": backward})
