"""Step 7 — adam: the optimizer.

Read first: README "Reading order" item 8 and numpyvae/nn/adam.py (``adam_update`` at its top
is the update, Kingma & Ba 2015, Algorithm 1). Grade it with:  python -m numpyvae learn check adam
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
    between steps. The check compares your params with numpyvae.nn.Adam's after every step.
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
