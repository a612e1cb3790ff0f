"""training/memory.py: a step's large arrays reuse freed pages instead of faulting in new ones."""

import platform
import subprocess
import sys

import pytest

from numpyvae.training.memory import keep_freed_memory

# 20 times what a step's forward does: 25.7 MB arrays (the CNN's largest at batch 256) and
# smaller ones made, every page written, kept to the end, freed. Prints the process's minor
# page faults over the 20, after one round to warm the heap.
CYCLES = """
import resource, sys
import numpy as np
from numpyvae.training.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
n = 256 * 32 * 28 * 28
def cycle():
    kept = []
    for size in (n, n, n // 4, n, n // 4):
        a = np.empty(size, dtype=np.float32)
        a[:] = 1.0
        kept.append(a)
    del kept
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES_PER_ARRAY = 256 * 32 * 28 * 28 * 4 // 4096


def faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", CYCLES, mode], capture_output=True, text=True,
                          timeout=120, check=True)
    return int(done.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_freed_large_arrays_are_reused_without_page_faults():
    assert faults("default") > 5 * PAGES_PER_ARRAY  # the control: glibc gives them back
    assert faults("keep") < PAGES_PER_ARRAY // 10


def test_keep_freed_memory_says_whether_it_took():
    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")
    assert keep_freed_memory() is keep_freed_memory()  # once per process


def test_train_keeps_freed_memory_before_its_first_step(shared_datasets, tmp_path, monkeypatch):
    from numpyvae.training import train as train_module
    from numpyvae.training.config import TrainConfig

    called = []
    monkeypatch.setattr(train_module, "keep_freed_memory", lambda: called.append(True))
    config = TrainConfig(arch="mlp", hidden=(64, 32), latent_dim=2, epochs=1, train_subset=256,
                         test_subset=100, data_dir=str(shared_datasets))
    train_module.train(config, tmp_path / "run", log=lambda _msg: None)
    assert called == [True]
