"""One thread count for numba's kernels and every BLAS the process has loaded.

NumPy and SciPy each ship their own OpenBLAS (numba's ``np.dot`` calls SciPy's),
and numba has its own pool; ``--threads N`` must reach all three, or two pools
fight over the same cores.
"""

from __future__ import annotations

from typing import Any

_limits: Any = None  # keeps threadpoolctl's limit in force for the life of the process


def max_threads() -> int:
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
