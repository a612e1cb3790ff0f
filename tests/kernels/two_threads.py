"""Run test code in a fresh process whose numba pool has exactly 2 threads.

A comparison of "1 thread against all of them" silently compares 1 with 1 on a
machine (or a CI runner) where numba's pool has a single thread. These helpers
force a pool of 2 (NUMBA_NUM_THREADS=2, read when numba is imported, hence the
subprocess) and fail, never skip, if 2 threads do not both run a parallel loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])

_PRELUDE = f"""
import sys
sys.path.insert(0, {ROOT!r})
import numba
import numpy as np
from numba import prange

assert numba.config.NUMBA_NUM_THREADS == 2, numba.config.NUMBA_NUM_THREADS
numba.set_num_threads(2)


@numba.njit(parallel=True)
def _thread_ids(n):
    out = np.empty(n, np.int64)
    for i in prange(n):
        out[i] = numba.get_thread_id()
    return out


assert len(set(_thread_ids(64).tolist())) == 2, "a parallel loop did not run on 2 threads"
"""


def run_with_two_threads(code: str, timeout: float = 900) -> str:
    """Run ``code`` (after a prelude that proves 2 threads run) and return its stdout;
    raises AssertionError with the child's stderr if it fails."""
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", _PRELUDE + code], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout
