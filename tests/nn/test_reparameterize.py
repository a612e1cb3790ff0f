"""Reparameterize: z = m + √v ⊙ ε and the KL term, their gradients, and bad input."""

import numpy as np
import pytest

from numpyvae.nn import Reparameterize
from numpyvae.nn.activations import softplus
from numpyvae.nn.gradcheck import gradcheck_layer
from numpyvae.nn.gradcheck_cases import ReparameterizeAsLayer
from numpyvae.nn.reparameterize import VARIANCE_FLOOR

F64 = np.float64


def inputs(n=4, z=3, seed=0, dtype=F64):
    r = np.random.default_rng(seed)
    m = r.standard_normal((n, z)).astype(dtype)
    h = (2 * r.standard_normal((n, z))).astype(dtype)
    eps = r.standard_normal((n, z)).astype(dtype)
    return m, h, eps


def test_forward_matches_the_formulas():
    m, h, eps = inputs()
    z, kl = Reparameterize().forward(m, h, eps)
    v = np.log1p(np.exp(h)) + VARIANCE_FLOOR
    np.testing.assert_allclose(z, m + np.sqrt(v) * eps, rtol=1e-14)
    np.testing.assert_allclose(kl, 0.5 * np.sum(v + m**2 - 1 - np.log(v), axis=1), rtol=1e-14)
    assert z.shape == m.shape and kl.shape == (m.shape[0],)


def test_kl_is_zero_at_the_prior():
    """m = 0, v = 1 (h = softplus⁻¹(1 − floor)) is the prior itself: KL = 0."""
    m = np.zeros((2, 4))
    h = np.full((2, 4), np.log(np.expm1(1.0 - VARIANCE_FLOOR)))
    _, kl = Reparameterize().forward(m, h, np.zeros_like(m))
    np.testing.assert_allclose(kl, 0.0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    m, h, eps = inputs(dtype=dtype)
    layer = Reparameterize()
    z, kl = layer.forward(m, h, eps)
    d = layer.backward(np.ones_like(z), 0.25)
    assert z.dtype == kl.dtype == d.dtype == dtype and d.shape == (4, 6)


def test_scalar_dkl_equals_per_image_dkl():
    m, h, eps = inputs()
    layer = Reparameterize()
    z, _ = layer.forward(m, h, eps)
    dz = np.random.default_rng(3).standard_normal(z.shape)
    np.testing.assert_array_equal(layer.backward(dz, 0.25), layer.backward(dz, np.full(4, 0.25)))


def test_per_dim_kl_sums_to_kl():
    m, h, eps = inputs()
    z, kl = Reparameterize().forward(m, h, eps)
    z2, kl_dims = Reparameterize().forward(m, h, eps, per_dim=True)
    assert kl_dims.shape == m.shape
    np.testing.assert_array_equal(z, z2)
    np.testing.assert_allclose(kl_dims.sum(axis=1), kl, rtol=1e-14)


def test_per_dim_dkl_with_equal_columns_equals_per_image_dkl():
    m, h, eps = inputs()
    layer = Reparameterize()
    z, _ = layer.forward(m, h, eps, per_dim=True)
    dz = np.random.default_rng(3).standard_normal(z.shape)
    w = np.random.default_rng(4).standard_normal(4)
    np.testing.assert_allclose(layer.backward(dz, np.repeat(w[:, None], 3, axis=1)),
                               layer.backward(dz, w), rtol=1e-15)


def test_per_dim_gradient_check_passes():
    m, h, eps = inputs(n=3, z=4, seed=2)
    (result,) = gradcheck_layer(ReparameterizeAsLayer(eps, per_dim=True),
                                np.concatenate([m, h], axis=1))
    assert result.max_error <= 1e-6, result


class RowMeanDkl(Reparameterize):
    """Planted: a (N, Z) dkl collapsed to its row mean, as if every dimension weighed alike."""

    def backward(self, dz, dkl):
        w = np.asarray(dkl)
        return super().backward(dz, w.mean(axis=1) if w.ndim == 2 else w)


def test_per_dim_negative_control_fails():
    m, h, eps = inputs(n=3, z=4, seed=1)
    (result,) = gradcheck_layer(ReparameterizeAsLayer(eps, RowMeanDkl(), per_dim=True),
                                np.concatenate([m, h], axis=1))
    assert result.max_error > 1e-3, result


class HalfDropped(Reparameterize):
    """Planted: ∂kl/∂v written as (1 − 1/v), the ½ of the KL forgotten."""

    def backward(self, dz, dkl):
        m, h, eps, v, s = self._saved()
        w = np.asarray(dkl).reshape(-1, 1)
        dv = dz * eps / (2 * s) + w * (1 - 1 / v)
        return np.concatenate([dz + w * m, dv * (1 / (1 + np.exp(-h)))], axis=1)


class WrongSqrtDerivative(Reparameterize):
    """Planted: ∂√v/∂v written as 1/√v instead of 1/(2√v)."""

    def backward(self, dz, dkl):
        m, h, eps, v, s = self._saved()
        w = np.asarray(dkl).reshape(-1, 1)
        dv = dz * eps / s + w * (0.5 * (1 - 1 / v))
        return np.concatenate([dz + w * m, dv * (1 / (1 + np.exp(-h)))], axis=1)


@pytest.mark.parametrize("broken", [HalfDropped, WrongSqrtDerivative])
def test_negative_controls_fail(broken):
    m, h, eps = inputs(n=3, z=4, seed=1)
    x = np.concatenate([m, h], axis=1)
    (result,) = gradcheck_layer(ReparameterizeAsLayer(eps, broken()), x)
    assert result.max_error > 1e-3, result


def test_infer_keeps_the_pending_backward():
    m, h, eps = inputs()
    layer = Reparameterize()
    z, _ = layer.forward(m, h, eps)
    dz = np.ones_like(z)
    expected = layer.backward(dz, 1.0)
    layer.infer(*inputs(n=2, seed=5))
    np.testing.assert_array_equal(layer.backward(dz, 1.0), expected)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        Reparameterize().backward(np.zeros((2, 2)), 1.0)


def test_bad_inputs_are_named():
    m, h, eps = inputs()
    layer = Reparameterize()
    with pytest.raises(ValueError, match=r"expected h of m's shape \(4, 3\)"):
        layer.forward(m, h[:, :2], eps)
    with pytest.raises(ValueError, match="expected eps of m's shape .* dtype float64"):
        layer.forward(m, h, eps.astype(np.float32))
    with pytest.raises(ValueError, match=r"Reparameterize: expected input of shape \(N, D\)"):
        layer.forward(m[0], h[0], eps[0])
    z, _ = layer.forward(m, h, eps)
    with pytest.raises(ValueError, match=r"Reparameterize.backward: expected dout of shape"):
        layer.backward(z[:, :2], 1.0)
    with pytest.raises(ValueError, match=r"expected dkl of shape \(4,\), \(4, 3\) or a scalar"):
        layer.backward(z, np.ones(3))
    with pytest.raises(ValueError, match=r"got shape \(4, 2\)"):
        layer.backward(z, np.ones((4, 2)))


def test_softplus_function_is_the_one_used():
    m, h, eps = inputs()
    z, _ = Reparameterize().forward(m, h, eps)
    np.testing.assert_array_equal(z, m + np.sqrt(softplus(h) + VARIANCE_FLOOR) * eps)
