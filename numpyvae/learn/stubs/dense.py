"""Step 1 — Dense: y = x W + b.

Read first: README "Reading order" items 1-2 and numpyvae/nn/layer.py (the contract); the
derivation is below. Grade it with:
    python -m numpyvae learn check dense
Once it passes, compare yours with the package's numpyvae/nn/dense.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyvae.nn import Layer


class Dense(Layer):
    """Fully connected: y = x W + b.

    Shapes: x (N, D_in), weight W (D_in, D_out), bias b (D_out,), y (N, D_out).

    The contract (numpyvae/nn/layer.py):
    - forward(x) starts with ``self.check_input(x, (None, self.in_features))``, keeps
      what backward needs in ``self.cache``, and returns y.
    - backward(dout) starts with ``x = self._saved()`` and
      ``self.check_dout(dout, (x.shape[0], self.out_features), x.dtype)``; it writes
      dL/dW and dL/db INTO ``self.grads["weight"]`` / ``self.grads["bias"]`` in place
      (``self.grads[k][...] = ...``, never rebinding them) and returns dL/dx (N, D_in)
      — or None when ``self.needs_input_grad`` is False.
    - infer(x) (forward without keeping a cache) comes from the base class.

    Derivation, from y_nj = Σ_i x_ni W_ij + b_j and dout = dL/dy:
    - paths: x_ni reaches every y_nj of its row n (j = 1..D_out) through W_ij; W_ij reaches
      y_nj of every row n; b_j reaches y_nj of every row n.
    - the chain rule sums over every path: dL/dx_ni = Σ_j (dL/dy_nj)(∂y_nj/∂x_ni), and
      likewise for W_ij (summed over n) and b_j.
    Questions: what is ∂y_nj/∂x_ni, ∂y_nj/∂W_ij, ∂y_nj/∂b_j? Which index does each sum run
    over, and which matrix product is that sum? Does each result have its parameter's shape
    and x's dtype?
    Keep the constructor as it is: the check copies the reference's parameters into these.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: Any = np.float32, rng: np.random.Generator | None = None) -> None:
        super().__init__(dtype)
        rng = np.random.default_rng() if rng is None else rng
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = 1.0 / np.sqrt(in_features)
        self.add_param("weight", rng.uniform(-bound, bound, (in_features, out_features)))
        if bias:
            self.add_param("bias", rng.uniform(-bound, bound, out_features))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, D_in) → y (N, D_out)."""
        raise NotImplementedError("Dense.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, D_out) → dx (N, D_in); writes grads["weight"] (D_in, D_out), grads["bias"]."""
        raise NotImplementedError("Dense.backward")
