"""Batch normalisation over the (N, H, W) axes of each channel, as PyTorch's BatchNorm2d."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Layer

AXES = (0, 2, 3)  # every axis but the channel: statistics are per channel


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
    """

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
        """x (N, C, H, W) → y (N, C, H, W)."""
        self._check_input(x, 4, f"(N, {self.num_features}, H, W)")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm2d: expected input of shape (N, {self.num_features}, H, W), "
                f"got shape {x.shape}"
            )
        if self.training:
            m = x.shape[0] * x.shape[2] * x.shape[3]
            if m < 2:
                raise ValueError(
                    f"BatchNorm2d: training needs more than 1 value per channel, "
                    f"got input of shape {x.shape}"
                )
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

    def _update_running_stats(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        # In place, so checkpoints and anyone holding the arrays see the update.
        for name, batch_value in (("running_mean", mean), ("running_var", unbiased_var)):
            running = self.buffers[name]
            running *= 1.0 - self.momentum
            running += self.momentum * batch_value

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, H, W) → dx (N, C, H, W).

        dγ = Σ dy·x̂,  dβ = Σ dy  (sums over N, H, W). Eval: dx = γ/σ · dy (μ, σ are constants).
        Train: μ and σ depend on x with ∂μ/∂x = 1/M, ∂σ/∂x = x̂/M, so
        dx = (γ/σ)/M · (M·dy − Σdy − x̂·Σ(dy·x̂)).
        """
        x_hat, inv_std, was_training = self._saved()
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

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
