"""The fetcher, against a local HTTP server on 127.0.0.1 and local mirror folders.

Never touches the real network: the mirror list and the checksum table are
replaced by ones for tiny IDX files that the tests write themselves.
"""

import errno
import hashlib
import importlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from numpyvae.data import filelock
from numpyvae.data.catalog import FILES
from numpyvae.data.fetch import FetchError, fetch, main
from numpyvae.data.idx import encode_idx

# the module, not the function numpyvae.data.fetch that the package exports under the same name
fetch_module = importlib.import_module("numpyvae.data.fetch")
REPO = Path(__file__).resolve().parents[2]


def tiny_files(seed: int) -> dict[str, bytes]:
    """Four small gzip IDX files under the original names (3 train and 2 test images)."""
    import gzip

    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.array([5, 0, 4], dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.array([7, 2], dtype=np.uint8),
    }
    return {name: gzip.compress(encode_idx(a), mtime=0) for name, a in arrays.items()}


CONTENT = {"mnist": tiny_files(1), "fashion-mnist": tiny_files(2)}


@pytest.fixture(autouse=True)
def fake_catalog(monkeypatch):
    """Checksums of the tiny files; no proxy for 127.0.0.1; real mirrors unreachable."""
    md5 = {d: {n: hashlib.md5(b).hexdigest() for n, b in files.items()}
           for d, files in CONTENT.items()}
    monkeypatch.setattr(fetch_module, "MD5", md5)
    monkeypatch.setattr(fetch_module, "MIRRORS", {"mnist": [], "fashion-mnist": []})
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("NUMPYVAE_DATA", raising=False)


