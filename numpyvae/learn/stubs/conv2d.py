"""Step 3 — Conv2d: 2-D convolution (cross-correlation, as PyTorch), stride and zero padding.

Read first: README "Reading order" item 7; the derivation is below. Grade it with:
    python -m numpyvae learn check conv2d
Once it passes, compare yours with the package's numpyvae/nn/conv2d.py (four forms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyvae.nn import Layer


class Conv2d(Layer):
    """y[n, f, i, j] = b[f] + Σ_{c, a, e} W[f, c, a, e] · xpad[n, c, i·s + a, j·s + e].

    Shapes: x (N, C, H, W), weight W (F, C, K, K), bias b (F,), y (N, F, Ho, Wo) with
    Ho = (H + 2p − K)//s + 1 (likewise Wo); xpad is x with p zeros on each side of H and W.

    The contract (numpyvae/nn/layer.py): forward starts with
    ``self.check_input(x, (None, self.in_channels, None, None))`` and keeps its cache;
    backward starts with ``x = self._saved()`` and ``self.check_dout(dout, y_shape, x.dtype)``,
    writes grads["weight"] (F, C, K, K) and grads["bias"] (F,) in place, and returns
    dx (N, C, H, W) (None when ``self.needs_input_grad`` is False).

    Derivation, from the formula above and dout = dL/dy:
    - paths: W[f, c, a, e] multiplies xpad[n, c, i·s + a, j·s + e] in every output pixel
      (n, f, i, j); b[f] is in every y[n, f, ·, ·]; xpad[n, c, r, q] reaches every output
      pixel whose window covers (r, q), each through the one kernel offset (a, e) that lands
      there; x is xpad without its border.
    Questions: dL/dW[f, c, a, e] sums dout times what, over which indices? Which (i, j, a, e)
    have i·s + a = r, and how does the stride thin them out? What happens to the gradient
    that lands on the padding? Is there a flip anywhere (there is none in forward)?
    The check covers odd sizes, stride 2, padding and a batch of 1, and a few random
    configurations (the printout shows their seed). Start with loops
    that mirror the formula; make it fast afterwards (the speed line shows the package's).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, dtype: Any = np.float32,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__(dtype)
        rng = np.random.default_rng() if rng is None else rng
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        K = self.kernel_size
        bound = 1.0 / np.sqrt(in_channels * K * K)
        self.add_param("weight", rng.uniform(-bound, bound, (out_channels, in_channels, K, K)))
        if bias:
            self.add_param("bias", rng.uniform(-bound, bound, out_channels))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) → y (N, F, Ho, Wo)."""
        raise NotImplementedError("Conv2d.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, F, Ho, Wo) → dx (N, C, H, W); writes grads["weight"], grads["bias"]."""
        raise NotImplementedError("Conv2d.backward")
