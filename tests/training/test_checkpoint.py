"""Checkpoints and run files are checked where they are read (issue 23): every array finite,
no NaN in any JSON, sizes bounded before anything is read or unpacked, and atomic_write
leaves nothing behind when it fails."""

import errno
import json
import os
import zipfile

import numpy as np
import pytest

from numpyvae.training import checkpoint as checkpoint_module
from numpyvae.training.checkpoint import (
    atomic_write,
    load_checkpoint,
    load_run_checkpoint,
    save_checkpoint,
    write_json,
)
from numpyvae.training.config import TrainConfig
from numpyvae.training.run import read_final, read_history, read_json
from numpyvae.training.train import CHECKPOINT, build_model

from .helpers import run_cli

CONFIG = TrainConfig(hidden=(16, 8), latent_dim=2)


def write_run(folder, poison=None, history=None):
    """A run folder holding an untrained tiny model's checkpoint; ``poison`` is
    ``(array name, value)`` written into that array first."""
    model = build_model(CONFIG)
    arrays = dict(model.named_arrays())
    optim = {"t": 1} | {f"{k}.{i}": np.zeros_like(a) for k in "mv"
                        for i, a in enumerate(arrays.values())}
    if poison is not None:
        name, value = poison
        target = optim if name in optim else arrays
        target[name] = target[name].copy()
        target[name].flat[3] = value
    folder.mkdir()
    meta = {"config": CONFIG.to_json(), "epoch": 1, "history": history or [],
            "noise_rng": np.random.default_rng(0).bit_generator.state}
    save_checkpoint(folder / CHECKPOINT, arrays, optim, meta)
    return folder


def first_array_name():
    return next(iter(build_model(CONFIG).named_arrays()))


# -- every array finite, at load ----------------------------------------------------------
@pytest.mark.parametrize("where", ["model", "optim"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_array_is_refused_at_load_naming_it(tmp_path, where, value):
    name = first_array_name() if where == "model" else "v.0"
    run = write_run(tmp_path / "r", poison=(name, value))
    with pytest.raises(ValueError) as e:
        load_checkpoint(run / CHECKPOINT)
    assert str(run / CHECKPOINT) in str(e.value) and f"{where}/{name}" in str(e.value)
    assert "NaN or infinity (1 of" in str(e.value)


@pytest.mark.parametrize("command", ["sample", "evaluate", "plot", "explore"])
def test_every_command_refuses_a_nan_weight_naming_file_and_array(command, tmp_path, capsys):
    name = first_array_name()
    run = write_run(tmp_path / "r", poison=(name, np.nan))
    out = tmp_path / ("figs" if command == "plot" else "out.png")
    assert run_cli([command, "--run", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{run / CHECKPOINT}: its array model/{name} holds NaN" in err
    assert not out.exists() and sorted(p.name for p in run.iterdir()) == [CHECKPOINT]


def test_resume_refuses_a_nan_weight_and_blames_no_option(tmp_path, capsys):
    run = write_run(tmp_path / "r", poison=(first_array_name(), np.inf))
    before = (run / CHECKPOINT).read_bytes()
    assert run_cli(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{run / CHECKPOINT}: its array model/" in err
    assert "--lr" not in err and "last good checkpoint" not in err
    assert (run / CHECKPOINT).read_bytes() == before


# -- no NaN in a JSON file or a checkpoint's meta -----------------------------------------
def test_a_nan_in_the_checkpoints_stored_history_is_named(tmp_path, capsys):
    run = write_run(tmp_path / "r", history=[{"epoch": 1}])
    path = run / CHECKPOINT
    with np.load(path) as z:
        files = {k: z[k] for k in z.files}
    files["meta"] = np.array(str(files["meta"]).replace('{"epoch": 1}', '{"epoch": NaN}'))
    np.savez(path, **files)
    with pytest.raises(ValueError, match="its meta\\) holds NaN"):
        load_run_checkpoint(path)
    assert run_cli(["plot", "--run", str(run), "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "holds NaN" in err and "JSON compliant" not in err


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_nan_in_final_json_is_named(tmp_path, constant):
    final = {k: {"loss": 1.0, "recon": 1.0, "kl": 0.0} for k in ("train", "train_eval", "test")}
    (tmp_path / "final.json").write_text(json.dumps(final).replace("0.0", constant, 1))
    with pytest.raises(ValueError, match=f"final.json holds {constant}"):
        read_final(tmp_path)


# -- reads bounded by what a real run file holds ------------------------------------------
def test_a_history_json_linked_to_dev_zero_is_refused_without_reading_it_all(tmp_path,
                                                                              monkeypatch):
    monkeypatch.setattr(checkpoint_module, "JSON_LIMIT", 2**20)
    (tmp_path / "history.json").symlink_to("/dev/zero")
    (tmp_path / "final.json").symlink_to("/dev/zero")
    for read in (lambda: read_history(tmp_path), lambda: read_final(tmp_path)):
        with pytest.raises(ValueError, match="larger than any numpyvae run file can be "
                           "\\(1,048,576 bytes\\)"):
            read()


def test_a_compressed_checkpoint_too_big_for_its_config_is_refused_before_unpacking(
        tmp_path, monkeypatch):
    run = write_run(tmp_path / "r")
    path = run / CHECKPOINT
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("model/extra.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": (2**22,)})
            f.write(bytes(2**24))  # 16 MiB of zeros, a few kB compressed
    assert path.stat().st_size < 2**20

    def no_unpacking(*a, **kw):
        raise AssertionError("the arrays were unpacked before their sizes were checked")

    monkeypatch.setattr(np, "load", no_unpacking)
    with pytest.raises(ValueError, match="its arrays declare 17,"):
        load_checkpoint(path)


def test_a_meta_entry_declaring_more_than_a_run_file_holds_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "JSON_LIMIT", 1000)
    run = write_run(tmp_path / "r", history=[{"epoch": i} for i in range(100)])
    with pytest.raises(ValueError, match="its meta declares"):
        load_checkpoint(run / CHECKPOINT)


# -- atomic_write: the old file or the new one, and never a temporary file left ------------
def _boom(tmp):
    with open(tmp, "w") as f:
        f.write("half")
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("fault", ["write", "replace", "interrupt"])
def test_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch, fault):
    (tmp_path / "f.json").write_text("old")
    if fault == "write":
        write, expected = _boom, OSError
    elif fault == "replace":
        def refuse(*a):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(os, "replace", refuse)
        write, expected = (lambda tmp: open(tmp, "w").close()), OSError
    else:
        def write(tmp):
            raise KeyboardInterrupt

        expected = KeyboardInterrupt
    with pytest.raises(expected):
        atomic_write(tmp_path / "f.json", write)
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
    assert (tmp_path / "f.json").read_text() == "old"


def test_write_json_on_a_full_disk_leaves_the_old_file(tmp_path, monkeypatch):
    write_json(tmp_path / "h.json", [1])
    monkeypatch.setattr(json, "dump", lambda *a, **k: _boom(a[1].name))
    with pytest.raises(OSError):
        write_json(tmp_path / "h.json", [2])
    assert [p.name for p in tmp_path.iterdir()] == ["h.json"]
    assert read_json(tmp_path / "h.json") == [1]
