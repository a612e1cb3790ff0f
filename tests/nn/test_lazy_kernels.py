"""The core on NumPy alone: numpyvae.nn, models and training import and run with numba's
import blocked, the kernels load only when one first runs, and with every use_kernels off
nothing of numba loads at all (the likelihoods follow Sigmoid.use_kernels)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

# Put in front of a subprocess's code: any import of numba (or llvmlite) fails, as on a
# machine where it is not installed.
BLOCK_NUMBA = '''
import sys
class _NoNumba:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba", "llvmlite"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _NoNumba())
'''

# One step of the CNN VAE (every kind of layer: Dense, Conv2d, ConvTranspose2d,
# BatchNorm2d, ELU, Sigmoid's likelihood) and of Adam, with training's own pieces.
ONE_STEP = '''
import numpy as np
import numpyvae.nn, numpyvae.models, numpyvae.training
from numpyvae.models.architectures import build_vae
from numpyvae.nn import Adam
from numpyvae.training.train import current_threads
for arch in ("mlp", "cnn"):
    vae = build_vae(arch, 2, rng=np.random.default_rng(0))
    opt = Adam(vae.parameters(), lr=1e-3)
    x = np.random.default_rng(1).uniform(0, 1, (4, 1, 28, 28)).astype(np.float32)
    before = vae.forward(x, rng=np.random.default_rng(2)).loss
    vae.backward()
    opt.step()
    assert np.isfinite(before) and vae.forward(x, rng=np.random.default_rng(2)).loss != before
    vae.log_prob = vae.likelihood.log_prob(x, vae.decoder.infer(vae.encode(x)[0]))
assert current_threads() >= 1
print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in ("numba", "llvmlite")
                        or m.startswith("numpyvae.kernels")))
'''


def run_python(code: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=_env())


def _env() -> dict:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_the_core_runs_with_numba_blocked():
    r = run_python(BLOCK_NUMBA + ONE_STEP)
    assert r.returncode == 0, r.stderr
    assert "loaded: []" in r.stdout
    notes = [line for line in r.stderr.splitlines() if "numba" in line]
    assert notes == ["numpyvae: numba is not installed: every layer runs its NumPy form "
                     "(use_kernels = False)"], r.stderr


def test_with_every_use_kernels_off_no_kernel_loads():
    """numba is installed here, yet with the switches off no kernel module loads, so
    nothing compiles (training's thread count may import numba itself, which compiles
    nothing)."""
    off = ("from numpyvae.nn import Dense, Conv2d, ConvTranspose2d, BatchNorm2d, ELU, "
           "Sigmoid, Adam\nfor c in (Dense, Conv2d, ConvTranspose2d, BatchNorm2d, ELU, "
           "Sigmoid, Adam):\n    c.use_kernels = False\n")
    r = run_python("import sys\n" + off + ONE_STEP)
    assert r.returncode == 0, r.stderr
    assert "loaded: [" in r.stdout and "numpyvae.kernels" not in r.stdout, r.stdout


def test_kernels_load_at_their_first_use():
    r = run_python("import sys\nimport numpyvae.nn, numpyvae.models, numpyvae.training\n"
                   "assert 'numba' not in sys.modules, 'numba loaded at import'\n" + ONE_STEP)
    assert r.returncode == 0, r.stderr
    assert "'numba'" in r.stdout and "'numpyvae.kernels.conv'" in r.stdout
