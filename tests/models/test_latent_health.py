"""Latent-space diagnostics: per-dimension KL, active units, I(x; z) under q.

The active-unit count is checked on a hand-built encoder that ignores some latent
dimensions; the mutual information on a linear-Gaussian posterior whose I(x; z) is
known in closed form, with a negative control (a wrong aggregate posterior) that
must fail the same check; and the parameters and buffers of a CNN VAE (BatchNorm)
must not change, whatever mode it is in.
"""

import dataclasses
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from numpyvae.models import latent_health as lh
from numpyvae.models.architectures import build_cnn_vae
from numpyvae.models.vae import VAE
from numpyvae.nn import Dense, Flatten, Reshape, Sequential


# -- per-dimension KL ---------------------------------------------------------------
def test_kl_per_dimension_is_the_closed_form_averaged_over_images():
    rng = np.random.default_rng(0)
    m, v = rng.standard_normal((50, 4)), rng.random((50, 4)) + 0.05
    want = [np.mean([0.5 * (v[i, j] + m[i, j] ** 2 - 1 - math.log(v[i, j]))
                     for i in range(50)]) for j in range(4)]
    np.testing.assert_allclose(lh.kl_per_dimension(m, v), want, rtol=1e-12)
    np.testing.assert_array_equal(lh.kl_per_dimension(np.zeros((3, 2)), np.ones((3, 2))), 0.0)


def test_kl_total_is_the_kl_of_the_training_loss():
    vae = masked_vae(latent_dim=4, used=[0, 2])
    x = images(64)
    result = lh.evaluate_latent(vae, x, with_mi=False)
    vae.eval()
    loss_kl = vae.forward(x, eps=np.zeros((64, 4))).kl
    assert result.kl_total == pytest.approx(loss_kl, rel=1e-10)
    assert result.kl_total == pytest.approx(sum(result.kl_per_dim), rel=1e-12)


# -- active units: an encoder that ignores some dimensions ---------------------------------
def masked_vae(latent_dim: int, used: list[int]) -> VAE:
    """x → Dense → [m, h]: m_j depends on x for j in ``used``; for the others the weights
    are zero, so m_j is the bias, the same for every image (a constant, not zero)."""
    rng = np.random.default_rng(3)
    dense = Dense(784, 2 * latent_dim, dtype=np.float64, rng=rng)
    dense.params["weight"][...] = rng.standard_normal(dense.params["weight"].shape) * 0.1
    dense.params["bias"][...] = rng.standard_normal(dense.params["bias"].shape)
    for j in set(range(latent_dim)) - set(used):
        dense.params["weight"][:, j] = 0.0
    decoder = Sequential(Dense(latent_dim, 784, dtype=np.float64, rng=rng), Reshape(1, 28, 28))
    return VAE(Sequential(Flatten(), dense), decoder, latent_dim)


def images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 28, 28))


@pytest.mark.parametrize("used", [[0, 1, 2, 3, 4], [1, 3], [4], []])
def test_active_units_count_the_dimensions_the_encoder_uses(used):
    result = lh.evaluate_latent(masked_vae(5, used), images(200), with_mi=False)
    assert result.active == len(used)
    assert result.active_dims == used
    assert result.inactive_dims == [j for j in range(5) if j not in used]
    assert result.threshold == 0.01 and "Burda" in result.citation
    for j in used:  # far from the threshold either way: the test is not a coin toss
        assert result.active_variance[j] > 0.1
    for j in result.inactive_dims:
        assert result.active_variance[j] < 1e-20


def test_collapse_warning_names_the_inactive_dimensions():
    result = lh.evaluate_latent(masked_vae(5, [0, 2]), images(100), with_mi=False)
    assert result.collapse is not None and result.collapse.endswith("1, 3, 4")
    lines = lh.latent_report_lines(result)
    assert lines[-1] == "warning: " + result.collapse
    assert any("2 of 5" in line for line in lines)
    healthy = lh.evaluate_latent(masked_vae(5, [0, 1, 2, 3, 4]), images(100), with_mi=False)
    assert healthy.collapse is None
    assert not any("warning" in line for line in lh.latent_report_lines(healthy))


def test_active_units_use_the_variance_of_the_means_not_of_the_draws():
    m = np.tile([[0.0, 1.0]], (100, 1))
    m[:, 1] += np.linspace(-0.2, 0.2, 100)  # Var ≈ 0.0137: just active
    v = np.tile([[5.0, 1e-6]], (100, 1))  # a wide posterior is no sign of use
    variance, active = lh.active_units(m)
    assert active == [1]
    assert variance[1] == pytest.approx(np.var(np.linspace(-0.2, 0.2, 100)), rel=1e-12)
    assert lh.latent_health(m, v, with_mi=False).active == 1


