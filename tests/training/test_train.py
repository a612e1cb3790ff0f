"""Training on real MNIST: the loop's gradient, resume is exact, NaN stops cleanly, bad options
fail."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numpyvae import data
from numpyvae.cli.main import main as cli_main
from numpyvae.figures.run_figures import draw_run_figures
from numpyvae.models.vae import VAE
from numpyvae.training.checkpoint import load_checkpoint
from numpyvae.training.loop import train_epoch
from numpyvae.training.run import load_run
from numpyvae.training.train import (
    TrainConfig,
    TrainingDiverged,
    build_model,
    evaluate,
    load_run_data,
    train,
)

from .helpers import quiet, run_cli

REPO = Path(__file__).resolve().parents[2]



def _small(shared, **kw) -> TrainConfig:
    args = {"arch": "mlp", "hidden": (64, 32), "latent_dim": 2, "epochs": 2,
            "train_subset": 1024, "test_subset": 500, "data_dir": str(shared)}
    args.update(kw)
    return TrainConfig(**args)


class _RecordGrads:
    """An optimizer that only copies the gradients train_epoch hands it."""

    def __init__(self, model):
        self.pairs = model.parameters()
        self.grads = []

    def step(self):
        self.grads.append([g.copy() for _, g in self.pairs])


@pytest.mark.parametrize("conditional", [False, True])
def test_the_loop_steps_along_the_true_gradient(shared_datasets, conditional):
    """The gradient train_epoch gives Adam is the derivative of the loss it reports.

    The whole model in float64 on real images, with the loop's own ε: a central
    difference of the loss along a random direction d must equal <grad, d>. A wrong
    backward (the KL's ½ dropped, a wrong reparameterization gradient) or a loop that
    feeds backward another batch, ε or label than forward fails this; a "loss falls"
    test did not (0.21 against 0.35 with the ½ dropped).
    """
    config = _small(shared_datasets, hidden=(16, 8), conditional=conditional)
    model = build_model(config, dtype=np.float64)
    x, y = data.load("mnist", "train", shared_datasets)
    x, y = x[:32].astype(np.float64), (y[:32] if conditional else None)
    recorder = _RecordGrads(model)
    train_epoch(model, recorder, [(x, y)], np.random.default_rng(7))
    (grads,) = recorder.grads

    def loss():
        return model.forward(x, rng=np.random.default_rng(7), y=y).loss

    rng = np.random.default_rng(0)
    directions = [rng.standard_normal(p.shape) for p, _ in recorder.pairs]
    h = 1e-5
    params = [p for p, _ in recorder.pairs]
    for p, d in zip(params, directions, strict=True):
        p += h * d
    up = loss()
    for p, d in zip(params, directions, strict=True):
        p -= 2 * h * d
    down = loss()
    numeric = (up - down) / (2 * h)
    analytic = sum(float(np.sum(g * d)) for g, d in zip(grads, directions, strict=True))
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (numeric, analytic)


def test_history_and_final_hold_what_the_model_gives(shared_datasets, tmp_path):
    """history.json has one entry per epoch; final.json's train_eval and test are the
    model's losses on the run's own images, recomputed from the checkpoint."""
    config = _small(shared_datasets)
    final = train(config, tmp_path / "run", log=quiet)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert set(history[0]) == {"epoch", "train", "test100", "seconds", "images_per_s", "threads"}
    assert final["train"] == history[-1]["train"] and final["epochs"] == 2
    run = load_run(tmp_path / "run")
    run_data = load_run_data(run.config)
    assert len(run_data.x_train) == 1024
    assert evaluate(run.vae, run_data.x_train).as_dict() == final["train_eval"]
    assert evaluate(run.vae, run_data.x_test).as_dict() == final["test"]
    assert final["train_eval"] != final["test"]


def test_same_seed_same_numbers(shared_datasets, tmp_path):
    a = train(_small(shared_datasets), tmp_path / "a", log=quiet)
    b = train(_small(shared_datasets), tmp_path / "b", log=quiet)
    assert a["train"] == b["train"] and a["test"] == b["test"]
    c = train(_small(shared_datasets, seed=1), tmp_path / "c", log=quiet)
    assert c["train"] != a["train"]


def test_resume_ends_with_the_same_parameters(shared_datasets, tmp_path):
    train(_small(shared_datasets, epochs=3), tmp_path / "full", log=quiet)
    train(_small(shared_datasets, epochs=1), tmp_path / "split", log=quiet)
    train(_small(shared_datasets, epochs=3), tmp_path / "split", resume=True, log=quiet)
    full, _, meta_full = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    split, _, meta_split = load_checkpoint(tmp_path / "split" / "checkpoint.npz")
    assert meta_split["epoch"] == 3
    for k in full:
        np.testing.assert_array_equal(full[k], split[k], err_msg=k)
    assert meta_full["history"][-1]["train"] == meta_split["history"][-1]["train"]


def test_resume_refuses_a_different_architecture(shared_datasets, tmp_path):
    train(_small(shared_datasets, epochs=1), tmp_path / "r", log=quiet)
    before = (tmp_path / "r" / "checkpoint.npz").read_bytes()
    with pytest.raises(ValueError, match="arch is 'mlp'"):
        train(_small(shared_datasets, arch="cnn"), tmp_path / "r", resume=True, log=quiet)
    with pytest.raises(ValueError, match="latent_dim"):
        train(_small(shared_datasets, latent_dim=3), tmp_path / "r", resume=True, log=quiet)
    assert (tmp_path / "r" / "checkpoint.npz").read_bytes() == before


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_stops_and_keeps_the_last_good_checkpoint(shared_datasets, tmp_path, monkeypatch,
                                                      bad):
    """The loop stops at the batch whose loss is NaN or infinite (issue 23: an infinite loss
    went on to the end of the epoch once the check was `not isnan`)."""
    run = tmp_path / "nan"
    train(_small(shared_datasets, epochs=1), run, log=quiet)
    before = (run / "checkpoint.npz").read_bytes()
    real_forward = VAE.forward
    calls = {"n": 0}

    def poisoned(self, x, eps=None, rng=None, y=None):
        losses = real_forward(self, x, eps, rng, y)
        calls["n"] += 1
        if calls["n"] == 3:
            losses.loss = bad
        return losses

    monkeypatch.setattr(VAE, "forward", poisoned)
    with pytest.raises(TrainingDiverged,
                       match=rf"diverged in epoch 2, batch 3/4: the loss became {bad}"):
        train(_small(shared_datasets, epochs=2), run, resume=True, log=quiet)
    assert (run / "checkpoint.npz").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.startswith(".")]



@pytest.mark.parametrize(
    "args, message",
    [
        (["--arch", "rnn"], "invalid choice: 'rnn'"),
        (["--latent-dim", "0"], "--latent-dim must be >= 1"),
        (["--c", "0"], "--c must be > 0"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--hidden", "300,x"], "expected comma-separated widths"),
    ],
)
def test_cli_rejects_bad_options_before_any_work(args, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert run_cli(["train", "--out", str(out), "--data-dir", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_existing_out_without_resume_is_an_error(shared_datasets, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = cli_main(["train", "--out", str(out), "--data-dir", str(shared_datasets)])
    assert code == 2
    assert "exists: add --resume" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_cli_missing_data_names_the_fetch_command(tmp_path, capsys):
    code = cli_main(["train", "--data-dir", str(tmp_path / "empty"), "--out",
                     str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "data_fetch.py mnist" in err
    assert not (tmp_path / "run").exists()


def test_readme_main_command_shortened(shared_datasets, tmp_path):
    """The README's main job (train the MLP on MNIST, write figures), on a subset for 1 epoch."""
    env = {**os.environ, "NUMPYVAE_DATA": str(shared_datasets)}
    out = tmp_path / "runs" / "main"
    cmd = [sys.executable, "-m", "numpyvae", "train", "--arch", "mlp", "--dataset", "mnist",
           "--latent-dim", "2", "--epochs", "1", "--train-subset", "2048",
           "--test-subset", "500", "--out", str(out)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    names = {p.name for p in out.iterdir()}
    assert names >= {"config.json", "history.json", "final.json", "checkpoint.npz",
                     "samples.png", "reconstructions.png", "curves.png", "interpolation.png",
                     "manifold.png", "latent_scatter.png"}
    run = load_run(out)
    assert run.sample(4, seed=0).shape == (4, 1, 28, 28)
    assert run.encode(np.zeros((3, 1, 28, 28)))[0].shape == (3, 2)
    result = subprocess.run([sys.executable, "-m", "numpyvae", "sample", "--run", str(out),
                             "--n", "16", "--out", str(tmp_path / "s.png")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = subprocess.run([sys.executable, "-m", "numpyvae", "plot", "--run", str(out),
                             "--out", str(tmp_path / "docs")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = (tmp_path / "docs" / "summary.md").read_text()
    final = json.loads((out / "final.json").read_text())
    assert "| report (figure 4), final training loss | 307 | 293 | 14 |" in summary
    assert f"| {final['test']['loss']:.1f} |" in summary
    assert (tmp_path / "docs" / "manifold.png").is_file()


def test_cli_trains_the_autoencoder_and_names_its_folder(shared_datasets, tmp_path, monkeypatch,
                                                         capsys):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--model", "ae", "--epochs", "1", "--train-subset", "256",
            "--test-subset", "100", "--no-figures", "--data-dir", str(shared_datasets)]
    assert run_cli(args) == 0
    final = json.loads((tmp_path / "runs" / "ae-mlp-mnist-z2-s0" / "final.json").read_text())
    assert final["train"]["kl"] == 0.0
    assert run_cli([*args, "--arch", "cnn"]) == 2
    assert "autoencoder is built for arch mlp only" in capsys.readouterr().err


def test_cli_threads_out_of_range_is_an_error(tmp_path, capsys):
    out = tmp_path / "never"
    assert run_cli(["train", "--threads", "999", "--out", str(out)]) == 2
    assert "--threads must be between 1 and" in capsys.readouterr().err
    assert not out.exists()


# -- conditional and Bernoulli runs (beyond the report) ------------------------
def test_binarized_bernoulli_run_resumes_exactly(shared_datasets, tmp_path):
    """Binary pixels are drawn from the saved noise generator: a resumed run draws the same."""
    cfg = {"likelihood": "bernoulli"}
    assert _small(shared_datasets, **cfg).binarize is True  # on by default with Bernoulli
    train(_small(shared_datasets, epochs=2, **cfg), tmp_path / "full", log=quiet)
    train(_small(shared_datasets, epochs=1, **cfg), tmp_path / "split", log=quiet)
    final = train(_small(shared_datasets, epochs=2, **cfg), tmp_path / "split", resume=True,
                  log=quiet)
    full, _, _ = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    split, _, _ = load_checkpoint(tmp_path / "split" / "checkpoint.npz")
    for k in full:
        np.testing.assert_array_equal(full[k], split[k], err_msg=k)
    # evaluated on one fixed binary draw of the test images: the same loss when re-evaluated
    run = load_run(tmp_path / "split")
    x_test, _ = data.load("mnist", "test", shared_datasets)
    from numpyvae.training.train import evaluation_images

    x_eval = evaluation_images(run.config, x_test[:500])
    assert set(np.unique(x_eval)) == {0.0, 1.0}
    np.testing.assert_array_equal(x_eval, evaluation_images(run.config, x_test[:500]))
    assert evaluate(run.vae, x_eval).as_dict() == final["test"]
    with pytest.raises(ValueError, match="--resume: binarize is True"):
        train(_small(shared_datasets, epochs=3, likelihood="bernoulli", binarize=False),
              tmp_path / "split", resume=True, log=quiet)


def test_conditional_run_uses_the_labels(shared_datasets, tmp_path):
    final = train(_small(shared_datasets, epochs=1, conditional=True), tmp_path / "c",
                  log=quiet)
    draw_run_figures(tmp_path / "c", log=quiet)
    run = load_run(tmp_path / "c")
    assert run.vae.conditional and run.vae.num_classes == 10
    x_test, y_test = data.load("mnist", "test", shared_datasets)
    assert evaluate(run.vae, x_test[:500], y=y_test[:500]).as_dict() == final["test"]
    wrong = evaluate(run.vae, x_test[:500], y=(y_test[:500] + 1) % 10).loss
    assert wrong > final["test"]["loss"]  # the labels carry information the model uses
    names = {p.name for p in (tmp_path / "c").glob("*.png")}
    assert names == {"samples.png", "reconstructions.png", "curves.png", "latent_scatter.png",
                     "latent_health.png"}


def test_cli_names_conditional_and_bernoulli_runs_and_samples_a_class(shared_datasets,
                                                                      tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.chdir(tmp_path)
    base = ["train", "--epochs", "1", "--train-subset", "256", "--test-subset", "100",
            "--hidden", "32,16", "--no-figures", "--data-dir", str(shared_datasets)]
    assert run_cli([*base, "--conditional"]) == 0
    assert run_cli([*base, "--likelihood", "bernoulli"]) == 0
    runs = tmp_path / "runs"
    assert {p.name for p in runs.iterdir()} == {"cvae-mlp-mnist-z2-s0",
                                                "mlp-mnist-z2-bernoulli-s0"}
    assert json.loads((runs / "mlp-mnist-z2-bernoulli-s0" / "config.json").read_text())[
        "binarize"] is True
    assert run_cli(["sample", "--run", str(runs / "cvae-mlp-mnist-z2-s0"), "--label", "7"]) == 0
    assert (runs / "cvae-mlp-mnist-z2-s0" / "samples-label7.png").is_file()
    assert "of class 7" in capsys.readouterr().out
    assert run_cli(["sample", "--run", str(runs / "cvae-mlp-mnist-z2-s0"), "--label", "10"]) == 2
    assert "--label must be in 0..9, got 10" in capsys.readouterr().err
    bernoulli = str(runs / "mlp-mnist-z2-bernoulli-s0")
    assert run_cli(["sample", "--run", bernoulli, "--label", "1"]) == 2
    assert "not conditional" in capsys.readouterr().err
    assert run_cli([*base, "--conditional", "--model", "ae"]) == 2
    assert "--conditional is for the VAE only" in capsys.readouterr().err
