"""Where a gradient is wrong: a small map of the entries that differ from the reference.

The map shows *where*, never *what*: no number of either gradient, only which
entries are off (``#``) and which are right (``.``), laid out the way the layer
reads its input:

- conv layers: an H×W grid (``#`` where any (n, c) entry is off), so a border, a
  stride or the output_padding rows each make a picture; a kernel's K×K likewise;
- elementwise layers: split by the sign of x;
- BatchNorm: one mark per channel, with the mode;
- Dense: by row and column.

``Where.summary`` says the same in words for the hint, which calls an error
"all over" only when every entry is off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nn.gradcheck import TOLERANCE, rule_errors

MAX_SIDE = 16  # a grid wider or taller than this is shown by its first rows/columns


def wrong_entries(g: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Where g is off r under the project's rule (numpyvae/nn/gradcheck.py), entry by entry:
    |g − r| / max(|g| + |r|, 1e-3·max|r|) > TOLERANCE."""
    return rule_errors(g, r) > TOLERANCE


@dataclass
class Where:
    """The map's lines, and the same in words for the hint."""

    lines: list[str]
    summary: str
    everywhere: bool
    bad: int
    total: int


def _grid(mask: np.ndarray) -> list[str]:
    rows = ["".join("#" if b else "." for b in row[:MAX_SIDE]) for row in mask[:MAX_SIDE]]
    return [f"    {row}" for row in rows]


def _count(mask: np.ndarray) -> tuple[int, int]:
    return int(mask.sum()), int(mask.size)


def gradient_map(kind: str, name: str, g: np.ndarray, r: np.ndarray, x: np.ndarray | None = None,
                 training: bool | None = None) -> Where:
    """The map of ``name`` (dx, dweight, dbias) of a layer of ``kind`` ("conv", "elementwise",
    "batchnorm", "dense")."""
    bad = wrong_entries(g, r)
    n_bad, n = _count(bad)
    if kind == "elementwise" and x is not None:
        return _by_sign(name, bad, x)
    if kind == "batchnorm" or (kind == "conv" and bad.ndim == 1):
        return _by_channel(name, bad, training if kind == "batchnorm" else None)
    if kind == "conv" and bad.ndim == 4:
        return _by_pixel(name, bad)
    if bad.ndim == 1:
        bad = bad[None, :]
    if bad.ndim == 2:
        rows, cols = bad.any(axis=1), bad.any(axis=0)
        head = (f"  where {name} is wrong, rows × columns {bad.shape[0]} × {bad.shape[1]} "
                f"(# off, . right):")
        words = _rows_cols(rows, cols)
        return Where([head, *_grid(bad)], words, bool(bad.all()), n_bad, n)
    return Where([], f"{n_bad} of {n} entries", bool(bad.all()), n_bad, n)


def _by_pixel(name: str, bad: np.ndarray) -> Where:
    """(N, C, H, W) → H×W: # where any (n, c) is off."""
    img = bad.any(axis=(0, 1))
    n_bad, n = _count(img)
    axes = "kernel offsets" if name == "dweight" else "pixels"
    name = "forward's y" if name == "y" else name
    head = (f"  where {name} is wrong, {img.shape[0]} × {img.shape[1]} {axes} "
            f"(# some (n, c) off, . all right):")
    H, W = img.shape
    inner = img[1:-1, 1:-1] if H > 2 and W > 2 else np.zeros((0, 0), bool)
    edge = img.copy()
    if inner.size:
        edge[1:-1, 1:-1] = False
    if img.all():
        words = f"every one of the {n} {axes}"
    elif inner.size and not inner.any() and edge.any():
        words = f"{n_bad} of {n} {axes}, all on the border"
    elif img.any(axis=1).all() and not img.any(axis=0).all():
        words = f"{n_bad} of {n} {axes}, in some columns only"
    elif img.any(axis=0).all() and not img.any(axis=1).all():
        words = f"{n_bad} of {n} {axes}, in some rows only"
    else:
        words = f"{n_bad} of {n} {axes}"
    return Where([head, *_grid(img)], words, bool(img.all()), n_bad, n)


def _by_sign(name: str, bad: np.ndarray, x: np.ndarray) -> Where:
    neg, pos = x < 0, x > 0
    nb, nn_ = int((bad & neg).sum()), int(neg.sum())
    pb, pn = int((bad & pos).sum()), int(pos.sum())
    line = f"  where {name} is wrong: x < 0: {nb} of {nn_} entries;  x > 0: {pb} of {pn} entries"
    if nb and not pb:
        words = "only where x < 0"
    elif pb and not nb:
        words = "only where x > 0"
    else:
        words = f"{nb + pb} of {nn_ + pn} entries, where x < 0 and where x > 0"
    return Where([line], words, bool(bad.all()), nb + pb, bad.size)


def _by_channel(name: str, bad: np.ndarray, training: bool | None) -> Where:
    per = bad.reshape(bad.shape[0], -1).any(axis=1) if bad.ndim == 1 else \
        bad.any(axis=tuple(i for i in range(bad.ndim) if i != 1))
    n_bad, n = _count(per)
    mode = "" if training is None else (" in training mode" if training else " in eval mode")
    marks = " ".join("#" if b else "." for b in per[:MAX_SIDE * 2])
    line = f"  where {name} is wrong{mode}, by channel 0..{n - 1} (# off, . right): {marks}"
    words = (f"every channel{mode}" if per.all() else f"{n_bad} of {n} channels{mode}")
    return Where([line], words, bool(bad.all()), n_bad, n)


def _rows_cols(rows: np.ndarray, cols: np.ndarray) -> str:
    if rows.all() and cols.all():
        return "in every row and every column"
    parts = []
    if not rows.all():
        parts.append(f"rows {_indices(rows)} only")
    if not cols.all():
        parts.append(f"columns {_indices(cols)} only")
    return ", ".join(parts)


def _indices(mask: np.ndarray) -> str:
    return ", ".join(str(i) for i in np.flatnonzero(mask)[:8])
