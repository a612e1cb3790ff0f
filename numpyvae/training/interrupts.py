"""Ctrl-C and SIGTERM as one interrupt that is never lost: ``interrupts_recorded``, used by
the commands that train (``train``, ``reproduce``), whose loops check the record per batch."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupts_recorded() -> Iterator[list[int]]:
    """For the block, SIGINT and SIGTERM raise KeyboardInterrupt (so `kill` stops a command
    like Ctrl-C, and a file being written is removed, never left half-written), and each
    is recorded in the list yielded: an interrupt whose KeyboardInterrupt was swallowed
    (numba's compiler calls Python back through ctypes, which ignores exceptions) is still
    seen at the next check, and Python's "Exception ignored ... Traceback" report of it
    is left out: the interrupt is not ignored, the command stops and says so."""
    seen: list[int] = []
    report = sys.unraisablehook

    def stop(signum: int, _frame: object) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    def unraisable(what: object) -> None:
        if not (seen and isinstance(getattr(what, "exc_value", None), KeyboardInterrupt)):
            report(what)

    if threading.current_thread() is not threading.main_thread():
        yield seen  # only the main thread may set handlers: the caller's are kept
        return
    previous = [(s, signal.signal(s, stop)) for s in (signal.SIGINT, signal.SIGTERM)]
    sys.unraisablehook = unraisable
    try:
        yield seen
    finally:
        sys.unraisablehook = report
        for s, handler in previous:
            signal.signal(s, handler)
