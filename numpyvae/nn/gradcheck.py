"""Check hand-written gradients against central finite differences.

For a layer y = f(x; θ) we check the scalar  L = Σ G ⊙ y  with a fixed random
G ~ N(0, 1). Then dL/dy = G, so ``layer.backward(G)`` must return dL/dx and
write dL/dθ, and each entry can be compared with

    n = (L(t + h) − L(t − h)) / 2h,      h = 1e-5, in float64.

(Σ y would be a poor choice: BatchNorm's output sums to a constant per channel,
so its input gradient for Σ y is exactly zero and would test nothing.)

The error of an entry is  |a − n| / max(|a| + |n|, 1e-3 · S),  where S is the
largest |n| over every entry checked in the call (input and all parameters).
The floor keeps an exact-zero gradient, whose finite difference is pure
rounding noise, from counting as a 100% error; a real mistake of 1% still
shows as an error near 5e-3, far above the 1e-6 tolerance.

Run ``python -m numpyvae.gradcheck`` for a table over every layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

STEP = 1e-5
TOLERANCE = 1e-6
MAX_ENTRIES = 500


@dataclass
class GradResult:
    """The outcome for one tensor: its name, entries checked, and the worst error."""

    name: str
    checked: int
    max_error: float

    @property
    def passed(self) -> bool:
        return self.max_error <= TOLERANCE


def _sample_indices(size: int, max_entries: int, rng: np.random.Generator) -> np.ndarray:
    if size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, max_entries, replace=False))


def check_gradients(
    loss: Callable[[], float],
    tensors: dict[str, tuple[np.ndarray, np.ndarray]],
    step: float = STEP,
    max_entries: int = MAX_ENTRIES,
    seed: int = 0,
) -> list[GradResult]:
    """Compare analytic gradients with central differences of ``loss()``.

    ``tensors`` maps a name to (array, analytic gradient); ``loss`` re-reads the
    arrays, so perturbing an entry in place changes what it computes. At most
    ``max_entries`` entries of each tensor are checked, sampled with ``seed``.
    """
    rng = np.random.default_rng(seed)
    numeric: dict[str, np.ndarray] = {}
    analytic: dict[str, np.ndarray] = {}
    for name, (arr, grad) in tensors.items():
        if arr.dtype != np.float64:
            raise ValueError(f"gradcheck: {name} must be float64 for finite differences, "
                             f"got {arr.dtype}")
        if grad.shape != arr.shape:
            raise ValueError(f"gradcheck: gradient of {name} has shape {grad.shape}, "
                             f"expected {arr.shape}")
        flat = arr.reshape(-1)  # a view: writing into it perturbs arr
        if not np.shares_memory(flat, arr):
            raise ValueError(f"gradcheck: {name} must be contiguous so it can be perturbed")
        idx = _sample_indices(arr.size, max_entries, rng)
        n = np.empty(idx.size)
        for j, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + step
            plus = loss()
            flat[i] = old - step
            minus = loss()
            flat[i] = old
            n[j] = (plus - minus) / (2 * step)
        numeric[name] = n
        analytic[name] = grad.reshape(-1)[idx].astype(np.float64)

    scale = max((float(np.max(np.abs(n))) for n in numeric.values() if n.size), default=0.0)
    return [GradResult(name, n.size, rule_error(analytic[name], n, scale))
            for name, n in numeric.items()]


def rule_errors(a: np.ndarray, n: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Each entry's error under the rule above (S: ``scale``, else the largest |n| given)."""
    if scale is None:
        scale = float(np.max(np.abs(n))) if n.size else 0.0
    floor = max(1e-3 * scale, np.finfo(np.float64).tiny)
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)


def rule_error(a: np.ndarray, n: np.ndarray, scale: float | None = None) -> float:
    """The worst entry's ``rule_errors`` (0 for no entries)."""
    return float(rule_errors(a, n, scale).max(initial=0.0))


def gradcheck_layer(layer, x: np.ndarray, seed: int = 0, max_entries: int = MAX_ENTRIES
                    ) -> list[GradResult]:
    """Check dL/dx and every dL/dparam of ``layer`` at input ``x`` (float64).

    A layer with ``needs_input_grad = False`` returns no dL/dx; then only its
    parameters are checked. Buffers (BatchNorm's running statistics) are restored afterwards, so the
    many forward calls leave the layer as it was.
    """
    if x.dtype != np.float64:
        raise ValueError(f"gradcheck_layer: x must be float64, got {x.dtype}")
    x = np.ascontiguousarray(x).copy()
    saved = {k: v.copy() for k, v in layer.named_arrays().items()}
    rng = np.random.default_rng(seed)
    y = layer.forward(x)
    G = rng.standard_normal(y.shape)
    dx = layer.backward(G)
    if dx is None and layer.needs_input_grad:
        raise ValueError(f"gradcheck_layer: {type(layer).__name__}.backward returned no input "
                         "gradient, but its needs_input_grad is True")
    tensors = {} if dx is None else {"input": (x, dx.copy())}
    for pname, p, g in layer.named_parameters():
        tensors[pname] = (p, g.copy())

    def loss() -> float:
        return float(np.sum(G * layer.forward(x)))

    try:
        return check_gradients(loss, tensors, max_entries=max_entries, seed=seed + 1)
    finally:
        for k, v in layer.named_arrays().items():
            v[...] = saved[k]
