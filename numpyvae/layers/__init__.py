"""Layers with hand-written forward and backward passes."""

from .base import Layer
from .sequential import Sequential

__all__ = ["Layer", "Sequential"]
