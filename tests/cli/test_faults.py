"""Bad options, damaged run files, full or read-only disks: each is a one-line named error
with exit 2 (a wrong option or path) or 1 (the disk failed the run), nothing is left
half-written, and output paths are checked before the work.

These machines run as root, so a read-only folder cannot be made with chmod: a full or
read-only disk is injected by making the PNG write raise the OSError.
"""

import errno
import json
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from numpyvae.cli import main as cli  # noqa: E402
from numpyvae.cli.gradcheck_report import run_report  # noqa: E402
from numpyvae.data.catalog import DATASETS  # noqa: E402
from numpyvae.figures import plots  # noqa: E402
from numpyvae.models.architectures import ARCHS  # noqa: E402
from numpyvae.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from numpyvae.training.train import CHECKPOINT, TrainConfig, build_model  # noqa: E402
from tests.conftest import REPO  # noqa: E402


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def write_run(folder, meta=None, **config) -> str:
    """A run folder with an untrained tiny model's checkpoint (meta replaceable)."""
    cfg = TrainConfig(hidden=(16, 8), **config)
    model = build_model(cfg)
    folder.mkdir()
    if meta is None:
        save_checkpoint(folder / CHECKPOINT, model.named_arrays(), {},
                        {"config": cfg.to_json(), "epoch": 1, "history": []})
    else:  # any JSON as the meta, as a damaged or foreign file may hold
        arrays = {f"model/{k}": v for k, v in model.named_arrays().items()}
        np.savez(folder / CHECKPOINT, meta=np.array(json.dumps(meta)), **arrays)
    return str(folder)


