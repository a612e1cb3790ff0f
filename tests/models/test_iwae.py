"""log p(x) by importance sampling: against the exact value of a linear-Gaussian model, the
bound's order (ELBO ≤ IWAE_K, rising with K), the single-sample case, batching, and the
evaluate command."""

import json
import math

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from numpyvae.cli import main as cli
from numpyvae.models.architectures import build_mlp_vae
from numpyvae.models.autoencoder import build_mlp_autoencoder
from numpyvae.models.iwae import IWEstimate, log_likelihood, log_weights, memory_needed
from numpyvae.models.vae import VAE, VARIANCE_FLOOR
from numpyvae.nn import Dense, Flatten, Reshape, Sequential


# -- a model whose log p(x) is known exactly ----------------------------------------------
def linear_gaussian(z: int = 2, shape: tuple = (2, 3), c: float = 0.1, seed: int = 0,
                    q_scale: float = 2.0, q_shift: float = 0.0, orthogonal: bool = False):
    """z ~ N(0, I), x = zW + b + √c·noise: p(x) = N(x; b, WᵀW + cI) exactly.

    The encoder is set by hand to q(z|x) = N(μ(x) + q_shift·σ, σ²) with μ(x) the exact
    posterior mean and σ² = q_scale × the posterior's marginal variances. With rows of W
    orthogonal the posterior is diagonal, so q_scale = 1, q_shift = 0 gives q = p(z|x).
    Returns the model and a function x → exact log p(x) per image.
    """
    rng = np.random.default_rng(seed)
    d = math.prod(shape)
    dense = Dense(z, d, dtype=np.float64, rng=rng)
    if orthogonal:
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        dense.params["weight"][...] = np.linspace(1.0, 2.0, z)[:, None] * q[:, :z].T
    else:
        dense.params["weight"] *= 3  # a posterior well inside the prior
    enc = Dense(d, 2 * z, dtype=np.float64, rng=rng)
    vae = VAE(Sequential(Flatten(), enc), Sequential(dense, Reshape(1, *shape)), z, c=c,
              output_activation="identity")
    w, b = dense.params["weight"].copy(), dense.params["bias"].copy()
    post_cov = np.linalg.inv(np.eye(z) + w @ w.T / c)
    gain = w.T @ post_cov / c  # posterior mean, as a row: (x − b) · gain
    var = q_scale * np.diag(post_cov)
    enc.params["weight"][...] = 0
    enc.params["weight"][:, :z] = gain
    enc.params["bias"][:z] = -b @ gain + q_shift * np.sqrt(var)
    enc.params["bias"][z:] = np.log(np.expm1(var - VARIANCE_FLOOR))  # softplus⁻¹

    def exact(x: np.ndarray) -> np.ndarray:
        return multivariate_normal.logpdf(x.reshape(len(x), -1), mean=b,
                                          cov=w.T @ w + c * np.eye(d))

    return vae, exact


def draw(vae: VAE, n: int, c: float, seed: int = 5) -> np.ndarray:
    """n images from the model itself."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, vae.latent_dim))
    mean = vae.decode_logits(z)
    return mean + math.sqrt(c) * rng.standard_normal(mean.shape)


def per_image(lw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image's IWAE estimate and its standard error (delta method: the spread of the
    normalised weights w/w̄ over √K)."""
    k = lw.shape[1]
    est = logsumexp(lw, axis=1) - math.log(k)
    if k == 1:
        return est, np.full(len(est), np.inf)
    w = np.exp(lw - est[:, None])  # w / w̄
    return est, w.std(axis=1, ddof=1) / math.sqrt(k)


def agrees(est: np.ndarray, se: np.ndarray, exact: np.ndarray, n_se: float = 4.0) -> bool:
    """Every image's estimate within n_se standard errors of the exact value."""
    return bool(np.all(np.abs(est - exact) <= n_se * se))


