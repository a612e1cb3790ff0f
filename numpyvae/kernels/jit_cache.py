"""Is numba's on-disk cache warm? Lets training say once that it is compiling.

numba compiles each kernel the first time it runs, which takes tens of seconds
in all; with ``cache=True`` the result is saved beside the source (or under
``NUMBA_CACHE_DIR``) and a later process loads it in well under a second.
"""

from __future__ import annotations

import importlib
import os
import pkgutil


def _dispatchers() -> list:
    from numba.core.registry import CPUDispatcher

    package = importlib.import_module(__package__)  # numpyvae.kernels, where this file lives
    found = []
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        found += [v for v in vars(module).values() if isinstance(v, CPUDispatcher)]
    return found


def cache_is_warm() -> bool:
    """True if every cached kernel has an index file on disk (a compile ran before).

    Uses numba's cache internals; if they change, it answers True and training
    simply does not announce the compile.
    """
    try:
        for dispatcher in _dispatchers():
            cache = getattr(dispatcher, "_cache", None)
            index = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
            if index is not None and not os.path.exists(index):
                return False
    except Exception:  # numba internals moved: stay quiet rather than fail training
        return True
    return True
