"""Checkpoints: plain arrays in an .npz, written to a temporary name and renamed into place.

A checkpoint holds the model's parameters and BatchNorm buffers, the Adam
state, the epoch, the noise generator's state, the config and the history so
far. It loads with ``allow_pickle=False``: a checkpoint is data, never code, so
everything that is not an array is stored as a JSON string.

A checkpoint is checked where it is read, once: its sizes as the zip declares them
before anything is unpacked, its meta without NaN, and every array finite.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
# What a real run file can hold, so that a read stops there (a file linked to /dev/zero
# must not fill the memory): a JSON file or a checkpoint's meta (history.json is ~400
# bytes an epoch), and a checkpoint's arrays beyond 3 float64 copies of the model's.
JSON_LIMIT = 64 * 2**20
_NPY_HEADER_LIMIT = 64 * 2**10
# atomic_write's temporary names: ".NAME." + mkstemp's 8 random characters + ".tmp[SUFFIX]"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def atomic_write(path: str | Path, write: Any, suffix: str = "") -> None:
    """Call ``write(tmp_path)``, then rename tmp_path to ``path``; on any failure remove it.

    The temporary file lives in the same folder, so the rename is atomic and a
    crash or Ctrl-C leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}",
                                   dir=path.parent)
    except OSError as e:
        raise _naming(e, path) from e
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would not
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno:
            raise _naming(e, path) from e
        raise


def _naming(e: OSError, path: Path) -> OSError:
    """``e`` (a full disk, say) naming the file being written, not its temporary one or none."""
    return e if e.filename == str(path) else OSError(e.errno, e.strerror or str(e), str(path))


def remove_stray_temp_files(folder: str | Path) -> list[Path]:
    """Remove what atomic_write left in ``folder`` when its process was killed (a
    ``kill -9`` skips its clean-up); returns the paths removed. Only names of
    atomic_write's own pattern are touched."""
    removed = []
    for path in Path(folder).iterdir():
        if is_temp_file_name(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def is_temp_file_name(name: str) -> bool:
    """True for a name of atomic_write's temporary files (``.NAME.XXXXXXXX.tmp[SUFFIX]``)."""
    return bool(_TEMP_NAME.match(name))


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


def read_bounded(path: str | Path, limit: int | None = None) -> bytes:
    """The bytes of ``path``, refused (ValueError naming it) when there are more than
    ``limit`` [JSON_LIMIT]: no more than limit + 1 bytes are ever read."""
    limit = JSON_LIMIT if limit is None else limit
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than any numpyvae run file can be "
                         f"({limit:,} bytes): it is damaged or not one")
    return data


def parse_json(text: str | bytes, where: str | Path) -> Any:
    """JSON without NaN or Infinity, which numpyvae never writes (write_json refuses them);
    anything else is a ValueError naming ``where``."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{where} holds {constant}, which a numpyvae file never does: it "
                         "is damaged")

    try:
        return json.loads(text, parse_constant=refuse)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{where} is not valid JSON: {e}") from None


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
    """Return (model arrays, optimizer state, meta) from a checkpoint file, checked: sizes
    within what its config can hold before unpacking, and every array finite."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    meta = _read_meta(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files if k != "meta"}
    except Exception as e:  # a truncated or foreign file: say which and why
        raise _unreadable(path, e) from None
    for name, a in files.items():
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise ValueError(f"{path}: its array {name} holds NaN or infinity "
                             f"({a.size - int(np.isfinite(a).sum()):,} of {a.size:,} numbers): "
                             "a checkpoint is saved only when every array is finite, so this "
                             "one is damaged")
    model = {k[len("model/"):]: v for k, v in files.items() if k.startswith("model/")}
    optim = {k[len("optim/"):]: v for k, v in files.items() if k.startswith("optim/")}
    return model, optim, meta


def _read_meta(path: Path) -> dict[str, Any]:
    """The meta of the checkpoint ``path``, after checking the sizes its zip declares:
    nothing is unpacked that a checkpoint of its config could not hold."""
    try:
        with zipfile.ZipFile(path) as zf:
            sizes = {i.filename: i.file_size for i in zf.infolist()}
            if sizes.get("meta.npy", 0) > JSON_LIMIT:
                raise ValueError(f"its meta declares {sizes['meta.npy']:,} bytes, more than a "
                                 f"checkpoint's ever holds ({JSON_LIMIT:,})")
            raw = None
            if "meta.npy" in sizes:
                with zf.open("meta.npy") as f:
                    raw = np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, MemoryError) as e:
        raise _unreadable(path, e) from None
    if raw is None:
        raise ValueError(f"{path} is not a numpyvae checkpoint: it has no 'meta' entry")
    meta = None
    if raw.ndim == 0 and raw.dtype.kind == "U":
        try:
            meta = parse_json(str(raw), f"{path} (its meta)")
        except ValueError as e:
            if "not valid JSON" not in str(e):
                raise  # NaN in the meta (its history): named as such
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its 'meta' entry is not a JSON object")
    declared = sum(size for name, size in sizes.items() if name != "meta.npy")
    limit = _arrays_limit(meta, len(sizes))
    if declared > limit:
        raise ValueError(f"{path}: its arrays declare {declared:,} bytes unpacked, more than "
                         f"a checkpoint of its config can hold ({limit:,}): it is damaged")
    return meta


def _unreadable(path: Path, e: BaseException) -> ValueError:
    why = "it holds Python objects, which a checkpoint never does" \
        if "allow_pickle" in str(e) else str(e)
    return ValueError(f"{path} is not a readable numpyvae checkpoint: {why}")


def _arrays_limit(meta: dict[str, Any], entries: int) -> int:
    """The most bytes a checkpoint's arrays can hold: the model's numbers three times
    (values, Adam's m and v) in float64, with room for each entry's header; for a meta
    without a usable config, the machine's memory."""
    from .config import TrainConfig, _physical_memory, num_arrays

    try:
        numbers = num_arrays(TrainConfig.from_json(meta.get("config")))
    except (ValueError, TypeError):
        return _physical_memory() or 2**63
    return 3 * 8 * numbers + _NPY_HEADER_LIMIT * entries


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
