"""Runs that never lie (issue 13): divergence, resume, interruptions, damaged run files.

Each test trains 256 images (one batch) of a small MLP unless it says otherwise.
"""

import json
import os
import shutil
import signal

import numpy as np
import pytest

from numpyvae import data
from numpyvae.training import train as train_module
from numpyvae.training.checkpoint import load_checkpoint, save_checkpoint, write_json
from numpyvae.training.config import TrainConfig, num_arrays
from numpyvae.training.run import (
    load_run,
    read_final,
    read_history,
    summary_markdown,
    sync_history,
)
from numpyvae.training.train import (
    CHECKPOINT,
    announce_compiles,
    build_model,
    evaluate,
    load_run_data,
    train,
)

from .helpers import quiet, run_cli

QUICK = ["--train-subset", "256", "--test-subset", "100", "--hidden", "32,16", "--no-figures"]




def _train_cli(shared, out, *args) -> int:
    return run_cli(["train", *QUICK, "--data-dir", str(shared), "--out", str(out), *args])


def _snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} in a JSON file")


def _no_nan_json(folder) -> None:
    for path in folder.glob("*.json"):
        json.loads(path.read_text(), parse_constant=_refuse)


@pytest.fixture(scope="module")
def finished(shared_datasets, tmp_path_factory):
    """A finished 2-epoch run; copy it before changing it."""
    out = tmp_path_factory.mktemp("runs") / "done"
    assert _train_cli(shared_datasets, out, "--epochs", "2") == 0
    return out


