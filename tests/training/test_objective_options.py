"""--beta, --kl-warmup and --free-bits in training: the warm-up schedule, the config's
checks, run names and records, and a run stopped mid warm-up resuming bitwise."""

import json

import numpy as np
import pytest

from numpyvae.training.checkpoint import load_checkpoint
from numpyvae.training.config import FIXED_ON_RESUME, TrainConfig
from numpyvae.training.loop import kl_weight
from numpyvae.training.run import summary_markdown
from numpyvae.training.train import CHECKPOINT, train

from .helpers import quiet, run_cli


# -- the warm-up schedule ---------------------------------------------------------------
def test_kl_weight_rises_linearly_per_batch_and_then_stays():
    b, e = 4, 3  # 4 batches per epoch, warm-up over 3 epochs: 12 steps
    steps = [kl_weight(2.0, e, epoch, batch, b) for epoch in range(5) for batch in range(b)]
    np.testing.assert_allclose(steps[:12], 2.0 * np.arange(1, 13) / 12, rtol=1e-15)
    assert steps[11] == 2.0 and steps[12:] == [2.0] * 8  # β at epoch E's last batch, then flat
    assert kl_weight(0.5, 3, 0, 0, 4) == 0.5 / 12  # never exactly 0: the first step counts
    assert kl_weight(3.0, 0, 0, 0, 4) == 3.0  # no warm-up
    assert kl_weight(1.0, 1, 0, 0, 1) == 1.0


# -- the config ------------------------------------------------------------------------
@pytest.mark.parametrize("kw, message", [
    ({"beta": 0.0}, "--beta must be > 0 and finite, got 0.0"),
    ({"beta": float("inf")}, "--beta must be > 0 and finite"),
    ({"beta": float("nan")}, "--beta must be > 0 and finite"),
    ({"kl_warmup": -1}, "--kl-warmup must be >= 0 epochs, got -1"),
    ({"kl_warmup": 1.5}, "kl_warmup must be an integer, got 1.5"),
    ({"free_bits": -0.1}, "--free-bits must be >= 0 and finite, got -0.1"),
    ({"free_bits": float("inf")}, "--free-bits must be >= 0 and finite"),
    ({"model": "ae", "beta": 2.0}, "are for the VAE only"),
    ({"model": "ae", "free_bits": 0.5}, "are for the VAE only"),
])
def test_config_refuses_bad_objective_options(kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**kw)


def test_config_records_the_options_and_old_configs_load_with_defaults():
    assert {"beta", "kl_warmup", "free_bits"} <= set(FIXED_ON_RESUME)
    config = TrainConfig(beta=4, kl_warmup=5, free_bits=0.1)
    assert config.objective_tags() == "-b4-w5-fb0.1"
    assert TrainConfig().objective_tags() == ""
    assert TrainConfig(beta=0.5).objective_tags() == "-b0.5"
    d = config.to_json()
    assert (d["beta"], d["kl_warmup"], d["free_bits"]) == (4, 5, 0.1)
    old = {k: v for k, v in TrainConfig().to_json().items()
           if k not in ("beta", "kl_warmup", "free_bits")}  # a run folder from before
    loaded = TrainConfig.from_json(old)
    assert (loaded.beta, loaded.kl_warmup, loaded.free_bits) == (1.0, 0, 0.0)


# -- resume mid warm-up ----------------------------------------------------------------
def test_a_run_stopped_mid_warmup_resumes_bitwise(shared_datasets, tmp_path):
    """1 epoch of a 3-epoch warm-up (2 batches of 128 each), resumed to 2 epochs, equals
    2 epochs uninterrupted: parameters, Adam's state and the history."""
    config = TrainConfig(kl_warmup=3, epochs=2, train_subset=256, test_subset=100,
                         batch_size=128, hidden=(32, 16), data_dir=str(shared_datasets))
    train(config, tmp_path / "whole", log=quiet)
    train(TrainConfig(**{**config.to_json(), "epochs": 1, "hidden": (32, 16)}),
          tmp_path / "split", log=quiet)
    train(config, tmp_path / "split", resume=True, log=quiet)
    whole, optim_whole, meta_whole = load_checkpoint(tmp_path / "whole" / CHECKPOINT)
    split, optim_split, meta_split = load_checkpoint(tmp_path / "split" / CHECKPOINT)
    for k in whole:
        np.testing.assert_array_equal(whole[k], split[k], err_msg=k)
    for k in optim_whole:
        np.testing.assert_array_equal(optim_whole[k], optim_split[k], err_msg=k)

    def losses(history):
        return [{k: h[k] for k in ("epoch", "train", "test100")} for h in history]

    assert losses(meta_whole["history"]) == losses(meta_split["history"])
    history = json.loads((tmp_path / "split" / "history.json").read_text())
    assert losses(history) == losses(meta_whole["history"])
    assert [h["train"]["beta"] for h in history] == [[1 / 6, 2 / 6], [3 / 6, 4 / 6]]
    for h in history:  # the loss stays −ELBO; the objective weighs the KL by β < 1
        assert h["train"]["loss"] == pytest.approx(h["train"]["recon"] + h["train"]["kl"])
        assert h["train"]["objective"] < h["train"]["loss"]


# -- the CLI: the run's name, its records, the printed lines and summary.md -----------
def test_cli_names_records_and_reports_the_objective(shared_datasets, tmp_path, monkeypatch,
                                                     capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["train", "--epochs", "1", "--train-subset", "256", "--test-subset", "100",
                 "--hidden", "32,16", "--no-figures", "--data-dir", str(shared_datasets),
                 "--beta", "4", "--kl-warmup", "2", "--free-bits", "0.1"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "mlp-mnist-z2-b4-w2-fb0.1-s0"
    config = json.loads((run / "config.json").read_text())
    assert (config["beta"], config["kl_warmup"], config["free_bits"]) == (4, 2, 0.1)
    (entry,) = json.loads((run / "history.json").read_text())
    final = json.loads((run / "final.json").read_text())
    assert entry["train"]["beta"] == [2.0, 2.0]  # one batch: half of the 2-epoch warm-up
    assert final["train"]["objective"] == entry["train"]["objective"]
    assert "β = 4, KL warm-up over 2 epochs, free bits λ = 0.1" in out  # the banner
    assert f"objective {entry['train']['objective']:7.2f} at β 2, free bits 0.1" in out
    summary = summary_markdown(run)
    assert "with β = 4, KL warm-up over 2 epochs, free bits λ = 0.1" in summary
    assert "the loss below is −ELBO" in summary