@pytest.fixture(scope="module")
def trained(shared_datasets, tmp_path_factory):
    """A finished 1-epoch run on 256 images, with every file train writes."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert cli.main(["train", "--epochs", "1", "--train-subset", "256", "--test-subset", "100",
                     "--data-dir", str(shared_datasets), "--out", str(run),
                     "--no-figures"]) == 0
    return run


def copy_run(trained, tmp_path):
    import shutil

    return shutil.copytree(trained, tmp_path / "run")


def run_cli(capsys, *argv) -> tuple[int, str]:
    """Exit code and stderr; stderr must be one named line, never a traceback."""
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- output paths, checked before the work ------------------------------------------
@pytest.mark.parametrize("command", ["sample", "explore", "evaluate"])
def test_out_under_a_file(command, tmp_path, capsys):
    run = write_run(tmp_path / "r", latent_dim=3)
    (tmp_path / "afile").write_text("x")
    code, err = run_cli(capsys, command, "--run", run, "--out", str(tmp_path / "afile" / "x"))
    assert code == 2 and "is a file, not a folder" in err and "afile" in err


def test_plot_out_under_a_file_and_naming_a_file(trained, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, err = run_cli(capsys, "plot", "--run", str(trained), "--out", str(tmp_path / "afile"))
    assert code == 2 and "is a file: give a folder" in err
    code, err = run_cli(capsys, "plot", "--run", str(trained),
                        "--out", str(tmp_path / "afile" / "figs"))
    assert code == 2 and "is a file, not a folder" in err
    assert files(tmp_path) == ["afile"]


@pytest.mark.parametrize("command", ["sample", "explore", "evaluate"])
def test_out_under_sys_is_a_named_error(command, tmp_path, capsys):
    run = write_run(tmp_path / "r", latent_dim=3)
    code, err = run_cli(capsys, command, "--run", run, "--out", "/sys/numpyvae-test.png")
    assert code == 2 and "cannot write in /sys" in err


@pytest.mark.parametrize("command", ["sample", "explore", "evaluate"])
def test_out_naming_an_existing_folder(command, tmp_path, capsys, monkeypatch):
    import numpyvae.models.iwae as iwae

    def no_work(*a, **k):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(iwae, "log_likelihood", no_work)
    run = write_run(tmp_path / "r", latent_dim=3)
    (tmp_path / "folder").mkdir()
    code, err = run_cli(capsys, command, "--run", run, "--out", str(tmp_path / "folder"))
    assert code == 2 and "is a folder: give a file name" in err
    assert files(tmp_path / "folder") == []


# -- a full or read-only disk, injected ------------------------------------------
@pytest.mark.parametrize("fault", [errno.ENOSPC, errno.EROFS])
@pytest.mark.parametrize("command", ["sample", "plot", "explore"])
def test_a_disk_that_fails_the_write(command, fault, trained, tmp_path, capsys, monkeypatch):
    def broken(fig, path):
        with open(path, "wb") as f:
            f.write(b"half a PNG")
        raise OSError(fault, os.strerror(fault))

    monkeypatch.setattr(plots, "_write_png", broken)
    out = tmp_path / "out"
    out.mkdir()
    target = str(out / "x.png") if command != "plot" else str(out)
    code, err = run_cli(capsys, command, "--run", str(trained), "--out", target)
    assert code == 1
    assert os.strerror(fault) in err and str(out) in err
    assert len(err.strip().splitlines()) == 1
    assert files(out) == []  # no temporary file, no half PNG


# -- damaged run files ---------------------------------------------------------
BAD_META = [
    ([1, 2], "its 'meta' entry is not a JSON object"),
    ({"config": {}, "epoch": 1}, "its meta has no 'history' entry"),
    ({"config": [], "epoch": 1, "history": []},
     "its meta's 'config' should be a JSON object, got list"),
    ({"config": {}, "epoch": "1", "history": []},
     "its meta's 'epoch' should be a JSON integer, got str"),
    ({"config": {}, "epoch": 1, "history": {}},
     "its meta's 'history' should be a JSON list, got dict"),
    ({"config": {"latent_dim": "two"}, "epoch": 1, "history": []},
     "(its config): latent_dim must be an integer, got 'two'"),
]


@pytest.mark.parametrize("meta, message", BAD_META)
@pytest.mark.parametrize("command", ["sample", "plot", "explore", "evaluate"])
def test_a_malformed_checkpoint_meta_is_named(command, meta, message, tmp_path, capsys):
    run = write_run(tmp_path / "r", meta=meta)
    out = ["--out", str(tmp_path / ("o" if command == "plot" else "o.png"))]
    code, err = run_cli(capsys, command, "--run", run, *out)
    assert code == 2, err
    assert str(tmp_path / "r" / CHECKPOINT) in err and message in err
    assert files(tmp_path) == ["r"]


def test_an_object_array_checkpoint_does_not_advise_pickle(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    np.savez(tmp_path / "r" / CHECKPOINT, meta=np.array([{"a": 1}], dtype=object))
    code, err = run_cli(capsys, "sample", "--run", str(tmp_path / "r"))
    assert code == 2 and CHECKPOINT in err and "allow_pickle" not in err


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ("[]", "expected a JSON object, got list"),
    ('{"test": {}}', "'train' must be an object"),
])
def test_plot_checks_final_json_before_drawing(content, message, trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / "final.json").write_text(content)
    before = files(run)
    code, err = run_cli(capsys, "plot", "--run", str(run))
    assert code == 2 and str(run / "final.json") in err and message in err
    assert files(run) == before  # not one figure drawn


def _edited(final: dict, edit: str) -> dict:
    if edit == "a loss":
        final["test"]["loss"] -= 100.0  # a better number, written by hand
    elif edit == "its epochs":
        final["epochs"] = 15  # another run's final.json, or a stale one
    else:
        final["train"] = dict(final["train"], loss=final["train"]["loss"] - 100.0,
                              recon=final["train"]["recon"] - 100.0)  # consistent, but not true
    return final


@pytest.mark.parametrize("edit, message", [
    ("a loss", "'test' has loss"),
    ("its epochs", "is not this run's: it says epochs 15"),
    ("the train losses", "is not this run's"),
])
def test_a_hand_edited_final_json_is_named_not_reported(edit, message, trained, tmp_path,
                                                        capsys):
    """plot wrote summary.md from a final.json edited by hand, and a resume to the same
    epoch returned it as the run's result with exit 0."""
    run = copy_run(trained, tmp_path)
    final = _edited(json.loads((run / "final.json").read_text()), edit)
    (run / "final.json").write_text(json.dumps(final))
    before = files(run)
    code, err = run_cli(capsys, "plot", "--run", str(run), "--out", str(tmp_path / "figs"))
    assert code == 2 and str(run / "final.json") in err and message in err
    assert not (tmp_path / "figs" / "summary.md").exists()
    code, err = run_cli(capsys, "train", "--out", str(run), "--resume", "--epochs", "1")
    assert code == 2 and message in err and "delete final.json and resume again" in err
    assert files(run) == before


