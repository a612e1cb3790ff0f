"""Step 4 — ConvTranspose2d: the transposed convolution (PyTorch semantics), used to upsample.

Read first: README "Reading order" item 7; the derivation is below. You may import your own
step 3 here (``from conv2d import Conv2d``): the check puts your folder on sys.path.
Once it passes, compare yours with the package's numpyvae/nn/conv_transpose2d.py.
Grade it with:  python -m numpyvae learn check conv_transpose2d
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyvae.nn import Layer


class ConvTranspose2d(Layer):
    """Each input pixel x[n, c, i, j] adds x[n, c, i, j]·W[c] into the K×K block at
    (i·s, j·s) of a padded output; p rows/columns are then cut from each side.

    Shapes: x (N, C_in, H, W), weight W (C_in, C_out, K, K), bias b (C_out,),
    y (N, C_out, Hout, Wout), Hout = (H − 1)s − 2p + K + output_padding (likewise Wout).
    output_padding (< stride) adds rows/columns at the bottom/right of the output.

    The contract is Conv2d's (see your conv2d.py): check_input / _saved / check_dout,
    grads["weight"] (C_in, C_out, K, K) and grads["bias"] written in place, dx returned.
    Derivation: forward stamps x[n, c, i, j]·W[c, o, a, e] into ypad[n, o, i·s + a, j·s + e].
    - paths: x[n, c, i, j] reaches the K×K block of ypad at (i·s, j·s), all o; W[c, o, a, e]
      reaches one pixel of that block for every (n, i, j); b[o] every y[n, o, ·, ·],
      including the output_padding rows and columns.
    Questions: dL/dx[n, c, i, j] reads dout over which block, and is that a convolution of
    dout (which one, with which weight layout)? Which rows of ypad are cut by p, and which
    rows does output_padding add that no x reaches? What does db sum over?
    The check covers odd sizes, stride 2 and 3, padding, output_padding and a batch of 1,
    and a few random configurations (the printout shows their seed).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, output_padding: int = 0, bias: bool = True,
                 dtype: Any = np.float32, rng: np.random.Generator | None = None) -> None:
        super().__init__(dtype)
        rng = np.random.default_rng() if rng is None else rng
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        self.output_padding = int(output_padding)
        K = self.kernel_size
        bound = 1.0 / np.sqrt(out_channels * K * K)
        self.add_param("weight", rng.uniform(-bound, bound, (in_channels, out_channels, K, K)))
        if bias:
            self.add_param("bias", rng.uniform(-bound, bound, out_channels))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C_in, H, W) → y (N, C_out, Hout, Wout)."""
        raise NotImplementedError("ConvTranspose2d.forward")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C_out, Hout, Wout) → dx (N, C_in, H, W); writes grads["weight"], ["bias"]."""
        raise NotImplementedError("ConvTranspose2d.backward")
