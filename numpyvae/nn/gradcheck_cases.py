"""Gradient-check cases for the layers of numpyvae.nn: each a float64 layer and its input.

``numpyvae.models.gradcheck_cases`` holds the VAE family's; the report
(``python -m numpyvae.gradcheck``) and the tests run both lists.
"""

from __future__ import annotations

import numpy as np

from .layer import Layer
from .reparameterize import Reparameterize

F64 = np.float64


class ReparameterizeAsLayer(Layer):
    """Reparameterize with one input and one output, ε held fixed, so that the gradient
    check runs on it like on any layer: x = [m, h] (N, 2Z) → [z, kl] (N, Z + 1).

    The checked scalar Σ G ⊙ [z, kl] is then Σ G_z ⊙ z + Σ g ⊙ kl: both outputs at once.
    """

    def __init__(self, eps: np.ndarray, layer: Reparameterize | None = None) -> None:
        super().__init__(dtype=eps.dtype)
        self.eps = eps
        self.layer = Reparameterize() if layer is None else layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        z_dim = self.eps.shape[1]
        self.check_input(x, (self.eps.shape[0], 2 * z_dim))
        z, kl = self.layer.forward(x[:, :z_dim], x[:, z_dim:], self.eps)
        self.cache = z_dim
        return np.concatenate([z, kl[:, None]], axis=1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        z_dim = self._saved()
        return self.layer.backward(np.ascontiguousarray(dout[:, :z_dim]), dout[:, z_dim])
