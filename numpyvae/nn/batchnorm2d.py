"""Batch normalisation over the (N, H, W) axes of each channel, as PyTorch's BatchNorm2d."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layer import Layer
from .lazy_kernels import lazy

kernels = lazy()

AXES = (0, 2, 3)  # every axis but the channel: statistics are per channel


def _per_channel(v: np.ndarray, ndim: int = 4) -> np.ndarray:
    """(C,) → (1, C, 1, 1), so a per-channel value broadcasts against (N, C, H, W)
    (or (1, C, 1) against (N, C, L) when ndim is 3)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _other_axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channel axis 1: (0, 2, 3) for (N, C, H, W), (0, 2) for (N, C, L)."""
    return (0,) + tuple(range(2, x.ndim))


# ----------------------------------------------------------------------------
# The backward pass in NumPy, as a learner derives it (and as the layer runs it
# with use_kernels off). x, dy (N, C, H, W) or (N, C, L); mean, inv_std, gamma (C,).
# Each channel has M = N·H·W values; x̂ = (x − μ)·σ⁻¹, σ = √(var + eps), y = γx̂ + β.
# ----------------------------------------------------------------------------
def batchnorm_backward_staged(x: np.ndarray, dy: np.ndarray, mean: np.ndarray,
                              inv_std: np.ndarray, gamma: np.ndarray, training: bool
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dγ, dβ), undoing the forward one node at a time, last node first (CS231n's
    staged derivation). The forward, per channel, was:
        μ = Σx/M,  xc = x − μ,  var = Σxc²/M,  inv_std = (var + eps)^(−½),
        x̂ = xc·inv_std,  y = γx̂ + β.
    In eval mode μ and var are constants, so only x̂'s xc branch carries a gradient."""
    axes, c = _other_axes(x), (lambda v: _per_channel(v, x.ndim))
    xc = x - c(mean)
    x_hat = xc * c(inv_std)
    dbeta = dy.sum(axis=axes)  # forward was: y = γ·x̂ + β
    dgamma = (dy * x_hat).sum(axis=axes)  # forward was: y = γ·x̂ + β
    dx_hat = dy * c(gamma)  # forward was: y = γ·x̂ + β
    if not training:
        return dx_hat * c(inv_std), dgamma, dbeta  # forward was: x̂ = (x − μ)·inv_std
    m = x.size // x.shape[1]
    dxc = dx_hat * c(inv_std)  # forward was: x̂ = xc·inv_std (its xc branch)
    dinv_std = (dx_hat * xc).sum(axis=axes)  # forward was: x̂ = xc·inv_std (its inv_std branch)
    dvar = dinv_std * -0.5 * inv_std**3  # forward was: inv_std = (var + eps)^(−½)
    dxc += c(dvar) * 2.0 * xc / m  # forward was: var = Σxc²/M
    dmean = -dxc.sum(axis=axes)  # forward was: xc = x − μ (its μ branch)
    dx = dxc + c(dmean) / m  # forward was: xc = x − μ (its x branch) and μ = Σx/M
    return dx, dgamma, dbeta


def batchnorm_backward_numpy(x: np.ndarray, dy: np.ndarray, mean: np.ndarray,
                             inv_std: np.ndarray, gamma: np.ndarray, training: bool
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The staged result, simplified: Σ(x − μ) = 0 drops dmean's second term, and the rest
    collects into one line per channel:
        dx = (γσ⁻¹/M)·(M·dy − Σdy − x̂·Σ(dy·x̂)),   dγ = Σ dy·x̂,   dβ = Σ dy.
    Eval mode: dx = γσ⁻¹·dy. ``kernels.batchnorm_backward`` computes the same, fused.
    """
    axes, c = _other_axes(x), (lambda v: _per_channel(v, x.ndim))
    x_hat = (x - c(mean)) * c(inv_std)
    sum_dy = dy.sum(axis=axes)
    sum_dy_xhat = (dy * x_hat).sum(axis=axes)
    scale = c(gamma * inv_std)
    if not training:
        return scale * dy, sum_dy_xhat, sum_dy
    m = x.size // x.shape[1]
    dx = (scale / m) * (m * dy - c(sum_dy) - x_hat * c(sum_dy_xhat))
    return dx, sum_dy_xhat, sum_dy


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
    ``numpyvae.kernels.batchnorm``; set it to False on a layer (or the class)
    to run the plain NumPy reference, ``_forward_numpy`` and
    ``batchnorm_backward_numpy`` above. Both paths keep x (not x̂) for backward.
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
        self._check_batch(x)
        if self.use_kernels:
            return self._forward_kernels(x)
        return self._forward_numpy(x)

    def _check_batch(self, x: np.ndarray) -> None:
        self.check_input(x, (None, self.num_features, None, None))
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] < 2:
            raise ValueError(
                f"BatchNorm2d: training needs more than 1 value per channel, "
                f"got input of shape {x.shape}"
            )

    def _forward_numpy(self, x: np.ndarray) -> np.ndarray:
        if self.training:
            m = x.shape[0] * x.shape[2] * x.shape[3]
            mean = x.mean(axis=AXES)
            var = x.var(axis=AXES)  # biased: what normalises this batch
            self._update_running_stats(mean, var * (m / (m - 1)))
        else:
            mean = self.buffers["running_mean"].copy()  # a later training step may change it
            var = self.buffers["running_var"]
        inv_std = 1.0 / np.sqrt(var + self.eps)
        x_hat = (x - _per_channel(mean)) * _per_channel(inv_std)
        self.cache = ((x, mean), inv_std, self.training)  # x̂ is recomputed in backward
        return _per_channel(self.params["weight"]) * x_hat + _per_channel(self.params["bias"])

    def _forward_kernels(self, x: np.ndarray) -> np.ndarray:
        x3 = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)  # (N, C, H·W)
        mean, inv_std = self._kernel_statistics(x3)
        y = kernels.normalize(x3, mean, self.params["weight"] * inv_std, self.params["bias"])
        self.cache = ((x3.reshape(x.shape), mean), inv_std, self.training)
        return y.reshape(x.shape)

    def _kernel_statistics(self, x3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(μ, 1/σ) for x3 (N, C, H·W) by the kernels; in training, moves the running stats."""
        if self.training:
            m = x3.shape[0] * x3.shape[2]
            mean, var = kernels.batch_moments(x3)
            self._update_running_stats(mean, var * (m / (m - 1)))
        else:
            mean = self.buffers["running_mean"].copy()  # a later training step may change it
            var = self.buffers["running_var"]
        return mean, 1.0 / np.sqrt(var + self.eps)

    def _update_running_stats(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        # In place, so checkpoints and anyone holding the arrays see the update.
        for name, batch_value in (("running_mean", mean), ("running_var", unbiased_var)):
            running = self.buffers[name]
            running *= 1.0 - self.momentum
            running += self.momentum * batch_value

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, H, W) → dx (N, C, H, W); writes dγ = Σ dy·x̂ and dβ = Σ dy.

        ``batchnorm_backward_staged`` derives it; ``batchnorm_backward_numpy`` is the
        compact form, and ``kernels.batchnorm_backward`` the same, fused.
        """
        (x, mean), inv_std, was_training = self._saved()
        self.check_dout(dout, x.shape, x.dtype)
        backward = kernels.batchnorm_backward if self.use_kernels else batchnorm_backward_numpy
        dx, dgamma, dbeta = backward(x, dout, mean, inv_std, self.params["weight"],
                                     was_training)
        self.grads["weight"][...] = dgamma
        self.grads["bias"][...] = dbeta
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
