"""MNIST and Fashion-MNIST: fetch them, read their IDX files, load, batch.

    from numpyvae.data import load, batches, monitor_indices
    x, y = load("mnist", "train")            # (60000, 1, 28, 28) float32 in [0, 1], int64
    for idx in batches(len(x), 256, seed=0, epoch=0):
        xb = x[idx]

The data folder is ``data_dir``, else ``$NUMPYVAE_DATA``, else ``./data``; fetch
into it with ``python data_fetch.py`` or ``fetch("mnist")``.
"""

from .catalog import DATASETS, FILES, SPLIT_FILES, SPLITS, fetch_command, resolve_data_dir
from .datasets import (
    BATCH_SIZE,
    BINARIZE_SEED,
    MONITOR_SEED,
    MONITOR_SIZE,
    NUM_CLASSES,
    ChecksumError,
    DataNotFoundError,
    batches,
    binarize,
    epoch_order,
    load,
    monitor_indices,
    num_batches,
)
from .fetch import FetchError, FileResult, fetch
from .idx import IDXError, read_idx, write_idx

__all__ = [
    "BATCH_SIZE",
    "BINARIZE_SEED",
    "DATASETS",
    "FILES",
    "MONITOR_SEED",
    "MONITOR_SIZE",
    "NUM_CLASSES",
    "SPLITS",
    "SPLIT_FILES",
    "ChecksumError",
    "DataNotFoundError",
    "FetchError",
    "FileResult",
    "IDXError",
    "batches",
    "binarize",
    "epoch_order",
    "fetch",
    "fetch_command",
    "load",
    "monitor_indices",
    "num_batches",
    "read_idx",
    "resolve_data_dir",
    "write_idx",
]