# -- the aggregate posterior's density -------------------------------------------------
@pytest.mark.parametrize("max_pairs", [1, 5, 7, 100, 10**6])
def test_aggregate_log_density_is_the_mixture_in_any_block_size(max_pairs):
    rng = np.random.default_rng(0)
    m, v = rng.standard_normal((7, 3)) * 2, rng.random((7, 3)) + 0.01
    z = rng.standard_normal((11, 3)) * 2
    want = [logsumexp([multivariate_normal(m[j], np.diag(v[j])).logpdf(zz) for j in range(7)])
            - math.log(7) for zz in z]
    np.testing.assert_allclose(lh.aggregate_log_density(z, m, v, max_pairs), want,
                               rtol=0, atol=1e-12)


# -- mutual information: a linear-Gaussian posterior with a known I(x; z) ---------------------
N_LINEAR, SIGMA = 10_000, 0.5


def linear_gaussian() -> tuple[np.ndarray, np.ndarray, float]:
    """x ~ N(0, I₄) (whitened: the N images' covariance is exactly I), q(z|x) = N(Ax, σ²I₃).

    Then q(z) = N(0, AAᵀ + σ²I) and I(x; z) = ½ log det(I + AAᵀ/σ²), scaled to 1 nat,
    well under log N = 9.2. Returns the posteriors' m, v and the exact I.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4))

    def exact(scale: float) -> float:
        return 0.5 * np.linalg.slogdet(np.eye(3) + scale**2 * a @ a.T / SIGMA**2)[1]

    a *= brentq(lambda s: exact(s) - 1.0, 1e-3, 10.0)
    x = rng.standard_normal((N_LINEAR, 4))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x.T, bias=True))).T
    m = x @ a.T
    return m, np.full_like(m, SIGMA**2), exact(1.0)


@pytest.fixture(scope="module")
def linear():
    return linear_gaussian()


def test_mutual_information_matches_the_linear_gaussian_closed_form(linear):
    m, v, exact = linear
    assert exact == pytest.approx(1.0, abs=1e-9)
    mi, se = lh.mutual_information(m, v, samples=2, seed=0)
    assert 0 < se < 0.01  # the check below is sharp: a few hundredths of a nat
    assert abs(mi - exact) < 4 * se, f"I = {mi:.4f} ± {se:.4f}, exact {exact:.4f}"


def test_mutual_information_standard_error_is_the_spread_over_seeds():
    """For fixed images, the estimates of 100 seeds scatter by the reported standard error
    (the ratio's own sampling error is about 7%)."""
    rng = np.random.default_rng(7)
    m = rng.standard_normal((300, 2)) * [2.0, 0.5]
    v = rng.random((300, 2)) * 0.5 + 0.05
    runs = np.array([lh.mutual_information(m, v, samples=2, seed=s) for s in range(100)])
    ratio = np.std(runs[:, 0], ddof=1) / np.mean(runs[:, 1])
    assert 0.8 < ratio < 1.25, f"spread over seeds / reported SE = {ratio:.3f}"


def test_mutual_information_with_a_wrong_aggregate_posterior_fails_the_check(linear):
    """Negative control: with the prior in place of q(z), the same check must fail, or it
    could not catch a wrong aggregate posterior."""
    m, v, exact = linear

    def prior(z, mm, vv):
        return -0.5 * np.sum(z * z + math.log(2 * math.pi), axis=1)

    mi, se = lh.mutual_information(m, v, samples=2, seed=0, log_aggregate=prior)
    assert not abs(mi - exact) < 4 * se
    # it estimates E_x KL(q(z|x) ‖ p) instead: I plus the aggregate's KL from the prior
    cov = m.T @ m / len(m) + SIGMA**2 * np.eye(3)
    kl_aggregate = 0.5 * (np.trace(cov) - 3 - np.linalg.slogdet(cov)[1])
    assert abs(mi - (exact + kl_aggregate)) < 4 * se


def test_mutual_information_is_at_most_log_n_and_flagged_near_it():
    """Posteriors far apart: every draw's q(z) is its own component over N, so I = log N."""
    m = np.arange(20, dtype=np.float64)[:, None] * 100.0 * np.ones((1, 2))
    v = np.full_like(m, 0.01)
    result = lh.latent_health(m, v, samples=4)
    assert result.mi == pytest.approx(math.log(20), abs=1e-9)
    assert result.mi_se < 1e-6
    assert result.log_n == pytest.approx(math.log(20))
    assert result.mi_near_bound is True
    assert any("biased low" in line for line in lh.latent_report_lines(result))


def test_mutual_information_of_a_collapsed_posterior_is_zero():
    m, v = np.zeros((300, 3)), np.ones((300, 3))
    mi, se = lh.mutual_information(m, v, samples=3)
    assert mi == pytest.approx(0.0, abs=1e-12) and se == pytest.approx(0.0, abs=1e-12)


def test_mutual_information_is_deterministic_in_its_seed_and_block_size():
    rng = np.random.default_rng(5)
    m, v = rng.standard_normal((60, 2)), rng.random((60, 2)) + 0.1
    a = lh.mutual_information(m, v, samples=3, seed=1)
    assert lh.mutual_information(m, v, samples=3, seed=1, max_pairs=7) == pytest.approx(
        a, rel=1e-12)
    assert lh.mutual_information(m, v, samples=3, seed=2) != a


@pytest.mark.parametrize("samples", [1, 0, 2.0, True])
def test_mutual_information_needs_two_draws_per_image(samples):
    with pytest.raises(ValueError, match="samples"):
        lh.mutual_information(np.zeros((5, 2)), np.ones((5, 2)), samples=samples)


# -- the report dict ------------------------------------------------------------------
def test_latent_health_is_json_able_and_has_every_key(linear):
    import json

    m, v, _ = linear
    result = lh.latent_health(m[:500], v[:500], samples=2)
    as_dict = result.as_dict()
    again = json.loads(json.dumps(as_dict))
    assert again == as_dict
    assert list(as_dict) == [f.name for f in dataclasses.fields(lh.LatentHealth)]
    for key in ("kl_per_dim", "kl_total", "active", "active_dims", "threshold", "mi", "mi_se",
                "log_n", "n_images", "citation"):
        assert as_dict[key] == getattr(result, key)
    assert result.n_images == 500 and result.active == 3
    lines = lh.latent_report_lines(result)
    assert all("\n" not in line for line in lines)
    assert any("log N" in line and "biased" in line for line in lines)
    assert any("Burda" in line and "0.01" in line for line in lines)


@pytest.mark.parametrize("m, v, match", [
    (np.zeros((4, 2)), np.ones((4, 3)), "same shape"),
    (np.zeros((0, 2)), np.ones((0, 2)), "same shape"),
    (np.zeros(4), np.ones(4), "same shape"),
    (np.zeros((4, 2)), np.zeros((4, 2)), "> 0"),
    (np.full((4, 2), np.nan), np.ones((4, 2)), "NaN"),
])
def test_latent_health_rejects_bad_input(m, v, match):
    with pytest.raises(ValueError, match=match):
        lh.latent_health(m, v)


def test_evaluate_latent_needs_a_vae():
    from numpyvae.models.autoencoder import Autoencoder

    ae = Autoencoder(Dense(784, 2, rng=np.random.default_rng(0)),
                     Dense(2, 784, rng=np.random.default_rng(0)), 2)
    with pytest.raises(ValueError, match="needs a VAE"):
        lh.evaluate_latent(ae, images(4).astype(np.float32))


# -- the model is left as it was --------------------------------------------------------------
@pytest.mark.parametrize("training", [True, False])
def test_parameters_and_buffers_are_unchanged_in_either_mode(training):
    vae = build_cnn_vae(3, rng=np.random.default_rng(0))
    x = images(24).astype(np.float32)
    vae.train()
    vae.forward(x[:8], rng=np.random.default_rng(0))  # BatchNorm stats away from (0, 1)
    vae.train() if training else vae.eval()
    before = {k: a.copy() for k, a in vae.named_arrays().items()}
    result = lh.evaluate_latent(vae, x, samples=2, batch=10)
    after = vae.named_arrays()
    assert sorted(after) == sorted(before)
    for k, a in after.items():
        np.testing.assert_array_equal(a, before[k], err_msg=k)
    assert vae.encoder.training is training and vae.decoder.training is training
    assert all(layer.training is training for layer in vae.encoder.layers)
    assert result.n_images == 24 and len(result.kl_per_dim) == 3


def test_posterior_moments_are_the_eval_mode_posterior_in_any_batch_size():
    vae = build_cnn_vae(2, rng=np.random.default_rng(0))
    x = images(12).astype(np.float32)
    vae.forward(x, rng=np.random.default_rng(0))
    vae.train()
    m, v = lh.posterior_moments(vae, x, batch=5)
    assert m.dtype == v.dtype == np.float64 and m.shape == v.shape == (12, 2)
    vae.eval()
    m_all, v_all = vae.encode(x)
    # float32 sums may round differently in batches of 5 and of 12: a few ulps
    np.testing.assert_allclose(m, m_all, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, v_all, rtol=1e-5, atol=1e-6)
