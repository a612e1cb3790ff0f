"""The kernels, loaded at their first use, so the core imports and runs on NumPy alone.

``numpyvae/kernels/`` needs numba. A layer file names its kernels with
``conv_kernels = lazy("conv")``: that module, and numba with it, is imported the first
time a kernel runs. Without numba, ``KERNELS_AVAILABLE`` is False and
``numpyvae/nn/__init__.py`` turns every ``use_kernels`` off, with a one-line note.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any


def _numba_installed() -> bool:
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # blocked, or a broken entry in sys.modules
        return False


KERNELS_AVAILABLE = _numba_installed()


class LazyModule:
    """``numpyvae.kernels.<module>`` (the package for ""), imported when a name is read."""

    def __init__(self, module: str = "") -> None:
        self._name = (__name__.rsplit(".", 2)[0] + ".kernels." + module).rstrip(".")

    def __getattr__(self, attr: str) -> Any:  # only for a name not found: the first use
        if "_name" not in self.__dict__:
            raise AttributeError(attr)
        module = importlib.import_module(self._name)
        self.__dict__ = module.__dict__  # from now on a name is read from the module itself
        return getattr(module, attr)


lazy = LazyModule
