"""File locks that the kernel releases when their process dies, so a ``kill -9`` leaves no
stale lock: ``fcntl.flock`` on POSIX. Where there is no fcntl (Windows) nothing is
locked: concurrent writers (two fetches, two trainings of one run folder) are then not
guarded. Standard library only.

Used by the fetch (a running fetch locks its temporary file) and by training (one
writer per run folder, through ``held_lock_file``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # no fcntl: nothing is locked, concurrent writers are not guarded
    fcntl = None


class LockHeld(RuntimeError):
    """Another process holds the lock; ``pid`` is the one it wrote in the file (or "")."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path} is held by process {pid or '(unknown)'}")
        self.path, self.pid = path, pid


def lock(file: int | IO, wait: bool = True) -> bool:
    """Take an exclusive lock on the open ``file``; with ``wait=False`` return False at
    once if another open file holds it. Without fcntl, True (nothing is locked)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def held_lock_file(path: str | Path) -> Iterator[None]:
    """Hold the lock file ``path`` (created, holding this process's PID) for the block,
    then remove it; raise LockHeld, naming the holder's PID, if another process has it."""
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if not lock(fd, wait=False):
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise LockHeld(path, holder)
        try:  # the holder may have removed the file between our open and our lock
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as e:  # a full disk: name the file
            raise OSError(e.errno, e.strerror, str(path)) from e
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # before the lock goes: the next holder locks a new file
        os.close(fd)
