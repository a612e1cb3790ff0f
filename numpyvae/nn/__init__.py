"""The learner's core: layers with hand-written forward and backward passes, Adam, the
losses and the gradient checker. It imports nothing of numpyvae but itself and kernels/,
and kernels/ only when a kernel first runs (``lazy_kernels.py``): without numba every
``use_kernels`` below starts off and the NumPy forms run."""

import sys

from .activations import ELU, Sigmoid, Softplus
from .adam import Adam
from .batchnorm2d import BatchNorm2d
from .concat_labels import ConcatLabels
from .conv2d import Conv2d
from .conv_transpose2d import ConvTranspose2d
from .dense import Dense
from .layer import Layer
from .lazy_kernels import KERNELS_AVAILABLE
from .reparameterize import Reparameterize
from .sequential import Sequential
from .shape import Flatten, Reshape

__all__ = ["Layer", "Sequential", "Dense", "Conv2d", "ConvTranspose2d", "BatchNorm2d", "ELU",
           "Softplus", "Sigmoid", "Flatten", "Reshape", "ConcatLabels", "Reparameterize", "Adam"]

if not KERNELS_AVAILABLE:
    for _cls in (Dense, Conv2d, ConvTranspose2d, BatchNorm2d, ELU, Sigmoid, Adam):
        _cls.use_kernels = False
    print("numpyvae: numba is not installed: every layer runs its NumPy form "
          "(use_kernels = False)", file=sys.stderr)
