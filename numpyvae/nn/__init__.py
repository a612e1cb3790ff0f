"""Layers with hand-written forward and backward passes."""

from .activations import ELU, Sigmoid, Softplus
from .base import Layer
from .batchnorm import BatchNorm2d
from .concat_labels import ConcatLabels
from .conv import Conv2d
from .conv_transpose import ConvTranspose2d
from .dense import Dense
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
]
