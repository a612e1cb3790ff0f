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

    The products run in ``kernels.matmul`` (small ones on one thread, large ones on
    NumPy's multi-threaded BLAS); ``use_kernels = False`` (on the class or one layer)
    runs plain ``@`` instead.
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
        y = self._matmul(x, self.params["weight"])  # y = x W + b
        if "bias" in self.params:
            y += self.params["bias"]
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, D_out) → dx (N, D_in) (None if ``needs_input_grad`` is off).

        y_nj = Σ_i x_ni W_ij + b_j, so  dX = dY Wᵀ,  dW = Xᵀ dY,  db = Σ_n dY.
        """
        x = self._saved()
        self.check_dout(dout, (x.shape[0], self.out_features), x.dtype)
        self._matmul(x.T, dout, out=self.grads["weight"])  # dW = Xᵀ dY
        if "bias" in self.grads:
            self.grads["bias"][...] = dout.sum(axis=0)  # db = Σ_n dY
        if not self.needs_input_grad:
            return None
        return self._matmul(dout, self.params["weight"].T)  # dX = dY Wᵀ

    def _matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return kernels.matmul_unchecked(a, b, out) if self.use_kernels else np.matmul(a, b, out=out)

    def extra_repr(self) -> str:
        bias = "" if "bias" in self.params else ", bias=False"
        return f"{self.in_features}, {self.out_features}{bias}"

