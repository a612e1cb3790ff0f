"""The learner's core: layers with hand-written forward and backward passes, Adam, the
losses and the gradient checker. It imports nothing of numpyvae but itself and kernels/."""

from .activations import ELU, Sigmoid, Softplus
from .adam import Adam
from .batchnorm2d import BatchNorm2d
from .concat_labels import ConcatLabels
from .conv2d import Conv2d
from .conv_transpose2d import ConvTranspose2d
from .dense import Dense
from .layer import Layer
from .reparameterize import Reparameterize
from .sequential import Sequential
from .shape import Flatten, Reshape

__all__ = [
    "Layer",
    "Sequential",
    "Dense",
    "Conv2d",
    "ConvTranspose2d",
    "BatchNorm2d",
    "ELU",
    "Softplus",
    "Sigmoid",
    "Flatten",
    "Reshape",
    "ConcatLabels",
    "Reparameterize",
    "Adam",
]