# -- 1. the exact check, and that it can fail --------------------------------------------
def test_exact_posterior_as_proposal_gives_log_px_exactly():
    """q = p(z|x): every weight is p(x), so ELBO = estimate = exact for any K. This pins
    every constant: the Gaussian normaliser, log p(z), log q(z|x)."""
    c = 0.1
    vae, exact = linear_gaussian(z=2, shape=(2, 3), c=c, q_scale=1.0, orthogonal=True)
    x = draw(vae, 8, c)
    lw = log_weights(vae, x, k=5, seed=0)
    np.testing.assert_allclose(lw, np.repeat(exact(x)[:, None], 5, axis=1), rtol=0, atol=1e-9)
    est = log_likelihood(vae, x, k=5, seed=0)
    assert est.log_px == pytest.approx(exact(x).mean(), abs=1e-9)
    assert est.elbo == pytest.approx(exact(x).mean(), abs=1e-9)
    assert est.log_px_se == pytest.approx(np.std(exact(x), ddof=1) / math.sqrt(8), rel=1e-9)
    assert est.log_normalizer == pytest.approx(-3 * math.log(2 * math.pi * c), rel=1e-15)


def test_estimate_matches_exact_log_px_of_a_linear_gaussian_model():
    """An over-dispersed q (σ² = 2 × the posterior's) keeps the weights bounded, so their
    standard error is a fair yardstick; K = 20,000 makes it ~0.01 nats."""
    c = 0.1
    vae, exact = linear_gaussian(z=2, shape=(2, 3), c=c, q_scale=2.0)
    x = draw(vae, 20, c)
    lw = log_weights(vae, x, k=20_000, seed=1)
    est, se = per_image(lw)
    assert se.max() < 0.02  # small enough that the comparison means something
    assert agrees(est, se, exact(x))
    # q is not the posterior: the ELBO is clearly below (Jensen), by ~1.9 nats here.
    assert np.all(lw.mean(axis=1) < exact(x) - 0.5)
    summary = log_likelihood(vae, x, k=20_000, seed=1)
    assert summary.log_px == pytest.approx(est.mean(), abs=1e-10)
    assert summary.elbo == pytest.approx(lw.mean(), abs=1e-10)


def test_the_comparison_rejects_a_wrong_constant_and_a_perturbed_decoder():
    """Negative controls for the test above: the same comparison must fail when the
    normaliser is that of another c, or when the decoder is off by 0.1 per pixel."""
    c = 0.1
    vae, exact = linear_gaussian(z=2, shape=(2, 3), c=c, q_scale=2.0)
    x = draw(vae, 20, c)
    est, se = per_image(log_weights(vae, x, k=20_000, seed=1))
    assert agrees(est, se, exact(x))
    wrong_constant = -3 * math.log(2 * math.pi * 1.1 * c) - (-3 * math.log(2 * math.pi * c))
    assert not agrees(est + wrong_constant, se, exact(x))

    vae.decoder.layers[0].params["bias"] += 0.1
    est_off, se_off = per_image(log_weights(vae, x, k=20_000, seed=1))
    assert not agrees(est_off, se_off, exact(x))


# -- 2. the bound's order -----------------------------------------------------------------
def paired_t(a: np.ndarray, b: np.ndarray) -> float:
    """mean(a − b) in standard errors of the mean over images."""
    d = a - b
    return float(d.mean() / (d.std(ddof=1) / math.sqrt(len(d))))


def test_estimate_is_above_the_elbo_and_rises_with_k_toward_log_px():
    """IWAE_K ≥ ELBO and rises with K in expectation only: 400 images, fixed seeds, and each
    step must be > 5 standard errors (measured 10 to 18). A poor proposal (z = 8, q shifted by
    one posterior sd) keeps the estimate below the exact value even at K = 1000."""
    c = 0.1
    vae, exact = linear_gaussian(z=8, shape=(3, 4), c=c, q_scale=1.0, q_shift=1.0)
    x = draw(vae, 400, c)
    ests = {}
    for k in (1, 10, 100, 1000):
        lw = log_weights(vae, x, k=k, seed=3)
        ests[k] = per_image(lw)[0]
        summary = log_likelihood(vae, x, k=k, seed=3)
        assert summary.log_px == pytest.approx(ests[k].mean(), abs=1e-10)
        assert summary.elbo == pytest.approx(lw.mean(), abs=1e-10)
        if k > 1:
            assert summary.log_px > summary.elbo + 5 * summary.elbo_se
            assert paired_t(ests[k], lw.mean(axis=1)) > 5
    for k_low, k_high in ((1, 10), (10, 100), (100, 1000)):
        assert paired_t(ests[k_high], ests[k_low]) > 5, (k_low, k_high)
    assert paired_t(exact(x), ests[1000]) > 5