@pytest.mark.parametrize("content", ["{}", "[]", "not json"])
def test_plot_rewrites_a_damaged_history_json_from_the_checkpoint(content, trained, tmp_path,
                                                                 capsys):
    run = copy_run(trained, tmp_path)
    (run / "history.json").write_text(content)
    code, err = run_cli(capsys, "plot", "--run", str(run))
    assert code == 0 and "rewrote" in err
    _, _, meta = load_checkpoint(run / CHECKPOINT)
    assert json.loads((run / "history.json").read_text()) == meta["history"]


@pytest.mark.parametrize("content", ["[1, 2, 3]", "{}", "not json", ""])
def test_plot_rewrites_a_damaged_config_json_from_the_checkpoint_and_says_so(
        content, trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / "config.json").write_text(content)
    code, err = run_cli(capsys, "plot", "--run", str(run))
    assert code == 0
    assert f"note: rewrote {run / 'config.json'} from the checkpoint (epoch 1)" in err
    _, _, meta = load_checkpoint(run / CHECKPOINT)
    assert json.loads((run / "config.json").read_text()) == meta["config"]
    code, err = run_cli(capsys, "plot", "--run", str(run))  # whole again: nothing to say
    assert code == 0 and "note" not in err


def test_summary_comes_from_the_checkpoint_not_config_json(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / "config.json").write_text("{}")  # its defaults say 15 epochs
    code, _ = run_cli(capsys, "plot", "--run", str(run))
    assert code == 0
    summary = (run / "summary.md").read_text()
    assert "\n1 epochs," in summary and "15 epochs" not in summary


# -- smaller ones ----------------------------------------------------------------
def test_explore_z_beyond_float32_is_named(tmp_path, capsys):
    run = write_run(tmp_path / "r", latent_dim=2)
    code, err = run_cli(capsys, "explore", "--run", run, "--z=1e39,1",
                        "--out", str(tmp_path / "x.png"))
    assert code == 2 and "--z" in err and "float32" in err
    assert not (tmp_path / "x.png").exists()


def test_sample_n_is_honoured_by_a_conditional_run_without_label(tmp_path, capsys):
    run = write_run(tmp_path / "r", latent_dim=2, conditional=True)
    assert cli.main(["sample", "--run", run, "--n", "3"]) == 0
    assert "wrote 3 samples of each class" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        cli.main(["sample", "--run", run, "--n", "0"])
    assert info.value.code == 2 and "argument --n: must be >= 1, got 0" in capsys.readouterr().err


def test_sample_sizes_that_cannot_fit_are_refused(tmp_path, capsys):
    run = write_run(tmp_path / "r", latent_dim=2)
    code, err = run_cli(capsys, "sample", "--run", run, "--n", "100000000")
    assert code == 2 and "--n: 100,000,000 samples need about" in err
    assert files(tmp_path / "r") == [CHECKPOINT]


@pytest.mark.parametrize("argv, message", [
    (["sample", "--n", "1000000"], "--n: 1,000,000 samples need about"),
    (["evaluate", "--iw", "1000000000"], "--iw 1,000,000,000: the log-weights need about")])
