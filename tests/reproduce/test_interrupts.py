"""reproduce stopped by Ctrl-C or SIGTERM as train is: at the next batch even when the
interrupt's KeyboardInterrupt was swallowed (numba compiles inside ctypes callbacks, which
drop exceptions), finished runs kept, the interrupted one resumable, exit 130, and the same
command continues where it stopped. Each sweep is ``--quick --only ae``: two MLP runs of
one epoch on 2,048 images."""

import json
import os
import signal

import pytest

from numpyvae.cli.main import main as cli_main
from numpyvae.figures import plots
from numpyvae.figures.run_figures import run_figure_names
from numpyvae.training import train as train_module
from numpyvae.training.run import load_run
from tests.training.helpers import swallowed_signal

AE, VAE = "ae-mlp-mnist-z2-h300.100.10-c0.05-s0", "vae-mlp-mnist-z2-h300.100.10-c0.05-s0"


def _reproduce(shared, out) -> int:
    return cli_main(["reproduce", "--quick", "--only", "ae", "--out", str(out),
                     "--data-dir", str(shared)])


def _swallowed_in_the_second_run(monkeypatch, signum) -> None:
    """The second run's epoch starts with an interrupt raised and swallowed, as a ctypes
    callback does it: only the handler's record of it is left."""
    real, calls = train_module.train_epoch, []

    def compiling(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            swallowed_signal(signum)
        return real(*args, **kw)

    monkeypatch.setattr(train_module, "train_epoch", compiling)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_swallowed_interrupt_stops_the_sweep_at_the_next_batch(
        shared_datasets, tmp_path, monkeypatch, capsys, signum):
    """Once the sweep went on: SIGTERM trained, measured and exited 0, SIGINT exited 130
    only after the whole sweep had run."""
    _swallowed_in_the_second_run(monkeypatch, signum)
    out = tmp_path / "out"
    assert _reproduce(shared_datasets, out) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "run the same command again" in err
    assert (out / "runs" / AE / "final.json").is_file()  # the finished run is kept
    stopped = out / "runs" / VAE
    assert not (stopped / "final.json").exists() and not (stopped / "checkpoint.npz").exists()
    assert (stopped / "config.json").is_file()  # resumable: it stopped in its first epoch
    assert not (out / "results.json").exists()  # nothing was measured after the stop
    assert json.loads((out / "sweep.json").read_text())[-1]["trained"] == [AE]


def test_sigterm_while_a_run_draws_its_figures_then_the_same_command_finishes(
        shared_datasets, tmp_path, monkeypatch, capsys):
    """A run whose figures were interrupted was then skipped as finished: its figures
    were never drawn."""
    real, calls = plots._write_png, []

    def write_png(fig, path):
        calls.append(path)
        real(fig, path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(plots, "_write_png", write_png)
    out = tmp_path / "out"
    assert _reproduce(shared_datasets, out) == 130
    first = out / "runs" / AE
    assert (first / "final.json").is_file() and not (out / "runs" / VAE).exists()
    drawn = {p.name for p in first.glob("*.png")}
    assert drawn == {"samples.png"}  # the second was being written: its temporary file went
    monkeypatch.undo()
    capsys.readouterr()
    assert _reproduce(shared_datasets, out) == 0
    printed = capsys.readouterr().out
    assert f"{AE}: finished, drawing its missing figures" in printed
    for run in (first, out / "runs" / VAE):  # run_figure_names is what make_figures writes
        names = run_figure_names(load_run(run).config)
        assert sorted(p.name for p in run.glob("*.png")) == sorted(names)
        assert len(names) == 7 - (run == first)  # the autoencoder has no latent_health.png
    assert (out / "runs" / VAE / "final.json").is_file() and (out / "results.json").is_file()
    assert [p.name for p in out.rglob("*.tmp*")] == []