# -- 3. K = 1, batching, mode -------------------------------------------------------------
def test_k1_is_the_single_sample_elbo_with_eps_from_the_seed():
    """log w by hand, with ε drawn image after image from default_rng(seed)."""
    rng = np.random.default_rng(0)
    vae = build_mlp_vae(2, hidden=(8,), c=0.05, dtype=np.float64, rng=rng)
    x = rng.uniform(0, 1, (6, 1, 28, 28))
    est = log_likelihood(vae, x, k=1, seed=7)
    assert est.log_px == est.elbo

    m, v = vae.encode(x)
    eps = np.random.default_rng(7).standard_normal((6, 2))
    z = m + np.sqrt(v) * eps
    x_hat = 1 / (1 + np.exp(-vae.decoder.forward(z)))
    log_px_z = (np.sum(-(x - x_hat) ** 2 / (2 * 0.05), axis=(1, 2, 3))
                - 392 * math.log(2 * math.pi * 0.05))
    log_w = (log_px_z + norm.logpdf(z).sum(axis=1)
             - norm.logpdf(z, loc=m, scale=np.sqrt(v)).sum(axis=1))
    assert est.log_px == pytest.approx(log_w.mean(), rel=1e-12)
    assert est.log_px_se == pytest.approx(log_w.std(ddof=1) / math.sqrt(6), rel=1e-9)
    assert est.k == 1 and est.n == 6 and est.likelihood == "gaussian"
    assert est.log_normalizer == pytest.approx(-392 * math.log(2 * math.pi * 0.05))
    assert est.log_normalizer == pytest.approx(453.88, abs=0.005)


@pytest.mark.parametrize("max_rows", [3, 7, 25, 10**6])
def test_the_result_does_not_depend_on_the_batching(max_rows):
    """3 and 7 split K = 10 into pieces (one image per call), 25 takes 2 images per call
    with a remainder: the same ε, the same numbers."""
    rng = np.random.default_rng(1)
    vae = build_mlp_vae(2, hidden=(8,), dtype=np.float64, rng=rng)
    x = rng.uniform(0, 1, (5, 1, 28, 28))
    reference = log_likelihood(vae, x, k=10, seed=2, max_rows=1000)
    calls = []
    est = log_likelihood(vae, x, k=10, seed=2, max_rows=max_rows,
                         progress=lambda done, total: calls.append((done, total)))
    for field in ("elbo", "log_px", "log_px_se", "elbo_se"):
        assert getattr(est, field) == pytest.approx(getattr(reference, field), rel=1e-12)
    np.testing.assert_allclose(log_weights(vae, x, k=10, seed=2, max_rows=max_rows),
                               log_weights(vae, x, k=10, seed=2), rtol=1e-12)
    assert calls[-1] == (5, 5) and [d for d, _ in calls] == sorted({d for d, _ in calls})
    if max_rows < 10:
        assert len(calls) == 5  # one image per call


def test_runs_in_eval_mode_and_restores_the_mode():
    rng = np.random.default_rng(2)
    vae = build_mlp_vae(2, hidden=(8,), dtype=np.float64, rng=rng)
    x = rng.uniform(0, 1, (4, 1, 28, 28))
    seen = []

    def spy(done, total):
        seen.append((vae.encoder.training, vae.decoder.training))

    vae.train()
    log_likelihood(vae, x, k=3, max_rows=3, progress=spy)
    assert seen and not any(a or b for a, b in seen)
    assert vae.encoder.training and vae.decoder.training
    vae.eval()
    log_likelihood(vae, x, k=3)
    assert not vae.encoder.training and not vae.decoder.training


