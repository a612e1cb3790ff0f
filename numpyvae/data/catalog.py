"""Which data sets exist, what their files are called, and where they live on disk.

Both the fetcher and the loader use this module, so they always agree on the
layout: ``DIR/mnist/`` and ``DIR/fashion-mnist/``, each holding the four
original IDX gzip files under their original names.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path

DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist")
SPLITS: tuple[str, ...] = ("train", "test")

# (images, labels) file names of each split; the same for both data sets.
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FILES: tuple[str, ...] = SPLIT_FILES["train"] + SPLIT_FILES["test"]

# The published MD5 of each original .gz file (torchvision's mnist.py lists the same).
# The fetcher checks a file against it before putting it in place; the loader
# checks it again before parsing, so a copied, linked or swapped file is caught.
MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

ENV_VAR = "NUMPYVAE_DATA"
DEFAULT_DIR = "data"


def check_dataset(dataset: str) -> str:
    """Return ``dataset`` if it is a known name, else raise a ValueError listing the names."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown data set {dataset!r}; expected one of {', '.join(DATASETS)}")
    return dataset


def file_md5(path: str | os.PathLike) -> str:
    """The MD5 of a file, as hex."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir`` if given, else ``$NUMPYVAE_DATA``, else ``./data``.

    Relative paths are taken from the current directory, never from where the
    package is installed. The folder is not created and need not exist.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser().absolute()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser().absolute()
    return Path.cwd() / DEFAULT_DIR


def data_dir_origin(data_dir: str | os.PathLike | None = None) -> str:
    """Say in words where :func:`resolve_data_dir` took the folder from (for messages)."""
    if data_dir is not None and str(data_dir) != "":
        return "the folder you gave"
    if os.environ.get(ENV_VAR, ""):
        return f"${ENV_VAR}"
    return f"the default ./{DEFAULT_DIR} under the current directory; set ${ENV_VAR} to use another"


def fetch_command(dataset: str, data_dir: str | os.PathLike | None = None) -> str:
    """The shell command that fetches ``dataset`` into the folder the loader searches.

    Uses the repository's ``data_fetch.py`` when the package runs from a
    checkout, else ``python -m numpyvae.data`` (the same code).
    """
    script = Path(__file__).resolve().parents[2] / "data_fetch.py"
    if script.is_file():
        try:
            relative = os.path.relpath(script)
        except ValueError:  # another drive on Windows
            relative = str(script)
        program = "python " + shlex.quote(str(script) if relative.startswith("..") else relative)
    else:
        program = "python -m numpyvae.data"
    command = f"{program} {dataset}"
    if data_dir is not None and str(data_dir) != "":
        command += " --dir " + shlex.quote(str(resolve_data_dir(data_dir)))
    return command
