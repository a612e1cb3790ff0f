"""The figures of a trained VAE, as PNG files: samples, reconstructions, curves, latent space.

Every figure is a ``matplotlib.figure.Figure`` drawn by the Agg canvas directly,
never through ``pyplot``: no global backend is selected, so importing this module
changes nothing for a reader working interactively, and no figure is left open
in a pyplot registry. Each ``save_*`` function writes its PNG atomically (to a
temporary name in the same folder, then renamed) and returns the path. Figures
that are all grey (the image grids) are stored as 8-bit grey PNGs, half the size.

The model runs in eval mode while a figure is drawn (which only matters for
BatchNorm) and goes back to training mode afterwards if it was in it. Model
calls are batched, so a figure over the 10,000 test images needs little memory.

Images are (N, 1, H, W) floats in [0, 1]; values outside are clipped for display.

For composite figures (a row of sample grids across z, an AE-vs-VAE scatter
pair), the building blocks are public: ``new_figure``, ``save_figure``,
``draw_image_grid``, ``draw_latent_scatter`` and ``latent_means``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image
from scipy.special import ndtri  # the standard normal's quantile function, norm.ppf

from ..models.vae import VAE
from ..training.checkpoint import atomic_write

BATCH = 1000  # images per model call: a few MB of activations for either model
DPI = 100
FIGURE_NAMES = (
    "samples.png",
    "reconstructions.png",
    "curves.png",
    "interpolation.png",
    "latent_scatter.png",
)
MANIFOLD_NAME = "manifold.png"  # only for latent_dim == 2
# run_figures.make_figures interpolates from the first test image of one class to the first of
# another; 0 and 1 lie far apart in latent space, so the path crosses other digits.
INTERPOLATION_CLASSES = (0, 1)
CLASS_COLORMAP = "tab10"


# -- figure plumbing ---------------------------------------------------------
def new_figure(width: float, height: float) -> Figure:
    """A figure (inches) on its own Agg canvas, with constrained layout."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and release its contents.

    A failed write (a full or read-only disk) leaves no file behind and raises an
    OSError that names ``path``.
    """
    path = Path(path)

    try:
        atomic_write(path, lambda tmp: _write_png(fig, tmp), suffix=".png")
    except OSError as e:
        if e.filename is None or str(e.filename) != str(path):
            raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from e
        raise
    finally:
        fig.clear()  # the figure is not in pyplot's registry: clearing it is all closing needs
    return path


def _write_png(fig: Figure, path: str) -> None:
    """Save as an 8-bit grey PNG when the figure is all grey, else RGB (RGBA if see-through).

    An RGBA PNG of a digit grid repeats each grey value four times; the grey file
    is half the size (a 20 × 20 manifold: about 160 kB instead of 340 kB).
    """
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    if not np.all(rgba[..., 3] == 255):
        fig.savefig(path, format="png")
        return
    rgb = rgba[..., :3]
    grey = bool(np.all(rgb == rgb[..., :1]))
    Image.fromarray(np.ascontiguousarray(rgb[..., 0] if grey else rgb)).save(
        path, format="png", optimize=True
    )


def _title(what: str, label: str | None) -> str:
    return f"{what} ({label})" if label else what


@contextmanager
def _eval_mode(vae: VAE) -> Iterator[VAE]:
    """Run the block in eval mode, then restore training mode if the model was in it."""
    was_training = bool(
        getattr(vae.encoder, "training", False) or getattr(vae.decoder, "training", False)
    )
    vae.eval()
    try:
        yield vae
    finally:
        if was_training:
            vae.train()


def _batched(fn: Callable[..., Any], x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """fn applied to x (and the labels y, if given) in slices of BATCH rows, stacked."""
    if y is None:
        return np.concatenate([np.array(fn(x[i : i + BATCH])) for i in range(0, len(x), BATCH)])
    return np.concatenate([np.array(fn(x[i : i + BATCH], y[i : i + BATCH]))
                           for i in range(0, len(x), BATCH)])


def _as_batch(vae: VAE, x: np.ndarray, where: str) -> np.ndarray:
    """x as an (N, C, H, W) array in the model's dtype."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{where}: expected images of shape (N, C, H, W), got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=vae.dtype)


