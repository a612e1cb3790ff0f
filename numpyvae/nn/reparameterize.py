"""Reparameterize: the VAE's sampling step and its KL term, as one layer.

The encoder's output splits into a mean m and an unconstrained h; the posterior
q(z|x) = N(m, diag(v)) has variance v = softplus(h) + VARIANCE_FLOOR. A draw
is written as a deterministic function of (m, h) and an external noise ε ~ N(0, I),

    z  = m + √v ⊙ ε                               the reparameterization trick
    kl = ½ Σ_j (v_j + m_j² − 1 − log v_j)         KL(q(z|x) ‖ N(0, I)), per image

so that gradients flow to m and h while ε is held fixed. The layer has no
parameters; it has two outputs, so ``backward`` takes two upstream gradients.
"""

from __future__ import annotations

import numpy as np

from .activations import sigmoid, softplus
from .layer import Layer

VARIANCE_FLOOR = 1e-8  # keeps v > 0 and log v finite when softplus(h) underflows to 0


class Reparameterize(Layer):
    """(m, h, ε) → (z, kl). Shapes: m, h, ε, z (N, Z); kl (N,), or (N, Z) with
    ``per_dim=True`` (each latent dimension's term, before the sum over j)."""

    def forward(self, m: np.ndarray, h: np.ndarray, eps: np.ndarray, per_dim: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
        self.check_input(m, (None, None))
        for name, a in (("h", h), ("eps", eps)):
            if not isinstance(a, np.ndarray) or a.shape != m.shape or a.dtype != m.dtype:
                got = (f"shape {a.shape} dtype {a.dtype}" if isinstance(a, np.ndarray)
                       else type(a).__name__)
                raise ValueError(f"Reparameterize: expected {name} of m's shape {m.shape} "
                                 f"and dtype {m.dtype}, got {got}")
        v = softplus(h) + VARIANCE_FLOOR
        s = np.sqrt(v)
        z = m + s * eps
        kl_dims = 0.5 * (v + m * m - 1 - np.log(v))
        self.cache = (m, h, eps, v, s)
        return z, kl_dims if per_dim else np.sum(kl_dims, axis=1)

    def infer(self, m: np.ndarray, h: np.ndarray, eps: np.ndarray, per_dim: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
        """forward without touching the cache a pending backward needs."""
        cache = self.cache
        try:
            return self.forward(m, h, eps, per_dim)
        finally:
            self.cache = cache

    def backward(self, dz: np.ndarray, dkl: np.ndarray | float) -> np.ndarray:
        """dz (N, Z), dkl → [dm, dh] (N, 2Z). dkl is the weight on the KL: a scalar (every
        image's), (N,) (one per image's kl) or (N, Z) (one per image and dimension, the
        upstream gradient of the ``per_dim`` output).

        z = m + √v ε:   ∂z/∂m = 1,   ∂z/∂v = ε / (2√v)
        kl:             ∂kl/∂m = m,  ∂kl/∂v = ½(1 − 1/v)
        v = softplus(h) + floor:     ∂v/∂h = σ(h)
        so dm = dz + dkl·m,  dv = dz ⊙ ε/(2√v) + dkl·½(1 − 1/v),  dh = dv ⊙ σ(h).
        (kl's per-dimension terms each depend on their own m_j, v_j only, so a (N, Z)
        dkl enters the same formulas elementwise.)
        """
        m, h, eps, v, s = self._saved()
        self.check_dout(dz, m.shape, m.dtype)
        w = np.asarray(dkl, dtype=m.dtype)
        if w.shape not in ((), (m.shape[0],), m.shape):
            raise ValueError(f"Reparameterize.backward: expected dkl of shape ({m.shape[0]},), "
                             f"{m.shape} or a scalar, got shape {w.shape}")
        w = w if w.shape == m.shape else w.reshape(-1, 1)
        dm = dz + w * m
        dv = dz * eps / (2 * s) + w * (0.5 * (1 - 1 / v))
        dh = dv * sigmoid(h)
        return np.concatenate([dm, dh], axis=1)
