"""Learners' real mistakes, planted into the package's own layers (each overrides one piece)."""

from __future__ import annotations

import numpy as np

from numpyvae import nn
from numpyvae.nn import Reparameterize
from numpyvae.nn.activations import sigmoid
from numpyvae.nn.adam import Adam


def central_differences(f, x, h=1e-5):
    """A correct numerical_gradient: the reference for the gradcheck step. It nudges x's own
    entries by index: x may be a view (x.reshape(-1) of one would be a copy)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f(x)
        x[i] = old - h
        minus = f(x)
        x[i] = old
        g[i] = (plus - minus) / (2 * h)
    return g


def reshaped_differences(f, x, h=1e-5):
    """Central differences on x.reshape(-1) (planted: for an x that is a view, not one
    C-ordered block, that is a copy: the nudges never reach f(x), the gradient is 0). Right
    on every C-ordered x, which is all the fixed cases give."""
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = f(x)
        flat[i] = old - h
        minus = f(x)
        flat[i] = old
        gf[i] = (plus - minus) / (2 * h)
    return g


def one_sided(f, x, h=1e-5):
    g = np.zeros_like(x)
    base = f(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        gf[i] = (f(x) - base) / h
        flat[i] = old
    return g


def not_restored(f, x, h=1e-5):
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        flat[i] += h
        plus = f(x)
        flat[i] -= 2 * h
        gf[i] = (plus - f(x)) / (2 * h)
        flat[i] += h * (1 + 1e-3)  # not quite back
    return g


class OnePercentDense(nn.Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["weight"][...] *= 1.01
        return dx


class TransposedDense(nn.Dense):
    def backward(self, dout):
        x = self._saved()
        self.grads["weight"][...] = dout.T @ x  # planted: the factors in the wrong order
        self.grads["bias"][...] = dout.sum(axis=0)
        return dout @ self.params["weight"].T


class AveragedBiasDense(nn.Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        if "bias" in self.grads:
            self.grads["bias"][...] = dout.mean(axis=0)  # planted
        return dx


class RaisingDense(nn.Dense):
    def backward(self, dout):
        raise ValueError("planted: the learner's own mistake")  # THE LEARNER'S LINE


class EvalFormBatchNorm(nn.BatchNorm2d):
    use_kernels = False

    def backward(self, dout):
        super().backward(dout)  # dγ and dβ are right
        (_, _), inv_std, _ = self._saved()
        # planted: μ and σ treated as constants, also in training
        return (self.params["weight"] * inv_std)[None, :, None, None] * dout


def _conv_dx(layer, dout, stride_in_backward):
    """dx by stamping dY·W back window by window, with a planted stride if asked."""
    x = layer._saved()
    K, p = layer.kernel_size, layer.padding
    s = stride_in_backward
    N, C, H, W = x.shape
    w = layer.params["weight"]
    dxp = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=x.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dxp[:, :, i * s:i * s + K, j * s:j * s + K] += np.einsum(
                "nf,fcab->ncab", dout[:, :, i, j], w)
    return dxp[:, :, p:p + H, p:p + W]


class StrideForgottenConv2d(nn.Conv2d):
    def backward(self, dout):
        super().backward(dout)
        return _conv_dx(self, dout, 1)  # planted: stride 1 in backward


class BorderConv2d(nn.Conv2d):
    def backward(self, dout):
        super().backward(dout)
        x = self._saved()
        K, p, s = self.kernel_size, self.padding, self.stride
        H, W = x.shape[2:]
        dx = np.zeros_like(x)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                r, c = i * s - p, j * s - p
                if r < 0 or c < 0 or r + K > H or c + K > W:
                    continue  # planted: windows that overlap the padding give nothing back
                dx[:, :, r:r + K, c:c + K] += np.einsum("nf,fcab->ncab", dout[:, :, i, j],
                                                        self.params["weight"])
        return dx


class OutputPaddingConvTranspose2d(nn.ConvTranspose2d):
    def backward(self, dout):
        dx = super().backward(dout)
        op = self.output_padding
        if op:  # planted: the output_padding rows and columns dropped from db
            self.grads["bias"][...] = dout[:, :, :-op, :-op].sum(axis=(0, 2, 3))
        return dx


class NoHalfKL(Reparameterize):
    def backward(self, dout):
        m, h, eps, v, s = self._saved()
        dz, dkl = np.split(dout, 2, axis=1)
        dm = dz + 2 * dkl * m  # planted: the ½ of the KL lost in backward
        dv = dz * eps / (2 * s) + dkl * (1 - 1 / v)
        return np.concatenate([dm, dv * sigmoid(h)], axis=1)


class NoHalfKLForward(Reparameterize):
    def forward(self, x):
        y = super().forward(x)
        y[:, y.shape[1] // 2:] *= 2  # planted
        return y


class SqrtDerivative(Reparameterize):
    def backward(self, dout):
        m, h, eps, v, s = self._saved()
        dz, dkl = np.split(dout, 2, axis=1)
        dv = dz * eps / s + dkl * 0.5 * (1 - 1 / v)  # planted: d√v/dv taken as 1/√v
        return np.concatenate([dz + dkl * m, dv * sigmoid(h)], axis=1)


class NoBiasCorrectionAdam(Adam):
    def step(self):
        self.t += 1
        for (p, g), m, v in zip(self.params, self.m, self.v, strict=True):
            m[...] = self.beta1 * m + (1 - self.beta1) * g
            v[...] = self.beta2 * v + (1 - self.beta2) * g * g
            p -= self.lr * m / (np.sqrt(v) + self.eps)  # planted: m, v used as they are


class PlainAdam:
    """A learner's correct Adam, written from the paper, with no checkpoint methods."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.lr, (self.beta1, self.beta2), self.eps = float(lr), betas, float(eps)
        self.t = 0
        self.m = [np.zeros_like(p) for p, _ in self.params]
        self.v = [np.zeros_like(p) for p, _ in self.params]

    def step(self):
        self.t += 1
        for (p, g), m, v in zip(self.params, self.m, self.v, strict=True):
            m[...] = self.beta1 * m + (1 - self.beta1) * g
            v[...] = self.beta2 * v + (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1**self.t)
            v_hat = v / (1 - self.beta2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


# -- wrong code that passed (issue 22, part 2) -------------------------------------------
class Float64Conv2d(nn.Conv2d):
    use_kernels = False

    def forward(self, x):
        return super().forward(x).astype(np.float64)  # planted: always float64


class Float32DxDense(nn.Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        return dx.astype(np.float32)  # planted


def float32_gradient(f, x, h=1e-5):
    return central_differences(f, x, h).astype(np.float32)  # planted


class OverflowingSoftplus(nn.Softplus):
    use_kernels = False

    def backward(self, dout):
        x = self._saved()
        return dout / (1 + np.exp(-x))  # planted: exp(1000) at x = −1000


class NaiveSoftplusReparameterize(Reparameterize):
    def forward(self, x):
        y = super().forward(x)
        np.log(1 + np.exp(x[:, x.shape[1] // 2:]))  # planted: the naive softplus, exp(1000)
        return y


class ExitingDense(nn.Dense):
    def forward(self, x):
        import sys

        sys.exit(0)  # planted: the learner's code ends the process


class EfficientFormAdam(Adam):
    """The paper's "efficient" form, ε not rescaled (planted: the ε convention)."""

    def step(self):
        self.t += 1
        for (p, g), m, v in zip(self.params, self.m, self.v, strict=True):
            m[...] = self.beta1 * m + (1 - self.beta1) * g
            v[...] = self.beta2 * v + (1 - self.beta2) * g * g
            a = self.lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
            p -= a * m / (np.sqrt(v) + self.eps)


# -- hints that pointed the wrong way (issue 22, part 3) ---------------------------------------
class ELUWithoutAlpha(nn.ELU):
    use_kernels = False

    def backward(self, dout):
        x = self._saved()
        return dout * np.where(x > 0, 1.0, np.exp(np.minimum(x, 0)))  # planted: α forgotten


class ELUInPlace(nn.ELU):
    use_kernels = False

    def forward(self, x):
        y = super().forward(x.copy())
        x[...] = y  # planted: the caller's x overwritten
        return y


class FlippedKernelConv2d(nn.Conv2d):
    """A true convolution: the kernel flipped in both spatial axes (planted)."""

    use_kernels = False

    def forward(self, x):
        w = self.params["weight"]
        saved = w.copy()
        w[...] = saved[:, :, ::-1, ::-1]
        try:
            return super().forward(x)
        finally:
            w[...] = saved


class NoVariancePathBatchNorm(nn.BatchNorm2d):
    """Training-mode dx through x and μ, the variance's path left out (planted)."""

    use_kernels = False

    def backward(self, dout):
        dx = super().backward(dout)
        (x, _), inv_std, training = self._saved()
        if not training:
            return dx
        d = dout * self.params["weight"][None, :, None, None]
        return inv_std[None, :, None, None] * (d - d.mean(axis=(0, 2, 3), keepdims=True))


class TransposedDxDense(nn.Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        return dx.T.copy()  # planted: dx with its axes swapped


class WrongBiasChannelConv2d(nn.Conv2d):
    use_kernels = False

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["bias"][0] *= 2  # planted: channel 0 of db only
        return dx


class WrongRowDense(nn.Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["weight"][1] *= 1.5  # planted: row 1 of dW only
        return dx


class WrongChannelBatchNorm(nn.BatchNorm2d):
    use_kernels = False

    def backward(self, dout):
        dx = super().backward(dout)
        if self._saved()[2]:  # training only
            dx[:, 1] *= 1.1  # planted: channel 1 of dx, in training mode
        return dx


class OutputPaddingForwardConvTranspose2d(nn.ConvTranspose2d):
    use_kernels = False

    def forward(self, x):
        y = super().forward(x)
        op = self.output_padding
        if op:
            y[:, :, -op:, :] = 0  # planted: the output_padding rows left at zero, no bias
        return y


# -- wrong code the fixed cases pass and the random configurations fail ------------------
class ShapeKeyedAdam(PlainAdam):
    """The moments kept in a dict keyed by the parameter's shape (planted: two parameters
    of one shape, as a model's biases of one width, share one m and one v). Right when every
    shape differs, as in the fixed cases."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr, betas, eps)
        self.m = {p.shape: np.zeros_like(p) for p, _ in self.params}
        self.v = {p.shape: np.zeros_like(p) for p, _ in self.params}

    def step(self):
        self.t += 1
        for p, g in self.params:
            m, v = self.m[p.shape], self.v[p.shape]
            m[...] = self.beta1 * m + (1 - self.beta1) * g
            v[...] = self.beta2 * v + (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1**self.t)
            v_hat = v / (1 - self.beta2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class SoftplusCutAt10(Reparameterize):
    """softplus(h) taken as h above h = 10, the usual overflow guard with too low a cut
    (planted: softplus(10) − 10 = 4.5e-5). Right wherever |h| < 10, as in the fixed cases,
    and at ±30 and ±1000, where softplus(h) is h or 0 to the last digit."""

    def forward(self, x):
        zd = x.shape[1] // 2
        m, h = x[:, :zd], x[:, zd:]
        v = np.where(h > 10, h, np.log1p(np.exp(np.minimum(h, 10)))) + 1e-8
        s = np.sqrt(v)
        self.cache = (m, h, self.eps, v, s)
        return np.concatenate([m + s * self.eps, 0.5 * (v + m * m - 1 - np.log(v))], axis=1)