class Handler(BaseHTTPRequestHandler):
    """Routes /MODE/DATASET/FILE: good, corrupt (one byte flipped), cut (closes mid-file),
    slow (never answers in time); anything else is 404."""

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[1] not in CONTENT or parts[2] not in CONTENT[parts[1]]:
            self.send_error(404)
            return
        mode, dataset, name = parts
        body = CONTENT[dataset][name]
        if mode == "slow":
            time.sleep(2)
            return
        if mode == "corrupt":
            body = body[:20] + bytes([body[20] ^ 0xFF]) + body[21:]
        if mode not in ("good", "corrupt", "cut"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "cut":
            # promise the whole file, send half, then drop the connection
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def refused_url():
    """A base URL on a port where nothing listens: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def use_mirrors(monkeypatch, **urls):
    mirrors = {"mnist": [], "fashion-mnist": []}
    mirrors.update({k.replace("_", "-"): v for k, v in urls.items()})
    monkeypatch.setattr(fetch_module, "MIRRORS", mirrors)


def assert_complete(folder: Path, dataset: str = "mnist"):
    """Exactly the four files, byte-identical, and no temporary files."""
    assert sorted(p.name for p in (folder / dataset).iterdir()) == sorted(FILES)
    for name in FILES:
        assert (folder / dataset / name).read_bytes() == CONTENT[dataset][name]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def run_fetch(*args, **kwargs):
    out = io.StringIO()
    kwargs.setdefault("out", out)
    kwargs.setdefault("progress", False)
    return fetch(*args, **kwargs), out.getvalue()


# ---------------------------------------------------------------- downloads


def test_good_download(tmp_path, server, monkeypatch):
    use_mirrors(monkeypatch, mnist=[f"{server}/good/mnist/"])
    results, out = run_fetch("mnist", tmp_path)
    assert_complete(tmp_path)
    assert [r.action for r in results] == ["downloaded"] * 4
    assert all(r.source.startswith(f"{server}/good/mnist/") for r in results)
    assert out.count("MD5 OK") == 4 and "\r" not in out  # one line per file, no progress
    assert not (tmp_path / "fashion-mnist").exists()


def test_first_mirrors_fail_then_one_works(tmp_path, server, refused_url, monkeypatch):
    use_mirrors(monkeypatch, mnist=[refused_url, f"{server}/missing/mnist/",
                                    f"{server}/good/mnist"])  # no trailing slash: still joined
    results, _ = run_fetch("mnist", tmp_path)
    assert_complete(tmp_path)
    assert all(r.source.startswith(f"{server}/good/mnist/") for r in results)


def test_corrupt_body_is_refused_and_nothing_is_left(tmp_path, server, monkeypatch):
    use_mirrors(monkeypatch, mnist=[f"{server}/corrupt/mnist/"])
    with pytest.raises(FetchError) as info:
        run_fetch("mnist", tmp_path)
    message = str(info.value)
    assert "checksum mismatch" in message and f"{server}/corrupt/mnist/" in message
    assert leftovers(tmp_path) == []  # neither the final name nor a .part file


def test_corrupt_mirror_falls_through_to_a_good_one(tmp_path, server, monkeypatch):
    use_mirrors(monkeypatch, mnist=[f"{server}/corrupt/mnist/", f"{server}/good/mnist/"])
    run_fetch("mnist", tmp_path)
    assert_complete(tmp_path)


def test_connection_closed_mid_file(tmp_path, server, monkeypatch):
    use_mirrors(monkeypatch, mnist=[f"{server}/cut/mnist/"])
    with pytest.raises(FetchError) as info:
        run_fetch("mnist", tmp_path)
    assert "connection closed after" in str(info.value)
    assert leftovers(tmp_path) == []


def test_timeout_is_reported(tmp_path, server, monkeypatch):
    use_mirrors(monkeypatch, mnist=[f"{server}/slow/mnist/"])
    with pytest.raises(FetchError, match="timed out"):
        run_fetch("mnist", tmp_path, timeout=0.3)
    assert leftovers(tmp_path) == []


def test_no_network_lists_every_url_and_suggests_mirror(tmp_path, refused_url, monkeypatch):
    use_mirrors(monkeypatch, mnist=[refused_url, refused_url + "other/"],
                fashion_mnist=[refused_url + "f/"])
    with pytest.raises(FetchError) as info:
        run_fetch("all", tmp_path)
    message = str(info.value)
    for url in (refused_url, refused_url + "other/", refused_url + "f/"):
        assert url + "train-images-idx3-ubyte.gz" in message
    assert "refused" in message.lower()
    assert "--mirror" in message and "data_fetch.py all" in message
    assert len(info.value.failures) == 2  # one per data set
    assert leftovers(tmp_path) == []


def test_interrupt_removes_the_temporary_file(tmp_path, server, monkeypatch):
    use_mirrors(monkeypatch, mnist=[f"{server}/good/mnist/"])

    def interrupt(self, n):
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_module._Progress, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_fetch("mnist", tmp_path)
    assert leftovers(tmp_path) == []


def test_progress_line_on_a_terminal():
    out = io.StringIO()
    progress = fetch_module._Progress("mnist/x.gz", 2_000_000, out, enabled=True)
    progress.last -= 1.0  # as if the last redraw was a second ago
    progress.update(1_000_000)
    assert out.getvalue().startswith("\r") and "1.0 MB / 2.0 MB" in out.getvalue()
    assert "MB/s" in out.getvalue()
    progress.close()
    assert out.getvalue().endswith("\r")  # the line is cleared for the summary


def test_progress_is_quiet_when_not_a_terminal():
    out = io.StringIO()
    progress = fetch_module._Progress("mnist/x.gz", 10, out, enabled=False)
    progress.last -= 1.0
    progress.update(5)
    progress.close()
    assert out.getvalue() == ""


# ---------------------------------------------------------------- files already there


def test_present_files_are_skipped_without_network(tmp_path, server, refused_url, monkeypatch):
    use_mirrors(monkeypatch, mnist=[f"{server}/good/mnist/"])
    run_fetch("mnist", tmp_path)
    use_mirrors(monkeypatch, mnist=[refused_url])
    results, out = run_fetch("mnist", tmp_path)
    assert [r.action for r in results] == ["present"] * 4
    assert out.count("already present, MD5 OK (skipped)") == 4


def test_wrong_checksum_file_is_reported_and_replaced(tmp_path, server, monkeypatch):
    use_mirrors(monkeypatch, mnist=[f"{server}/good/mnist/"])
    (tmp_path / "mnist").mkdir()
    bad = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(b"not the original")
    results, out = run_fetch("mnist", tmp_path)
    assert "t10k-labels-idx1-ubyte.gz: present but its MD5 is" in out and "replacing" in out
    assert [r.replaced for r in results] == [False, False, False, True]
    assert_complete(tmp_path)


# ---------------------------------------------------------------- mirror folders


@pytest.fixture
def mirror_dir(tmp_path) -> Path:
    root = tmp_path / "mirror"
    for dataset, files in CONTENT.items():
        (root / dataset).mkdir(parents=True)
        for name, data in files.items():
            (root / dataset / name).write_bytes(data)
    return root


def test_mirror_copy_then_skip(tmp_path, mirror_dir):
    target = tmp_path / "data"
    results, out = run_fetch("all", target, mirror_dir)
    assert [r.action for r in results] == ["copied"] * 8
    assert_complete(target, "mnist")
    assert_complete(target, "fashion-mnist")
    results, out = run_fetch("all", target, mirror_dir)
    assert [r.action for r in results] == ["present"] * 8


def test_mirror_with_wrong_checksum_is_refused(tmp_path, mirror_dir):
    (mirror_dir / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(
        CONTENT["fashion-mnist"]["train-images-idx3-ubyte.gz"])  # a valid IDX file, wrong one
    target = tmp_path / "data"
    with pytest.raises(FetchError) as info:
        run_fetch("mnist", target, mirror_dir)
    assert "checksum mismatch" in str(info.value)
    assert "mnist/train-images-idx3-ubyte.gz" in str(info.value)
    assert leftovers(target) == []


def test_mirror_missing_file(tmp_path, mirror_dir):
    (mirror_dir / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    target = tmp_path / "data"
    with pytest.raises(FetchError, match="no such file") as info:
        run_fetch("fashion-mnist", target, mirror_dir)
    assert "DATASET/FILE" in str(info.value)
    assert sorted(p.name for p in (target / "fashion-mnist").iterdir()) == sorted(FILES[:3])


def test_target_defaults_to_env_var_then_cwd_data(tmp_path, mirror_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_fetch("mnist", None, mirror_dir)
    assert_complete(tmp_path / "data")
    monkeypatch.setenv("NUMPYVAE_DATA", str(tmp_path / "elsewhere"))
    run_fetch("mnist", None, mirror_dir)
    assert_complete(tmp_path / "elsewhere")


def test_unknown_dataset_in_python():
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        fetch("cifar", out=io.StringIO())


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0.0, -1.0])
def test_bad_timeout_in_python(timeout, tmp_path):
    with pytest.raises(ValueError, match="timeout must be a finite number"):
        fetch("mnist", tmp_path, timeout=timeout, out=io.StringIO())
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fault", [errno.ENOSPC, errno.EROFS])
def test_a_rename_that_fails_is_a_named_failure(tmp_path, mirror_dir, capsys, monkeypatch,
                                                fault):
    """data_fetch.py once showed a raw traceback when os.replace failed (a full disk)."""
    def refuse(src, dst):
        raise OSError(fault, os.strerror(fault), str(src))

    monkeypatch.setattr(fetch_module.os, "replace", refuse)
    target = tmp_path / "data"
    assert main(["mnist", "--dir", str(target), "--mirror", str(mirror_dir)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and os.strerror(fault) in err
    assert f"cannot write {target / 'mnist' / FILES[0]}" in err
    assert leftovers(target) == [] and list((target / "mnist").iterdir()) == []


@pytest.mark.parametrize("where", ["file", "dataset"])
def test_a_target_name_that_is_a_folder_is_a_named_failure(tmp_path, mirror_dir, capsys, where):
    """DIR/mnist/FILE (or DIR/mnist itself) in the way as a folder / a file."""
    target = tmp_path / "data"
    if where == "file":
        (target / "mnist" / "t10k-images-idx3-ubyte.gz").mkdir(parents=True)
        message = "t10k-images-idx3-ubyte.gz is a folder, not a file"
    else:
        target.mkdir()
        (target / "mnist").write_text("x")
        message = "cannot create"
    assert main(["mnist", "--dir", str(target), "--mirror", str(mirror_dir)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_part_file_left_by_a_killed_fetch_is_removed(tmp_path, mirror_dir):
    """A killed fetch cannot clean up: the next one removes its .NAME.part-XXXXXXXX,
    but never one that a running fetch still holds (locked)."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    stale = folder / ".train-images-idx3-ubyte.gz.part-0123abcd"
    stale.write_bytes(b"half a download")
    other = folder / ".notes.part-0123abcd"  # not a name of ours
    other.write_bytes(b"x")
    run_fetch("mnist", tmp_path / "data", mirror_dir)
    assert not stale.exists() and other.exists()
    if filelock.fcntl is not None:
        held = folder / ".t10k-labels-idx1-ubyte.gz.part-89abcdef"
        with open(held, "wb") as f:
            filelock.lock(f)
            run_fetch("mnist", tmp_path / "data", mirror_dir)
            assert held.exists()


# ---------------------------------------------------------------- command line


def test_cli_mirror_twice(tmp_path, mirror_dir, capsys):
    target = tmp_path / "data"
    assert main(["mnist", "--dir", str(target), "--mirror", str(mirror_dir)]) == 0
    first = capsys.readouterr().out
    assert first.count("copied from") == 4 and "Done: 4 files verified" in first
    assert main(["mnist", "--dir", str(target), "--mirror", str(mirror_dir)]) == 0
    second = capsys.readouterr().out
    assert second.count("already present, MD5 OK (skipped)") == 4
    assert "(4 already present)" in second


def test_cli_no_network(tmp_path, refused_url, monkeypatch, capsys):
    use_mirrors(monkeypatch, mnist=[refused_url], fashion_mnist=[refused_url])
    assert main(["--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert refused_url + "train-images-idx3-ubyte.gz" in err
    assert "--mirror" in err and "Traceback" not in err


def test_cli_interrupt_exits_130(tmp_path, mirror_dir, monkeypatch, capsys):
    def interrupt(self, n):
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_module._Progress, "update", interrupt)
    assert main(["--dir", str(tmp_path / "d"), "--mirror", str(mirror_dir)]) == 130
    assert "Interrupted" in capsys.readouterr().err
    assert leftovers(tmp_path / "d") == []


def test_cli_sigterm_is_an_interrupt(tmp_path, mirror_dir, monkeypatch, capsys):
    """`kill` ended the fetch by the default handler: exit 143 and the .part file left for
    the next fetch to remove. As Ctrl-C: exit 130, nothing left."""
    import signal

    class Unhandled(Exception):  # stands for the default handler, which ends the process
        pass

    def default(signum, frame):
        raise Unhandled

    def terminate(self, n):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(fetch_module._Progress, "update", terminate)
    previous = signal.signal(signal.SIGTERM, default)
    try:
        assert main(["--dir", str(tmp_path / "d"), "--mirror", str(mirror_dir)]) == 130
        assert signal.getsignal(signal.SIGTERM) is default  # the caller's handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "Interrupted" in capsys.readouterr().err
    assert leftovers(tmp_path / "d") == []


@pytest.mark.parametrize("argv, text", [
    (["cifar"], "unknown data set 'cifar'"),
    (["--mirror", "/no/such/folder"], "no such folder"),
    (["--timeout", "0"], "--timeout must be"),
    (["--timeout", "nan"], "--timeout must be a finite number > 0, got nan"),
    (["--timeout", "inf"], "--timeout must be a finite number > 0, got inf"),
])
def test_cli_bad_arguments(argv, text, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert text in capsys.readouterr().err


def test_data_fetch_script_help():
    result = subprocess.run([sys.executable, str(REPO / "data_fetch.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for text in ("usage: data_fetch.py", "--mirror", "--dir", "NUMPYVAE_DATA", "fashion-mnist"):
        assert text in result.stdout


# ---------------------------------------------------------------- the real files


def test_real_mirror_copy_then_skip(shared_datasets, tmp_path, monkeypatch, capsys):
    monkeypatch.undo()  # the published checksums, not the tiny files'
    target = tmp_path / "data"
    assert main(["--mirror", str(shared_datasets), "--dir", str(target)]) == 0
    assert capsys.readouterr().out.count("MD5 OK") == 8
    assert main(["--mirror", str(shared_datasets), "--dir", str(target)]) == 0
    assert capsys.readouterr().out.count("already present, MD5 OK (skipped)") == 8
    for dataset in ("mnist", "fashion-mnist"):
        for name in FILES:
            assert (target / dataset / name).stat().st_size == \
                (shared_datasets / dataset / name).stat().st_size
