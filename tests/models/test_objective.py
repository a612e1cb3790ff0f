"""The VAE's training objective: recon + β·Σ_j max(λ, KL_j). Its value against a direct
computation, gradient checks with β ≠ 1, during warm-up and with free bits (away from the
kink), and a negative control: a free-bits backward that ignores the kink fails."""

import numpy as np
import pytest

from numpyvae.models.architectures import build_mlp_vae
from numpyvae.models.gradcheck_cases import free_bits_away_from_kink, with_objective
from numpyvae.nn.gradcheck import TOLERANCE, check_gradients

F64 = np.float64


def _vae_and_batch(seed=0, z=4, n=5):
    rng = np.random.default_rng(seed)
    vae = build_mlp_vae(z, hidden=(12, 6), dtype=F64, rng=rng)
    x = rng.uniform(0.35, 0.65, (n, 1, 28, 28))
    return vae, x, rng.standard_normal((n, z))


def _kl_j(vae, x, eps):
    vae.reparameterize.set_noise(eps)
    z_kl = vae.reparameterize.infer(vae._encoder_output(x, None, infer=True))
    return z_kl[:, vae.latent_dim:].mean(axis=0)


def _check(vae, x, eps, ignore_kink=False):
    """Gradient check of the objective w.r.t. every parameter, ε fixed. ``ignore_kink``
    plants the bug: every dimension gets the KL's gradient, also those below λ."""
    vae.forward(x, eps)
    if ignore_kink:
        n, beta, above = vae.cache
        vae.cache = (n, beta, np.ones_like(above))
    vae.backward()
    tensors = {name: (p, g.copy()) for name, p, g in vae.named_parameters()}
    return max(r.max_error for r in check_gradients(lambda: vae.forward(x, eps).objective,
                                                    tensors, max_entries=40, seed=0))


def test_objective_value_and_loss_stays_minus_elbo():
    vae, x, eps = _vae_and_batch()
    plain = vae.forward(x, eps)
    assert plain.objective == plain.loss == plain.recon + plain.kl
    with_objective(vae, beta=4.0)
    weighted = vae.forward(x, eps)
    assert weighted.loss == plain.loss
    assert weighted.objective == pytest.approx(plain.recon + 4.0 * plain.kl, rel=1e-12)
    lam = free_bits_away_from_kink(vae, x, eps)
    with_objective(vae, beta=1.0, free_bits=lam)
    fb = vae.forward(x, eps)
    kl_j = _kl_j(vae, x, eps)
    assert fb.loss == pytest.approx(plain.loss, rel=1e-12)
    assert fb.objective == pytest.approx(plain.recon + np.maximum(lam, kl_j).sum(), rel=1e-12)
    assert fb.objective > fb.loss  # free bits: at least −ELBO, here more


@pytest.mark.parametrize("beta", [4.0, 0.3], ids=["beta 4", "warm-up beta 0.3"])
def test_gradient_check_with_beta(beta):
    vae, x, eps = _vae_and_batch(seed=1)
    with_objective(vae, beta=beta)
    assert _check(vae, x, eps) <= TOLERANCE


@pytest.mark.parametrize("seed", [0, 3])
def test_gradient_check_with_free_bits_away_from_the_kink(seed):
    vae, x, eps = _vae_and_batch(seed=seed)
    lam = free_bits_away_from_kink(vae, x, eps)
    kl_j = _kl_j(vae, x, eps)
    assert np.min(np.abs(kl_j - lam)) > 1e-3, (kl_j, lam)  # no dimension on the kink
    assert (kl_j < lam).any() and (kl_j > lam).any()  # both sides of it are exercised
    with_objective(vae, beta=1.5, free_bits=lam)
    assert _check(vae, x, eps) <= TOLERANCE


def test_free_bits_backward_that_ignores_the_kink_fails():
    vae, x, eps = _vae_and_batch(seed=0)
    with_objective(vae, beta=1.5, free_bits=free_bits_away_from_kink(vae, x, eps))
    assert _check(vae, x, eps) <= TOLERANCE
    assert _check(vae, x, eps, ignore_kink=True) > 1e-3


def test_free_bits_above_every_kl_leaves_only_the_reconstruction():
    """λ above every KL_j: the KL term is the constant Z·λ, so its gradient is zero."""
    vae, x, eps = _vae_and_batch()
    with_objective(vae, free_bits=10.0)
    vae.forward(x, eps)
    vae.backward()
    fb = {k: g.copy() for k, _, g in vae.named_parameters()}
    vae.forward(x, eps)
    n, _, _ = vae.cache
    vae.cache = (n, 0.0, None)  # β = 0 without free bits: dkl = 0
    vae.backward()
    for k, _, g in vae.named_parameters():
        np.testing.assert_array_equal(g, fb[k])
