"""Dense: the formula, PyTorch's initialisation, grads overwritten in place, repr.
Its gradient checks are cases in numpyvae/nn/gradcheck_cases.py."""

import numpy as np
import pytest

from numpyvae.nn import Dense
from tests.nn.layer_helpers import F64, rng

PATHS = pytest.mark.parametrize("use_kernels", [True, False], ids=["kernels", "numpy"])


@PATHS
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_dense_forward_and_backward_match_the_sums(use_kernels, bias):
    """y_nj = Σ_i x_ni W_ij + b_j; dx_ni = Σ_j dy_nj W_ij; dW_ij = Σ_n x_ni dy_nj; db_j = Σ_n dy_nj,
    written out as sums, on both paths."""
    layer = Dense(4, 3, bias=bias, dtype=F64, rng=rng(0))
    layer.use_kernels = use_kernels
    x, dy = rng(1).standard_normal((5, 4)), rng(2).standard_normal((5, 3))
    W, b = layer.params["weight"], layer.params.get("bias", np.zeros(3))
    y = np.array([[sum(x[n, i] * W[i, j] for i in range(4)) + b[j] for j in range(3)]
                  for n in range(5)])
    dx = np.array([[sum(dy[n, j] * W[i, j] for j in range(3)) for i in range(4)]
                   for n in range(5)])
    dw = np.array([[sum(x[n, i] * dy[n, j] for n in range(5)) for j in range(3)]
                   for i in range(4)])
    np.testing.assert_allclose(layer.forward(x), y, rtol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), dx, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], dw, rtol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.grads["bias"], dy.sum(axis=0), rtol=1e-12)
    layer.needs_input_grad = False
    layer.forward(x)
    assert layer.backward(dy) is None
    np.testing.assert_allclose(layer.grads["weight"], dw, rtol=1e-12)


def test_dense_pytorch_default_init_bounds():
    fan_in = 400
    layer = Dense(fan_in, 300, rng=rng(0))
    bound = 1 / np.sqrt(fan_in)
    W, b = layer.params["weight"], layer.params["bias"]
    assert W.shape == (400, 300) and b.shape == (300,)
    assert np.abs(W).max() <= bound and np.abs(b).max() <= bound
    # uniform on (−bound, bound): reaches close to both ends, std = bound/√3
    assert W.max() > 0.99 * bound and W.min() < -0.99 * bound
    assert abs(W.std() - bound / np.sqrt(3)) < 0.01 * bound
    assert abs(W.mean()) < 0.01 * bound
    assert np.abs(b).max() > 0.9 * bound  # bias uses the same fan-in bound, not zeros


def test_dense_seeded_rng_reproducible():
    a = Dense(6, 4, rng=rng(42))
    b = Dense(6, 4, rng=rng(42))
    c = Dense(6, 4, rng=rng(43))
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])
    assert not np.array_equal(a.params["weight"], c.params["weight"])


@PATHS
def test_dense_backward_overwrites_grads_in_place(use_kernels):
    layer = Dense(3, 2, dtype=F64, rng=rng(0))
    layer.use_kernels = use_kernels
    grads = {k: g for k, g in layer.grads.items()}
    x = rng(1).standard_normal((4, 3))
    dy = rng(2).standard_normal((4, 2))
    layer.forward(x)
    layer.backward(dy)
    first = {k: g.copy() for k, g in layer.grads.items()}
    layer.forward(x)
    layer.backward(dy)
    for k in grads:
        assert layer.grads[k] is grads[k], "backward rebound a grad array"
        np.testing.assert_array_equal(layer.grads[k], first[k])  # overwritten, not doubled
    np.testing.assert_allclose(layer.grads["weight"], x.T @ dy)
    np.testing.assert_allclose(layer.grads["bias"], dy.sum(axis=0))


def test_dense_repr():
    assert repr(Dense(784, 300)) == "Dense(784, 300)  # 235,500 params"
    assert Dense(3, 2, bias=False).extra_repr() == "3, 2, bias=False"
    assert "bias" not in Dense(3, 2, bias=False).params
