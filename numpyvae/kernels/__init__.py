"""numba kernels behind the layers; they know nothing of layers.

- ``conv.py``: the conv API (conv2d forward, input and weight gradients), on
  ``gemm.py`` (im2col around single-threaded BLAS calls) and ``direct.py``
  (plain loops for single-channel outputs); ``geometry.py`` holds a conv's sizes.
- ``products.py``: ``matmul``, the Dense layers' a @ b (small ones on one thread).
- ``batchnorm.py``: BatchNorm2d's statistics, normalisation and backward pass, alone
  and fused with a following ELU.
- ``elementwise.py``: ELU and Sigmoid; ``adam.py``: the Adam update.
- ``threads.py``: every thread and BLAS decision; ``workspace.py``: reused work
  buffers.

Every kernel gives the same bits at any thread count.
"""

from .batchnorm import (
    batch_moments,
    batchnorm_backward,
    batchnorm_elu_backward,
    normalize,
    normalize_elu,
)
from .conv import (
    channel_sum,
    conv2d_backward,
    conv2d_forward,
    conv2d_forward_and_grad_weight,
    conv2d_grad_input,
    conv2d_grad_weight,
)
from .geometry import ConvGeometry, conv_output_size
from .products import matmul, matmul_unchecked
from .threads import max_threads, set_threads
from .workspace import clear_workspace

__all__ = [
    "ConvGeometry",
    "batch_moments",
    "batchnorm_backward",
    "batchnorm_elu_backward",
    "channel_sum",
    "clear_workspace",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_forward_and_grad_weight",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv_output_size",
    "matmul",
    "matmul_unchecked",
    "max_threads",
    "normalize",
    "normalize_elu",
    "set_threads",
]
