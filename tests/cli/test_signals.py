"""SIGTERM while figures are drawn (train's last phase, and plot): exit 130 and no
``.NAME.XXXXXXXX.tmp.png`` left behind (issue 23: exit 143 with temporary files).

Each runs the CLI in a fresh process, as `kill` meets it: the default SIGTERM handler
ends a process without any clean-up, so only a process of its own can show it.
"""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Send SIGTERM to ourselves once the second figure's temporary PNG is being written.
_SIGTERM_IN_THE_SECOND_FIGURE = """
import os, signal, sys
from numpyvae.figures import plots
real, calls = plots._write_png, []
def write_png(fig, path):
    calls.append(path)
    real(fig, path)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10**6):
            pass
plots._write_png = write_png
from numpyvae.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
_TEMP = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")


def _cli_with_sigterm(*argv) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", _SIGTERM_IN_THE_SECOND_FIGURE, *argv],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _temp_files(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if _TEMP.match(p.name)]


@pytest.fixture(scope="module")
def trained_in_a_process(shared_datasets, tmp_path_factory):
    """A finished 1-epoch run, its figures interrupted by SIGTERM (train's last phase)."""
    out = tmp_path_factory.mktemp("signals") / "run"
    done = _cli_with_sigterm("train", "--epochs", "1", "--train-subset", "256",
                             "--test-subset", "100", "--hidden", "32,16",
                             "--data-dir", str(shared_datasets), "--out", str(out))
    return out, done


def test_sigterm_while_train_draws_its_figures(trained_in_a_process):
    out, done = trained_in_a_process
    assert done.returncode == 130, done.stderr
    assert "interrupted while drawing the figures" in done.stderr
    assert f"python -m numpyvae plot --run {out}" in done.stderr
    assert "Traceback" not in done.stderr
    assert _temp_files(out) == []
    assert (out / "final.json").is_file()  # the run itself is finished and kept


def test_sigterm_while_plot_draws(trained_in_a_process, tmp_path):
    run, _ = trained_in_a_process
    figs = tmp_path / "figs"
    done = _cli_with_sigterm("plot", "--run", str(run), "--out", str(figs))
    assert done.returncode == 130, done.stderr
    assert "interrupted: plot stopped" in done.stderr and "Traceback" not in done.stderr
    assert _temp_files(figs) == [] and _temp_files(run) == []
