"""Work buffers the kernels reuse between calls, one per (thread, slot, dtype).

The conv kernels need scratch space (zero-bordered planes, im2col columns,
per-chunk partial sums) on every call; allocating it each time would cost a
page-fault storm per call. A buffer only ever grows.
"""

from __future__ import annotations

import threading

import numpy as np

_workspace: dict[tuple[int, str, str], np.ndarray] = {}


def buffer(slot: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A reusable uninitialised array of ``shape``; one per (calling thread, slot, dtype)."""
    key = (threading.get_ident(), slot, np.dtype(dtype).str)
    size = int(np.prod(shape))
    buf = _workspace.get(key)
    if buf is None or buf.size < size:
        _workspace.pop(key, None)  # let the old one go before allocating the larger one
        buf = np.empty(size, dtype=dtype)
        _workspace[key] = buf
    return buf[:size].reshape(shape)


def clear_workspace() -> None:
    """Free the cached work buffers (they are rebuilt on the next call)."""
    _workspace.clear()
