"""Adam (Kingma & Ba, 2015, Algorithm 1), as PyTorch's ``torch.optim.Adam`` computes it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
                lr: float, beta1: float, beta2: float, eps: float) -> None:
    """Step t (from 1) of Algorithm 1 on one param array p with gradient g, in place."""
    m *= beta1
    m += (1.0 - beta1) * g            # m ← β₁ m + (1 − β₁) g     running mean of g
    v *= beta2
    v += (1.0 - beta2) * (g * g)      # v ← β₂ v + (1 − β₂) g²    running mean of g²
    m_hat = m / (1.0 - beta1**t)      # bias correction: m and v start at 0, so their
    v_hat = v / (1.0 - beta2**t)      # first averages are too small by (1 − βᵗ)
    p -= lr * m_hat / (np.sqrt(v_hat) + eps)


class Adam:
    """Adam over (param, grad) pairs; each ``step()`` runs ``adam_update`` on every pair.

    The optimizer keeps references to the pairs: layers overwrite their grads in
    place, so ``step()`` always sees the latest backward pass. ``lr`` may be
    changed between steps. ``t``, ``m`` and ``v`` are the state a checkpoint saves
    (``numpyvae/training/optimizer_state.py``).

    ``step()`` runs one fused numba pass per param array
    (``numpyvae/kernels/adam.py``) unless ``use_kernels`` is False; its results are
    bitwise ``adam_update``'s (tested).
    """

    use_kernels = True

    def __init__(
        self,
        params: Iterable[tuple[np.ndarray, np.ndarray]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam: expected a non-empty list of (param, grad) pairs, got none")
        for i, pair in enumerate(self.params):
            if len(pair) != 2 or not all(isinstance(a, np.ndarray) for a in pair):
                raise ValueError(f"Adam: item {i} should be a (param, grad) pair of arrays")
            if pair[0].shape != pair[1].shape:
                raise ValueError(f"Adam: pair {i} has param shape {pair[0].shape} but grad "
                                 f"shape {pair[1].shape}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Adam: betas must each be in [0, 1), got {betas}")
        if eps < 0:
            raise ValueError(f"Adam: eps must be non-negative, got {eps}")
        self.lr = lr
        # python floats: a NumPy float64 scalar would upcast float32 arithmetic
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        self.t = 0
        self.m = [np.zeros_like(p) for p, _ in self.params]
        self.v = [np.zeros_like(p) for p, _ in self.params]
        self._kernel = None

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"Adam: lr must be positive, got {value}")
        self._lr = float(value)

    def step(self) -> None:
        """One update of every param from the grads as they are now."""
        self.t += 1
        args = (self.t, self._lr, self.beta1, self.beta2, self.eps)
        if self.use_kernels:
            return self._fused().step(*args)
        for (p, g), m, v in zip(self.params, self.m, self.v, strict=True):
            adam_update(p, g, m, v, *args)

    def _fused(self) -> Any:
        """The kernel that runs the same update fused, made at the first step that uses it."""
        if self._kernel is None:
            from ..kernels.adam import FusedAdam  # numba loads at the first fused step

            self._kernel = FusedAdam(self.params, self.m, self.v, fallback=adam_update)
        return self._kernel
