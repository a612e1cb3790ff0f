"""Fetch MNIST / Fashion-MNIST: download from public mirrors, or copy from a local folder.

Standard library only. Each file is written to a temporary file beside its
final name (``.NAME.part-XXXXXXXX``), checked against its published MD5, and
only then renamed into place; on any failure (a dropped connection, a corrupt
body, Ctrl-C) the temporary file is removed. So a file under its final name is
always a complete, verified original.

Command line: ``python data_fetch.py [mnist|fashion-mnist|all] [--dir DIR] [--mirror DIR]``
(or ``python -m numpyvae.data ...``). From Python: ``fetch("mnist")``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import math
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from .catalog import (
    DATASETS,
    DEFAULT_DIR,
    ENV_VAR,
    FILES,
    MD5,
    check_dataset,
    fetch_command,
    file_md5,
    resolve_data_dir,
)
from .filelock import lock  # a running fetch locks its temporary file (filelock.py)

# Base URLs tried in order; a file's URL is base + file name. Tests replace this.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ],
}

TIMEOUT = 30.0  # seconds without data before a connection counts as dead
CHUNK = 1 << 16
USER_AGENT = "numpyvae-data-fetch/0.1 (Python urllib)"


class FetchError(RuntimeError):
    """Some files could not be fetched; ``failures`` holds one description per file."""

    def __init__(self, message: str, failures: list[str]):
        super().__init__(message)
        self.failures = failures


@dataclass
class FileResult:
    """What happened to one file: ``action`` is "present", "downloaded" or "copied"."""

    dataset: str
    name: str
    path: Path
    action: str
    source: str | None = None
    replaced: bool = False  # a file with a wrong checksum was there before


class _SourceFailed(Exception):
    """One source (URL or mirror file) did not give the right bytes; try the next."""


class _FileFailed(Exception):
    """No source gave the file, or the target cannot be written."""


def _size(n: float) -> str:
    return f"{n / 1e3:.1f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"


class _Progress:
    """A one-line progress display (bytes / total, rate), redrawn at most ten times a second."""

    def __init__(self, label: str, total: int | None, out: TextIO, enabled: bool):
        self.label, self.total, self.out, self.enabled = label, total, out, enabled
        self.done = 0
        self.start = self.last = time.monotonic()
        self.width = 0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.1:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            total = f" / {_size(self.total)}" if self.total else ""
            line = f"  {self.label}  {_size(self.done)}{total}  {_size(rate)}/s"
            self.out.write("\r" + line.ljust(self.width))
            self.out.flush()
            self.width = len(line)

    def close(self) -> None:
        if self.width:
            self.out.write("\r" + " " * self.width + "\r")
            self.out.flush()
            self.width = 0


def _open_source(source: str, timeout: float) -> tuple[BinaryIO, int | None]:
    """Open a URL or local file for reading; return the stream and its size if known."""
    if "://" not in source:
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:
            raise _SourceFailed("no such file") from None
        except OSError as err:
            raise _SourceFailed(err.strerror or str(err)) from None
        return stream, os.fstat(stream.fileno()).st_size
    request = urllib.request.Request(source, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise _SourceFailed(f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise _SourceFailed(_describe(err.reason, timeout)) from None
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise _SourceFailed(_describe(err, timeout)) from None
    length = response.headers.get("Content-Length")
    return response, int(length) if length and length.isdigit() else None


def _describe(err: object, timeout: float) -> str:
    """A short reason for a network error."""
    if isinstance(err, TimeoutError):
        return f"timed out (no data for {timeout:g} s)"
    if isinstance(err, socket.gaierror):
        return f"cannot look up the host name: {err.strerror} (no internet or no DNS?)"
    if isinstance(err, http.client.RemoteDisconnected):
        return "the server closed the connection without a response"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror if err.errno is None else f"{err.strerror} (errno {err.errno})"
    return str(err) or type(err).__name__


def _transfer(source: str, dest: Path, expected_md5: str, label: str, show_progress: bool,
              out: TextIO, timeout: float) -> int:
    """Stream ``source`` into a temporary file beside ``dest``, verify it, rename it into place.

    Returns the number of bytes. Raises _SourceFailed when this source gave bad
    or incomplete bytes, _FileFailed when the target cannot be written.
    """
    temp = dest.with_name(f".{dest.name}.part-{secrets.token_hex(4)}")
    stream, total = _open_source(source, timeout)
    progress = _Progress(label, total, out, show_progress)
    try:
        with stream:
            try:
                # O_EXCL: never clobber anything; 0o666 so the umask applies as for any new file
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | getattr(os, "O_BINARY", 0), 0o666)
            except OSError as err:
                raise _FileFailed(f"{label}: cannot write in {dest.parent}: {err.strerror}") \
                    from None
            lock(fd)  # tells _remove_stale_parts this file is in use
            digest = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as target:
                while True:
                    try:
                        chunk = stream.read(CHUNK)
                    except (OSError, http.client.HTTPException) as err:
                        raise _SourceFailed(
                            f"{_describe(err, timeout)} after {progress.done} bytes") from None
                    if not chunk:
                        break
                    digest.update(chunk)
                    try:
                        target.write(chunk)
                    except OSError as err:
                        raise _FileFailed(f"{label}: cannot write {temp}: {err.strerror}") \
                            from None
                    progress.update(len(chunk))
                target.flush()
                os.fsync(target.fileno())
        progress.close()
        if total is not None and progress.done != total:
            raise _SourceFailed(f"connection closed after {progress.done} of {total} bytes")
        actual = digest.hexdigest()
        if actual != expected_md5:
            raise _SourceFailed(f"checksum mismatch: MD5 {actual}, expected {expected_md5}; "
                                f"refused (a corrupt file or not the original)")
        try:
            os.replace(temp, dest)
        except OSError as err:  # e.g. a full disk: the verified file stays unnamed, removed
            raise _FileFailed(f"{label}: cannot write {dest}: {err.strerror}") from None
        return progress.done
    finally:
        progress.close()
        try:
            os.unlink(temp)
        except OSError:
            pass  # already renamed into place (or never created)


def _remove_stale_parts(folder: Path, name: str) -> None:
    """Remove the ``.NAME.part-XXXXXXXX`` files a killed fetch left beside ``name``.

    A fetch that is still running holds a lock on its file; those are left alone.
    """
    pattern = re.compile(rf"\.{re.escape(name)}\.part-[0-9a-f]{{8}}")
    try:
        candidates = [p for p in folder.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return
    for part in candidates:
        try:
            with open(part, "rb") as f:
                if not lock(f, wait=False):  # a running fetch holds it
                    continue
                part.unlink()
        except OSError:
            continue


def _sources(dataset: str, name: str, mirror: str | os.PathLike | None) -> list[str]:
    if mirror is not None:
        return [str(Path(mirror).expanduser().absolute() / dataset / name)]
    return [base.rstrip("/") + "/" + name for base in MIRRORS[dataset]]


def _fetch_file(dataset: str, name: str, root: Path, mirror: str | os.PathLike | None,
                show_progress: bool, out: TextIO, timeout: float) -> FileResult:
    folder = root / dataset
    dest = folder / name
    label = f"{dataset}/{name}"
    expected = MD5[dataset][name]
    replaced = False
    if dest.is_dir():
        raise _FileFailed(f"{label}: {dest} is a folder, not a file: move it away, then "
                          "fetch again")
    if folder.is_dir():
        _remove_stale_parts(folder, name)
    if dest.is_file():
        actual = file_md5(dest)
        if actual == expected:
            print(f"{label}: already present, MD5 OK (skipped)", file=out, flush=True)
            return FileResult(dataset, name, dest, "present")
        print(f"{label}: present but its MD5 is {actual}, expected {expected}: replacing it",
              file=out, flush=True)
        replaced = True
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _FileFailed(f"{label}: cannot create {folder}: {err.strerror or err}") from None
    tried = []
    for source in _sources(dataset, name, mirror):
        start = time.monotonic()
        try:
            size = _transfer(source, dest, expected, label, show_progress, out, timeout)
        except _SourceFailed as err:
            tried.append(f"  {source}\n      {err}")
            continue
        seconds = time.monotonic() - start
        action = "copied" if mirror is not None else "downloaded"
        print(f"{label}: {action} from {source} ({_size(size)} in {seconds:.1f} s), MD5 OK",
              file=out, flush=True)
        return FileResult(dataset, name, dest, action, source, replaced)
    note = " (the file there now has a wrong checksum)" if replaced else ""
    raise _FileFailed(f"{label}: could not be {'copied' if mirror else 'downloaded'}{note}; "
                      f"tried:\n" + "\n".join(tried))


def _dataset_names(datasets: str | Iterable[str]) -> list[str]:
    if isinstance(datasets, str):
        datasets = [datasets]
    names: list[str] = []
    for name in datasets:
        for one in DATASETS if name == "all" else [check_dataset(name)]:
            if one not in names:
                names.append(one)
    return names


def _failure_message(failures: list[str], names: list[str], mirror: str | os.PathLike | None,
                     target_dir: str | os.PathLike | None) -> str:
    which = " ".join(names) if len(names) < len(DATASETS) else "all"
    command = fetch_command(which, target_dir)
    lines = [f"Could not fetch {' and '.join(names)} (stopped at the first file that failed):",
             *failures, ""]
    if mirror is None:
        lines += [
            "No internet here? Copy the files from a local folder instead. It must hold",
            "mnist/ and/or fashion-mnist/ with the original file names (for example a copy",
            "made on a machine with internet, or a folder a colleague shares):",
            f"    {command} --mirror /path/to/datasets",
        ]
    else:
        lines += [
            f"The mirror folder must hold DATASET/FILE, e.g. {Path(mirror) / names[0] / FILES[0]},",
            "with the original, unmodified files (their MD5 is checked).",
        ]
    return "\n".join(lines)


def fetch(datasets: str | Iterable[str] = "all", target_dir: str | os.PathLike | None = None,
          mirror: str | os.PathLike | None = None, *, progress: bool | None = None,
          out: TextIO | None = None, timeout: float = TIMEOUT) -> list[FileResult]:
    """Put the verified files of ``datasets`` ("mnist", "fashion-mnist", "all") in place.

    ``target_dir`` defaults like the loader's (``$NUMPYVAE_DATA``, else ``./data``);
    files go to ``target_dir/DATASET/``. With ``mirror`` the files are copied from
    ``mirror/DATASET/`` instead of downloaded. ``progress`` shows a live progress
    line (default: only when ``out`` is a terminal); ``out`` receives one line per
    file (default stdout). Raises FetchError listing every source that failed
    and why; files that did arrive stay in place.
    """
    names = _dataset_names(datasets)
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"fetch: timeout must be a finite number of seconds > 0, got {timeout}")
    out = sys.stdout if out is None else out
    if progress is None:
        progress = bool(getattr(out, "isatty", lambda: False)())
    root = resolve_data_dir(target_dir)
    results: list[FileResult] = []
    failures: list[str] = []
    failed: list[str] = []
    for dataset in names:
        try:
            for name in FILES:
                results.append(_fetch_file(dataset, name, root, mirror, progress, out, timeout))
        except _FileFailed as err:
            # the other files of this data set would fail the same way: move on
            failures.append(str(err))
            failed.append(dataset)
    if failures:
        raise FetchError(_failure_message(failures, failed, mirror, target_dir), failures)
    return results


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Fetch MNIST and/or Fashion-MNIST: the four original IDX gzip files of each,\n"
            "checked against their published MD5 before they are put in place.\n"
            "Files already present with the right checksum are skipped; a file with a wrong\n"
            "checksum is reported and replaced."
        ),
        epilog=(
            f"Files go to DIR/mnist/ and DIR/fashion-mnist/ under their original names.\n"
            f"DIR is --dir, else ${ENV_VAR}, else ./{DEFAULT_DIR} under the current directory;\n"
            f"the loader (numpyvae.data.load) and training look in the same place.\n\n"
            f"Without --mirror the files are downloaded from public mirrors, tried in order:\n"
            + "".join(f"  {d}:\n" + "".join(f"    {url}\n" for url in urls)
                      for d, urls in MIRRORS.items())
            + "\nexamples:\n"
            "  python data_fetch.py                            # both data sets into ./data\n"
            "  python data_fetch.py mnist --dir ~/datasets     # MNIST into ~/datasets/mnist/\n"
            "  python data_fetch.py --mirror /shared/datasets  # no internet: copy + verify"
        ),
    )
    parser.add_argument("datasets", nargs="*", default=["all"], metavar="DATASET",
                        help="mnist, fashion-mnist or all (default: all)")
    parser.add_argument("--dir", metavar="DIR", default=None,
                        help=f"data folder (default: ${ENV_VAR}, else ./{DEFAULT_DIR})")
    parser.add_argument("--mirror", metavar="DIR", default=None,
                        help="copy from a local folder holding DATASET/FILE instead of downloading")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=TIMEOUT,
                        help=f"give up on a connection silent this long (default: {TIMEOUT:g})")
    return parser


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """For the block, SIGTERM (`kill`) stops the fetch as Ctrl-C does: the unfinished file
    is removed (the default handler would end the process and leave it)."""
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The command line; returns the exit status (0 done, 1 failed, 130 interrupted)."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    for name in args.datasets:
        if name != "all" and name not in DATASETS:
            parser.error(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}, all")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        parser.error(f"--timeout must be a finite number > 0, got {args.timeout:g}")
    if args.mirror is not None and not Path(args.mirror).expanduser().is_dir():
        parser.error(f"--mirror {args.mirror}: no such folder")
    root = resolve_data_dir(args.dir)
    print(f"Data folder: {root}", flush=True)
    try:
        with _sigterm_as_interrupt():
            results = fetch(args.datasets, args.dir, args.mirror, timeout=args.timeout)
    except FetchError as err:
        print(f"\n{err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted. The unfinished file was removed; verified files stay in place.",
              file=sys.stderr)
        return 130
    counts = {action: sum(r.action == action for r in results)
              for action in ("downloaded", "copied", "present")}
    summary = ", ".join(f"{n} {'already present' if a == 'present' else a}"
                        for a, n in counts.items() if n)
    print(f"Done: {len(results)} files verified in {root} ({summary}).")
    return 0

