"""One writer per run folder, a folder whose creation failed, and interrupts that are never
lost (issue 23). Each run trains 256 images of a small MLP for one epoch."""

import errno
import os
import signal
import subprocess
import sys

import pytest

from numpyvae.data.filelock import held_lock_file
from numpyvae.training import checkpoint as checkpoint_module
from numpyvae.training import train as train_module
from numpyvae.training.run import load_run
from numpyvae.training.train import LOCK
from tests.conftest import REPO

from .helpers import run_cli, swallowed_signal

QUICK = ["--train-subset", "256", "--test-subset", "100", "--hidden", "32,16", "--no-figures"]


def _train(shared, out, *args) -> int:
    return run_cli(["train", *QUICK, "--data-dir", str(shared), "--out", str(out), *args])


@pytest.fixture(scope="module")
def one_epoch(shared_datasets, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "one"
    assert _train(shared_datasets, out, "--epochs", "1") == 0
    return out


def _snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- one writer per run folder ------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder(one_epoch, capsys):
    before = _snapshot(one_epoch)
    with held_lock_file(one_epoch / LOCK):
        assert run_cli(["train", "--out", str(one_epoch), "--resume", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{one_epoch} is being written by another process (PID {os.getpid()})" in err
    assert _snapshot(one_epoch) == before  # the holder's lock file is gone with it, too


def test_a_killed_writer_leaves_no_stale_lock(one_epoch, tmp_path, capsys):
    import shutil

    run = shutil.copytree(one_epoch, tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom numpyvae.data.filelock import "
         f"held_lock_file\nwith held_lock_file({str(run / LOCK)!r}):\n    print('held', "
         "flush=True)\n    time.sleep(60)"],
        cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert run_cli(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 2
        assert f"(PID {holder.pid})" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: no clean-up runs, the file stays
        holder.wait()
    assert (run / LOCK).exists()  # but the kernel released its lock
    assert run_cli(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert load_run(run).epoch == 2 and not (run / LOCK).exists()


@pytest.mark.parametrize("fault", [errno.ENOSPC, errno.EROFS])
def test_a_run_folder_whose_config_cannot_be_written_is_removed(shared_datasets, tmp_path,
                                                                monkeypatch, capsys, fault):
    """A full or read-only disk at config.json once left an empty folder that neither a
    rerun ("exists") nor --resume ("neither checkpoint nor config.json") would take."""
    real = checkpoint_module.atomic_write

    def failing(path, write, suffix=""):
        if path.name == "config.json":
            raise OSError(fault, os.strerror(fault))
        return real(path, write, suffix)

    monkeypatch.setattr(checkpoint_module, "atomic_write", failing)
    out = tmp_path / "run"
    assert _train(shared_datasets, out, "--epochs", "1") == 1
    assert os.strerror(fault) in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.undo()  # the disk has room again: the same command runs
    assert _train(shared_datasets, out, "--epochs", "1") == 0


# -- an interrupt stops the run even when its KeyboardInterrupt is swallowed ---------------
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_swallowed_during_compilation_still_stops_the_run(
        shared_datasets, tmp_path, monkeypatch, capsys, signum):
    """numba compiles inside ctypes callbacks, which print "Exception ignored on calling
    ctypes callback" and go on: 3 of 8 interrupts were lost that way, and the run finished
    with exit 0. Here the KeyboardInterrupt is swallowed the same way."""
    real = train_module.train_epoch

    def compiling(*args, **kw):
        swallowed_signal(signum)
        return real(*args, **kw)

    monkeypatch.setattr(train_module, "train_epoch", compiling)
    out = tmp_path / "run"
    assert _train(shared_datasets, out, "--epochs", "2") == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (out / "final.json").exists() and not (out / "checkpoint.npz").exists()


# -- a folder left holding no run by a kill -9 before config.json --------------------------
# A training killed (kill -9: no clean-up runs) while its config.json is half-written.
_KILLED_AT_CONFIG = """
import sys, time
from numpyvae.training import checkpoint
real = checkpoint.atomic_write
def atomic_write(path, write, suffix=""):
    if path.name == "config.json":
        def stall(tmp):
            write(tmp)
            print("writing config.json", flush=True)
            time.sleep(60)
        return real(path, stall, suffix)
    return real(path, write, suffix)
checkpoint.atomic_write = atomic_write
from numpyvae.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _killed_before_its_config(shared, out) -> list[str]:
    """Run train in a process killed with SIGKILL while writing config.json; what it left."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_AT_CONFIG, "train", *QUICK, "--epochs", "1",
         "--data-dir", str(shared), "--out", str(out)],
        cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        text=True)
    try:
        assert proc.stdout.readline() == "writing config.json\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return sorted(p.name for p in out.iterdir())


def test_a_folder_left_holding_no_run_is_reused_by_the_same_command(shared_datasets, tmp_path,
                                                                    capsys):
    """kill -9 before config.json was written left a folder that both a rerun ("exists")
    and --resume ("neither checkpoint nor config.json") refused."""
    out = tmp_path / "run"
    left = _killed_before_its_config(shared_datasets, out)
    assert "config.json" not in left and any(name.startswith(".config.json.") for name in left)
    assert _train(shared_datasets, out, "--epochs", "1", "--resume") == 2
    err = capsys.readouterr().err
    assert f"there is nothing to resume in {out}" in err and "without --resume" in err
    assert sorted(p.name for p in out.iterdir()) == left  # the refusal changed nothing
    assert _train(shared_datasets, out, "--epochs", "1") == 0
    assert f"note: {out} exists but holds no run" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.npz", "config.json", "final.json", "history.json"]
    assert load_run(out).epoch == 1


@pytest.mark.parametrize("content", [[], [LOCK], [".config.json.ab12cd34.tmp", LOCK]])
def test_an_empty_folder_is_a_new_run_and_nothing_to_resume(shared_datasets, tmp_path, capsys,
                                                           content):
    out = tmp_path / "run"
    out.mkdir()
    for name in content:
        (out / name).write_text("")
    assert _train(shared_datasets, out, "--epochs", "1", "--resume") == 2
    assert f"there is nothing to resume in {out}" in capsys.readouterr().err
    assert _train(shared_datasets, out, "--epochs", "1") == 0
    assert load_run(out).epoch == 1 and not (out / LOCK).exists()


@pytest.mark.parametrize("name", ["keep.txt", ".config.json.tmp", "notes"])
def test_a_folder_holding_anything_else_is_still_refused(shared_datasets, tmp_path, capsys,
                                                        name):
    out = tmp_path / "run"
    out.mkdir()
    if name == "notes":
        (out / name).mkdir()
    else:
        (out / name).write_text("mine")
    before = sorted(p.name for p in out.iterdir())
    assert _train(shared_datasets, out, "--epochs", "1") == 2
    assert "exists: add --resume" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


# -- a full disk while training writes: the file named, what is kept, how to go on ----------
def _full_disk(*_args, **_kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() raises it: no file


@pytest.mark.parametrize("fault, once", [(errno.ENOSPC, "Once the disk has room"),
                                         (errno.EROFS, "Once the disk can be written again")])
def test_a_full_disk_at_a_checkpoint_names_it_and_keeps_the_last(shared_datasets, tmp_path,
                                                                  monkeypatch, capsys, fault,
                                                                  once):
    """It said only "train: No space left on device (errno 28)": no file, nothing kept."""
    import numpy as np

    real, calls = np.savez, []

    def savez(file, **arrays):
        calls.append(1)
        if len(calls) == 2:  # epoch 2's checkpoint: half of it written, then the disk fails
            file.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(fault, os.strerror(fault))
        real(file, **arrays)

    monkeypatch.setattr(checkpoint_module.np, "savez", savez)
    out = tmp_path / "run"
    assert _train(shared_datasets, out, "--epochs", "2") == 1
    err = capsys.readouterr().err
    assert f"{out / 'checkpoint.npz'}: {os.strerror(fault)}" in err
    assert f"The last checkpoint (end of the last finished epoch) is kept in {out}" in err
    assert f"{once}, resume with:\n    python -m numpyvae train --out {out} " \
           "--resume --epochs 2" in err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "config.json",
                                                     "history.json"]
    assert load_run(out).epoch == 1
    monkeypatch.undo()
    assert _train(shared_datasets, out, "--epochs", "2", "--resume") == 0
    assert load_run(out).epoch == 2


def test_a_full_disk_at_a_figure_says_the_run_is_saved(shared_datasets, tmp_path, monkeypatch,
                                                       capsys):
    """It named the figure, but not that the run was finished and saved, nor `plot`."""
    from numpyvae.figures import plots

    monkeypatch.setattr(plots, "_write_png", _full_disk)
    out = tmp_path / "run"
    args = [a for a in QUICK if a != "--no-figures"]
    assert run_cli(["train", *args, "--data-dir", str(shared_datasets), "--out", str(out),
                    "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{out / 'samples.png'}: No space left on device" in err
    assert f"The run in {out} is finished and saved" in err
    assert f"draw them with:\n    python -m numpyvae plot --run {out}" in err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "config.json",
                                                     "final.json", "history.json"]


@pytest.mark.parametrize("existed", [False, True])
def test_a_full_disk_at_the_lock_file_leaves_no_folder_behind(shared_datasets, tmp_path,
                                                              monkeypatch, capsys, existed):
    """A folder made for a run whose lock file could not be written was left empty, and the
    message told to --resume it."""
    out = tmp_path / "run"
    if existed:
        out.mkdir()
    monkeypatch.setattr(os, "ftruncate", _full_disk)
    assert _train(shared_datasets, out, "--epochs", "1") == 1
    err = capsys.readouterr().err
    assert f"{out / LOCK}: No space left on device" in err
    assert "Nothing was kept: " + (f"{out} holds no run" if existed else f"there is no {out}") \
        in err and "--resume" not in err
    assert out.exists() == existed  # a folder that was there is left, and holds nothing
    assert not existed or list(out.iterdir()) == []
    monkeypatch.undo()
    assert _train(shared_datasets, out, "--epochs", "1") == 0


def test_a_reused_folder_is_checked_again_under_the_lock(shared_datasets, tmp_path,
                                                         monkeypatch, capsys):
    """Two trainings into one empty folder: the one that takes the lock second finds the
    first's config.json and stops, writing nothing."""
    out = tmp_path / "run"
    out.mkdir()
    real = train_module.held_lock_file

    def after_the_other_began(path):  # the other process wrote its config.json meanwhile
        (out / "config.json").write_text('{"theirs": true}')
        return real(path)

    monkeypatch.setattr(train_module, "held_lock_file", after_the_other_began)
    assert _train(shared_datasets, out, "--epochs", "1") == 2
    assert f"{out} exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert (out / "config.json").read_text() == '{"theirs": true}'