def _as_one_image(vae: VAE, x: np.ndarray, where: str) -> np.ndarray:
    """A single image given as (C, H, W) or (1, C, H, W), as a (1, C, H, W) batch."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(
            f"{where}: expected one image of shape (C, H, W) or (1, C, H, W), got {x.shape}"
        )
    return np.ascontiguousarray(x, dtype=vae.dtype)


def _decode(vae: VAE, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    return _batched(vae.decode, np.ascontiguousarray(z, dtype=vae.dtype), y)


def _labels_for(vae: VAE, y: np.ndarray | None, n: int) -> np.ndarray | None:
    """The labels a conditional model needs (None for a plain one)."""
    if not getattr(vae, "conditional", False):
        return None
    if y is None:
        raise ValueError("this model is conditional on the class: give the labels y too")
    return np.asarray(y).reshape(-1)[:n]


def latent_means(vae: VAE, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """The posterior means m of q(z|x) for images x (N, C, H, W): (N, latent_dim), eval mode.

    ``y``: the class labels (N,), needed by a conditional model only.
    """
    x = _as_batch(vae, x, "latent_means")
    y = _labels_for(vae, y, len(x))
    with _eval_mode(vae):
        if y is None:
            return _batched(lambda b: vae.encode(b)[0], x)
        return _batched(lambda b, yb: vae.encode(b, yb)[0], x, y)


# -- drawing on an Axes ------------------------------------------------------
def tile(images: np.ndarray, cols: int, pad: int = 2, fill: float = 1.0) -> np.ndarray:
    """Lay out grey images (N, H, W) or (N, 1, H, W) row by row, ``cols`` per row.

    Returns one 2-D array with ``pad`` pixels of ``fill`` between images; the last
    row is filled with ``fill`` where it runs short.
    """
    images = np.asarray(images)
    if images.ndim == 4:
        if images.shape[1] != 1:
            raise ValueError(f"tile: expected grey images (N, 1, H, W), got {images.shape}")
        images = images[:, 0]
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"tile: expected images (N, H, W) with N >= 1, got {images.shape}")
    n, h, w = images.shape
    rows = math.ceil(n / cols)
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad), fill, np.float32)
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img
    return out


def draw_image_grid(
    ax: Axes, images: np.ndarray, cols: int, title: str | None = None, pad: int = 2
) -> None:
    """Show grey images as one grid on ``ax``: values clipped to [0, 1], no ticks."""
    grid = np.clip(tile(images, cols, pad=pad), 0.0, 1.0)
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)


def _pca_2d(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, d) points on their first two principal axes (SVD of the centred data).

    The points themselves are projected uncentred, so the latent origin (the prior's
    mean) stays at (0, 0) and an offset of the codes from it stays visible.
    Returns the (N, 2) projection and the fraction of variance each axis explains.
    Each axis's sign is fixed (largest loading positive) so reruns give the same picture.
    """
    centred = means - means.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2] * _largest_sign(vt[:2])[:, None]
    explained = s[:2] ** 2 / max(float(np.sum(s**2)), np.finfo(np.float64).tiny)
    return means @ axes.T, explained


def _largest_sign(rows: np.ndarray) -> np.ndarray:
    """The sign of each row's largest-magnitude entry (1 for an all-zero row)."""
    picked = rows[np.arange(len(rows)), np.argmax(np.abs(rows), axis=1)]
    return np.where(picked < 0, -1.0, 1.0)