@pytest.fixture
def run_copy(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


# -- 1. a diverged run is never saved as good ---------------------------------------------
@pytest.mark.parametrize("epochs", ["1", "2"])
def test_a_huge_lr_exits_1_and_saves_nothing(shared_datasets, tmp_path, capsys, epochs):
    out = tmp_path / "run"
    assert _train_cli(shared_datasets, out, "--lr", "1e6", "--epochs", epochs) == 1
    err = capsys.readouterr().err
    assert "training diverged in epoch 1" in err and "no checkpoint was written" in err
    assert "--lr cannot change on --resume" in err and "smaller --lr" in err
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    _no_nan_json(out)


def test_a_tiny_c_is_not_called_an_lr_problem(shared_datasets, tmp_path, capsys):
    assert _train_cli(shared_datasets, tmp_path / "run", "--c", "1e-45", "--epochs", "1") == 1
    err = capsys.readouterr().err
    assert "larger --c" in err and "--lr" not in err


def test_divergence_in_a_later_epoch_keeps_the_last_good_checkpoint(run_copy, monkeypatch,
                                                                     shared_datasets, capsys):
    before = _snapshot(run_copy)
    real = train_module.train_epoch

    def poisoned(model, *args, **kw):
        mean = real(model, *args, **kw)
        next(iter(model.named_arrays().values()))[0] = np.nan  # a parameter goes NaN
        return mean

    monkeypatch.setattr(train_module, "train_epoch", poisoned)
    assert _train_cli(shared_datasets, run_copy, "--resume", "--epochs", "3") == 1
    err = capsys.readouterr().err
    assert "diverged in epoch 3" in err and "parameters are not finite" in err
    assert "the last good checkpoint (epoch 2) is kept" in err
    assert _snapshot(run_copy) == before  # config.json and final.json still say epoch 2
    _no_nan_json(run_copy)


def test_a_nan_final_evaluation_writes_no_final_json(shared_datasets, tmp_path, monkeypatch,
                                                     capsys):
    real = train_module.evaluate
    calls = []

    def nan_on_full_sets(model, x, *args, **kw):
        calls.append(len(x))
        losses = real(model, x, *args, **kw)
        if len(calls) > 1:  # test100 is the first call; the final evaluation follows
            losses.loss = losses.recon = float("nan")
        return losses

    monkeypatch.setattr(train_module, "evaluate", nan_on_full_sets)
    out = tmp_path / "run"
    assert _train_cli(shared_datasets, out, "--epochs", "1") == 1
    assert "final evaluation on the training set is nan" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


@pytest.mark.parametrize("option, value", [("--lr", "inf"), ("--lr", "nan"), ("--c", "inf"),
                                           ("--c", "nan"), ("--lr", "-1")])
def test_non_finite_options_are_refused_before_any_work(tmp_path, capsys, option, value):
    out = tmp_path / "never"
    assert run_cli(["train", "--out", str(out), f"{option}={value}"]) == 2
    assert f"{option} must be > 0 and finite" in capsys.readouterr().err
    assert not out.exists()


def test_write_json_refuses_nan_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json(tmp_path / "x.json", {"loss": float("nan")})
    assert list(tmp_path.iterdir()) == []


# -- 1b. a run that stopped learning, and what went non-finite first (issue 23) -----------
@pytest.mark.parametrize("args, hint", [
    (["--lr", "1e3", "--epochs", "3"], "smaller --lr"),
    (["--c", "1e-30", "--epochs", "1"], "larger --c"),
    (["--beta", "1e30", "--epochs", "1"], "smaller --beta"),
])
def test_an_adams_state_gone_infinite_stops_the_run(shared_datasets, tmp_path, capsys, args,
                                                    hint):
    """Each of these once exited 0 with a finite final.json while Adam's v was inf in up to
    70% of its entries: those parameters never move again."""
    out = tmp_path / "run"
    assert _train_cli(shared_datasets, out, *args) == 1
    err = capsys.readouterr().err
    assert "Adam's state (m, v) is not finite" in err and hint in err
    assert not (out / "final.json").exists()
    if (out / CHECKPOINT).is_file():  # every array of it finite, the optimizer's included
        load_checkpoint(out / CHECKPOINT)
    _no_nan_json(out)


def test_an_infinite_adam_state_in_a_later_epoch_keeps_the_last_good_checkpoint(
        run_copy, monkeypatch, shared_datasets, capsys):
    before = _snapshot(run_copy)
    real = train_module.train_epoch

    def poisoned(model, optimizer, *args, **kw):
        mean = real(model, optimizer, *args, **kw)
        optimizer.v[1][0] = np.inf  # a second moment overflowed; the parameters are finite
        return mean

    monkeypatch.setattr(train_module, "train_epoch", poisoned)
    assert _train_cli(shared_datasets, run_copy, "--resume", "--epochs", "3") == 1
    err = capsys.readouterr().err
    assert "diverged in epoch 3" in err and "Adam's state (m, v) is not finite (1 of" in err
    assert "the last good checkpoint (epoch 2) is kept" in err
    assert _snapshot(run_copy) == before


def test_a_nan_pixel_is_named_as_the_data_not_the_lr(shared_datasets, tmp_path, monkeypatch,
                                                    capsys):
    real = data.load

    def one_nan_pixel(dataset, split, *args, **kw):
        x, y = real(dataset, split, *args, **kw)
        if split == "train":  # one NaN pixel in each training image
            x = x.copy()
            x[:, 0, 0, 0] = np.nan
        return x, y

    monkeypatch.setattr(data, "load", one_nan_pixel)
    assert _train_cli(shared_datasets, tmp_path / "run", "--epochs", "1") == 1
    err = capsys.readouterr().err
    assert "the training images hold 256 NaN or infinite pixel values" in err
    assert "check the data set's files" in err and "--lr" not in err


def test_a_huge_beta_is_named_not_the_lr(shared_datasets, tmp_path, capsys):
    assert _train_cli(shared_datasets, tmp_path / "run", "--beta", "1e300", "--epochs", "1") == 1
    err = capsys.readouterr().err
    assert "training diverged in epoch 1" in err and "smaller --beta" in err and "--lr" not in err


def test_a_kl_warmup_longer_than_the_run_is_said_at_the_start(shared_datasets, tmp_path,
                                                              capsys):
    assert _train_cli(shared_datasets, tmp_path / "run", "--kl-warmup", "5", "--epochs",
                      "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("note: --kl-warmup 5 is longer than --epochs 1: β rises only to 0.2 "
                        "(of 1) by the end of the run")


# -- 2. resume continues or refuses, never starts over or goes back -------------------------
def test_resume_refuses_a_finished_run_without_its_checkpoint(run_copy, shared_datasets,
                                                              capsys):
    (run_copy / CHECKPOINT).unlink()
    before = _snapshot(run_copy)
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "final.json and history.json but no checkpoint.npz" in err
    assert _snapshot(run_copy) == before


def test_a_nan_in_final_json_is_named_by_plot_and_by_resume(run_copy, capsys, tmp_path):
    final = run_copy / "final.json"
    final.write_text(final.read_text().replace('"kl": ', '"kl": NaN, "was": ', 1))
    before = _snapshot(run_copy)
    assert run_cli(["plot", "--run", str(run_copy), "--out", str(tmp_path / "figs")]) == 2
    assert f"{final} holds NaN" in capsys.readouterr().err
    assert not (tmp_path / "figs" / "summary.md").exists()
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{final} holds NaN" in err and "delete final.json and resume again" in err
    assert _snapshot(run_copy) == before
    final.unlink()  # as the message says: the final evaluation is redone from the checkpoint
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "2"]) == 0
    assert read_final(run_copy)["epochs"] == 2


