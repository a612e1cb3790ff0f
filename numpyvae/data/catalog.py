"""Which data sets exist, what their files are called, and where they live on disk.

Both the fetcher and the loader use this module, so they always agree on the
layout: ``DIR/mnist/`` and ``DIR/fashion-mnist/``, each holding the four
original IDX gzip files under their original names.
"""

from __future__ import annotations

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

ENV_VAR = "NUMPYVAE_DATA"
DEFAULT_DIR = "data"


def check_dataset(dataset: str) -> str:
    """Return ``dataset`` if it is a known name, else raise a ValueError listing the names."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown data set {dataset!r}; expected one of {', '.join(DATASETS)}")
    return dataset


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
