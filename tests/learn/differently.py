"""More layers written differently from the package's (issue 24's round): right ones the
grader must pass and the replay must take, wrong ones it must fail, each with its mistake
named in its docstring."""

from __future__ import annotations

import numpy as np

from numpyvae.nn import Layer

from .alternatives import Im2colConv2d, LoopConv2d, StagedBatchNorm2d, _conv_init


class EinsumDense(Layer):
    """Right: Dense with every product an einsum."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        super().__init__(dtype)
        rng = np.random.default_rng() if rng is None else rng
        bound = 1.0 / np.sqrt(in_features)
        self.add_param("weight", rng.uniform(-bound, bound, (in_features, out_features)))
        if bias:
            self.add_param("bias", rng.uniform(-bound, bound, out_features))

    def forward(self, x):
        self.cache = x
        y = np.einsum("ni,io->no", x, self.params["weight"])
        return y + self.params["bias"] if "bias" in self.params else y

    def backward(self, dout):
        x = self._saved()
        self.grads["weight"][...] = np.einsum("ni,no->io", x, dout)
        if "bias" in self.grads:
            self.grads["bias"][...] = np.einsum("no->o", dout)
        return np.einsum("no,io->ni", dout, self.params["weight"])


class BufferDense(EinsumDense):
    """Right: backward returns the same buffer every time, overwritten by the next backward
    (a view of the layer's own state, valid until then, as a Sequential uses it)."""

    def backward(self, dout):
        dx = super().backward(dout)
        buf = getattr(self, "_dx", None)
        if buf is None or buf.shape != dx.shape or buf.dtype != dx.dtype:
            self._dx = buf = np.empty_like(dx)
        buf[...] = dx
        return buf


class ClassCacheDense(EinsumDense):
    """Wrong: the cache kept on the class, shared by every Dense: right with one instance,
    wrong as soon as two run forward before their backwards (every model)."""

    def forward(self, x):
        type(self).shared_x = x
        y = np.einsum("ni,io->no", x, self.params["weight"])
        return y + self.params["bias"] if "bias" in self.params else y

    def backward(self, dout):
        self.cache = type(self).shared_x
        return super().backward(dout)


class WhereELU(Layer):
    """Wrong under the track's rule: np.where evaluates exp(x) everywhere, so exp(1000)
    overflows (NumPy warns; the check raises) though the chosen values are right."""

    def __init__(self, alpha=1.0):
        super().__init__(np.float64)
        self.alpha = alpha

    def forward(self, x):
        self.cache = x
        return np.where(x > 0, x, self.alpha * (np.exp(x) - 1))

    def backward(self, dout):
        x = self._saved()
        return dout * np.where(x > 0, 1.0, self.alpha * np.exp(x))


class DoutInPlaceELU(WhereELU):
    """Right in its values, overflow-free; but backward writes dx into the dout it was
    given and returns it: the caller's array changes under it."""

    def forward(self, x):
        self.cache = x
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0)))

    def backward(self, dout):
        x = self._saved()
        dout *= np.where(x > 0, 1.0, self.alpha * np.exp(np.minimum(x, 0)))
        return dout


