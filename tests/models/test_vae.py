"""The VAE: loss against a direct computation, a model-level negative control, shapes and
errors. Its gradient checks are cases in numpyvae/models/gradcheck_cases.py."""

import numpy as np
import pytest

from numpyvae.models.architectures import build_cnn_vae, build_mlp_vae, build_vae
from numpyvae.models.vae import VAE
from numpyvae.nn import ELU, ConcatLabels, Dense, Flatten, Reshape, Sequential
from numpyvae.nn.gradcheck import TOLERANCE, check_gradients


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


def test_gradcheck_catches_a_one_percent_error_in_dh(monkeypatch):
    """Negative control at model level: dL/dh 1% too large must fail the check."""
    rng = np.random.default_rng(4)
    vae = build_mlp_vae(2, hidden=(8,), dtype=np.float64, rng=rng)
    x = rng.uniform(0, 1, (4, 1, 28, 28))
    assert max(r.max_error for r in _check_model(vae, x)) <= TOLERANCE
    original = vae.reparameterize.backward

    def dh_one_percent_off(dout):
        d = original(dout)
        d[:, vae.latent_dim:] *= 1.01
        return d

    monkeypatch.setattr(vae.reparameterize, "backward", dh_one_percent_off)
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


def test_wrong_eps_shape():
    rng = np.random.default_rng(5)
    vae = build_mlp_vae(2, hidden=(6,), dtype=np.float64, rng=rng, output_activation="identity")
    x = rng.uniform(0, 1, (3, 1, 28, 28))
    with pytest.raises(ValueError, match=r"eps must have shape \(3, 2\)"):
        vae.forward(x, eps=np.zeros((3, 5)))
    with pytest.raises(RuntimeError, match="before forward"):
        build_mlp_vae(2, hidden=(6,)).backward()


# -- conditional and Bernoulli models (beyond the report) ----------------------
def _check_conditional(vae: VAE, x: np.ndarray, y: np.ndarray, max_entries: int) -> list:
    eps = np.random.default_rng(0).standard_normal((len(x), vae.latent_dim))
    vae.forward(x, eps, y=y)
    vae.backward()
    tensors = {name: (p, g.copy()) for name, p, g in vae.named_parameters()}
    return check_gradients(lambda: vae.forward(x, eps, y=y).loss, tensors,
                           max_entries=max_entries, seed=0)


def test_conditional_mlp_wiring():
    vae = build_mlp_vae(2, hidden=(12, 6), rng=np.random.default_rng(6), num_classes=10)
    assert isinstance(vae.encoder.layers[1], ConcatLabels)
    assert vae.encoder.layers[2].params["weight"].shape == (794, 12)  # 784 pixels + 10 labels
    assert isinstance(vae.decoder.layers[0], ConcatLabels)
    assert vae.decoder.layers[1].params["weight"].shape == (12, 6)  # z + 10 labels = 12


def _small_mlp(rng, pixels: int, num_classes: int = 0) -> tuple[Sequential, Sequential]:
    """The report's MLP shape on tiny images: Flatten, [labels], Dense, ELU, Dense; mirror."""
    f64 = {"dtype": np.float64, "rng": rng}
    def labels() -> list:
        return [ConcatLabels(num_classes)] if num_classes else []

    encoder = Sequential(Flatten(), *labels(), Dense(pixels + num_classes, 12, **f64), ELU(),
                         Dense(12, 4, **f64))
    decoder = Sequential(*labels(),
                         Dense(2 + num_classes, 12, **f64), ELU(), Dense(12, pixels, **f64),
                         Reshape(1, 4, 4))
    return encoder, decoder


def test_conditional_mlp_gradcheck():
    """The conditional MLP VAE on 4×4 images; at 784 pixels the check sits on the rounding
    floor (see test_bernoulli_vae_gradcheck): measured 1.9e-7 / 1.1e-6 / 9.7e-6 at
    h = 1e-4 / 1e-5 / 1e-6 for the built model, error ∝ 1/h."""
    rng = np.random.default_rng(6)
    vae = VAE(*_small_mlp(rng, 16, num_classes=10), 2)
    x, y = rng.uniform(0, 1, (5, 1, 4, 4)), np.array([3, 0, 9, 3, 7])
    results = _check_conditional(vae, x, y, max_entries=40)
    assert {r.name for r in results} >= {"encoder.2.weight", "decoder.1.weight"}
    assert max(r.max_error for r in results) <= TOLERANCE, results


