"""Adam's state for a checkpoint: the step count t and the moments m and v.

Any optimizer that keeps ``t``, ``m`` (a list of arrays, one per param) and ``v``
(the same) fits, so a learner's Adam (``numpyvae/learn/stubs/adam.py``) checkpoints
and resumes like the package's. The checkpoint code (``checkpoint.py``) stores the
flat dict as ``optim/t``, ``optim/m.0``, ...

The state is part of what a checkpoint keeps only when finite: a v that overflowed (a
gradient whose square is beyond float32) freezes its parameters for good, while the loss
and the parameters stay finite (``non_finite_moments``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def optimizer_state(optimizer: Any) -> dict[str, Any]:
    """The state a checkpoint needs, as a flat dict ready for ``np.savez(**state)``:
    ``t`` (int), and ``m.0``, ``m.1``, …, ``v.0``, ``v.1``, … (copies, in param order)."""
    state: dict[str, Any] = {"t": int(optimizer.t)}
    for i, (m, v) in enumerate(zip(optimizer.m, optimizer.v, strict=True)):
        state[f"m.{i}"] = m.copy()
        state[f"v.{i}"] = v.copy()
    return state


def non_finite_moments(optimizer: Any) -> str:
    """Where the moments hold NaN or infinity: "" when every number is finite, else how
    many and in which arrays, e.g. ``5,514 of 104,360 numbers, in v.0, v.2``."""
    named = [(f"{k}.{i}", a) for k, arrays in (("m", optimizer.m), ("v", optimizer.v))
             for i, a in enumerate(arrays)]
    bad = {name: int(a.size - np.isfinite(a).sum()) for name, a in named}
    bad = {name: n for name, n in bad.items() if n}
    if not bad:
        return ""
    return (f"{sum(bad.values()):,} of {sum(a.size for _, a in named):,} numbers, in "
            f"{', '.join(list(bad)[:3])}{'…' if len(bad) > 3 else ''}")


def load_optimizer_state(optimizer: Any, state: Mapping[str, Any]) -> None:
    """Restore from ``optimizer_state`` output (or an ``np.load`` of it), writing in place.

    Everything is checked before anything is written, so a mismatched state leaves
    the optimizer untouched (a ValueError names the entry).
    """
    n = len(optimizer.m)
    expected = {"t"} | {f"{k}.{i}" for k in "mv" for i in range(n)}
    got = set(state.keys())
    if got != expected:
        raise ValueError(
            f"Adam: state does not fit these {n} params: missing {sorted(expected - got)}, "
            f"unexpected {sorted(got - expected)}"
        )
    for k, arrays in (("m", optimizer.m), ("v", optimizer.v)):
        for i, a in enumerate(arrays):
            if np.shape(state[f"{k}.{i}"]) != a.shape:
                raise ValueError(f"Adam: {k}.{i} has shape {np.shape(state[f'{k}.{i}'])} in "
                                 f"the state, expected {a.shape}")
            if not np.isfinite(state[f"{k}.{i}"]).all():
                raise ValueError(f"Adam: {k}.{i} holds NaN or infinity in the state")
    t = int(state["t"])
    if t < 0:
        raise ValueError(f"Adam: step count t must be non-negative, got {t}")
    for k, arrays in (("m", optimizer.m), ("v", optimizer.v)):
        for i, a in enumerate(arrays):
            a[...] = state[f"{k}.{i}"]
    optimizer.t = t
