"""Dense (fully connected) layer: y = x W + b."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layer import Layer
from .lazy_kernels import lazy

kernels = lazy()


class Dense(Layer):
    """y = x W + b, PyTorch's ``Linear`` with the weight stored as (in, out).

    Shapes: x (N, D_in), weight W (D_in, D_out), bias b (D_out,), y (N, D_out).

    Initialisation is PyTorch's default: W and b ~ U(−1/√D_in, 1/√D_in)
    (kaiming_uniform with a = √5 works out to exactly this bound).

    ``forward`` and ``backward`` read as the maths with ``use_kernels = False`` (on the
    class or one layer). By default the same products run in ``kernels.matmul``
    (``_forward_kernels``, ``_backward_kernels``).
    """

    use_kernels = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(dtype)
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Dense: in_features and out_features must be positive, "
                f"got {in_features} and {out_features}"
            )
        rng = np.random.default_rng() if rng is None else rng
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        bound = 1.0 / np.sqrt(in_features)
        self.add_param("weight", rng.uniform(-bound, bound, (in_features, out_features)))
        if bias:
            self.add_param("bias", rng.uniform(-bound, bound, out_features))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, D_in) → y (N, D_out)."""
        self.check_input(x, (None, self.in_features))
        self.cache = x
        if self.use_kernels:
            return self._forward_kernels(x)
        W, b = self.params["weight"], self.params.get("bias", 0)  # no bias: + 0
        y = x @ W + b
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy (N, D_out) → dx (N, D_in) (None if ``needs_input_grad`` is off).

        y_nj = Σ_i x_ni W_ij + b_j, so  dW = Xᵀ dY,  db = Σ_n dY,  dX = dY Wᵀ.
        """
        x = self._saved()
        self.check_dout(dy, (x.shape[0], self.out_features), x.dtype)
        if self.use_kernels:
            return self._backward_kernels(dy, x)
        W = self.params["weight"]
        self.grads["weight"][...] = x.T @ dy
        if "bias" in self.grads:
            self.grads["bias"][...] = dy.sum(axis=0)
        if not self.needs_input_grad:
            return None
        dx = dy @ W.T
        return dx

    # -- the same, in kernels.matmul (small products on one thread, large ones on BLAS's)
    def _forward_kernels(self, x: np.ndarray) -> np.ndarray:
        y = kernels.matmul_unchecked(x, self.params["weight"], None)
        if "bias" in self.params:
            y += self.params["bias"]
        return y

    def _backward_kernels(self, dy: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        kernels.matmul_unchecked(x.T, dy, self.grads["weight"])
        if "bias" in self.grads:
            self.grads["bias"][...] = dy.sum(axis=0)
        if not self.needs_input_grad:
            return None
        return kernels.matmul_unchecked(dy, self.params["weight"].T, None)

    def extra_repr(self) -> str:
        bias = "" if "bias" in self.params else ", bias=False"
        return f"{self.in_features}, {self.out_features}{bias}"

