"""Helpers the per-layer tests share."""

import numpy as np

from numpyvae.nn import BatchNorm2d

F64 = np.float64


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def bn_with_running_stats(c: int = 3, dtype=F64) -> BatchNorm2d:
    """A BatchNorm2d whose running statistics and affine params are not the trivial 0/1."""
    bn = BatchNorm2d(c, dtype=dtype)
    r = rng(7)
    bn.buffers["running_mean"][...] = r.normal(size=c)
    bn.buffers["running_var"][...] = r.uniform(0.5, 2.0, size=c)
    bn.params["weight"][...] = r.uniform(0.5, 1.5, size=c)
    bn.params["bias"][...] = r.normal(size=c)
    return bn
