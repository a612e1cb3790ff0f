"""Step 2 — activations: ELU, Softplus, Sigmoid.

Read first: README "Reading order" item 3 and numpyvae/nn/activations.py (where the math is
derived, and how to write each f so that nothing overflows). Grade it with:
    python -m numpyvae learn check activations
"""

from __future__ import annotations

import numpy as np

from numpyvae.nn import Layer


class ELU(Layer):
    """y = x for x > 0, α(eˣ − 1) otherwise. Shapes: x, y (N, *), any float dtype.

    forward(x) starts with ``self.check_input(x)`` and keeps what backward needs in
    ``self.cache``; backward(dout) starts with ``x = self._saved()`` and returns
    dx = dout ⊙ f′(x). No parameters. Never exponentiate a large positive number:
    the check feeds x = ±1000 with overflow turned into an error.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError("ELU.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError("ELU.backward")


class Softplus(Layer):
    """y = log(1 + eˣ). Shapes: x, y (N, *). The same contract as ELU."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Softplus.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Softplus.backward")


class Sigmoid(Layer):
    """y = σ(x) = 1 / (1 + e⁻ˣ). Shapes: x, y (N, *). The same contract as ELU;
    backward may be written in terms of y instead of x."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Sigmoid.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Sigmoid.backward")
