"""The kernels, loaded at their first use, so the core imports and runs on NumPy alone.

``numpyvae/kernels/`` needs numba. A layer file names its kernels module with
``conv_kernels = lazy("conv")``: the module, and numba with it, is imported the first
time a kernel runs. Without numba, ``KERNELS_AVAILABLE`` is False and
``numpyvae/nn/__init__.py`` turns every ``use_kernels`` off, with a one-line note.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

_KERNELS = __name__.rsplit(".", 2)[0] + ".kernels"  # numpyvae.kernels


def _numba_installed() -> bool:
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # blocked, or a broken entry in sys.modules
        return False


KERNELS_AVAILABLE = _numba_installed()


class LazyModule:
    """Stands for ``numpyvae.kernels`` (or one of its modules) until a name is read."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


def lazy(module: str = "") -> LazyModule:
    """``numpyvae.kernels.<module>`` (the package itself for ""), imported when first used."""
    return LazyModule(_KERNELS + (f".{module}" if module else ""))
