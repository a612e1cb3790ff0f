"""ELU, Softplus, Sigmoid and the functions sigmoid, sigmoid_fast, softplus: values,
stability at ±1e4, the derivative at 0. Gradient checks: numpyvae/nn/gradcheck_cases.py."""

import warnings

import numpy as np
import pytest

from numpyvae.nn import ELU, Sigmoid, Softplus
from numpyvae.nn.activations import sigmoid, sigmoid_fast, softplus
from tests.nn.layer_helpers import rng


def test_activation_values():
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(ELU(alpha=0.7).forward(x),
                               [0.7 * (np.exp(-3) - 1), 0.7 * (np.exp(-0.5) - 1), 0, 0.5, 3],
                               rtol=1e-14)
    np.testing.assert_allclose(Softplus().forward(x), np.log(1 + np.exp(x)), rtol=1e-14)
    np.testing.assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-14)


def test_elu_gradient_at_zero_is_alpha():
    """As PyTorch: at x = 0 the derivative is taken from the left branch, α·e⁰ = α."""
    layer = ELU(alpha=0.5)
    layer.forward(np.zeros(3))
    np.testing.assert_array_equal(layer.backward(np.ones(3)), 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_stable_at_1e4(dtype):
    x = np.array([-1e4, -30.0, 0.0, 30.0, 1e4], dtype=dtype)
    dy = np.ones_like(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            outputs = {}
            for layer in (ELU(), Softplus(), Sigmoid()):
                y = layer.forward(x)
                dx = layer.backward(dy)
                assert y.dtype == dtype and dx.dtype == dtype
                assert np.isfinite(y).all() and np.isfinite(dx).all()
                outputs[type(layer).__name__] = (y, dx)
    y, dx = outputs["ELU"]
    assert y[0] == -1.0 and y[-1] == 1e4 and dx[0] == 0.0 and dx[-1] == 1.0
    y, dx = outputs["Softplus"]
    assert y[0] == 0.0 and y[-1] == 1e4 and dx[0] == 0.0 and dx[-1] == 1.0
    assert y[2] == pytest.approx(np.log(2.0), rel=1e-6)
    y, dx = outputs["Sigmoid"]
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5 and dx[0] == 0.0 and dx[-1] == 0.0


def test_softplus_backward_is_sigmoid():
    x = rng(0).normal(0, 5, 50)
    sp = Softplus()
    sp.forward(x)
    np.testing.assert_allclose(sp.backward(np.ones_like(x)), Sigmoid().forward(x), rtol=1e-15)


def test_activation_reprs():
    assert repr(ELU()) == "ELU(alpha=1.0)"
    assert repr(ELU(alpha=0.5)) == "ELU(alpha=0.5)"
    assert repr(Softplus()) == "Softplus()"
    assert repr(Sigmoid()) == "Sigmoid()"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functions_match_the_layers(dtype):
    x = rng(2).normal(0, 6, (3, 7)).astype(dtype)
    np.testing.assert_array_equal(softplus(x), Softplus().forward(x))
    np.testing.assert_array_equal(sigmoid_fast(x), Sigmoid().forward(x))
    np.testing.assert_allclose(sigmoid_fast(x), sigmoid(x), rtol=1e-6 if dtype == np.float32
                               else 1e-14)
    assert sigmoid(x).dtype == softplus(x).dtype == sigmoid_fast(x).dtype == dtype