def draw_latent_scatter(
    ax: Axes, means: np.ndarray, y: np.ndarray, seed: int = 0, legend: bool = True
) -> str:
    """Scatter latent means (N, d) coloured by class label y (N,) on ``ax``.

    d = 2: the means themselves; d > 2: their first two principal components;
    d = 1: a strip, the mean on x and the class on y (jittered with ``seed``).
    Returns a short description of the view, for the title.
    """
    means = np.asarray(means, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if means.ndim != 2 or len(means) != len(y) or len(y) == 0:
        raise ValueError(
            f"draw_latent_scatter: expected means (N, d) and labels (N,) with N >= 1, "
            f"got {means.shape} and {y.shape}"
        )
    d = means.shape[1]
    cmap = _class_colormap()
    classes = np.unique(y)
    if d == 1:
        jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, size=len(y))
        xy = np.stack([means[:, 0], y + jitter], axis=1)
        ax.set_xlabel("z (posterior mean)")
        ax.set_ylabel("class")
        ax.set_yticks(classes)
        view = "strip, classes jittered"
        legend = False  # the y axis already names the classes
    elif d == 2:
        xy = means
        ax.set_xlabel("z₁ (posterior mean)")
        ax.set_ylabel("z₂ (posterior mean)")
        view = "posterior means"
    else:
        xy, explained = _pca_2d(means)
        ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
        ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)")
        view = f"PCA of the {d}-D posterior means"
    # light lines through the origin: where the prior N(0, I) puts its mass
    ax.axvline(0.0, color="0.85", lw=0.8, zorder=0)
    if d >= 2:
        ax.axhline(0.0, color="0.85", lw=0.8, zorder=0)
        # a square box centred on the origin, so distance from the prior's mean and the
        # spread along each axis read true (fixed limits keep the layout stable)
        lim = 1.05 * float(np.max(np.abs(xy))) or 1.0
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal", adjustable="box")
    size = 4.0 if len(y) > 2000 else 10.0
    for k in classes:
        pts = xy[y == k]
        ax.scatter(pts[:, 0], pts[:, 1], s=size, color=cmap(int(k) % 10), alpha=0.6,
                   linewidths=0, label=str(k), rasterized=True)
    if legend:
        ax.legend(title="class", loc="center left", bbox_to_anchor=(1.0, 0.5),
                  markerscale=8.0 / size, frameon=False)
    return view


def _class_colormap() -> Any:
    from matplotlib import colormaps

    return colormaps[CLASS_COLORMAP]


# -- the figures of a run ----------------------------------------------------
# What a sample grid costs per image: the decoded image (784 float32), its tile in the
# grid with padding (30 × 30 float32) and the clipped copy imshow gets, plus the draws z;
# and matplotlib's drawing of that tile, which resamples the whole grid through float64
# and RGBA copies: about 70 bytes a grid pixel (tracemalloc's peak, matplotlib 3.10),
# 80 here (tests/figures/test_plots.py holds the estimate to a measured peak).
SAMPLE_BYTES = 784 * 4 + 2 * 30 * 30 * 4 + 64 + 30 * 30 * 80


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_sample_memory(n: int, what: str = "n") -> None:
    """Raise ValueError when a grid of n samples would not fit in the memory available."""
    available = available_memory()
    need = n * SAMPLE_BYTES
    if available is not None and need > available:
        raise ValueError(f"{what}: {n:,} samples need about {need / 1e9:,.1f} GB, but "
                         f"{available / 1e9:,.1f} GB are available; draw fewer (a grid of "
                         "10,000 already shows each digit at a few pixels)")


def save_samples(
    vae: VAE,
    path: str | Path,
    n: int = 100,
    seed: int = 0,
    label: str | None = None,
    labels: int | np.ndarray | None = None,
) -> Path:
    """Decode n draws z ~ N(0, I) (from ``default_rng(seed)``) as a square-ish grid.

    ``labels``: for a conditional model, the class to draw (one for all, or one each).
    """
    if n < 1:
        raise ValueError(f"save_samples: n must be >= 1, got {n}")
    check_sample_memory(n, "save_samples: n")
    z = np.random.default_rng(seed).standard_normal((n, vae.latent_dim), dtype=vae.dtype)
    y = None if labels is None else np.broadcast_to(np.asarray(labels), (n,))
    if y is not None and label is None:
        label = f"class {labels}" if np.ndim(labels) == 0 else None
    with _eval_mode(vae):
        images = _decode(vae, z, y)  # a plain model refuses labels
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = new_figure(6.0, 6.0 * rows / cols + 0.5)
    draw_image_grid(fig.add_subplot(), images, cols)
    fig.suptitle(_title(f"Samples from the prior, z = {vae.latent_dim}", label))
    return save_figure(fig, path)


