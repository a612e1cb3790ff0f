"""The plain autoencoder: loss against a direct computation, whole-model gradient check,
the VAE's interface, and a short training run through the ordinary loop."""

import numpy as np
import pytest

from numpyvae.models.autoencoder import Autoencoder, build_mlp_autoencoder
from numpyvae.nn.gradcheck import check_gradients
from numpyvae.training.train import TrainConfig, build_model


def _check_model(ae: Autoencoder, x: np.ndarray, seed: int = 0) -> list:
    ae.forward(x)
    ae.backward()
    tensors = {name: (p, g.copy()) for name, p, g in ae.named_parameters()}
    return check_gradients(lambda: ae.forward(x).loss, tensors, max_entries=40, seed=seed)


def test_loss_is_scaled_squared_error_and_no_kl():
    rng = np.random.default_rng(0)
    ae = build_mlp_autoencoder(3, hidden=(20, 10), c=0.05, dtype=np.float64, rng=rng)
    x = rng.uniform(0, 1, (4, 1, 28, 28))
    losses = ae.forward(x)
    z = ae.encoder.forward(x)
    x_hat = 1 / (1 + np.exp(-ae.decoder.forward(z)))
    sse = np.sum((x - x_hat) ** 2, axis=(1, 2, 3))
    assert losses.recon == pytest.approx(np.mean(sse) / (2 * 0.05), rel=1e-12)
    assert losses.loss == losses.recon and losses.kl == 0.0


def test_gradcheck_catches_a_one_percent_error(monkeypatch):
    """Negative control: a dL/d out 1% too large must fail the check."""
    rng = np.random.default_rng(2)
    ae = build_mlp_autoencoder(2, hidden=(8,), dtype=np.float64, rng=rng)
    x = rng.uniform(0, 1, (4, 1, 28, 28))
    original = ae.likelihood.backward
    monkeypatch.setattr(ae.likelihood, "backward", lambda d: original(d) * 1.01)
    assert max(r.max_error for r in _check_model(ae, x)) > 1e-3


def test_deterministic_code_and_the_vae_interface():
    ae = build_mlp_autoencoder(2, rng=np.random.default_rng(3))
    x = np.random.default_rng(4).uniform(0, 1, (6, 1, 28, 28)).astype(np.float32)
    z, v = ae.encode(x)
    assert z.shape == v.shape == (6, 2) and z.dtype == v.dtype == np.float32
    assert not v.any()  # the posterior is a point
    # forward ignores eps and rng: the same loss whatever noise is offered
    a = ae.forward(x, rng=np.random.default_rng(0)).loss
    b = ae.forward(x, rng=np.random.default_rng(1)).loss
    assert a == b
    ae.backward()
    assert all(g.dtype == np.float32 for _, g in ae.parameters())
    assert ae.reconstruct(x).shape == x.shape
    assert ae.sample(5, np.random.default_rng(0)).dtype == np.float32
    # the VAE's MLP, with Dense(10 → z) instead of Dense(10 → 2z) at the end of the encoder
    assert ae.num_params() == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10 + 10 * 2 + 2 \
        + 2 * 10 + 10 + 10 * 100 + 100 + 100 * 300 + 300 + 300 * 784 + 784


def test_train_config_builds_it_and_rejects_a_cnn_autoencoder():
    model = build_model(TrainConfig(model="ae", hidden=(16,)))
    assert isinstance(model, Autoencoder) and model.latent_dim == 2
    with pytest.raises(ValueError, match="autoencoder is built for arch mlp only"):
        TrainConfig(model="ae", arch="cnn").validate()
    with pytest.raises(ValueError, match="model must be one of vae, ae"):
        TrainConfig(model="gan").validate()
    assert TrainConfig.from_json({"arch": "mlp"}).model == "vae"  # configs from before the field


def test_bad_construction():
    enc, dec = build_mlp_autoencoder(2, hidden=(4,)).encoder, build_mlp_autoencoder(2).decoder
    with pytest.raises(ValueError, match="latent_dim"):
        Autoencoder(enc, dec, 0)
    with pytest.raises(ValueError, match="c must be > 0"):
        Autoencoder(enc, dec, 2, c=0.0)
    ae = Autoencoder(enc, dec, 3)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        ae.encode(np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        build_mlp_autoencoder(2, hidden=(4,)).backward()
