"""Reparameterize: [m, h] → [z, kl] with ε set beforehand, its gradients, and bad input."""

import numpy as np
import pytest

from numpyvae.nn import Reparameterize, Sequential
from numpyvae.nn.activations import softplus
from numpyvae.nn.gradcheck import gradcheck_layer
from numpyvae.nn.reparameterize import VARIANCE_FLOOR

F64 = np.float64


def inputs(n=4, z=3, seed=0, dtype=F64):
    r = np.random.default_rng(seed)
    m = r.standard_normal((n, z)).astype(dtype)
    h = (2 * r.standard_normal((n, z))).astype(dtype)
    eps = r.standard_normal((n, z)).astype(dtype)
    return m, h, eps


def layer_with(eps, cls=Reparameterize):
    layer = cls()
    layer.set_noise(eps)
    return layer


def test_forward_matches_the_formulas():
    m, h, eps = inputs()
    y = layer_with(eps).forward(np.concatenate([m, h], axis=1))
    v = np.log1p(np.exp(h)) + VARIANCE_FLOOR
    assert y.shape == (4, 6)
    np.testing.assert_allclose(y[:, :3], m + np.sqrt(v) * eps, rtol=1e-14)
    np.testing.assert_allclose(y[:, 3:], 0.5 * (v + m**2 - 1 - np.log(v)), rtol=1e-14)


def test_kl_is_zero_at_the_prior():
    """m = 0, v = 1 (h = softplus⁻¹(1 − floor)) is the prior itself: KL = 0."""
    m = np.zeros((2, 4))
    h = np.full((2, 4), np.log(np.expm1(1.0 - VARIANCE_FLOOR)))
    y = layer_with(np.zeros_like(m)).forward(np.concatenate([m, h], axis=1))
    np.testing.assert_allclose(y[:, 4:], 0.0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    m, h, eps = inputs(dtype=dtype)
    layer = layer_with(eps)
    y = layer.forward(np.concatenate([m, h], axis=1))
    d = layer.backward(np.ones_like(y))
    assert y.dtype == d.dtype == dtype and d.shape == (4, 6)


def test_gradient_check_passes_with_no_adapter():
    """The layer's own contract is the checker's: one array in, one out, ε fixed."""
    m, h, eps = inputs(n=3, z=4, seed=2)
    (result,) = gradcheck_layer(layer_with(eps), np.concatenate([m, h], axis=1))
    assert result.max_error <= 1e-6, result


def test_in_a_sequential_with_its_neighbours():
    from numpyvae.nn import Dense

    m, h, eps = inputs(n=3, z=2, seed=4)
    r = np.random.default_rng(1)
    net = Sequential(Dense(5, 4, dtype=F64, rng=r), layer_with(eps), Dense(4, 3, dtype=F64, rng=r))
    (w, b, *rest) = gradcheck_layer(net, r.standard_normal((3, 5)))
    assert max(res.max_error for res in (w, b, *rest)) <= 1e-6


class RowMeanDkl(Reparameterize):
    """Planted: dkl collapsed to its row mean, as if every dimension weighed alike."""

    def backward(self, dout):
        z = dout.shape[1] // 2
        dout = dout.copy()
        dout[:, z:] = dout[:, z:].mean(axis=1, keepdims=True)
        return super().backward(dout)


class HalfDropped(Reparameterize):
    """Planted: ∂kl/∂v written as (1 − 1/v), the ½ of the KL forgotten."""

    def backward(self, dout):
        m, h, eps, v, s = self._saved()
        dz, w = np.split(dout, 2, axis=1)
        dv = dz * eps / (2 * s) + w * (1 - 1 / v)
        return np.concatenate([dz + w * m, dv * (1 / (1 + np.exp(-h)))], axis=1)


class WrongSqrtDerivative(Reparameterize):
    """Planted: ∂√v/∂v written as 1/√v instead of 1/(2√v)."""

    def backward(self, dout):
        m, h, eps, v, s = self._saved()
        dz, w = np.split(dout, 2, axis=1)
        dv = dz * eps / s + w * (0.5 * (1 - 1 / v))
        return np.concatenate([dz + w * m, dv * (1 / (1 + np.exp(-h)))], axis=1)


@pytest.mark.parametrize("broken", [RowMeanDkl, HalfDropped, WrongSqrtDerivative])
def test_negative_controls_fail(broken):
    m, h, eps = inputs(n=3, z=4, seed=1)
    (result,) = gradcheck_layer(layer_with(eps, broken), np.concatenate([m, h], axis=1))
    assert result.max_error > 1e-3, result


def test_infer_and_new_noise_keep_the_pending_backward():
    m, h, eps = inputs()
    layer = layer_with(eps)
    y = layer.forward(np.concatenate([m, h], axis=1))
    dy = np.ones_like(y)
    expected = layer.backward(dy)
    m2, h2, eps2 = inputs(n=2, seed=5)
    layer.set_noise(eps2)
    layer.infer(np.concatenate([m2, h2], axis=1))
    np.testing.assert_array_equal(layer.backward(dy), expected)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        Reparameterize().backward(np.zeros((2, 2)))


def test_bad_inputs_are_named():
    m, h, eps = inputs()
    x = np.concatenate([m, h], axis=1)
    with pytest.raises(ValueError, match=r"ε from set_noise of shape \(4, 3\).*ε: none set"):
        Reparameterize().forward(x)
    layer = layer_with(eps)
    with pytest.raises(ValueError, match=r"even width.*x has shape \(4, 5\)"):
        layer.forward(x[:, :5])
    with pytest.raises(ValueError, match=r"dtype float64.*ε: shape \(4, 3\) dtype float32"):
        layer_with(eps.astype(np.float32)).forward(x)
    with pytest.raises(ValueError, match=r"Reparameterize: expected input of shape \(N, D\)"):
        layer.forward(x[0])
    y = layer.forward(x)
    with pytest.raises(ValueError, match=r"Reparameterize.backward: expected dout of shape"):
        layer.backward(y[:, :3])


def test_softplus_function_is_the_one_used():
    m, h, eps = inputs()
    y = layer_with(eps).forward(np.concatenate([m, h], axis=1))
    np.testing.assert_array_equal(y[:, :3], m + np.sqrt(softplus(h) + VARIANCE_FLOOR) * eps)
