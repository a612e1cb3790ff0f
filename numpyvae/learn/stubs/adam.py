"""Step 7 — adam: the optimizer.

Read first: README "Reading order" item 8 and Kingma & Ba 2015, Algorithm 1; the update is
below. Grade it with:  python -m numpyvae learn check adam
Once it passes, compare yours with the package's numpyvae/nn/adam.py.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class Adam:
    """Adam over (param, grad) pairs; each ``step()`` updates every param in place.

    ``params`` is a list of (param, grad) array pairs. The layers overwrite each grad in
    place after every backward, so ``step()`` reads them as they are now, and must write
    the params in place too (``p -= ...`` or ``p[...] = ...``, never rebinding).
    ``self.t`` counts the steps (the first step has t = 1). ``self.m`` and ``self.v``
    hold the running first and second moments of each gradient. ``lr`` may be changed
    between steps. The check compares your params with numpyvae.nn.Adam's after every step,
    in float64 and in float32.

    The update, for each (param θ, grad g), at step t:
        m ← β₁ m + (1 − β₁) g,    v ← β₂ v + (1 − β₂) g²,
        m̂ = m / (1 − β₁ᵗ),        v̂ = v / (1 − β₂ᵗ),       θ ← θ − lr · m̂ / (√v̂ + ε).
    Questions: why does m start too small (what is E[m] after t steps, from m = 0)? Where
    exactly does ε go (beside √v̂: the paper's "efficient" variant puts it beside √v, which
    is a different ε)?
    """

    def __init__(self, params: Iterable[tuple[np.ndarray, np.ndarray]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr = float(lr)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        self.t = 0
        self.m = [np.zeros_like(p) for p, _ in self.params]
        self.v = [np.zeros_like(p) for p, _ in self.params]

    def step(self) -> None:
        """One update of every param from its grad."""
        raise NotImplementedError("Adam.step")
