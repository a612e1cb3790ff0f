"""``learn check`` from the command line grades in a child process.

The learner's code runs inside the check, so it could end the process itself
(``sys.exit(0)``, ``os._exit(0)``, a crash in a C extension) and leave an exit
code that reads as a verdict. The parent never takes the child's exit code for
one: only the verdict the child writes to a file once ``run_check`` has finished
counts. Anything else is a FAIL that says how the child ended.

    python -m numpyvae.learn.isolate STEP DIR VERDICT_FILE [--no-speed] [--seed=S]  (the child)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds numpyvae/


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name} (a crash, or a kill from outside)"
    return (f"exited with code {returncode} before the check finished (os._exit, or "
            "sys.exit where nothing could catch it)")


def check_in_child(step: str, directory: str, speed: bool = True, seed: int | None = None
                   ) -> bool:
    """Run ``run_check`` in a child process, echo its report line by line, and return the
    verdict it wrote; False, with a FAIL saying what happened, if it wrote none."""
    fd, verdict = tempfile.mkstemp(prefix="numpyvae-learn-", suffix=".json")
    os.close(fd)
    os.unlink(verdict)  # the child creates it only once its check has finished
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
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
    tmp = f"{verdict}.tmp"
    Path(tmp).write_text(json.dumps({"passed": result.passed}))
    os.replace(tmp, verdict)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