def save_class_samples(
    vae: VAE, path: str | Path, n: int = 10, seed: int = 0, label: str | None = None
) -> Path:
    """For a conditional model: row k decodes the same n prior draws z with class k.

    The same z in every row: if the model separates style from class, a column
    keeps its slant and stroke while the digit changes down the rows.
    """
    if not getattr(vae, "conditional", False):
        raise ValueError("save_class_samples: the model is not conditional on the class")
    if n < 1:
        raise ValueError(f"save_class_samples: n must be >= 1, got {n}")
    k = vae.num_classes
    check_sample_memory(n * k, "save_class_samples: n")
    z = np.random.default_rng(seed).standard_normal((n, vae.latent_dim), dtype=vae.dtype)
    with _eval_mode(vae):
        images = _decode(vae, np.tile(z, (k, 1)), np.repeat(np.arange(k), n))
    fig = new_figure(0.6 * n + 0.6, 0.6 * k + 0.6)
    ax = fig.add_subplot()
    draw_image_grid(ax, images, n)
    ax.set_ylabel("class 0 (top) … 9 (bottom)")
    ax.set_xlabel(f"the same {n} draws z ~ N(0, I) in every row")
    fig.suptitle(_title(f"Conditional samples, z = {vae.latent_dim}", label))
    return save_figure(fig, path)


def save_reconstructions(
    vae: VAE,
    x: np.ndarray,
    path: str | Path,
    n: int = 10,
    label: str | None = None,
    y: np.ndarray | None = None,
) -> Path:
    """The first n images of x above their reconstructions (decoded posterior means).

    ``y``: the class labels, needed by a conditional model only.
    """
    x = _as_batch(vae, x, "save_reconstructions")[:n]
    if len(x) == 0:
        raise ValueError("save_reconstructions: no images given")
    y = _labels_for(vae, y, len(x))
    with _eval_mode(vae):
        recon = _batched(vae.reconstruct, x, y)
    width = max(6.0, 0.7 * len(x))
    fig = new_figure(width, 2 * width / len(x) + 0.8)  # two rows of square images and a title
    top, bottom = fig.subplots(2, 1)
    draw_image_grid(top, x, len(x))
    draw_image_grid(bottom, recon, len(x))
    top.set_title("original", loc="left", fontsize=9)
    bottom.set_title("reconstruction", loc="left", fontsize=9)
    fig.suptitle(_title(f"Reconstructions from the posterior mean, z = {vae.latent_dim}", label))
    return save_figure(fig, path)


def save_curves(
    history: Sequence[dict[str, Any]], path: str | Path, label: str | None = None
) -> Path:
    """Loss per image by epoch: train total/recon and test100 total; train and test100 KL.

    ``history`` is ``history.json``'s list: entries with ``epoch``, ``train`` and
    ``test100``, each of the latter {``loss``, ``recon``, ``kl``}.
    """
    if len(history) == 0:
        raise ValueError("save_curves: the history is empty (no finished epoch to plot)")
    epochs = [h["epoch"] for h in history]

    def series(split: str, key: str) -> tuple[list, list]:
        rows = [(h["epoch"], h[split][key]) for h in history if h.get(split)]
        return [r[0] for r in rows], [r[1] for r in rows]

    fig = new_figure(10.0, 4.2)
    loss_ax, kl_ax = fig.subplots(1, 2)
    style = {"marker": "o", "markersize": 4}
    loss_ax.plot(*series("train", "loss"), label="train: total", color="C0", **style)
    loss_ax.plot(*series("train", "recon"), label="train: reconstruction", color="C1", **style)
    loss_ax.plot(*series("test100", "loss"), label="test (100 images): total", color="C2",
                 linestyle="--", **style)
    loss_ax.set_title("Loss and reconstruction term")
    kl_ax.plot(*series("train", "kl"), label="train: KL", color="C3", **style)
    kl_ax.plot(*series("test100", "kl"), label="test (100 images): KL", color="C2",
               linestyle="--", **style)
    kl_ax.set_title("KL term")
    for ax in (loss_ax, kl_ax):
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean per image")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) == 1:  # one point: give it room instead of a zero-width axis
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
            ax.set_xticks(epochs)
        ax.margins(y=0.15)  # room for the legend above and below the lines
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(_title("Training curves", label))
    return save_figure(fig, path)


