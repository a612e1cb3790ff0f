"""Load MNIST / Fashion-MNIST, shuffle them into batches, and pick the monitor set.

The loader only reads: it never writes into the data folder (which may be
read-only). A missing data set raises DataNotFoundError, whose message gives
the command that fetches it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import catalog
from .catalog import (
    SPLIT_FILES,
    SPLITS,
    check_dataset,
    data_dir_origin,
    fetch_command,
    file_md5,
    resolve_data_dir,
)
from .idx import IDXError, read_idx

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
BATCH_SIZE = 256
MONITOR_SEED = 0
MONITOR_SIZE = 100


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not in the data folder; the message says how to fetch them."""


class ChecksumError(IDXError):
    """A data file is not the published original (its MD5 differs); the message names the
    file, the MD5 expected and the command that replaces it."""


def _missing_message(dataset: str, split: str, folder: Path, missing: list[str],
                     data_dir: str | os.PathLike | None) -> str:
    command = fetch_command(dataset, data_dir)
    missing = [name + (" (a folder of that name is in its place: move it away)"
                       if (folder / name).is_dir() else "") for name in missing]
    what = "does not exist" if not folder.is_dir() else "lacks " + " and ".join(missing)
    return (
        f"{dataset} ({split}) not found: the folder {folder}/ {what}.\n"
        f"The data folder is {folder.parent} ({data_dir_origin(data_dir)}).\n"
        f"Fetch it with:\n"
        f"    {command}\n"
        f"or copy it from a local folder that holds {dataset}/ (no internet needed):\n"
        f"    {command} --mirror /path/to/datasets"
    )


# MD5s of files already hashed in this process, keyed by what identifies the bytes on
# disk: a file replaced, rewritten or swapped behind a link gets another key.
_MD5_SEEN: dict[tuple, str] = {}


def _md5(path: Path) -> str:
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _MD5_SEEN:
        _MD5_SEEN[key] = file_md5(real)
    return _MD5_SEEN[key]


def verify(dataset: str, path: Path, data_dir: str | os.PathLike | None = None) -> None:
    """Raise ChecksumError unless ``path`` is the published file of ``dataset`` by its MD5.

    Hashing the four .gz files takes about 0.05 s for MNIST, 0.1 s for Fashion-MNIST;
    each file is hashed once per process while it stays unchanged.
    """
    expected = catalog.MD5[dataset][path.name]
    actual = _md5(path)
    if actual != expected:
        link = f" (a link to {os.path.realpath(path)})" if os.path.realpath(path) != \
            os.path.abspath(path) else ""
        raise ChecksumError(
            f"{path}{link} is not the published {dataset} file: its MD5 is {actual}, "
            f"expected {expected} (a damaged copy, or another data set's file).\n"
            f"Replace it with:  {fetch_command(dataset, data_dir)}"
        )


def load(dataset: str, split: str = "train",
         data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split of ``"mnist"`` or ``"fashion-mnist"``.

    Returns ``x`` float32 of shape (N, 1, 28, 28) scaled to [0, 1] and ``y``
    int64 of shape (N,). ``data_dir`` defaults to ``$NUMPYVAE_DATA``, else
    ``./data``; files are read from ``data_dir/dataset/``.

    Each file's MD5 is checked against the published one before it is read, so
    a copy, a link or a swap never passes for the data set it is not.

    Raises DataNotFoundError when files are missing, ChecksumError (an IDXError)
    when a file is not the original, and IDXError (a ValueError) when a file is
    damaged or of the wrong kind.
    """
    check_dataset(dataset)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    folder = resolve_data_dir(data_dir) / dataset
    names = SPLIT_FILES[split]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataNotFoundError(_missing_message(dataset, split, folder, missing, data_dir))
    images_path, labels_path = (folder / name for name in names)
    for path in (images_path, labels_path):
        verify(dataset, path, data_dir)
    try:
        images = read_idx(images_path, ndim=3)
        labels = read_idx(labels_path, ndim=1)
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise IDXError(f"{folder}: expected uint8 IDX files, got {images.dtype} images "
                           f"and {labels.dtype} labels")
        if images.shape[1:] != IMAGE_SHAPE:
            raise IDXError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, "
                           f"expected 28x28")
        if len(images) != len(labels):
            raise IDXError(f"{folder}: {len(images)} images but {len(labels)} labels")
        if labels.size and labels.max() >= NUM_CLASSES:
            raise IDXError(f"{labels_path}: label {labels.max()} outside 0..{NUM_CLASSES - 1}")
    except IDXError as err:
        raise IDXError(f"{err}\nReplace the file with:  {fetch_command(dataset, data_dir)}") \
            from None
    # one vectorised pass: uint8 -> float32 / 255
    x = np.divide(images.reshape(len(images), 1, *IMAGE_SHAPE), np.float32(255), dtype=np.float32)
    return x, labels.astype(np.int64)


def num_batches(n: int, batch_size: int = BATCH_SIZE) -> int:
    """How many batches :func:`batches` yields for ``n`` items (the last may be partial)."""
    return -(-n // batch_size)


def epoch_order(n: int, seed: int = 0, epoch: int = 0) -> np.ndarray:
    """The order of ``n`` items in ``epoch``: a permutation from ``default_rng([seed, epoch])``.

    Depends only on (seed, epoch), so a resumed run sees exactly the batches an
    uninterrupted run would have seen.
    """
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(n: int, batch_size: int = BATCH_SIZE, seed: int = 0,
            epoch: int = 0) -> Iterator[np.ndarray]:
    """Yield index arrays covering ``range(n)`` in the shuffled order of ``epoch``.

    Every batch holds ``batch_size`` indices except the last, which keeps the
    remainder. Use as ``for idx in batches(len(x), 256, seed, epoch): x[idx]``.
    """
    if n < 0:
        raise ValueError(f"batches: n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batches: batch_size must be >= 1, got {batch_size}")
    order = epoch_order(n, seed, epoch)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def monitor_indices(n_test: int = 10_000, size: int = MONITOR_SIZE) -> np.ndarray:
    """The report's monitor set: ``size`` distinct test-set indices, sorted.

    Drawn with its own fixed seed (MONITOR_SEED = 0), independent of the
    training seed, so every run is monitored on the same images.
    """
    if not 0 <= size <= n_test:
        raise ValueError(f"monitor_indices: size must be in 0..{n_test}, got {size}")
    rng = np.random.default_rng(MONITOR_SEED)
    return np.sort(rng.choice(n_test, size=size, replace=False))



BINARIZE_SEED = 0  # the fixed binarization of an evaluation set


def binarize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each pixel 1 with probability its grey level, else 0, drawn anew per call.

    This is the usual "dynamically binarized MNIST": a Bernoulli decoder then
    models true binary data, so its log p(x) is a log-probability. Training draws
    afresh each time an image is seen; evaluation uses one fixed draw
    (``rng = default_rng(BINARIZE_SEED)``) so that figures are comparable.
    """
    return (rng.random(x.shape, dtype=np.float32) < x).astype(x.dtype)
