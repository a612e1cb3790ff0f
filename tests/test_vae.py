"""The VAE: loss against a direct computation, and whole-model gradient checks."""

import numpy as np
import pytest

from numpyvae.gradcheck import TOLERANCE, check_gradients
from numpyvae.models import build_cnn_vae, build_mlp_vae, build_vae
from numpyvae.vae import VAE


def _check_model(vae: VAE, x: np.ndarray, seed: int = 0, max_entries: int = 40) -> list:
    """Gradient check of the mean loss w.r.t. every parameter, ε held fixed."""
    eps = np.random.default_rng(seed).standard_normal((len(x), vae.latent_dim))
    vae.forward(x, eps)
    vae.backward()
    tensors = {name: (p, g.copy()) for name, p, g in vae.named_parameters()}
    return check_gradients(lambda: vae.forward(x, eps).loss, tensors, max_entries=max_entries,
                           seed=seed)


def test_loss_matches_direct_formula():
    rng = np.random.default_rng(1)
    vae = build_mlp_vae(3, hidden=(20, 10), c=0.05, dtype=np.float64, rng=rng)
    x = rng.uniform(0, 1, (4, 1, 28, 28))
    eps = rng.standard_normal((4, 3))
    losses = vae.forward(x, eps)
    out = vae.encoder.forward(x)
    m, h = out[:, :3], out[:, 3:]
    v = np.log1p(np.exp(h)) + 1e-8
    z = m + np.sqrt(v) * eps
    x_hat = 1 / (1 + np.exp(-vae.decoder.forward(z)))
    recon = np.sum((x - x_hat) ** 2, axis=(1, 2, 3)) / (2 * 0.05)
    kl = 0.5 * np.sum(v + m**2 - 1 - np.log(v), axis=1)
    assert losses.recon == pytest.approx(recon.mean(), rel=1e-12)
    assert losses.kl == pytest.approx(kl.mean(), rel=1e-12)
    assert losses.loss == pytest.approx(recon.mean() + kl.mean(), rel=1e-12)


def test_mlp_vae_gradcheck():
    rng = np.random.default_rng(2)
    vae = build_mlp_vae(2, hidden=(12, 6), dtype=np.float64, rng=rng)
    x = rng.uniform(0, 1, (5, 1, 28, 28))
    results = _check_model(vae, x)
    worst = max(r.max_error for r in results)
    assert worst <= TOLERANCE, results


def test_cnn_vae_gradcheck_train_mode():
    rng = np.random.default_rng(3)
    vae = build_cnn_vae(2, dtype=np.float64, rng=rng)
    x = rng.uniform(0, 1, (2, 1, 28, 28))
    # 10 sampled entries of each of the 30 tensors: the layers' own checks go wider
    results = _check_model(vae, x, max_entries=10)
    worst = max(r.max_error for r in results)
    assert worst <= TOLERANCE, results


def test_gradcheck_catches_a_one_percent_error_in_dh(monkeypatch):
    """Negative control at model level: dL/dh 1% too large must fail the check."""
    rng = np.random.default_rng(4)
    vae = build_mlp_vae(2, hidden=(8,), dtype=np.float64, rng=rng)
    x = rng.uniform(0, 1, (4, 1, 28, 28))
    assert max(r.max_error for r in _check_model(vae, x)) <= TOLERANCE
    original = vae.softplus.backward
    monkeypatch.setattr(vae.softplus, "backward", lambda d: original(d * 1.01))
    assert max(r.max_error for r in _check_model(vae, x)) > 1e-3


def test_float32_path_stays_float32():
    vae = build_mlp_vae(2, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).uniform(0, 1, (8, 1, 28, 28)).astype(np.float32)
    vae.forward(x, rng=np.random.default_rng(2))
    vae.backward()
    assert all(g.dtype == np.float32 for _, g in vae.parameters())
    assert vae.decode(np.zeros((2, 2), np.float32)).dtype == np.float32
    m, v = vae.encode(x)
    assert m.dtype == v.dtype == np.float32 and (v > 0).all()


def test_report_architectures_shapes_and_sizes():
    mlp = build_vae("mlp", 2, rng=np.random.default_rng(0))
    cnn = build_vae("cnn", 2, rng=np.random.default_rng(0))
    # 784·300+300 + 300·100+100 + 100·10+10 + 10·4+4, and the decoder's mirror (10→2)
    enc = 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10 + 10 * 4 + 4
    dec = 2 * 10 + 10 + 10 * 100 + 100 + 100 * 300 + 300 + 300 * 784 + 784
    assert mlp.num_params() == enc + dec
    x = np.zeros((2, 1, 28, 28), np.float32)
    for vae in (mlp, cnn):
        assert vae.encoder.forward(x).shape == (2, 4)
        assert vae.decode(np.zeros((2, 2), np.float32)).shape == (2, 1, 28, 28)
    assert "ConvTranspose2d" in repr(cnn) and "BatchNorm2d" in repr(cnn)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"latent_dim": 0}, "latent_dim"), ({"c": 0.0}, "c must be > 0"),
     ({"output_activation": "tanh"}, "output_activation")],
)
def test_bad_vae_arguments(kwargs, message):
    base = build_mlp_vae(1, hidden=(4,))
    args = {"latent_dim": 1, "c": 0.05, "output_activation": "sigmoid", **kwargs}
    with pytest.raises(ValueError, match=message):
        VAE(base.encoder, base.decoder, **args)


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture 'rnn'"):
        build_vae("rnn", 2)


def test_identity_output_and_wrong_eps_shape():
    rng = np.random.default_rng(5)
    vae = build_mlp_vae(2, hidden=(6,), dtype=np.float64, rng=rng, output_activation="identity")
    x = rng.uniform(0, 1, (3, 1, 28, 28))
    assert max(r.max_error for r in _check_model(vae, x)) <= TOLERANCE
    with pytest.raises(ValueError, match=r"eps must have shape \(3, 2\)"):
        vae.forward(x, eps=np.zeros((3, 5)))
    with pytest.raises(RuntimeError, match="before forward"):
        build_mlp_vae(2, hidden=(6,)).backward()