@pytest.mark.parametrize("option, value", [
    ("--lr", "0.01"), ("--c", "0.1"), ("--batch-size", "128"), ("--seed", "3"),
    ("--beta", "2"), ("--kl-warmup", "2"), ("--free-bits", "0.5"), ("--hidden", "32,8"),
    ("--latent-dim", "3"), ("--train-subset", "128"), ("--likelihood", "bernoulli")])
def test_resume_refuses_to_change_what_defines_the_run(run_copy, capsys, option, value):
    """Named one by one, not read from FIXED_ON_RESUME: a name dropped from it is caught."""
    before = _snapshot(run_copy)
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "3",
                    option, value]) == 2
    name = option[2:].replace("-", "_")
    assert f"--resume: {name} is" in capsys.readouterr().err
    assert _snapshot(run_copy) == before


def test_a_finished_run_resumed_further_loses_its_final_json_with_the_next_checkpoint(
        run_copy, monkeypatch):
    """Stopped in epoch 4 of 4 after epoch 3 was saved: no final.json of epoch 2 may stay
    beside a checkpoint of epoch 3, or the folder looks finished when it is not."""
    _interrupt_in_epoch(monkeypatch, 2, "ctrl-c")
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "4"]) == 130
    assert load_run(run_copy).epoch == 3
    assert not (run_copy / "final.json").exists()


def test_resume_refuses_to_go_back_to_an_earlier_epoch(run_copy, capsys):
    before = _snapshot(run_copy)
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "1"]) == 2
    assert "the checkpoint in" in (err := capsys.readouterr().err) and "at epoch 2" in err
    assert _snapshot(run_copy) == before


