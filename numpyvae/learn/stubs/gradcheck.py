"""Step 0 — gradcheck: your own numerical gradient.

Read first: README "Reading order" item 5; the derivation is below. Grade it with:
    python -m numpyvae learn check gradcheck
Once it passes, compare yours with the package's numpyvae/nn/gradcheck.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                       h: float = 1e-5) -> np.ndarray:
    """The gradient of a scalar function f at x, by central differences.

    f takes an array shaped like x and returns a float. x is float64, of any shape and
    memory layout: it may be a view (a transposed array, a wider array's first columns).
    Return an array of x's shape whose entry i estimates ∂f/∂x_i by nudging x_i
    by h in each direction (all other entries unchanged).

    You may perturb x in place, but every entry must be back to its value when
    you return: the caller (and the next entry) must see x unchanged.

    Derivation: Taylor's f(x ± h·e_i) = f(x) ± h ∂f/∂x_i + h²/2 ∂²f/∂x_i² ± O(h³).
    Questions: which combination of the two cancels the h² term? What is left, divided by
    what? How large is the error then, and how does it compare with a one-sided difference's?
    Which dtype does the result have (x's)?

    The check grades this on functions with known gradients (error <= 1e-6 under
    the project's rule), and asks it to catch a Dense layer whose backward is 1% off;
    then on random ones, drawn from a seed it prints.
    """
    raise NotImplementedError("numerical_gradient")
