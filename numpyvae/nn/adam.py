"""Adam (Kingma & Ba, 2015, Algorithm 1), as PyTorch's ``torch.optim.Adam`` computes it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..kernels import elementwise


class Adam:
    """Adam over (param, grad) pairs; each ``step()`` updates the params in place.

    With g the gradient and t the step count (starting at 1):
        m ← β₁ m + (1 − β₁) g                  first moment (mean of g)
        v ← β₂ v + (1 − β₂) g²                 second moment (mean of g²)
        m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)    bias correction: m, v start at 0
        θ ← θ − lr · m̂ / (√v̂ + eps)

    The optimizer keeps references to the pairs: layers overwrite their grads in
    place, so ``step()`` always sees the latest backward pass. ``lr`` may be
    changed between steps.

    ``step()`` runs one fused numba pass per parameter array
    (``numpyvae.kernels.elementwise.adam_update``) unless ``use_kernels`` is
    False; ``_update_numpy`` is the same update in NumPy, operation for
    operation, and the kernel's results are bitwise the same.
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
            p, g = pair
            if p.shape != g.shape:
                raise ValueError(
                    f"Adam: pair {i} has param shape {p.shape} but grad shape {g.shape}"
                )
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
        # flat views for the kernel, where all four arrays are contiguous and of one float dtype
        self._flat = [_flat_views(p, g, m, v)
                      for (p, g), m, v in zip(self.params, self.m, self.v, strict=True)]

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
        correction1 = 1.0 - self.beta1**self.t
        correction2 = 1.0 - self.beta2**self.t
        for (p, g), m, v, flat in zip(self.params, self.m, self.v, self._flat, strict=True):
            if self.use_kernels and flat is not None:
                elementwise.adam_update(*flat, self.beta1, self.beta2, correction1, correction2,
                                        self._lr, self.eps)
            else:
                self._update_numpy(p, g, m, v, correction1, correction2)

    def _update_numpy(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
                      correction1: float, correction2: float) -> None:
        """The update of the class docstring, in NumPy: the reference the kernel matches."""
        b1, b2 = self.beta1, self.beta2
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        m_hat = m / correction1
        v_hat = v / correction2
        p -= self._lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state_dict(self) -> dict[str, Any]:
        """The state a checkpoint needs, as a flat dict ready for ``np.savez(**state)``:
        ``t`` (int), and ``m.0``, ``m.1``, …, ``v.0``, ``v.1``, … (copies, in param order).
        """
        state: dict[str, Any] = {"t": self.t}
        for i, (m, v) in enumerate(zip(self.m, self.v, strict=True)):
            state[f"m.{i}"] = m.copy()
            state[f"v.{i}"] = v.copy()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from ``state_dict()`` output (or an ``np.load`` of it), writing in place.

        Everything is checked before anything is written, so a mismatched state
        leaves the optimizer untouched.
        """
        n = len(self.params)
        expected = {"t"} | {f"{k}.{i}" for k in "mv" for i in range(n)}
        got = set(state.keys())
        if got != expected:
            raise ValueError(
                f"Adam: state does not fit these {n} params: missing {sorted(expected - got)}, "
                f"unexpected {sorted(got - expected)}"
            )
        for k, arrays in (("m", self.m), ("v", self.v)):
            for i, a in enumerate(arrays):
                if np.shape(state[f"{k}.{i}"]) != a.shape:
                    raise ValueError(
                        f"Adam: {k}.{i} has shape {np.shape(state[f'{k}.{i}'])} in the state, "
                        f"expected {a.shape}"
                    )
        t = int(state["t"])
        if t < 0:
            raise ValueError(f"Adam: step count t must be non-negative, got {t}")
        for k, arrays in (("m", self.m), ("v", self.v)):
            for i, a in enumerate(arrays):
                a[...] = state[f"{k}.{i}"]
        self.t = t


def _flat_views(*arrays: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """1-D views of arrays that share a float dtype and are C-contiguous, else None."""
    dtype = arrays[0].dtype
    if dtype not in (np.float32, np.float64):
        return None
    if not all(a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable for a in arrays):
        return None
    return tuple(a.reshape(-1) for a in arrays)