def test_sizes_estimated_and_refused_before_any_work(argv, message, tmp_path, capsys,
                                                     monkeypatch):
    """On a machine of 20 GB: both once passed their checks (evaluate had none) and ran
    out of memory, sample in matplotlib's canvas, which the estimate left out."""
    import numpyvae.models.iwae as iwae

    def no_work(*a, **k):
        raise AssertionError("the work started before the size was checked")

    for module, name in ((iwae, "log_likelihood"), (plots, "save_samples"),
                         (plots, "save_class_samples")):
        monkeypatch.setattr(module, name, no_work)
    monkeypatch.setattr(plots, "available_memory", lambda: 20 * 10**9)
    run = write_run(tmp_path / "r", latent_dim=2)
    code, err = run_cli(capsys, argv[0], "--run", run, *argv[1:])
    assert code == 2 and message in err
    assert files(tmp_path / "r") == [CHECKPOINT]


@pytest.mark.parametrize("command", ["sample", "plot", "evaluate"])
def test_a_negative_seed_names_seed(command, tmp_path, capsys):
    run = write_run(tmp_path / "r", latent_dim=2)
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--run", run, "--seed", "-1"])
    assert info.value.code == 2
    assert "argument --seed: must be >= 0, got -1" in capsys.readouterr().err


def test_gradcheck_negative_seed_is_a_bad_argument(capsys):
    assert run_report(["--seed", "-1", "--layer", "Dense"]) == 2
    assert "--seed must be >= 0, got -1" in capsys.readouterr().err


def test_choices_come_from_the_single_constants():
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    actions = {a.dest: a for a in train._actions}
    assert tuple(actions["dataset"].choices) == DATASETS
    assert tuple(actions["arch"].choices) == ARCHS


@pytest.mark.parametrize("shell", [False, True])
def test_reproduce_list_into_a_closed_pipe_is_quiet(tmp_path, shell):
    """The reader is gone before anything is written (deterministic), or `| head -1`."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "numpyvae", "reproduce", "--list", "--out", str(tmp_path)]
    if shell:
        proc = subprocess.run(" ".join(argv) + " | head -1", shell=True, capture_output=True,
                              text=True, env=env, timeout=300, executable="/bin/bash")
        assert proc.stdout.count("\n") == 1
        err = proc.stderr
    else:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        proc.stdout.close()  # the reader left at once
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_data_file_of_the_other_data_set_stops_train(shared_datasets, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").symlink_to(shared_datasets / "fashion-mnist")
    code, err = run_cli(capsys, "train", "--dataset", "mnist", "--epochs", "1",
                        "--train-subset", "256", "--data-dir", str(tmp_path / "data"),
                        "--out", str(tmp_path / "run"))
    assert code == 2 and "is not the published mnist file" in err and "data_fetch.py" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "--out", "{file}"], "--out {file} is a file, not a run folder"),
    (["train", "--out", "{file}", "--resume"], "--out {file} is a file, not a run folder"),
    (["train", "--out", "{missing}", "--resume"], "--out {missing} is not there"),
    (["reproduce", "--quick", "--out", "{file}"], "--out {file} is a file: give a folder"),
    (["reproduce", "--quick", "--list", "--out", "{file}"], "--out {file} is a file"),
])
def test_an_out_that_is_a_file_or_missing_is_named(argv, message, tmp_path, capsys):
    """These said "exists: add --resume", "it has neither checkpoint.npz nor config.json",
    "File exists (errno 17)", or listed every run as "to train" with exit 0."""
    names = {"file": tmp_path / "notes.txt", "missing": tmp_path / "missing"}
    names["file"].write_text("mine")
    code, err = run_cli(capsys, *(a.format(**names) for a in argv))
    assert code == 2 and message.format(**names) in err
    assert names["file"].read_text() == "mine" and not names["missing"].exists()
