"""Step 2 — activations: ELU, Softplus, Sigmoid.

Read first: README "Reading order" item 3; the derivation is in each class below. Grade it
with:  python -m numpyvae learn check activations
Once it passes, compare yours with the package's numpyvae/nn/activations.py.

Each y_k depends on x_k only, so dL/dx_k = dL/dy_k · f′(x_k): one path per entry.
The check raises on overflow, invalid (inf − inf, 0·inf) and division by zero, in forward
and in backward, at x = ±1000: never exponentiate a large positive number. Underflow
(e^−1000 → 0) is fine.
"""

from __future__ import annotations

import numpy as np

from numpyvae.nn import Layer


class ELU(Layer):
    """y = x for x > 0, α(eˣ − 1) otherwise. Shapes: x, y (N, *), any float dtype.

    forward(x) starts with ``self.check_input(x)`` and keeps what backward needs in
    ``self.cache``; backward(dout) starts with ``x = self._saved()`` and returns
    dx = dout ⊙ f′(x). No parameters.

    Questions: what is f′ on each side of 0, and which factors does the x ≤ 0 side carry?
    Does your eˣ ever see a large positive x (in forward and in backward)?
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError("ELU.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError("ELU.backward")


class Softplus(Layer):
    """y = log(1 + eˣ). Shapes: x, y (N, *). The same contract as ELU.

    Questions: what is f′(x), and how can both f and f′ be written so that every exponent
    is ≤ 0 (think of x > 0 and x ≤ 0 separately, or of log(1 + eˣ) = x + log(1 + e⁻ˣ))?
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Softplus.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Softplus.backward")


class Sigmoid(Layer):
    """y = σ(x) = 1 / (1 + e⁻ˣ). Shapes: x, y (N, *). The same contract as ELU;
    backward may be written in terms of y instead of x.

    Questions: what is σ′ in terms of σ itself? Which form of σ keeps every exponent ≤ 0 for
    x > 0, and which for x ≤ 0?
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Sigmoid.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Sigmoid.backward")
