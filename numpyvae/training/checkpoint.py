"""Checkpoints: plain arrays in an .npz, written to a temporary name and renamed into place.

A checkpoint holds the model's parameters and BatchNorm buffers, the Adam
state, the epoch, the noise generator's state, the config and the history so
far. It loads with ``allow_pickle=False``: a checkpoint is data, never code, so
everything that is not an array is stored as a JSON string.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1


def atomic_write(path: str | Path, write: Any, suffix: str = "") -> None:
    """Call ``write(tmp_path)``, then rename tmp_path to ``path``; on any failure remove it.

    The temporary file lives in the same folder, so the rename is atomic and a
    crash or Ctrl-C leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would not
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")

    atomic_write(path, write)


def save_checkpoint(
    path: str | Path,
    arrays: dict[str, np.ndarray],
    optimizer_state: dict[str, Any],
    meta: dict[str, Any],
) -> None:
    """Save model arrays, optimizer state (arrays and ints) and JSON-able ``meta``."""
    payload = {f"model/{k}": v for k, v in arrays.items()}
    for k, v in optimizer_state.items():
        payload[f"optim/{k}"] = np.asarray(v)
    payload["meta"] = np.array(json.dumps({"format": FORMAT_VERSION, **meta}))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **payload)

    atomic_write(path, write, suffix=".npz")


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any], dict]:
    """Return (model arrays, optimizer state, meta) from a checkpoint file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
    except Exception as e:  # a truncated or foreign file: say which and why
        raise ValueError(f"{path} is not a readable numpyvae checkpoint: {e}") from e
    if "meta" not in files:
        raise ValueError(f"{path} is not a numpyvae checkpoint: it has no 'meta' entry")
    meta = json.loads(str(files.pop("meta")))
    model = {k[len("model/"):]: v for k, v in files.items() if k.startswith("model/")}
    optim = {k[len("optim/"):]: v for k, v in files.items() if k.startswith("optim/")}
    return model, optim, meta


def load_arrays_into(target: dict[str, np.ndarray], source: dict[str, np.ndarray],
                     where: str) -> None:
    """Copy ``source`` into ``target``'s arrays in place, after checking names and shapes.

    A checkpoint of another architecture fails here, before anything is written.
    """
    missing = sorted(set(target) - set(source))
    extra = sorted(set(source) - set(target))
    if missing or extra:
        raise ValueError(
            f"{where}: checkpoint does not fit this model "
            f"(missing {missing[:3]}{'…' if len(missing) > 3 else ''}, "
            f"unexpected {extra[:3]}{'…' if len(extra) > 3 else ''})"
        )
    for k, arr in target.items():
        if source[k].shape != arr.shape:
            raise ValueError(
                f"{where}: {k} has shape {source[k].shape} in the checkpoint, "
                f"the model expects {arr.shape}"
            )
    for k, arr in target.items():
        arr[...] = source[k]
