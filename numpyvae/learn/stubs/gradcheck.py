"""Step 0 — gradcheck: your own numerical gradient.

Read first: README "Reading order" item 5 and numpyvae/nn/gradcheck.py (its docstring states
the project's rule). Grade it with:  python -m numpyvae learn check gradcheck
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                       h: float = 1e-5) -> np.ndarray:
    """The gradient of a scalar function f at x, by central differences.

    f takes an array shaped like x and returns a float. x is float64, any shape.
    Return an array of x's shape whose entry i estimates ∂f/∂x_i by nudging x_i
    by h in each direction (all other entries unchanged).

    You may perturb x in place, but every entry must be back to its value when
    you return: the caller (and the next entry) must see x unchanged.

    The check grades this on functions with known gradients (error <= 1e-6 under
    the project's rule), and asks it to catch a Dense layer whose backward is 1% off.
    """
    raise NotImplementedError("numerical_gradient")
