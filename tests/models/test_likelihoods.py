"""p(x|z): the Gaussian and Bernoulli terms against direct formulas, their gradients, stability."""

import math

import numpy as np
import pytest

from numpyvae.models.likelihoods import Bernoulli, Gaussian, make_likelihood
from numpyvae.nn.gradcheck import check_gradients


def _data(rng, shape=(3, 1, 4, 5), binary=False):
    x = rng.uniform(0, 1, shape)
    return (x < 0.5).astype(float) if binary else x


def _gradcheck(lik, x, out, weights, seed=0):
    """Check d(Σ_n w_n nll_n)/d out against finite differences."""
    lik.nll(x, out)
    analytic = lik.backward(weights)
    return check_gradients(lambda: float(np.dot(weights, lik.nll(x, out))),
                           {"out": (out, analytic)}, seed=seed)


def test_gaussian_matches_the_report_formula_and_its_constant():
    rng = np.random.default_rng(0)
    x, out = _data(rng), rng.standard_normal((3, 1, 4, 5))
    lik = Gaussian(c=0.05)
    x_hat = 1 / (1 + np.exp(-out))
    expected = np.sum((x - x_hat) ** 2, axis=(1, 2, 3)) / (2 * 0.05)
    np.testing.assert_allclose(lik.nll(x, out), expected, rtol=1e-12)
    constant = -0.5 * 20 * math.log(2 * math.pi * 0.05)
    np.testing.assert_allclose(lik.log_prob(x, out), constant - expected, rtol=1e-12)
    # the figure: at c = 0.05 the constant of a 784-pixel image is about +454 nats
    assert lik.log_normalizer(784) == pytest.approx(453.9, abs=0.1)


def test_gaussian_log_prob_is_a_normalised_density():
    """With identity output, exp(log_prob) of one pixel integrates to 1 over x."""
    lik = Gaussian(c=0.3, output_activation="identity")
    xs = np.linspace(-6, 7, 20001)[:, None, None, None]
    density = np.exp(lik.log_prob(xs, np.full_like(xs, 0.5)))
    assert np.trapezoid(density, xs[:, 0, 0, 0]) == pytest.approx(1.0, abs=1e-9)


def test_bernoulli_matches_cross_entropy_and_is_a_probability():
    rng = np.random.default_rng(1)
    x, out = _data(rng, binary=True), 3 * rng.standard_normal((3, 1, 4, 5))
    p = 1 / (1 + np.exp(-out))
    expected = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
    lik = Bernoulli()
    np.testing.assert_allclose(lik.nll(x, out), expected, rtol=1e-12)
    assert lik.log_normalizer(784) == 0.0
    # summed over all 2^4 binary images of 4 pixels, the probabilities add up to 1
    images = np.array([[(k >> i) & 1 for i in range(4)] for k in range(16)], float)
    logits = np.tile(rng.standard_normal(4), (16, 1))
    total = np.exp(lik.log_prob(images.reshape(16, 1, 2, 2), logits.reshape(16, 1, 2, 2))).sum()
    assert total == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_is_stable_at_huge_logits(dtype):
    """The stable form: no overflow, and the exact values where log(sigmoid) would give -inf."""
    out = np.array([1e4, -1e4, 1e4, -1e4, 0.0], dtype).reshape(1, 1, 1, 5)
    x = np.array([1, 0, 0, 1, 1], dtype).reshape(1, 1, 1, 5)
    lik = Bernoulli()
    nll = lik.nll(x, out)
    assert nll.dtype == dtype
    assert nll[0] == pytest.approx(2e4 + math.log(2), rel=1e-6)
    grad = lik.backward(1.0)
    np.testing.assert_array_equal(grad.ravel(), np.array([0, 0, 1, -1, -0.5], dtype))
    assert grad.dtype == dtype


def test_gradcheck_catches_a_bernoulli_backward_without_the_sigmoid(monkeypatch):
    """Negative control: d/d out = out − x (a common slip for sigmoid(out) − x) must fail."""
    rng = np.random.default_rng(3)
    x, out = _data(rng), 2 * rng.standard_normal((3, 1, 4, 5))
    lik = Bernoulli()
    monkeypatch.setattr(lik, "backward", lambda w: (out - x) * np.reshape(w, (-1, 1, 1, 1)))
    assert max(r.max_error for r in _gradcheck(lik, x, out, np.ones(3))) > 1e-2


def test_float32_stays_float32():
    rng = np.random.default_rng(4)
    x = _data(rng).astype(np.float32)
    out = rng.standard_normal(x.shape).astype(np.float32)
    for lik in (Gaussian(0.05), Bernoulli()):
        assert lik.nll(x, out).dtype == np.float32
        assert lik.backward(np.float32(0.25)).dtype == np.float32
        assert lik.mean(out).dtype == np.float32


def test_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="likelihood must be one of gaussian, bernoulli, "
                                         "got 'poisson'"):
        make_likelihood("poisson")
    with pytest.raises(ValueError, match="output_activation must be 'sigmoid'"):
        make_likelihood("bernoulli", output_activation="identity")
    with pytest.raises(ValueError, match="c must be > 0"):
        Gaussian(c=0)
    with pytest.raises(ValueError, match=r"decoder gives shape \(1, 2, 2\) per image, the data "
                                         r"\(1, 4, 5\)"):
        Bernoulli().nll(np.zeros((3, 1, 4, 5)), np.zeros((3, 1, 2, 2)))
    with pytest.raises(RuntimeError, match="before nll"):
        Bernoulli().backward(1.0)


@pytest.mark.parametrize("lik", [Gaussian(), Bernoulli()], ids=["gaussian", "bernoulli"])
def test_log_prob_between_nll_and_backward_changes_nothing(lik):
    """log_prob runs nll under the layers' one mechanism (pending_backward_kept): the
    backward that follows still sees the nll's batch, not log_prob's."""
    rng = np.random.default_rng(7)
    x, out = _data(rng), rng.standard_normal((3, 1, 4, 5))
    lik.nll(x, out)
    expected = lik.backward(0.5)
    lik.nll(x, out)
    lik.log_prob(_data(rng, (5, 1, 4, 5)), rng.standard_normal((5, 1, 4, 5)))
    np.testing.assert_array_equal(lik.backward(0.5), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 1, 4, 5), (1, 1, 28, 28), (401, 1, 28, 28)], ids=str)
def test_gaussian_kernel_path_matches_its_numpy_form(dtype, shape, monkeypatch):
    """The fused kernel (σ, Σ (x̂ − x)² per image, the gradient: one pass each; 401 images
    take its parallel loop) against the NumPy lines it replaces, which run when the Sigmoid
    layers' kernels are off; scalar and per-image weights."""
    from numpyvae.nn import Sigmoid

    rng = np.random.default_rng(8)
    x = _data(rng, shape).astype(dtype)
    out = (3 * rng.standard_normal(shape)).astype(dtype)
    weights = rng.uniform(0.5, 2, shape[0]).astype(dtype)
    lik = Gaussian(c=0.05)
    got = [lik.nll(x, out), lik.backward(0.25), lik.backward(weights)]
    assert lik.cache[0] is None  # the kernel path ran
    monkeypatch.setattr(Sigmoid, "use_kernels", False)
    ref = [lik.nll(x, out), lik.backward(0.25), lik.backward(weights)]
    assert lik.cache[0] is not None  # the NumPy path ran
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    for g, r in zip(got, ref, strict=True):
        assert g.dtype == r.dtype == dtype and g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * np.abs(r).max())