def save_interpolation(
    vae: VAE,
    x_a: np.ndarray,
    x_b: np.ndarray,
    path: str | Path,
    steps: int = 10,
    label: str | None = None,
) -> Path:
    """Decode ``steps`` points from m_a to m_b (both ends included), between the originals.

    m_a, m_b are the posterior means of the images x_a, x_b, each (C, H, W) or (1, C, H, W).
    """
    if steps < 2:
        raise ValueError(f"save_interpolation: steps must be >= 2, got {steps}")
    x_a = _as_one_image(vae, x_a, "save_interpolation")
    x_b = _as_one_image(vae, x_b, "save_interpolation")
    t = np.linspace(0.0, 1.0, steps, dtype=vae.dtype)[:, None]
    with _eval_mode(vae):
        m_a, m_b = vae.encode(np.concatenate([x_a, x_b]))[0]
        images = _decode(vae, (1 - t) * m_a + t * m_b)
    row = np.concatenate([x_a, images, x_b])
    fig = new_figure(0.75 * len(row), 1.5)
    axes = fig.subplots(1, len(row))
    captions = ["A"] + [f"{v:.2f}" for v in t[:, 0]] + ["B"]
    for ax, img, caption in zip(axes, row, captions, strict=True):
        draw_image_grid(ax, img[None], 1)
        ax.set_xlabel(caption, fontsize=8)
    fig.suptitle(
        _title(f"Interpolation between the posterior means of A and B, z = {vae.latent_dim}",
               label)
    )
    return save_figure(fig, path)


def save_manifold(vae: VAE, path: str | Path, n: int = 20, label: str | None = None) -> Path:
    """For z = 2: decode an n × n grid of z at the prior's 5%…95% quantiles (Kingma's figure).

    Column j has z₁ = Φ⁻¹(q_j), row i from the top has z₂ = Φ⁻¹(q_{n−1−i}), with
    q = linspace(0.05, 0.95, n), so equal steps in the grid hold equal prior mass.
    """
    if vae.latent_dim != 2:
        raise ValueError(
            f"save_manifold: the manifold is drawn for latent_dim = 2, got {vae.latent_dim}"
        )
    if n < 2:
        raise ValueError(f"save_manifold: n must be >= 2, got {n}")
    q = ndtri(np.linspace(0.05, 0.95, n))
    z1, z2 = np.meshgrid(q, q[::-1])  # z₂ grows upwards, as on a plot's y axis
    z = np.stack([z1.ravel(), z2.ravel()], axis=1).astype(vae.dtype)
    with _eval_mode(vae):
        images = _decode(vae, z)
    fig = new_figure(7.0, 7.4)
    ax = fig.add_subplot()
    draw_image_grid(ax, images, n, pad=0)
    ax.set_xlabel(f"z₁: prior quantiles 5% → 95% ({q[0]:.2f} → {q[-1]:.2f})")
    ax.set_ylabel(f"z₂: prior quantiles 5% → 95%, bottom to top ({q[0]:.2f} → {q[-1]:.2f})")
    fig.suptitle(_title("Decoded latent manifold, z = 2", label))
    return save_figure(fig, path)


def save_latent_scatter(
    vae: VAE,
    x: np.ndarray,
    y: np.ndarray,
    path: str | Path,
    seed: int = 0,
    label: str | None = None,
) -> Path:
    """The posterior means of images x coloured by class y.

    z = 2: the means themselves; z > 2: a 2-D PCA of them; z = 1: a strip.
    """
    means = latent_means(vae, x, y)
    fig = new_figure(7.0, 6.0 if vae.latent_dim >= 2 else 4.5)
    view = draw_latent_scatter(fig.add_subplot(), means, y, seed=seed)
    fig.suptitle(_title(f"Latent space by class, z = {vae.latent_dim}: {view}", label))
    return save_figure(fig, path)


def interpolation_pair(y: np.ndarray, classes: tuple[int, int] = INTERPOLATION_CLASSES
                       ) -> tuple[int, int]:
    """Indices of two images of different classes, chosen deterministically.

    The first image of ``classes[0]`` and of ``classes[1]`` when both occur; else the
    first image and the first of another class; else the first and the last image.
    """
    y = np.asarray(y).reshape(-1)
    if len(y) == 0:
        raise ValueError("interpolation_pair: no labels given")
    a, b = (np.flatnonzero(y == k) for k in classes)
    if len(a) and len(b):
        return int(a[0]), int(b[0])
    other = np.flatnonzero(y != y[0])
    return 0, int(other[0]) if len(other) else len(y) - 1