def test_float32_model_agrees_with_its_float64_copy():
    """The model runs in float32; the sums over pixels are in float64 either way."""
    rng = np.random.default_rng(3)
    vae64 = build_mlp_vae(2, hidden=(16, 8), dtype=np.float64, rng=np.random.default_rng(4))
    vae32 = build_mlp_vae(2, hidden=(16, 8), dtype=np.float32, rng=np.random.default_rng(4))
    x = rng.uniform(0, 1, (6, 1, 28, 28))
    e64 = log_likelihood(vae64, x, k=50, seed=0)
    e32 = log_likelihood(vae32, x.astype(np.float32), k=50, seed=0)
    assert vae32.dtype == np.float32
    assert isinstance(e32.log_px, float) and isinstance(e32.elbo, float)
    assert e32.log_px == pytest.approx(e64.log_px, abs=1e-3)
    assert e32.elbo == pytest.approx(e64.elbo, abs=1e-3)


# -- 4. Bernoulli, conditional, bad input -------------------------------------------------
def test_bernoulli_log_px_is_a_log_probability_of_binary_images():
    rng = np.random.default_rng(5)
    vae = build_mlp_vae(3, hidden=(16,), dtype=np.float64, rng=rng, likelihood="bernoulli")
    x = (rng.uniform(0, 1, (8, 1, 28, 28)) < 0.2).astype(np.float64)
    est = log_likelihood(vae, x, k=100, seed=0)
    assert est.likelihood == "bernoulli" and est.log_normalizer == 0.0
    assert est.elbo < est.log_px <= 0
    assert np.all(per_image(log_weights(vae, x, k=100, seed=0))[0] <= 0)


def test_conditional_model_needs_labels_and_works_with_them():
    rng = np.random.default_rng(6)
    vae = build_mlp_vae(2, hidden=(8,), dtype=np.float64, rng=rng, likelihood="bernoulli",
                        num_classes=10)
    x = (rng.uniform(0, 1, (4, 1, 28, 28)) < 0.3).astype(np.float64)
    y = np.array([0, 3, 9, 3])
    with pytest.raises(ValueError, match="conditional.*labels"):
        log_likelihood(vae, x, k=5)
    with pytest.raises(ValueError, match=r"labels of shape \(4,\)"):
        log_likelihood(vae, x, y[:3], k=5)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\)"):
        log_likelihood(vae, x, y + 1, k=5)
    est = log_likelihood(vae, x, y, k=20, max_rows=7)
    assert est.n == 4 and est.elbo < est.log_px <= 0
    # The label matters: another class gives another likelihood.
    assert log_likelihood(vae, x, (y + 1) % 10, k=20, max_rows=7).log_px != est.log_px
    plain = build_mlp_vae(2, hidden=(8,), dtype=np.float64, rng=rng)
    with pytest.raises(ValueError, match="not conditional"):
        log_likelihood(plain, x, y, k=5)


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k .* must be an integer >= 1, got 0"),
    ({"k": 2.5}, "k .* must be an integer >= 1"),
    ({"max_rows": 0}, "max_rows must be an integer >= 1"),
    ({"x": np.zeros((2, 1, 28, 28), dtype=np.uint8)}, "expected float images.*uint8"),
    ({"x": np.zeros(784)}, r"N >= 1, got shape \(784,\)"),
    ({"x": np.zeros((0, 1, 28, 28))}, r"N >= 1, got shape \(0, 1, 28, 28\)"),
    ({"x": np.full((1, 1, 28, 28), np.nan)}, "NaN"),
])
def test_bad_input_is_a_clear_error(kwargs, message):
    vae = build_mlp_vae(2, hidden=(8,), dtype=np.float64, rng=np.random.default_rng(0))
    args = {"x": np.full((2, 1, 28, 28), 0.5), "k": 3} | kwargs
    with pytest.raises(ValueError, match=message):
        log_likelihood(vae, **args)


