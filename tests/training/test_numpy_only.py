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
