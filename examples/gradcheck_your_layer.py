"""Write your own layer and check its backward pass against finite differences.

A layer needs forward(x), which stores what backward needs, and backward(dy),
which returns dL/dx given dL/dy. gradcheck_layer perturbs every input entry
by ±h, measures how L = Σ G ⊙ y changes, and compares with your backward.

    python examples/gradcheck_your_layer.py
"""

import sys

import numpy as np

from numpyvae.nn import Layer
from numpyvae.nn.gradcheck import gradcheck_layer


class LeakyReLU(Layer):
    """y = x if x > 0 else slope·x, elementwise. Shapes: any."""

    def __init__(self, slope: float = 0.01) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.cache = x
        return np.where(x > 0, x, self.slope * x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dy/dx is 1 where x > 0 and slope elsewhere: dx = dy ⊙ (1 or slope)."""
        x = self._saved()
        return dout * np.where(x > 0, 1.0, self.slope).astype(x.dtype)


class Tanh(Layer):
    """y = tanh(x), elementwise. Shapes: any."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.tanh(x)
        self.cache = y
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """tanh' = 1 − tanh²: dx = dy ⊙ (1 − y²)."""
        y = self._saved()
        return dout * (1 - y * y)


class BuggyTanh(Tanh):
    """The same layer with a classic slip: the derivative written as 1 − y."""

    def backward(self, dout: np.ndarray) -> np.ndarray:
        y = self._saved()
        return dout * (1 - y)


rng = np.random.default_rng(0)
# Keep inputs away from LeakyReLU's kink at 0, where the finite difference straddles two slopes.
x = rng.standard_normal((4, 6))
x[np.abs(x) < 1e-3] = 0.5
failed = 0
for layer in (LeakyReLU(), Tanh(), BuggyTanh()):
    for r in gradcheck_layer(layer, x):
        verdict = "PASS" if r.passed else "FAIL"
        name = type(layer).__name__
        print(f"{name:10s} d{r.name:6s} max rel. error {r.max_error:.2e}  {verdict}")
        failed += (not r.passed) != isinstance(layer, BuggyTanh)
print("BuggyTanh should fail, and did." if not failed else "unexpected result")
sys.exit(1 if failed else 0)
