"""Step 5 — BatchNorm2d: per-channel normalisation, training and eval mode.

Read first: README "Reading order" item 6; the derivation is below. Grade it with:
    python -m numpyvae learn check batchnorm2d
Once it passes, compare yours with the package's numpyvae/nn/batchnorm2d.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyvae.nn import Layer


class BatchNorm2d(Layer):
    """y = γ x̂ + β with x̂ = (x − μ)/√(var + eps), per channel c.

    Shapes: x, y (N, C, H, W); weight γ, bias β, running_mean, running_var (C,).

    Training mode (``self.training``): μ and var are this batch's mean and biased variance
    over the N·H·W values of each channel, and the running statistics move towards
    them: running ← (1 − momentum)·running + momentum·batch value, where the variance's
    batch value is the unbiased one (× M/(M − 1), M = N·H·W). Write into
    ``self.buffers[...]`` in place.
    Eval mode: μ and var are the running statistics; nothing moves.

    backward(dout) returns dx (N, C, H, W) by the path forward took (training or eval) and
    writes grads["weight"], grads["bias"] (C,) in place. The contract is in
    numpyvae/nn/layer.py (check_input, _saved, check_dout).

    Derivation, per channel, with M = N·H·W values x_k, σ = √(var + eps):
        μ = Σ_k x_k / M,   var = Σ_k (x_k − μ)² / M,   x̂_k = (x_k − μ)/σ,   y_k = γ x̂_k + β.
    - paths in training: x_k reaches y_k directly (through x_k − μ), and reaches every y_l
      of its channel through μ and through var (both computed from every x of the channel).
    - in eval: μ and var are constants (the buffers); only the direct path is left.
    Questions: what are ∂x̂_l/∂x_k directly, ∂μ/∂x_k, ∂var/∂x_k and ∂var/∂μ? Summed over the
    three paths and over l, what is dL/dx_k? What do dγ and dβ sum over?
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype: Any = np.float32) -> None:
        super().__init__(dtype)
        self.num_features = int(num_features)
        self.eps, self.momentum = float(eps), float(momentum)
        self.add_param("weight", np.ones(num_features))
        self.add_param("bias", np.zeros(num_features))
        self.buffers["running_mean"] = np.zeros(num_features, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=self.dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) → y (N, C, H, W)."""
        raise NotImplementedError("BatchNorm2d.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, H, W) → dx (N, C, H, W); writes grads["weight"], grads["bias"]."""
        raise NotImplementedError("BatchNorm2d.backward")
