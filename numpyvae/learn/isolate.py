"""``learn check`` and ``learn train`` from the command line run in a child process.

The learner's code runs inside them, so it could end the process itself
(``sys.exit(0)``, ``os._exit(0)``, a crash in a C extension) and leave an exit
code that reads as a verdict. The parent never takes the child's exit code for
one: only the verdict the child writes to a file once ``run_check`` (or learn
train's whole work) has finished counts. Anything else is a FAIL that says how
the child ended.

    python -m numpyvae.learn.isolate STEP DIR VERDICT_FILE [--no-speed] [--seed=S]  (check)
    python -m numpyvae.learn.isolate train VERDICT_FILE ARGS_JSON                     (train)
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds numpyvae/


def _how_it_ended(returncode: int, what: str = "the check") -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name} (a crash, or a kill from outside)"
    return (f"exited with code {returncode} before {what} finished (os._exit, sys.exit "
            "where nothing could catch it, or an uncaught exception shown above)")


def _verdict_path() -> str:
    fd, verdict = tempfile.mkstemp(prefix="numpyvae-learn-", suffix=".json")
    os.close(fd)
    os.unlink(verdict)  # the child creates it only once its work has finished
    return verdict


def _write_verdict(verdict: str, content: dict) -> None:
    tmp = f"{verdict}.tmp"
    Path(tmp).write_text(json.dumps(content))
    os.replace(tmp, verdict)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def check_in_child(step: str, directory: str, speed: bool = True, seed: int | None = None
                   ) -> bool:
    """Run ``run_check`` in a child process, echo its report line by line, and return the
    verdict it wrote; False, with a FAIL saying what happened, if it wrote none."""
    verdict, env = _verdict_path(), _child_env()
    cmd = [sys.executable, "-u", "-m", "numpyvae.learn.isolate", step, str(directory), verdict]
    if not speed:
        cmd.append("--no-speed")
    if seed is not None:
        cmd.append(f"--seed={seed}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
        returncode = proc.wait()
        try:
            return bool(json.loads(Path(verdict).read_text())["passed"])
        except (OSError, ValueError, KeyError, TypeError):
            print(f"your code ended the check: its process {_how_it_ended(returncode)}. "
                  "A layer returns its result; it never exits.")
            print(f"FAIL: {step}: no verdict")
            _record_failing(step, directory)
            return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        Path(verdict).unlink(missing_ok=True)


def _record_failing(step_name: str, directory: str) -> None:
    from .grader import record_status, step_path_exists
    from .steps import get_step

    step = get_step(step_name)
    if step_path_exists(step, directory):
        record_status(step, directory, "failing")


def _child(argv: list[str]) -> int:
    from .grader import run_check

    step, directory, verdict = argv[:3]
    seeds = [int(a.split("=", 1)[1]) for a in argv[3:] if a.startswith("--seed=")]
    result = run_check(step, directory, speed="--no-speed" not in argv,
                       seed=seeds[0] if seeds else None)
    _write_verdict(verdict, {"passed": result.passed})
    return 0


# -- learn train -------------------------------------------------------------------------
def train_in_child(args: argparse.Namespace) -> int:
    """``learn train``'s whole work (``train.train_command``) in a child process; its exit
    code is the one the child wrote on finishing. Without one: a FAIL saying how the child
    ended, exit 1 (or 130 when an interrupt was passed on to it).

    The child writes to this process's own stdout and stderr where they are real files (a
    terminal keeps its progress line), else through pipes copied here. It runs in its own
    process group, so a Ctrl-C at the terminal reaches it once: passed on from here."""
    verdict = _verdict_path()
    opts = {k: v for k, v in vars(args).items() if k != "func"}
    cmd = [sys.executable, "-u", "-m", "numpyvae.learn.isolate", "train", verdict,
           json.dumps(opts)]
    streams = (sys.stdout, sys.stderr)
    for s in streams:
        s.flush()
    targets = [_fd_or_pipe(s) for s in streams]
    passed_on: list[int] = []
    proc = subprocess.Popen(cmd, stdout=targets[0], stderr=targets[1], env=_child_env(),
                            process_group=0)
    copies = [threading.Thread(target=_copy, args=(pipe, s), daemon=True)
              for pipe, s in zip((proc.stdout, proc.stderr), streams, strict=True) if pipe]
    for t in copies:
        t.start()
    try:
        with _interrupts_passed_on(proc, passed_on):
            returncode = proc.wait()
        for t in copies:
            t.join()
        code = _read_code(verdict)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        Path(verdict).unlink(missing_ok=True)
    if code is not None:
        return code
    if passed_on:
        print("\ninterrupted: learn train stopped before it could say what was kept",
              file=sys.stderr)
        return 130
    print(f"learn train's process {_how_it_ended(returncode, 'learn train')}. A layer "
          "returns its result; it never exits.\nFAIL: learn train: no verdict", file=sys.stderr)
    return 1


def _fd_or_pipe(stream: Any) -> int:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: a StringIO
        return subprocess.PIPE


def _copy(pipe: IO[bytes], stream: Any) -> None:
    """Chunks as they come (a progress line ends in \\r, not a newline)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in iter(lambda: os.read(pipe.fileno(), 65536), b""):
        stream.write(decoder.decode(chunk))
        stream.flush()
    pipe.close()


def _read_code(verdict: str) -> int | None:
    try:
        return int(json.loads(Path(verdict).read_text())["code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _interrupts_passed_on(proc: subprocess.Popen, passed_on: list[int]) -> Iterator[None]:
    """SIGINT and SIGTERM to this process become a SIGINT to the child (its Ctrl-C), which
    stops, says what it kept, and writes its exit code; this process waits for that."""
    def pass_on(signum: int, _frame: object) -> None:
        passed_on.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    signals = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        signals = ()  # only the main thread may set handlers
    previous = [(s, signal.signal(s, pass_on)) for s in signals]
    try:
        yield
    finally:
        for s, handler in previous:
            signal.signal(s, handler)


def _train_child(argv: list[str]) -> int:
    from ..training.interrupts import interrupts_recorded
    from .train import train_command

    verdict, opts = argv[0], json.loads(argv[1])
    _stop_when_orphaned()
    with interrupts_recorded() as seen:  # a kill stops it as Ctrl-C does, never lost
        code = train_command(argparse.Namespace(**opts), stop_requested=lambda: bool(seen))
    _write_verdict(verdict, {"code": code})
    return 0


def _stop_when_orphaned() -> None:
    """The parent gone (kill -9): stop as on Ctrl-C rather than train on unseen."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    sys.exit(_train_child(sys.argv[2:]) if sys.argv[1:2] == ["train"] else _child(sys.argv[1:]))
