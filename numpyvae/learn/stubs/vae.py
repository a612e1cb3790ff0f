"""Step 6 — vae: the reparameterization trick and the KL term, as a small layer of their own.

Read first: README "Reading order" item 9 and numpyvae/models/vae.py; the derivation is below.
Once it passes, compare yours with the package's numpyvae/nn/reparameterize.py.
The VAE is then: encoder → Reparameterize → decoder → likelihood. Grade it with:
    python -m numpyvae learn check vae
"""

from __future__ import annotations

import numpy as np

from numpyvae.nn import Layer


class Reparameterize(Layer):
    """The encoder's output x = [m, h] and a noise ε → y = [z, kl]: a sample z and the KL term.

    set_noise(eps) hands over ε (N, Z) before forward (given: keep it).
    forward(x) with x = [m, h] (N, 2Z) returns y = [z, kl] (N, 2Z):
        v  = softplus(h) + 1e-8                      the variance, kept positive
        z  = m + √v ⊙ ε                              (N, Z)
        kl = ½ (v + m² − 1 − log v)                  (N, Z), one column per latent dimension:
                                                     KL(N(m, v) ‖ N(0, I)) = Σ_j kl_j per image
    backward(dout) with dout = [dL/dz, dL/dkl] (N, 2Z) returns dx = [dL/dm, dL/dh] (N, 2Z).
    Both z and kl depend on m and h: each gradient has a part through z and a part
    through the KL. No parameters; keep what backward needs in ``self.cache``.

    Derivation: paths: m reaches z (through m + ·) and kl (through m²); h reaches v, and v
    reaches z (through √v) and kl (through v and log v).
    Questions: what are ∂z/∂m, ∂kl/∂m, ∂z/∂v, ∂kl/∂v, and ∂v/∂h = softplus′(h)? Summing the
    two paths of each, what are dL/dm and dL/dh?
    The check raises on overflow, invalid and division by zero, at h = ±1000 in forward and
    backward: never exponentiate a large positive number (write softplus and its derivative
    with exponents ≤ 0). It also runs in float32: keep the input's dtype.
    """

    def set_noise(self, eps: np.ndarray) -> None:
        self.eps = eps

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Reparameterize.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Reparameterize.backward")