def test_resume_of_a_finished_run_changes_nothing(run_copy, capsys):
    before = _snapshot(run_copy)
    assert run_cli(["train", "--out", str(run_copy), "--resume"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert _snapshot(run_copy) == before


def test_resume_needs_out(capsys):
    assert run_cli(["train", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_resume_without_config_json_uses_the_checkpoints_config(run_copy, capsys):
    (run_copy / "config.json").unlink()
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "3"]) == 0
    config = json.loads((run_copy / "config.json").read_text())
    assert config["hidden"] == [32, 16] and config["epochs"] == 3
    assert read_final(run_copy)["epochs"] == 3
    assert load_run(run_copy).epoch == 3


def test_cli_resume_honours_epochs_and_matches_an_uninterrupted_run(shared_datasets, finished,
                                                                    tmp_path):
    out = tmp_path / "split"
    assert _train_cli(shared_datasets, out, "--epochs", "1") == 0
    assert run_cli(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 0
    whole, _, _ = load_checkpoint(finished / CHECKPOINT)
    split, _, meta = load_checkpoint(out / CHECKPOINT)
    assert meta["epoch"] == 2 and read_final(out)["epochs"] == 2
    for k in whole:
        np.testing.assert_array_equal(whole[k], split[k], err_msg=k)


def test_a_damaged_checkpoint_exits_2_naming_it(run_copy, capsys):
    (run_copy / CHECKPOINT).write_bytes(b"PK\x03\x04 not really a zip")
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "3"]) == 2
    assert f"{run_copy / CHECKPOINT} is not a readable numpyvae checkpoint" in \
        capsys.readouterr().err


# -- 4. interruptions: Ctrl-C and SIGTERM, stray temp files, a lagging history.json ---------
def _interrupt_in_epoch(monkeypatch, epoch: int, how: str) -> None:
    real = train_module.train_epoch
    seen = []

    def interrupted(*args, **kw):
        seen.append(1)
        if len(seen) == epoch:
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(train_module, "train_epoch", interrupted)


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_an_interrupt_exits_130_with_the_resume_command(shared_datasets, tmp_path, monkeypatch,
                                                        capsys, how):
    out = tmp_path / "run"
    handler = signal.getsignal(signal.SIGTERM)
    _interrupt_in_epoch(monkeypatch, 2, how)
    assert _train_cli(shared_datasets, out, "--epochs", "3") == 130
    err = capsys.readouterr().err
    assert f"python -m numpyvae train --out {out} --resume --epochs 3" in err
    assert "The last checkpoint (end of the last finished epoch) is kept" in err
    assert load_run(out).epoch == 1
    assert signal.getsignal(signal.SIGTERM) is handler  # restored


def test_an_interrupt_in_epoch_1_does_not_claim_a_checkpoint(shared_datasets, tmp_path,
                                                             monkeypatch, capsys):
    out = tmp_path / "run"
    _interrupt_in_epoch(monkeypatch, 1, "sigterm")
    assert _train_cli(shared_datasets, out, "--epochs", "2") == 130
    err = capsys.readouterr().err
    assert "is kept" not in err and "no checkpoint yet" in err
    monkeypatch.undo()
    assert run_cli(["train", "--out", str(out), "--resume"]) == 0  # starts at epoch 1
    assert load_run(out).epoch == 2


def test_resume_removes_stray_temp_files_and_rewrites_history(run_copy, monkeypatch):
    strays = [".checkpoint.npz.k2j_9x0a.tmp.npz", ".history.json.abcdefgh.tmp"]
    kept = [".hidden-notes", "notes.tmp", ".x.abc.tmp"]
    for name in strays + kept:
        (run_copy / name).write_text("left behind")
    write_json(run_copy / "history.json", [])  # it lagged the checkpoint
    _interrupt_in_epoch(monkeypatch, 1, "ctrl-c")  # stop at once: only the start has run
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "3"]) == 130
    names = {p.name for p in run_copy.iterdir()}
    assert not names & set(strays) and names >= set(kept)
    assert read_history(run_copy) == load_run(run_copy).history


def test_sync_history_rewrites_a_damaged_history(run_copy):
    for damaged in ("{}", "[]", "not json", None):
        if damaged is None:
            (run_copy / "history.json").unlink()
        else:
            (run_copy / "history.json").write_text(damaged)
        history = sync_history(run_copy)
        assert read_history(run_copy) == history == load_run(run_copy).history
    before = (run_copy / "history.json").stat().st_mtime_ns
    sync_history(run_copy)  # already in step: left alone
    assert (run_copy / "history.json").stat().st_mtime_ns == before


