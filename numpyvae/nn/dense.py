"""Dense (fully connected) layer: y = x W + b."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels import elementwise
from .layer import Layer


class Dense(Layer):
    """y = x W + b, PyTorch's ``Linear`` with the weight stored as (in, out).

    Shapes: x (N, D_in), weight W (D_in, D_out), bias b (D_out,), y (N, D_out).

    Initialisation is PyTorch's default: W and b ~ U(−1/√D_in, 1/√D_in)
    (kaiming_uniform with a = √5 works out to exactly this bound).
    """

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
        y = _matmul(x, self.params["weight"])
        if "bias" in self.params:
            y += self.params["bias"]
        self.cache = x
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, D_out) → dx (N, D_in) (None if ``needs_input_grad`` is off).

        y_nj = Σ_i x_ni W_ij + b_j, so  dX = dY Wᵀ,  dW = Xᵀ dY,  db = Σ_n dY.
        """
        x = self._saved()
        _matmul(x.T, dout, out=self.grads["weight"])  # dW = Xᵀ dY, straight into the grad
        if "bias" in self.grads:
            self.grads["bias"][...] = dout.sum(axis=0)
        if not self.needs_input_grad:
            return None
        return _matmul(dout, self.params["weight"].T)

    def extra_repr(self) -> str:
        bias = "" if "bias" in self.params else ", bias=False"
        return f"{self.in_features}, {self.out_features}{bias}"


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b. Small products run on one thread (``kernels.elementwise.small_matmul``): a
    multi-threaded BLAS call costs more than it saves there, and leaves BLAS threads
    spinning beside the conv kernels' threads."""
    if (a.shape[0] * a.shape[1] * b.shape[1] < elementwise.SMALL_MATMUL
            and a.dtype == b.dtype and a.dtype in (np.float32, np.float64)
            and (out is None or (out.dtype == a.dtype and out.flags.c_contiguous))
            and all(m.flags.c_contiguous or m.flags.f_contiguous for m in (a, b))):
        return elementwise.small_matmul(a, b, out)
    return np.matmul(a, b, out=out)