class Float32BuffersBatchNorm2d(StagedBatchNorm2d):
    """Wrong in float64: its running statistics are float32 whatever the layer's dtype."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__(num_features, eps, momentum, dtype)
        for k in self.buffers:
            self.buffers[k] = self.buffers[k].astype(np.float32)


class ZeroStuffConvTranspose2d(Layer):
    """Right: ConvTranspose2d as zeros stuffed between the input pixels (s − 1 each), the
    border padded by K − 1 − p (+ output_padding at the bottom/right), then a stride-1
    Conv2d with the kernel flipped and its channel axes swapped. Backward: that conv's
    backward, then the stuffed pixels picked back out."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, bias=True, dtype=np.float32, rng=None):
        super().__init__(dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.output_padding = output_padding
        _conv_init(self, in_channels, out_channels, kernel_size, out_channels, rng, bias,
                   (in_channels, out_channels, kernel_size, kernel_size))
        self.conv = Im2colConv2d(in_channels, out_channels, kernel_size, 1, 0, bias=False,
                                 dtype=dtype, rng=np.random.default_rng(0))

    def _stuffed(self, x):
        N, C, H, W = x.shape
        K, s, p, op = self.kernel_size, self.stride, self.padding, self.output_padding
        q = K - 1 - p  # may be < 0: then rows are cut instead
        big = np.zeros((N, C, (H - 1) * s + 1 + 2 * max(q, 0) + op,
                        (W - 1) * s + 1 + 2 * max(q, 0) + op), dtype=x.dtype)
        o = max(q, 0)
        big[:, :, o:o + (H - 1) * s + 1:s, o:o + (W - 1) * s + 1:s] = x
        cut = max(-q, 0)
        return big[:, :, cut:big.shape[2] - cut, cut:big.shape[3] - cut], o, cut

    def forward(self, x):
        self.check_input(x, (None, self.in_channels, None, None))
        self.conv.params["weight"][...] = self.params["weight"][:, :, ::-1, ::-1].transpose(
            1, 0, 2, 3)
        stuffed, o, cut = self._stuffed(x)
        y = self.conv.forward(stuffed)
        if "bias" in self.params:
            y = y + self.params["bias"][:, None, None]
        self.cache = (x, o, cut)
        return y

    def backward(self, dout):
        x, o, cut = self._saved()
        d_stuffed = self.conv.backward(dout)
        dw = self.conv.grads["weight"]  # (C_out, C_in, K, K) of the flipped kernel
        self.grads["weight"][...] = dw.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
        if "bias" in self.grads:
            self.grads["bias"][...] = dout.sum(axis=(0, 2, 3))
        N, C, H, W = x.shape
        s = self.stride
        d_big = np.pad(d_stuffed, ((0, 0), (0, 0), (cut, cut), (cut, cut)))
        return d_big[:, :, o:o + (H - 1) * s + 1:s, o:o + (W - 1) * s + 1:s]


class Float32BatchNorm2d(Layer):
    """Wrong in float64: all its arithmetic in float32 whatever x's dtype (a learner who made
    everything float32, as training runs), the result cast back to x's dtype."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__(dtype)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.add_param("weight", np.ones(num_features))
        self.add_param("bias", np.zeros(num_features))
        self.buffers["running_mean"] = np.zeros(num_features, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=self.dtype)

    def forward(self, x):
        f32, axes = np.float32, (0, 2, 3)
        x32 = x.astype(f32)
        if self.training:
            mu, var = x32.mean(axis=axes), x32.var(axis=axes)
            m = x.size // x.shape[1]
            for k, new in (("running_mean", mu), ("running_var", var * m / (m - 1))):
                b = self.buffers[k]
                b[...] = (1 - self.momentum) * b + self.momentum * new
        else:
            mu, var = (self.buffers[k].astype(f32) for k in ("running_mean", "running_var"))
        istd = (1 / np.sqrt(var + f32(self.eps)))[:, None, None]
        xhat = (x32 - mu[:, None, None]) * istd
        g, b = (self.params[k].astype(f32)[:, None, None] for k in ("weight", "bias"))
        self.cache = (xhat, istd, self.training, x.dtype)
        return (g * xhat + b).astype(x.dtype)

    def backward(self, dout):
        xhat, istd, training, dtype = self._saved()
        d, axes = dout.astype(np.float32), (0, 2, 3)
        self.grads["weight"][...] = (d * xhat).sum(axis=axes)
        self.grads["bias"][...] = d.sum(axis=axes)
        dxhat = d * self.params["weight"].astype(np.float32)[:, None, None]
        if training:
            dxhat = dxhat - dxhat.mean(axis=axes, keepdims=True) - xhat * (
                dxhat * xhat).mean(axis=axes, keepdims=True)
        return (dxhat * istd).astype(dtype)


class AccumulatingDense(EinsumDense):
    """Wrong: backward adds into its grads (+=), as if something zeroed them each step;
    right once, twice the truth the second time."""

    def backward(self, dout):
        x = self._saved()
        self.grads["weight"] += np.einsum("ni,no->io", x, dout)
        if "bias" in self.grads:
            self.grads["bias"] += dout.sum(axis=0)
        return np.einsum("no,io->ni", dout, self.params["weight"])


class Float32BranchBatchNorm2d(StagedBatchNorm2d):
    """Wrong in float32 only: a separate float32 branch of backward that leaves out the
    variance path (float64 takes the staged, right one)."""

    def backward(self, dout):
        if dout.dtype != np.float32:
            return super().backward(dout)
        super().backward(dout)  # the parameters' gradients, right in both
        shape, xc, istd, xhat, training = self._saved()
        N, C, H, W = shape
        dxc = dout.transpose(1, 0, 2, 3).reshape(C, -1) * (self.params["weight"] * istd)[:, None]
        if training:
            dxc = dxc - dxc.mean(axis=1, keepdims=True)
        return dxc.reshape(C, N, H, W).transpose(1, 0, 2, 3)


class DriftingDense(EinsumDense):
    """Wrong: a counter kept across calls scales dx from the second backward on (right the
    first time, 1% off the next)."""

    def backward(self, dout):
        self.calls = getattr(self, "calls", 0) + 1
        return super().backward(dout) * (1 + 0.01 * (self.calls - 1))


class WindowConv2d(LoopConv2d):
    """Right: Conv2d on np.lib.stride_tricks.sliding_window_view (a read-only view of the
    padded input, kept as the cache) and einsum; dx scattered back offset by offset."""

    def forward(self, x):
        self.check_input(x, (None, self.in_channels, None, None))
        K, s, p = self.kernel_size, self.stride, self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (K, K), axis=(2, 3))[:, :, ::s, ::s]
        y = np.einsum("nchwab,fcab->nfhw", win, self.params["weight"])
        if "bias" in self.params:
            y = y + self.params["bias"][:, None, None]
        self.cache = (x, win)
        return y

    def backward(self, dout):
        x, win = self._saved()
        K, s, p = self.kernel_size, self.stride, self.padding
        N, C, H, W = x.shape
        Ho, Wo = dout.shape[2:]
        self.grads["weight"][...] = np.einsum("nchwab,nfhw->fcab", win, dout)
        if "bias" in self.grads:
            self.grads["bias"][...] = dout.sum(axis=(0, 2, 3))
        dxp = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=x.dtype)
        part = np.einsum("nfhw,fcab->nchwab", dout, self.params["weight"])
        for a in range(K):
            for b in range(K):
                dxp[:, :, a:a + s * (Ho - 1) + 1:s, b:b + s * (Wo - 1) + 1:s] += part[..., a, b]
        return dxp[:, :, p:p + H, p:p + W]
