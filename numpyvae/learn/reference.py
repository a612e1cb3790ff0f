"""References the grader needs that the package does not (yet) export.

TO BE REPLACED by ``numpyvae.nn.Reparameterize`` once it lands on main: this is a
private copy of its contract, so the ``vae`` step has a reference today.
"""

from __future__ import annotations

import numpy as np

from ..nn.activations import sigmoid, softplus
from ..nn.layer import Layer

VARIANCE_FLOOR = 1e-8


class Reparameterize(Layer):
    """z = m + √v ⊙ ε and KL(N(m, v) ‖ N(0, I)) per image, with v = softplus(h) + 1e-8.

    Shapes: m, h, ε (N, Z); z (N, Z); kl (N,); backward returns [dm, dh] (N, 2Z).
    """

    def forward(self, m: np.ndarray, h: np.ndarray, eps: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        v = softplus(h) + VARIANCE_FLOOR
        s = np.sqrt(v)
        z = m + s * eps
        kl = 0.5 * np.sum(v + m * m - 1 - np.log(v), axis=1)
        self.cache = (m, h, eps, v, s)
        return z, kl

    def backward(self, dz: np.ndarray, dkl: np.ndarray) -> np.ndarray:
        """dm = dz + dkl·m;  dv = dz ⊙ ε/(2√v) + dkl·½(1 − 1/v);  dh = dv ⊙ σ(h)."""
        m, h, eps, v, s = self._saved()
        dkl = dkl[:, None]
        dm = dz + dkl * m
        dv = dz * eps / (2 * s) + dkl * 0.5 * (1 - 1 / v)
        return np.concatenate([dm, dv * sigmoid(h)], axis=1)