# -- 5. the thread count is recorded ------------------------------------------------------
def test_threads_are_recorded_and_a_change_is_noted(run_copy, monkeypatch, capsys):
    assert json.loads((run_copy / "config.json").read_text())["threads"] >= 1
    saved = load_run(run_copy).config.threads
    monkeypatch.setattr(train_module, "current_threads", lambda: saved + 1)
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert f"ran with {saved} thread(s), this session with {saved + 1}" in out
    assert "may not be bitwise the same" in out
    assert json.loads((run_copy / "config.json").read_text())["threads"] == saved + 1
    assert [h["threads"] for h in load_run(run_copy).history] == [saved, saved, saved + 1]


# -- 6. sizes: refused by estimate, and a checkpoint's config checked against its arrays -----
def test_an_absurd_size_is_refused_by_estimate(tmp_path, capsys):
    out = tmp_path / "never"
    for args in (["--hidden", "100000000"], ["--latent-dim", "1000000000"],
                 ["--arch", "cnn", "--latent-dim", "1000000000"]):
        assert run_cli(["train", "--out", str(out), *args]) == 2
        assert "this model cannot fit in memory" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("model, arch, conditional", [("vae", "mlp", False), ("vae", "mlp", True),
                                                      ("ae", "mlp", False), ("vae", "cnn", False),
                                                      ("vae", "cnn", True)])
def test_num_arrays_counts_what_build_model_builds(model, arch, conditional):
    config = TrainConfig(model=model, arch=arch, conditional=conditional, latent_dim=3,
                         hidden=(20, 10))
    assert num_arrays(config) == sum(a.size for a in build_model(config).named_arrays().values())


def _rewrite_meta(run, change) -> None:
    arrays, optim, meta = load_checkpoint(run / CHECKPOINT)
    change(meta)
    meta.pop("format")
    save_checkpoint(run / CHECKPOINT, arrays, optim, meta)


def test_a_checkpoint_whose_config_disagrees_with_its_arrays_builds_nothing(run_copy,
                                                                            monkeypatch):
    built = []
    monkeypatch.setattr("numpyvae.training.run.build_model", lambda c: built.append(c))
    _rewrite_meta(run_copy, lambda m: m["config"].update(hidden=[64, 32]))
    with pytest.raises(ValueError, match="describes a model of .* but its arrays hold"):
        load_run(run_copy)
    _rewrite_meta(run_copy, lambda m: m["config"].update(hidden=[100_000_000]))
    with pytest.raises(ValueError, match="cannot fit in memory"):
        load_run(run_copy)
    assert built == []


