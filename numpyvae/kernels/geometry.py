"""The shape of one convolution, as the conv kernels take it."""

from __future__ import annotations

from typing import NamedTuple


class ConvGeometry(NamedTuple):
    """Sizes of a conv y = conv2d(x, w) with a square K×K kernel (all ints; numba takes it
    as one argument). ``samples_per_chunk``: how many samples a worker packs and multiplies
    at a time (the batch is cut into chunks of this many, set by the shapes alone)."""

    kernel_size: int
    stride: int
    padding: int
    out_h: int
    out_w: int
    samples_per_chunk: int


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """(size + 2p − K)//s + 1: how many kernel positions fit along one axis."""
    return (size + 2 * padding - kernel_size) // stride + 1