def test_the_plain_autoencoder_is_refused():
    ae = build_mlp_autoencoder(2, hidden=(8,), dtype=np.float64, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs a VAE.*Autoencoder"):
        log_likelihood(ae, np.full((2, 1, 28, 28), 0.5), k=3)


def test_as_dict_is_strict_json():
    vae = build_mlp_vae(2, hidden=(8,), dtype=np.float64, rng=np.random.default_rng(0))
    one = log_likelihood(vae, np.full((1, 1, 28, 28), 0.5), k=3)
    assert math.isnan(one.log_px_se)  # one image: no spread to measure
    d = one.as_dict()
    assert d["log_px_se"] is None and d["n"] == 1
    assert set(d) == {f for f in IWEstimate.__dataclass_fields__}
    json.loads(json.dumps(d, allow_nan=False))


# -- 5. the command -----------------------------------------------------------------------
_RUNS: dict = {}


@pytest.fixture
def tiny_runs(shared_datasets, tmp_path_factory):
    """A one-epoch Gaussian run and a Bernoulli run on 256 real images, trained once."""
    from numpyvae.training.train import TrainConfig, train

    if not _RUNS:
        root = tmp_path_factory.mktemp("runs")
        for likelihood in ("gaussian", "bernoulli"):
            config = TrainConfig(hidden=(32, 16), epochs=1, train_subset=256, test_subset=50,
                                 likelihood=likelihood, data_dir=str(shared_datasets))
            train(config, root / likelihood, log=lambda _: None)
            _RUNS[likelihood] = root / likelihood
    return _RUNS


def test_evaluate_command_gaussian(tiny_runs, shared_datasets, capsys):
    run = tiny_runs["gaussian"]
    assert cli.main(["evaluate", "--run", str(run), "--iw", "20", "--subset", "30",
                     "--data-dir", str(shared_datasets)]) == 0
    out = capsys.readouterr().out
    assert "−(784/2)·log(2πc) = +453.88" in out
    assert "can be positive" in out and "not comparable with a Bernoulli" in out
    path = run / "loglik-k20-n30.json"
    assert str(path) in out
    saved = json.loads(path.read_text())
    assert saved["k"] == 20 and saved["n"] == 30 and saved["seed"] == 0
    assert saved["max_rows"] == 10_000 and saved["subset"] == 30
    assert saved["log_normalizer"] == pytest.approx(453.8792, abs=1e-3)
    assert saved["log_px"] > saved["elbo"]
    assert f"{saved['log_px']:.2f}" in out and f"{saved['elbo']:.2f}" in out
    # The training loss (no constant, one z) estimates −ELBO + constant.
    assert "the training loss on these images" in out
    assert abs(saved["test_loss"] - (saved["log_normalizer"] - saved["elbo"])) \
        < 3 * saved["elbo_se"]
    # The same number from Python, on the same images.
    from numpyvae import data
    from numpyvae.training.run import load_run

    x, _ = data.load("mnist", "test", shared_datasets)
    direct = log_likelihood(load_run(run).vae, x[:30], k=20, seed=0)
    assert saved["log_px"] == pytest.approx(direct.log_px, rel=1e-12)


def test_evaluate_command_bernoulli_and_out(tiny_runs, shared_datasets, capsys, tmp_path):
    out_file = tmp_path / "ll.json"
    assert cli.main(["evaluate", "--run", str(tiny_runs["bernoulli"]), "--iw", "5",
                     "--subset", "10", "--seed", "3", "--data-dir", str(shared_datasets),
                     "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "log-probability of the binarized test images" in out
    saved = json.loads(out_file.read_text())
    assert saved["log_normalizer"] == 0 and saved["log_px"] <= 0 and saved["seed"] == 3
    assert saved["binarized"] is True


@pytest.mark.parametrize("args, message", [
    (["--iw", "0"], "--iw must be >= 1"),
    (["--subset", "0"], "--subset must be >= 1"),
    (["--subset", "20000"], "--subset 20000: the test set has 10000 images"),
    (["--max-rows", "0"], "--max-rows must be >= 1"),
])
def test_evaluate_command_bad_options(tiny_runs, shared_datasets, capsys, args, message):
    run = tiny_runs["gaussian"]
    assert cli.main(["evaluate", "--run", str(run), "--data-dir", str(shared_datasets)]
                    + args) == 2
    assert message in capsys.readouterr().err


def test_the_memory_estimate_covers_a_measured_peak():
    """memory_needed bounds what log_likelihood allocates (tracemalloc's peak), for a k
    above and below max_rows; `evaluate --iw 1000000000` is refused by it before any work."""
    import tracemalloc

    vae = build_mlp_vae(2, hidden=(16, 8), dtype=np.float32, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    for k, max_rows in ((50_000, 10_000), (100, 10_000)):
        tracemalloc.start()
        try:
            log_likelihood(vae, x, k=k, max_rows=max_rows)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= memory_needed(vae, k, max_rows), (k, peak)
    assert memory_needed(vae, 10**9) >= 4 * 8 * 10**9
