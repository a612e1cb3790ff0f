"""Step 1 — Dense: y = x W + b.

Read first: README "Reading order" items 1-2, numpyvae/nn/layer.py (the contract) and
numpyvae/nn/dense.py (where the math is derived). Grade it with:
    python -m numpyvae learn check dense
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

    Derive dL/dx, dL/dW, dL/db from y_nj = Σ_i x_ni W_ij + b_j, with dout = dL/dy.
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