def test_conditional_cnn_gradcheck_train_mode():
    rng = np.random.default_rng(7)
    vae = build_cnn_vae(2, dtype=np.float64, rng=rng, num_classes=10)
    x, y = rng.uniform(0, 1, (2, 1, 28, 28)), np.array([4, 1])
    assert vae.encoder.layers[-1].params["weight"].shape == (522, 4)  # 512 features + 10 labels
    assert vae.decoder.layers[1].params["weight"].shape == (12, 512)  # z + 10 labels
    results = _check_conditional(vae, x, y, max_entries=10)
    assert max(r.max_error for r in results) <= TOLERANCE, results


def test_bernoulli_loss_matches_cross_entropy():
    rng = np.random.default_rng(8)
    vae = build_mlp_vae(2, hidden=(12, 6), dtype=np.float64, rng=rng, likelihood="bernoulli")
    x = (rng.uniform(0, 1, (4, 1, 28, 28)) < 0.3).astype(float)
    eps = rng.standard_normal((4, 2))
    losses = vae.forward(x, eps)
    m, _ = vae.encode(x)
    out = vae.encoder.forward(x)
    v = np.log1p(np.exp(out[:, 2:])) + 1e-8
    p = 1 / (1 + np.exp(-vae.decoder.forward(out[:, :2] + np.sqrt(v) * eps)))
    bce = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
    assert losses.recon == pytest.approx(bce.mean(), rel=1e-10)


def test_bernoulli_vae_gradcheck():
    """The whole Bernoulli VAE on 4×4 images.

    Why not 784 pixels: there the loss is about 550 nats, whose float64 spacing
    (1.1e-13) over 2h = 2e-5 is a noise floor of 6e-9 in every difference, as large
    as 1e-6 of the smaller gradients; the measured error then scales as 1/h (1.4e-6 at
    h = 1e-5, 5.6e-7 at 1e-4, 1.4e-5 at 1e-6): rounding, not a wrong gradient. The
    code path does not depend on the image size.
    """
    rng = np.random.default_rng(8)
    vae = VAE(*_small_mlp(rng, 16), 2, likelihood="bernoulli")
    x = (rng.uniform(0, 1, (5, 1, 4, 4)) < 0.4).astype(float)
    results = _check_model(vae, x)
    assert max(r.max_error for r in results) <= TOLERANCE, results


def test_labels_change_the_output_and_are_required():
    rng = np.random.default_rng(9)
    vae = build_mlp_vae(2, hidden=(8,), rng=rng, num_classes=10)
    z = np.zeros((2, 2), np.float32)
    a, b = vae.decode(z, np.array([0, 0])), vae.decode(z, np.array([0, 1]))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[1], b[1])
    assert vae.sample(3, np.random.default_rng(0), labels=5).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="conditional on the class: give labels"):
        vae.decode(z)
    with pytest.raises(ValueError, match=r"expected labels of shape \(2,\), got \(3,\)"):
        vae.encode(np.zeros((2, 1, 28, 28), np.float32), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="labels given, but this model is not conditional"):
        build_mlp_vae(2, hidden=(8,)).decode(z, np.array([0, 1]))
    assert "num_classes=10" in repr(vae) and "likelihood=gaussian" in repr(vae)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_the_data_gradient_is_skipped_and_changes_no_parameter_gradient(arch):
    """The encoder's first learning layer does not compute dL/dx (nobody reads it)."""
    vae = build_vae(arch, 2, hidden=(16, 8), rng=np.random.default_rng(10))
    first = next(layer for layer in vae.encoder.layers if layer.params)
    assert first.needs_input_grad is False
    assert all(layer.needs_input_grad for layer in vae.decoder.layers)
    x = np.random.default_rng(11).uniform(0, 1, (4, 1, 28, 28)).astype(np.float32)
    eps = np.random.default_rng(12).standard_normal((4, 2)).astype(np.float32)
    vae.forward(x, eps)
    vae.backward()
    skipped = [g.copy() for _, g in vae.parameters()]
    first.needs_input_grad = True
    vae.forward(x, eps)
    vae.backward()
    for a, (_, b) in zip(skipped, vae.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
    # and the layer itself: None instead of dx, the same weight gradient
    first.needs_input_grad = False
    dout = np.ones_like(first.forward(first.cache))
    assert first.backward(dout) is None


@pytest.mark.parametrize("n", [-1, 0, 2.5, True])
def test_sample_names_a_bad_count(n):
    """sample(-1) used to reach NumPy's "negative dimensions are not allowed"."""
    from numpyvae.models.architectures import build_vae

    vae = build_vae("mlp", 2, hidden=(8,), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"VAE.sample: expected a number of samples n >= 1"):
        vae.sample(n)
