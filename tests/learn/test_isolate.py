"""learn train grades in a child process: no exit or death of the learner's code reads as
a finished run, and the training still shows its progress line and stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from numpyvae.learn.grader import record_status
from numpyvae.learn.steps import BY_NAME

from .test_check import REPO

_DENSE = """import os
import re
import signal
import sys
import time

import numpy as np

from numpyvae.nn import Dense as _Dense


class Dense(_Dense):
    def backward(self, dy):
        if dy.dtype == np.{dtype}:
            {how}
        return super().backward(dy)
"""


def _learner_dir(path, how, dtype):
    """DIR whose Dense runs ``how`` in its backward on ``dtype`` (float64: the replay,
    float32: the training after it), marked done as if its check had been fooled."""
    path.mkdir(exist_ok=True)
    (path / "dense.py").write_text(_DENSE.format(how=how, dtype=dtype))
    record_status(BY_NAME["dense"], path, "done")
    return path


def _train_args(path, data, *extra, subset=256):
    return [sys.executable, "-m", "numpyvae", "learn", "train", "--dir", str(path),
            "--train-subset", str(subset), "--replay-steps", "1", "--no-compare",
            "--out", str(path / "run"), "--data-dir", str(data), *extra]


@pytest.mark.parametrize("how, said", [
    ("os._exit(0)", "exited with code 0"),
    ("os.kill(os.getpid(), signal.SIGKILL)", "was killed by SIGKILL"),
    ("os.kill(os.getpid(), signal.SIGSEGV)", "was killed by SIGSEGV")])
@pytest.mark.parametrize("dtype, during", [("float64", "replay"), ("float32", "training")])
def test_an_exit_or_death_in_the_learners_code_is_a_fail(tmp_path, shared_datasets, how, said,
                                                         dtype, during):
    """os._exit(0) in their backward ended learn train with exit 0 and no verdict; a
    SIGKILL or a crash ended it with no verdict either. Each is a FAIL, exit 1, saying how."""
    d = _learner_dir(tmp_path / "mine", how, dtype)
    r = subprocess.run(_train_args(d, shared_datasets, "--epochs", "1"), cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert f"learn train's process {said}" in r.stderr, r.stderr
    assert "FAIL: learn train: no verdict" in r.stderr, r.stderr
    assert ("PASS: your model trains" in r.stdout) == (during == "training"), r.stdout


def _drain(fd, out):
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal's other end closed
            return
        if not chunk:
            return
        out.append(chunk)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_the_training_child_with_its_message(tmp_path, shared_datasets, sig):
    """On a terminal the training's progress line shows through the parent; Ctrl-C (or a
    SIGTERM) to the parent stops the child's training: exit 130, what was kept, no
    traceback, and no process left behind."""
    import pty

    d = _learner_dir(tmp_path / "mine", "time.sleep(0.1)", "float32")  # a slow learner
    master, slave = pty.openpty()
    proc = subprocess.Popen(_train_args(d, shared_datasets, "--epochs", "50", subset=4096),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    err: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, err), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not (d / "run" / "checkpoint.npz").is_file():  # epoch 1 is saved
            assert proc.poll() is None and time.monotonic() < deadline, b"".join(err)
            time.sleep(0.1)
        time.sleep(0.3)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    os.close(master)
    text = b"".join(err).decode()
    assert proc.returncode == 130, (out, text)
    assert "\r\x1b[K" in text, text  # the progress line reached the terminal
    kept = rf"your run's last checkpoint \(epoch \d+\) is kept in {re.escape(str(d / 'run'))}"
    assert re.search(kept, text), text
    assert "no resume" in text and "Traceback" not in text and "no verdict" not in text, text
    assert [p.name for p in (d / "run").iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("error", ["ValueError", "IndexError"])
def test_an_exception_in_the_learners_code_is_a_fail_at_their_line(tmp_path, shared_datasets,
                                                                  dtype, error):
    """Their layer raising in the replay or the training: a FAIL (exit 1) with their line, not
    'error: ...' (exit 2, as for a bad option) nor the package's whole traceback."""
    d = _learner_dir(tmp_path / "mine", f"raise {error}('planted')", dtype)
    r = subprocess.run(_train_args(d, shared_datasets, "--epochs", "1"), cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "FAIL: your code raised an exception in learn train" in r.stderr, r.stderr
    assert f'{d / "dense.py"}", line 15, in backward' in r.stderr, r.stderr
    assert f"{error}: planted" in r.stderr and "numpyvae/learn/" not in r.stderr, r.stderr
