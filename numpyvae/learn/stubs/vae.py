"""Step 6 — vae: the reparameterization trick and the KL term, as a small layer of their own.

Read first: README "Reading order" item 9, numpyvae/nn/reparameterize.py (the package's own
layer of this contract: read it after you have tried) and numpyvae/models/vae.py.
The VAE is then: encoder → Reparameterize → decoder → likelihood. Grade it with:
    python -m numpyvae learn check vae
"""

from __future__ import annotations

import numpy as np

from numpyvae.nn import Layer


class Reparameterize(Layer):
    """The encoder's output [m, h] and noise ε → a sample z and the KL term.

    forward(m, h, eps) → (z, kl), where m, h, eps are (N, Z):
        v  = softplus(h) + 1e-8                      the variance, kept positive
        z  = m + √v ⊙ ε                              (N, Z)
        kl = ½ Σ_j (v + m² − 1 − log v)  per image   (N,)   KL(N(m, v) ‖ N(0, I))
    backward(dz, dkl) with dz = dL/dz (N, Z) and dkl = dL/dkl (N,) returns
        [dL/dm, dL/dh] concatenated along axis 1: (N, 2Z).
    Both z and kl depend on m and h: each gradient has a part through z and a part
    through the KL. No parameters; keep what backward needs in ``self.cache``.
    """

    def forward(self, m: np.ndarray, h: np.ndarray, eps: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError("Reparameterize.forward")

    def backward(self, dz: np.ndarray, dkl: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Reparameterize.backward")
