"""The fused BatchNorm2d + ELU kernels against the two layers' NumPy forms run one after the other.

float32 and float64, training and eval statistics, odd shapes, batch 1, arrays above and below
the parallel threshold, at 1 and 2 threads; then bitwise the same at 1 and 2 threads in a
process whose numba pool has 2 (``two_threads.py``).
"""

import numpy as np
import pytest

from numpyvae import kernels
from numpyvae.nn import ELU
from numpyvae.nn.batchnorm2d import _per_channel, batchnorm_backward_numpy
from tests.kernels.test_fast_paths import RTOL, assert_close, threads  # noqa: F401 (fixture)
from tests.kernels.two_threads import run_with_two_threads

DTYPES = [np.float32, np.float64]
SHAPES = [(5, 3, 7, 9), (37, 7, 33, 35), (1, 4, 5, 3), (2, 1, 1, 3)]


def reference(x, dy, mean, inv_std, gamma, beta, alpha, training):
    """BatchNorm2d's NumPy forward, ELU's NumPy forward; ELU's NumPy backward, BN's compact one."""
    c = _per_channel
    z = c(gamma) * ((x - c(mean)) * c(inv_std)) + c(beta)  # as BatchNorm2d._forward_numpy
    elu = ELU(alpha)
    y = elu._forward_numpy(z)
    dz = elu._backward_numpy(dy, z)
    return (y, *batchnorm_backward_numpy(x, dz, mean, inv_std, gamma, training))


def fused(x, dy, mean, inv_std, gamma, beta, alpha, training):
    N, C = x.shape[:2]
    x3 = np.ascontiguousarray(x).reshape(N, C, -1)
    scale = gamma * inv_std
    y = kernels.normalize_elu(x3, mean, scale, beta, alpha).reshape(x.shape)
    return (y, *kernels.batchnorm_elu_backward(x, dy, mean, inv_std, gamma, scale, beta, alpha,
                                               training))


def case(shape, dtype, training, seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(0.5, 2.0, shape).astype(dtype)
    dy = r.standard_normal(shape).astype(dtype)
    C = shape[1]
    if training:
        mean = x.mean(axis=(0, 2, 3)).astype(dtype)
        inv_std = (1.0 / np.sqrt(x.var(axis=(0, 2, 3)) + 1e-5)).astype(dtype)
    else:
        mean, inv_std = r.normal(size=C).astype(dtype), r.uniform(0.5, 2, C).astype(dtype)
    gamma, beta = r.uniform(0.5, 1.5, C).astype(dtype), r.normal(size=C).astype(dtype)
    return x, dy, mean, inv_std, gamma, beta


def assert_matches(got, ref, dtype, dy, shape):
    names = ("y", "dx", "dgamma", "dbeta")
    for name, g, r in zip(names, got, ref, strict=True):
        assert g.dtype == np.dtype(dtype), name
        # y and dx: errors scale with |γ·x̂| + |β| and |dy|·γ/σ; dγ, dβ: sums of M terms
        terms = np.sqrt(dy.size / shape[1]) if name in ("dgamma", "dbeta") else 1
        scale = 3 * np.abs(dy).max() * terms
        assert_close(g, r, dtype, scale=scale, rtol=40 * RTOL[dtype], floor=1, what=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_fused_kernels_match_the_layers_numpy_forms(threads, dtype, shape, training, alpha):  # noqa: F811
    args = case(shape, dtype, training)
    got = fused(*args, alpha, training)
    ref = reference(*args, alpha, training)
    assert_matches(got, ref, dtype, args[1], shape)


def test_comparison_catches_a_dropped_elu_derivative():
    """Negative control: the BN backward of dy itself (ELU′ forgotten) fails the comparison."""
    shape, dtype = (5, 3, 7, 9), np.float32
    x, dy, mean, inv_std, gamma, beta = case(shape, dtype, True)
    got = list(fused(x, dy, mean, inv_std, gamma, beta, 1.0, True))
    got[1:] = kernels.batchnorm_backward(x, dy, mean, inv_std, gamma, True)
    with pytest.raises(AssertionError):
        assert_matches(got, reference(x, dy, mean, inv_std, gamma, beta, 1.0, True), dtype,
                       dy, shape)


_BITWISE = """
from tests.kernels.test_batchnorm_elu import SHAPES, case, fused
for dtype in (np.float32, np.float64):
    for shape in SHAPES:
        for training in (True, False):
            runs = []
            for n in (2, 1, 2):
                numba.set_num_threads(n)
                runs.append(fused(*case(shape, dtype, training), 1.0, training))
            for run in runs[1:]:
                for a, b in zip(runs[0], run, strict=True):
                    assert np.array_equal(a, b), (dtype, shape, training)
print("ok")
"""


def test_fused_kernels_bitwise_same_at_one_and_two_threads():
    assert run_with_two_threads(_BITWISE).strip().endswith("ok")
