"""Ctrl-C and SIGTERM as one interrupt that is never lost: ``interrupts_recorded``, used by
the commands that train (``train``, ``reproduce``), whose loops check the record per batch."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupts_recorded() -> Iterator[list[int]]:
    """For the block, SIGINT and SIGTERM raise KeyboardInterrupt (so `kill` stops a command
    like Ctrl-C, and a file being written is removed, never left half-written), and each
    is recorded in the list yielded: an interrupt whose KeyboardInterrupt was swallowed
    (numba's compiler calls Python back through ctypes, which ignores exceptions) is still
    seen at the next check."""
    seen: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    signals = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        signals = ()  # only the main thread may set handlers: the caller's are kept
    previous = [(s, signal.signal(s, stop)) for s in signals]
    try:
        yield seen
    finally:
        for s, handler in previous:
            signal.signal(s, handler)
