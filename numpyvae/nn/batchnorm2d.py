"""Batch normalisation over the (N, H, W) axes of each channel, as PyTorch's BatchNorm2d."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..kernels import elementwise
from .layer import Layer

AXES = (0, 2, 3)  # every axis but the channel: statistics are per channel


class _KernelSaved(NamedTuple):
    """What the kernel path keeps for backward in place of x̂ (recomputed from these)."""

    x3: np.ndarray  # the input as (N, C, H·W)
    mean: np.ndarray  # μ (C,)
    shape: tuple[int, ...]  # the input's (N, C, H, W)


def _per_channel(v: np.ndarray) -> np.ndarray:
    """(C,) → (1, C, 1, 1), so a per-channel value broadcasts against (N, C, H, W)."""
    return v.reshape(1, -1, 1, 1)


class BatchNorm2d(Layer):
    """y = γ x̂ + β  with  x̂ = (x − μ) / σ,  σ = √(var + eps), per channel.

    Shapes: x, y (N, C, H, W); weight γ, bias β, running_mean, running_var (C,).

    Training mode: μ and var are the batch's mean and biased variance over the
    M = N·H·W values of each channel. The running statistics (in ``buffers``)
    move towards them as PyTorch does:
        running_mean ← (1 − momentum)·running_mean + momentum·μ
        running_var  ← (1 − momentum)·running_var  + momentum·var·M/(M − 1)
    (the unbiased variance goes into the running estimate).
    Eval mode: μ, var are the running statistics, so the layer is a fixed affine map.

    ``use_kernels`` (default True) runs the fused numba kernels of
    ``numpyvae.kernels.elementwise``; set it to False on a layer (or the class)
    to run the plain NumPy reference, ``_forward_numpy``/``_backward_numpy``.
    """

    use_kernels = True

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__(dtype)
        if num_features < 1:
            raise ValueError(f"BatchNorm2d: num_features must be positive, got {num_features}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm2d: momentum must be in [0, 1], got {momentum}")
        if eps <= 0:
            raise ValueError(f"BatchNorm2d: eps must be positive, got {eps}")
        self.num_features = int(num_features)
        self.eps = float(eps)  # python floats keep float32 arithmetic in float32
        self.momentum = float(momentum)
        self.add_param("weight", np.ones(num_features))
        self.add_param("bias", np.zeros(num_features))
        self.buffers["running_mean"] = np.zeros(num_features, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=self.dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) → y (N, C, H, W).

        Runs the fused numba kernels unless ``use_kernels`` is False; ``_forward_numpy``
        below is the same computation in plain NumPy (the reference the tests hold it to).
        """
        self.check_input(x, (None, self.num_features, None, None))
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] < 2:
            raise ValueError(
                f"BatchNorm2d: training needs more than 1 value per channel, "
                f"got input of shape {x.shape}"
            )
        if self.use_kernels:
            return self._forward_kernels(x)
        return self._forward_numpy(x)

    def _forward_numpy(self, x: np.ndarray) -> np.ndarray:
        if self.training:
            m = x.shape[0] * x.shape[2] * x.shape[3]
            mean = x.mean(axis=AXES)
            var = x.var(axis=AXES)  # biased: what normalises this batch
            self._update_running_stats(mean, var * (m / (m - 1)))
        else:
            mean = self.buffers["running_mean"]
            var = self.buffers["running_var"]
        inv_std = 1.0 / np.sqrt(var + self.eps)
        x_hat = (x - _per_channel(mean)) * _per_channel(inv_std)
        self.cache = (x_hat, inv_std, self.training)
        return _per_channel(self.params["weight"]) * x_hat + _per_channel(self.params["bias"])

    def _forward_kernels(self, x: np.ndarray) -> np.ndarray:
        # x̂ is not stored: backward recomputes it from x, μ and 1/σ, which saves a
        # whole array written here and read back there
        x3 = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)  # (N, C, H·W)
        if self.training:
            m = x3.shape[0] * x3.shape[2]
            mean, var = elementwise.batch_moments(x3)
            self._update_running_stats(mean, var * (m / (m - 1)))
        else:
            mean = self.buffers["running_mean"].copy()  # a later training step may change it
            var = self.buffers["running_var"]
        inv_std = 1.0 / np.sqrt(var + self.eps)
        y = elementwise.bn_normalize(x3, mean, self.params["weight"] * inv_std,
                                     self.params["bias"])
        self.cache = (_KernelSaved(x3, mean, x.shape), inv_std, self.training)
        return y.reshape(x.shape)

    def _update_running_stats(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        # In place, so checkpoints and anyone holding the arrays see the update.
        for name, batch_value in (("running_mean", mean), ("running_var", unbiased_var)):
            running = self.buffers[name]
            running *= 1.0 - self.momentum
            running += self.momentum * batch_value

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, H, W) → dx (N, C, H, W), by the path forward took."""
        saved, inv_std, was_training = self._saved()
        if isinstance(saved, _KernelSaved):
            return self._backward_kernels(dout, saved, inv_std, was_training)
        return self._backward_numpy(dout, saved, inv_std, was_training)

    def _backward_numpy(self, dout: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray,
                        was_training: bool) -> np.ndarray:
        """dγ = Σ dy·x̂,  dβ = Σ dy  (sums over N, H, W). Eval: dx = γ/σ · dy (μ, σ are constants).
        Train: μ and σ depend on x with ∂μ/∂x = 1/M, ∂σ/∂x = x̂/M, so
        dx = (γ/σ)/M · (M·dy − Σdy − x̂·Σ(dy·x̂)).
        """
        gamma = self.params["weight"]
        sum_dy = dout.sum(axis=AXES)
        sum_dy_xhat = (dout * x_hat).sum(axis=AXES)
        self.grads["weight"][...] = sum_dy_xhat
        self.grads["bias"][...] = sum_dy
        scale = _per_channel(gamma * inv_std)
        if not was_training:
            return scale * dout
        m = dout.shape[0] * dout.shape[2] * dout.shape[3]
        return (scale / m) * (
            m * dout - _per_channel(sum_dy) - x_hat * _per_channel(sum_dy_xhat)
        )

    def _backward_kernels(self, dout: np.ndarray, saved: _KernelSaved, inv_std: np.ndarray,
                          was_training: bool) -> np.ndarray:
        """The same formula with x̂ = (x − μ)/σ written out, per channel:
        dx = a·dy + b·(x − μ) + d,  a = γ/σ,  b = −a·Σ(dy·x̂)/(M·σ),  d = −a·Σdy/M
        (b = d = 0 in eval mode).
        """
        x3, mean, shape = saved
        N, C, L = x3.shape
        if not isinstance(dout, np.ndarray) or dout.shape != shape:
            got = dout.shape if isinstance(dout, np.ndarray) else type(dout).__name__
            raise ValueError(f"BatchNorm2d.backward: expected dout of shape {shape}, got {got}")
        dy3 = np.ascontiguousarray(dout, dtype=x3.dtype).reshape(N, C, L)
        sum_dy, sum_dy_xc = elementwise.bn_grad_sums(x3, dy3, mean)
        sum_dy_xhat = sum_dy_xc * inv_std
        self.grads["weight"][...] = sum_dy_xhat
        self.grads["bias"][...] = sum_dy
        a = self.params["weight"] * inv_std
        if was_training:
            m = N * L
            b = a * inv_std * sum_dy_xhat * (-1.0 / m)
            d = a * sum_dy * (-1.0 / m)
        else:
            b = d = np.zeros_like(a)
        return elementwise.bn_grad_input(x3, dy3, mean, a, b, d).reshape(dout.shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
