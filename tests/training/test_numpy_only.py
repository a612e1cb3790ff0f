"""`python -m numpyvae train --epochs 1 --train-subset 2048` trains the MLP VAE on a
machine without numba (its import blocked in the subprocess)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from tests.conftest import REPO
from tests.nn.test_lazy_kernels import BLOCK_NUMBA, _env


def test_train_command_with_numba_blocked(tmp_path, shared_datasets):
    out = tmp_path / "run"
    args = ["train", "--epochs", "1", "--train-subset", "2048", "--out", str(out),
            "--data-dir", str(shared_datasets)]
    code = (BLOCK_NUMBA + "import runpy\nsys.argv = ['numpyvae'] + " + repr(args)
            + "\nrunpy.run_module('numpyvae', run_name='__main__')\n"
            "assert 'numba' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=900, env=_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "numba is not installed" in r.stderr
    final = json.loads((out / "final.json").read_text())
    assert math.isfinite(final["test"]["loss"]) and final["test"]["loss"] < 700


def test_threads_option_with_numba_blocked(tmp_path, shared_datasets):
    """--threads sets BLAS alone there, recorded in config.json; a count beyond the cores
    is a one-line error (exit 2), not numba's ImportError."""
    out = tmp_path / "run"
    base = ["train", "--epochs", "1", "--train-subset", "256", "--data-dir", str(shared_datasets)]
    for args, code in ((base + ["--threads", "1", "--out", str(out)], 0),
                       (base + ["--threads", "100000", "--out", str(tmp_path / "no")], 2)):
        prelude = (BLOCK_NUMBA + "import runpy\nsys.argv = ['numpyvae'] + " + repr(args)
                   + "\nrunpy.run_module('numpyvae', run_name='__main__')\n")
        r = subprocess.run([sys.executable, "-c", prelude], cwd=REPO, capture_output=True,
                           text=True, timeout=900, env=_env())
        assert r.returncode == code, r.stdout + r.stderr
    assert json.loads((out / "config.json").read_text())["threads"] == 1
    assert "--threads must be between 1 and" in r.stderr and "Traceback" not in r.stderr