# -- malformed run files: each a named error ----------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("history"), "its meta has no 'history' entry"),
    (lambda m: m.update(epoch="2"), "its meta's 'epoch' should be a JSON integer, got str"),
    (lambda m: m.update(config=[1, 2]), "its meta's 'config' should be a JSON object"),
    (lambda m: m["config"].update(latent_dim="2"), "latent_dim must be an integer, got '2'"),
    (lambda m: m["config"].update(hidden="32,16"), "hidden must be a list of integer widths"),
])
def test_damaged_checkpoint_meta_is_a_named_error(run_copy, capsys, change, message):
    _rewrite_meta(run_copy, change)
    with pytest.raises(ValueError, match=message):
        load_run(run_copy)
    assert run_cli(["train", "--out", str(run_copy), "--resume", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert str(run_copy / CHECKPOINT) in err and message.split(",")[0] in err


def test_meta_that_is_not_a_json_object_and_pickled_arrays_are_named(run_copy):
    path = run_copy / CHECKPOINT
    np.savez(path, meta=np.array("[1, 2]"))
    with pytest.raises(ValueError, match="'meta' entry is not a JSON object"):
        load_run(run_copy)
    with open(path, "wb") as f:
        np.savez(f, meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="holds Python objects") as caught:
        load_run(run_copy)
    assert "allow_pickle" not in str(caught.value)


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "expected a JSON object of options, got list"),
    ('{"latent_dim": 2.5}', "latent_dim must be an integer, got 2.5"),
    ('{"lr": "fast"}', "lr must be a number"),
    ("{not json", "is not valid JSON"),
])
def test_a_bad_config_json_is_a_named_error(tmp_path, capsys, content, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(content)  # stopped in epoch 1: no checkpoint yet
    assert run_cli(["train", "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(run / "config.json") in err
    assert not (run / CHECKPOINT).exists()


@pytest.mark.parametrize("name, content, message", [
    ("history.json", "{}", "expected a list of one entry per epoch"),
    ("history.json", "[]", "expected a list of one entry per epoch"),
    ("final.json", '{"test": {"loss": 1, "recon": 1, "kl": 0}}', "'train' should hold"),
    ("final.json", "[]", "expected a JSON object, got list"),
])
def test_damaged_history_and_final_are_named_errors(run_copy, name, content, message):
    (run_copy / name).write_text(content)
    reader = read_history if name == "history.json" else read_final
    with pytest.raises(ValueError, match=message) as caught:
        reader(run_copy)
    assert name in str(caught.value)


def test_summary_takes_the_epochs_from_the_checkpoint(run_copy):
    (run_copy / "config.json").write_text("{}")
    assert summary_markdown(run_copy).splitlines()[2].startswith("2 epochs")


# -- data: subsets and empty files -------------------------------------------------------
def test_a_subset_larger_than_the_data_set_is_refused(shared_datasets, tmp_path, capsys):
    out = tmp_path / "never"
    assert run_cli(["train", "--out", str(out), "--data-dir", str(shared_datasets),
                 "--train-subset", "60001"]) == 2
    assert "--train-subset 60001: the mnist training set has only 60,000 images" in \
        capsys.readouterr().err
    assert run_cli(["train", "--out", str(out), "--data-dir", str(shared_datasets),
                 "--test-subset", "10001"]) == 2
    assert "--test-subset 10001: the mnist test set has only 10,000 images" in \
        capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("empty", ["train", "test"])
def test_a_data_file_with_no_images_is_refused(shared_datasets, monkeypatch, empty):
    real = data.load

    def load(dataset, split="train", data_dir=None):
        x, y = real(dataset, split, data_dir)
        return (x[:0], y[:0]) if split == empty else (x, y)

    monkeypatch.setattr(data, "load", load)
    config = TrainConfig(data_dir=str(shared_datasets), train_subset=None if empty == "train"
                         else 256, hidden=(32, 16))
    with pytest.raises(ValueError, match=f"mnist {empty}\\w* set in .* has 0 images"):
        load_run_data(config)


# -- the compile note ---------------------------------------------------------------------
def test_the_compile_note_comes_only_with_a_compile():
    import numba

    said = []
    with announce_compiles(said.append):
        numba.njit(lambda a: a + 1)(1)  # a new function: numba compiles it here
        numba.njit(lambda a: a + 2)(1)
    assert said == ["compiling the numba kernels (first run only: cached on disk afterwards)..."]
    compiled = numba.njit(lambda a: a * 2)
    compiled(1)
    said.clear()
    with announce_compiles(said.append):
        compiled(3)  # already compiled: nothing to say
    assert said == []


def test_a_warm_run_does_not_announce_a_compile(finished, shared_datasets, tmp_path):
    logged = []
    config = load_run(finished).config
    train(config, tmp_path / "again", log=logged.append)  # kernels cached by `finished`
    assert not [line for line in logged if "compiling" in line]


# -- the per-epoch reshuffle --------------------------------------------------------------
def test_each_epoch_sees_its_own_order(shared_datasets, tmp_path, monkeypatch):
    """The loop gets the batches of (seed, epoch): two epochs differ, a run repeats."""
    seen = []
    real = train_module.train_epoch

    def spy(model, optimizer, batches, rng, *args):
        batches = list(batches)
        seen.append(np.concatenate([x.reshape(len(x), -1).sum(axis=1) for x, _ in batches]))
        return real(model, optimizer, batches, rng, *args)

    monkeypatch.setattr(train_module, "train_epoch", spy)
    config = TrainConfig(data_dir=str(shared_datasets), train_subset=512, test_subset=100,
                         hidden=(32, 16), epochs=2)
    train(config, tmp_path / "a", log=quiet)
    train(config, tmp_path / "b", log=quiet)
    train(TrainConfig(**{**config.to_json(), "seed": 1, "hidden": (32, 16)}), tmp_path / "c",
          log=quiet)
    a1, a2, b1, b2, c1, _ = seen
    assert sorted(a1) == sorted(a2)  # the same images...
    assert not np.array_equal(a1, a2)  # ...in another order each epoch
    np.testing.assert_array_equal(a1, b1)  # and the order depends on (seed, epoch) only
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, c1)


# -- a CNN run's checkpoint round trip, and evaluate -------------------------------------
@pytest.fixture(scope="module")
def cnn_runs(shared_datasets, tmp_path_factory):
    """A 2-epoch CNN run and the same run trained 1 + 1 epochs (256 images, batch 128)."""
    root = tmp_path_factory.mktemp("cnn")
    config = TrainConfig(arch="cnn", epochs=2, batch_size=128, train_subset=256,
                         test_subset=100, data_dir=str(shared_datasets))
    train(config, root / "whole", log=quiet)
    one = TrainConfig(**{**config.to_json(), "epochs": 1})
    first = train(one, root / "split", log=quiet)
    shutil.copytree(root / "split", root / "one")
    train(config, root / "split", resume=True, log=quiet)
    return root, first


def test_a_cnn_checkpoint_reloads_the_model_exactly(cnn_runs):
    root, first = cnn_runs
    run = load_run(root / "one")
    assert not run.vae.encoder.training and not run.vae.decoder.training  # eval mode
    run_data = load_run_data(run.config)
    assert evaluate(run.vae, run_data.x_test).as_dict() == first["test"]
    assert evaluate(run.vae, run_data.x_train).as_dict() == first["train_eval"]


def test_a_cnn_resumed_1_plus_1_equals_2_epochs_bitwise(cnn_runs):
    root, _ = cnn_runs
    whole, optim_whole, _ = load_checkpoint(root / "whole" / CHECKPOINT)
    split, optim_split, _ = load_checkpoint(root / "split" / CHECKPOINT)
    assert any("running" in k for k in whole)  # BatchNorm's buffers are in the comparison
    assert whole.keys() == split.keys()
    for k in whole:
        np.testing.assert_array_equal(whole[k], split[k], err_msg=k)
    for k in optim_whole:
        np.testing.assert_array_equal(optim_whole[k], optim_split[k], err_msg=k)
    assert read_final(root / "whole") == {**read_final(root / "split"),
                                          "seconds": read_final(root / "whole")["seconds"]}


def test_evaluate_weights_batches_by_size_and_leaves_buffers_alone(cnn_runs, shared_datasets):
    root, _ = cnn_runs
    model = load_run(root / "whole").vae
    model.train()  # evaluate must switch to eval mode itself, and back
    x, _ = data.load("mnist", "test", shared_datasets)
    x = x[:25]
    before = {k: a.copy() for k, a in model.named_arrays().items()}
    in_25 = evaluate(model, x, batch_size=25)
    in_10 = evaluate(model, x, batch_size=10)  # batches of 10, 10 and 5
    for k, a in model.named_arrays().items():
        np.testing.assert_array_equal(a, before[k], err_msg=k)
    assert model.encoder.training
    # With one ε per image from the same generator, the split changes only the rounding.
    np.testing.assert_allclose(list(in_10.as_dict().values()), list(in_25.as_dict().values()),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="0 images"):
        evaluate(model, x[:0])
