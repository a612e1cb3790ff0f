"""Reparameterize: the VAE's sampling step and its KL term, as one layer.

The encoder's output x = [m, h] splits into a mean m and an unconstrained h; the
posterior q(z|x) = N(m, diag(v)) has variance v = softplus(h) + VARIANCE_FLOOR. A
draw is written as a deterministic function of (m, h) and an external noise
ε ~ N(0, I), set beforehand with ``set_noise``:

    z    = m + √v ⊙ ε                          the reparameterization trick
    kl_j = ½ (v_j + m_j² − 1 − log v_j)        KL(q(z|x) ‖ N(0, I)) = Σ_j kl_j, per image

so that gradients flow to m and h while ε is held fixed. Column j of z and of kl
depends on m_j and h_j only: the layer works on each latent dimension apart.
The output is y = [z, kl], so it is a layer like any other (one array in, one
out) and the gradient check and a ``Sequential`` take it as it is.
"""

from __future__ import annotations

import numpy as np

from .activations import sigmoid, softplus
from .layer import Layer

VARIANCE_FLOOR = 1e-8  # keeps v > 0 and log v finite when softplus(h) underflows to 0


class Reparameterize(Layer):
    """x = [m, h] (N, 2Z) → y = [z, kl] (N, 2Z), with ε (N, Z) from ``set_noise``.
    An image's KL is the sum of its Z kl columns."""

    def __init__(self) -> None:
        super().__init__()
        self.eps: np.ndarray | None = None

    def set_noise(self, eps: np.ndarray) -> None:
        """ε (N, Z), used by every forward until set again (a pending backward keeps the ε
        of its own forward)."""
        self.eps = eps

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x, (None, None))
        n, z_dim = x.shape[0], x.shape[1] // 2
        eps = self.eps
        if x.shape[1] % 2 or not isinstance(eps, np.ndarray) or eps.shape != (n, z_dim) \
                or eps.dtype != x.dtype:
            got = (f"shape {eps.shape} dtype {eps.dtype}" if isinstance(eps, np.ndarray)
                   else "none set" if eps is None else type(eps).__name__)
            raise ValueError(f"Reparameterize: expected x = [m, h] of an even width and ε "
                             f"from set_noise of shape {(n, z_dim)} and dtype {x.dtype}; "
                             f"x has shape {x.shape}, ε: {got}")
        m, h = x[:, :z_dim], x[:, z_dim:]
        v = softplus(h) + VARIANCE_FLOOR
        s = np.sqrt(v)
        z = m + s * eps
        kl = 0.5 * (v + m * m - 1 - np.log(v))
        self.cache = (m, h, eps, v, s)
        return np.concatenate([z, kl], axis=1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout = [dz, dkl] (N, 2Z) → dx = [dm, dh] (N, 2Z).

        z = m + √v ε:   ∂z/∂m = 1,   ∂z/∂v = ε / (2√v)
        kl:             ∂kl/∂m = m,  ∂kl/∂v = ½(1 − 1/v)
        v = softplus(h) + floor:     ∂v/∂h = σ(h)
        so dm = dz + dkl ⊙ m,  dv = dz ⊙ ε/(2√v) + dkl ⊙ ½(1 − 1/v),  dh = dv ⊙ σ(h).
        """
        m, h, eps, v, s = self._saved()
        self.check_dout(dout, (m.shape[0], 2 * m.shape[1]), m.dtype)
        dz, dkl = dout[:, :m.shape[1]], dout[:, m.shape[1]:]
        dm = dz + dkl * m
        dv = dz * eps / (2 * s) + dkl * (0.5 * (1 - 1 / v))
        dh = dv * sigmoid(h)
        return np.concatenate([dm, dh], axis=1)
