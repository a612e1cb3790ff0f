"""`evaluate --latent` and `plot` write the latent-space diagnostics of a run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from numpyvae.cli import main as cli
from numpyvae.training.run import load_run


@pytest.fixture(scope="module")
def trained(shared_datasets, tmp_path_factory):
    run = tmp_path_factory.mktemp("latent") / "run"
    assert cli.main(["train", "--epochs", "1", "--train-subset", "256", "--test-subset", "100",
                     "--latent-dim", "3", "--data-dir", str(shared_datasets), "--out", str(run),
                     "--no-figures"]) == 0
    return run


def test_evaluate_latent_writes_json_and_figure_and_skips_log_px(trained, shared_datasets,
                                                                capsys):
    before = {k: v.copy() for k, v in np.load(trained / "checkpoint.npz").items()}
    assert cli.main(["evaluate", "--run", str(trained), "--latent", "--subset", "500",
                     "--data-dir", str(shared_datasets)]) == 0
    out = capsys.readouterr().out
    assert "Active units" in out and "Burda" in out and "log N" in out
    result = json.loads((trained / "latent-n500.json").read_text())
    assert len(result["kl_per_dim"]) == 3 and result["n_images"] == 500
    assert result["active"] == len(result["active_dims"]) and result["threshold"] == 0.01
    assert abs(sum(result["kl_per_dim"]) - result["kl_total"]) < 1e-9
    assert (trained / "latent_health.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(trained.glob("loglik-*.json"))  # --latent skips log p(x)
    after = np.load(trained / "checkpoint.npz")
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_latent_kl_matches_the_models_kl_on_the_same_images(trained, shared_datasets, capsys):
    """Σ_j KL_j is the KL term of the loss: the same number the model computes."""
    from numpyvae import data
    from numpyvae.training.train import evaluation_images

    assert cli.main(["evaluate", "--run", str(trained), "--latent", "--subset", "300",
                     "--data-dir", str(shared_datasets)]) == 0
    result = json.loads((trained / "latent-n300.json").read_text())
    run = load_run(trained)
    x, _ = data.load("mnist", "test", shared_datasets)
    m, v = run.vae.encode(evaluation_images(run.config, x[:300]))
    kl = 0.5 * np.mean(np.sum(v + m * m - 1 - np.log(v), axis=1), dtype=np.float64)
    assert result["kl_total"] == pytest.approx(kl, rel=1e-4)


def test_plot_draws_latent_health(trained, shared_datasets, tmp_path):
    out = tmp_path / "figs"
    assert cli.main(["plot", "--run", str(trained), "--out", str(out),
                     "--data-dir", str(shared_datasets)]) == 0
    assert (out / "latent_health.png").is_file()
