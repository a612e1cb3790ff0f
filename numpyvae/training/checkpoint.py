"""Checkpoints: plain arrays in an .npz, written to a temporary name and renamed into place.

A checkpoint holds the model's parameters and BatchNorm buffers, the Adam
state, the epoch, the noise generator's state, the config and the history so
far. It loads with ``allow_pickle=False``: a checkpoint is data, never code, so
everything that is not an array is stored as a JSON string.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
# atomic_write's temporary names: ".NAME." + mkstemp's 8 random characters + ".tmp[SUFFIX]"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


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


def remove_stray_temp_files(folder: str | Path) -> list[Path]:
    """Remove what atomic_write left in ``folder`` when its process was killed (a
    ``kill -9`` skips its clean-up); returns the paths removed. Only names of
    atomic_write's own pattern are touched."""
    removed = []
    for path in Path(folder).iterdir():
        if _TEMP_NAME.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON through atomic_write; NaN or infinity is a ValueError, and
    nothing is written."""
    json.dumps(obj, allow_nan=False)  # refuse before a temporary file exists
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, allow_nan=False)  # NaN is not JSON
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
        why = "it holds Python objects, which a checkpoint never does" \
            if "allow_pickle" in str(e) else str(e)
        raise ValueError(f"{path} is not a readable numpyvae checkpoint: {why}") from None
    raw = files.pop("meta", None)
    if raw is None:
        raise ValueError(f"{path} is not a numpyvae checkpoint: it has no 'meta' entry")
    try:
        meta = json.loads(str(raw)) if raw.ndim == 0 and raw.dtype.kind == "U" else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its 'meta' entry is not a JSON object")
    model = {k[len("model/"):]: v for k, v in files.items() if k.startswith("model/")}
    optim = {k[len("optim/"):]: v for k, v in files.items() if k.startswith("optim/")}
    return model, optim, meta


def load_run_checkpoint(path: str | Path, resuming: bool = False
                        ) -> tuple[dict[str, np.ndarray], dict[str, Any], dict]:
    """load_checkpoint for a training run's checkpoint, its meta checked: a config
    object, an epoch, the history (and, to resume, the noise generator's state).
    Anything else is a ValueError naming the file and the entry."""
    model, optim, meta = load_checkpoint(path)
    kinds = {"config": dict, "epoch": int, "history": list}
    if resuming:
        kinds["noise_rng"] = dict
    for key, kind in kinds.items():
        if key not in meta:
            raise ValueError(f"{path}: its meta has no {key!r} entry")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise ValueError(f"{path}: its meta's {key!r} should be a JSON "
                             f"{_JSON_NAMES[kind]}, got {type(meta[key]).__name__}")
    if meta["epoch"] < 0 or not all(isinstance(h, dict) for h in meta["history"]):
        raise ValueError(f"{path}: its meta's epoch should be >= 0 and its history a list "
                         "of JSON objects")
    return model, optim, meta


_JSON_NAMES = {dict: "object", int: "integer", list: "list"}


def load_model_arrays(config: Any, arrays: dict[str, np.ndarray], where: str,
                      build: Callable[[Any], Any]) -> Any:
    """``build(config)`` with ``arrays`` copied in, built only once the config's size
    agrees with the arrays' (a damaged config must not decide what is allocated)."""
    from .config import num_arrays

    expected, found = num_arrays(config), sum(a.size for a in arrays.values())
    if expected != found:
        raise ValueError(f"{where}: its config describes a model of {expected:,} numbers but "
                         f"its arrays hold {found:,}: the checkpoint is damaged")
    model = build(config)
    load_arrays_into(model.named_arrays(), arrays, where)
    return model


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
