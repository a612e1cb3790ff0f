"""Every thread and BLAS decision of the package, in one place.

Three thread pools live in the process: numba's (the kernels' parallel loops),
NumPy's OpenBLAS and SciPy's OpenBLAS (the one numba's ``np.dot`` calls).

- ``set_threads(n)`` sets numba's pool and every BLAS to n threads
  (``--threads N``), so no two pools fight over the same cores.
- ``pin_inner_blas()`` then keeps SciPy's OpenBLAS at one thread: the kernels
  call it from inside numba's parallel loops, one call per worker thread, and
  a BLAS that spawned threads of its own there would oversubscribe the cores
  and make results depend on the thread count.
- The Dense layers' products (``products.matmul``): small ones are one single-threaded
  BLAS call on the calling thread; large ones use NumPy's own BLAS at ``--threads``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_limits: Any = None  # keeps threadpoolctl's limit in force for the life of the process
_inner_blas: list = []  # threadpoolctl controllers of the BLAS that numba's np.dot calls


def max_threads() -> int:
    """numba's pool size: the most threads ``set_threads`` accepts."""
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def set_threads(n: int) -> None:
    """Use ``n`` threads in numba kernels and in BLAS calls from now on."""
    global _limits
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  load SciPy's OpenBLAS now, so the limit reaches it
    from threadpoolctl import threadpool_limits

    top = max_threads()
    if not 1 <= n <= top:
        raise ValueError(
            f"--threads must be between 1 and {top} (numba's pool size on this machine), got {n}"
        )
    numba.set_num_threads(n)
    _limits = threadpool_limits(limits=n, user_api="blas")


def pin_inner_blas() -> None:
    """Keep the BLAS behind numba's np.dot single-threaded.

    That BLAS is SciPy's own OpenBLAS (NumPy's is a separate library with its
    own thread count, untouched here). Checked on every call because a
    process-wide BLAS thread limit (``set_threads``) may have raised it since.
    """
    if not _inner_blas:
        import scipy
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba calls)
        from threadpoolctl import ThreadpoolController

        # SciPy's wheels keep their OpenBLAS in scipy.libs/ (or inside scipy/); a BLAS
        # shared with NumPy (system or conda builds) lives elsewhere and is left alone
        pkg = Path(scipy.__file__).resolve().parent
        homes = (str(pkg) + os.sep, str(pkg) + ".libs" + os.sep)
        found = [
            lib for lib in ThreadpoolController().lib_controllers
            if lib.user_api == "blas" and str(Path(lib.filepath).resolve()).startswith(homes)
        ]
        _inner_blas.append(found)
    for lib in _inner_blas[0]:
        if lib.num_threads != 1:
            lib.set_num_threads(1)
