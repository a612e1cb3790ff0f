"""The sweep's figures, across runs, from the building blocks in ``plots.py``.

- ``{mlp,cnn}_mnist_z2.png``: samples from the prior, the decoded latent manifold and
  the latent scatter of one model (the report's figures 4 and 6)
- ``samples_across_z.png``: a row of sample grids across z, MLP above CNN (figures 8, 9)
- ``samples_across_c.png``: a row across the balance c (figure 10)
- ``ae_vs_vae.png``: the test set's latent codes of the autoencoder and the VAE (figure 1)
- ``losses_vs_report.png``: our losses beside the report's, for every run it has a figure for
- ``conditional_samples.png``: the conditional VAE at z = 2 and 20: row k asks for class
  k, and each column keeps the same z (experiment 5)

A panel whose run has not finished says so instead of failing. ``write_docs_png``
stores a copy with at most 128 colours, which keeps the curated set small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.special import ndtri

from ..figures.plots import (
    draw_image_grid,
    draw_latent_scatter,
    latent_means,
    new_figure,
    save_figure,
)
from ..training.checkpoint import atomic_write
from .experiments import report_figure
from .tables import group, mean

SAMPLE_SEED = 0
SCATTER_POINTS = 5000  # the first N test images: enough to show the clusters, a small PNG


def _samples(model: Any, n: int) -> np.ndarray:
    z = np.random.default_rng(SAMPLE_SEED).standard_normal((n, model.latent_dim),
                                                           dtype=model.dtype)
    return model.decode(z)


def _missing(ax: Any, title: str) -> None:
    ax.text(0.5, 0.5, "not run yet", ha="center", va="center", color="0.5")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def model_figure(model: Any, x: np.ndarray, y: np.ndarray, path: str | Path, label: str
                 ) -> Path:
    """Samples, the latent manifold (z = 2) and the latent scatter of one model, side by side."""
    fig = new_figure(13.5, 4.6)
    ax_s, ax_m, ax_z = fig.subplots(1, 3)
    draw_image_grid(ax_s, _samples(model, 64), 8, title="samples from the prior")
    if model.latent_dim == 2:
        q = ndtri(np.linspace(0.05, 0.95, 12))
        z1, z2 = np.meshgrid(q, q[::-1])
        grid = np.stack([z1.ravel(), z2.ravel()], axis=1).astype(model.dtype)
        draw_image_grid(ax_m, model.decode(grid), 12, pad=0,
                        title="latent manifold (prior quantiles 5%-95%)")
    else:
        _missing(ax_m, "latent manifold: z = 2 only")
    n = min(len(x), SCATTER_POINTS)
    view = draw_latent_scatter(ax_z, latent_means(model, x[:n]), y[:n])
    ax_z.set_title(f"latent scatter, {n:,} test images ({view})", fontsize=9)
    fig.suptitle(label)
    return save_figure(fig, path)


def samples_row_figure(rows: Sequence[tuple[str, Sequence[tuple[str, Any | None]]]],
                       path: str | Path, title: str, n: int = 36) -> Path:
    """Rows of sample grids: ``rows`` is [(row label, [(panel title, model or None), ...])]."""
    cols = max(len(panels) for _, panels in rows)
    fig = new_figure(2.3 * cols, 2.5 * len(rows) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(rows), cols))
    for (row_label, panels), ax_row in zip(rows, axes, strict=True):
        for k, ax in enumerate(ax_row):
            if k >= len(panels):
                ax.axis("off")
                continue
            panel_title, model = panels[k]
            if model is None:
                _missing(ax, panel_title)
            else:
                draw_image_grid(ax, _samples(model, n), int(np.sqrt(n)))
                ax.set_title(panel_title, fontsize=9)
        ax_row[0].set_ylabel(row_label)
    fig.suptitle(title)
    return save_figure(fig, path)


def conditional_figure(panels: Sequence[tuple[str, Any | None]], path: str | Path,
                       n: int = 10) -> Path:
    """Side by side, for each conditional model: row k decodes the same n draws of z with
    class k, so a column shows one style across the ten classes."""
    fig = new_figure(4.6 * len(panels), 5.2)
    for ax, (title, model) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels,
                                  strict=True):
        if model is None:
            _missing(ax, title)
            continue
        k = model.num_classes
        z = np.random.default_rng(SAMPLE_SEED).standard_normal((n, model.latent_dim),
                                                               dtype=model.dtype)
        draw_image_grid(ax, model.decode(np.tile(z, (k, 1)), np.repeat(np.arange(k), n)), n,
                        title=title)
        ax.set_ylabel("asked-for class 0 … 9 (top to bottom)", fontsize=8)
        ax.set_xlabel(f"the same {n} draws of z in every row", fontsize=8)
    fig.suptitle("Conditional VAE (MLP, MNIST): class by row, style by column")
    return save_figure(fig, path)


def ae_vs_vae_figure(ae: Any | None, vae: Any | None, x: np.ndarray, y: np.ndarray,
                     path: str | Path) -> Path:
    """The test set's latent codes: the autoencoder's beside the VAE's (the report's figure 1)."""
    n = min(len(x), SCATTER_POINTS)
    fig = new_figure(11.0, 5.2)
    axes = fig.subplots(1, 2)
    for k, (ax, model, name) in enumerate(zip(axes, (ae, vae), ("autoencoder", "VAE"),
                                              strict=True)):
        if model is None:
            _missing(ax, name)
            continue
        draw_latent_scatter(ax, latent_means(model, x[:n]), y[:n], legend=k == 1)
        what = "code" if name == "autoencoder" else "posterior mean"
        ax.set_xlabel(f"z₁ ({what})")
        ax.set_ylabel(f"z₂ ({what})")
        ax.set_title(f"{name}: codes of {n:,} test images", fontsize=10)
    fig.suptitle("Latent space of an autoencoder and a VAE (MLP, MNIST, z = 2)")
    return save_figure(fig, path)


def losses_figure(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Grouped bars: the report's final training loss, ours (train, mean ± sd) and ours (test)."""
    groups = [(key, g) for key, g in group(rows).items() if g[0]["report_loss"] is not None]
    fig = new_figure(max(6.0, 0.75 * len(groups) + 2), 4.8)
    ax = fig.add_subplot()
    if not groups:
        ax.text(0.5, 0.5, "no finished run has a report figure yet", ha="center", va="center")
        ax.axis("off")
        return save_figure(fig, path)
    xs = np.arange(len(groups))
    width = 0.27
    report = [g[0]["report_loss"] for _, g in groups]
    train = [mean([r["train"]["loss"] for r in g]) for _, g in groups]
    train_sd = [float(np.std([r["train"]["loss"] for r in g], ddof=1)) if len(g) > 1 else 0.0
                for _, g in groups]
    test = [mean([r["test"]["loss"] for r in g]) for _, g in groups]
    ax.bar(xs - width, report, width, label="report (final training loss)", color="0.6")
    ax.bar(xs, train, width, yerr=train_sd, capsize=2, label="ours: train (mean ± sd)",
           color="C0")
    ax.bar(xs + width, test, width, label="ours: full test set", color="C1")
    labels = []
    for (exp, _model, arch, dataset, z, hidden, *_), _ in groups:
        width_tag = f" h{hidden[-1]}" if hidden else ""
        data_tag = "F" if dataset == "fashion-mnist" else "M"
        fig_name = (report_figure(exp, arch, dataset, z) or ("?", 0))[0].replace("fig", "fig. ")
        labels.append(f"{arch.upper()}{width_tag}\n{data_tag} z{z}\n{fig_name}")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("loss per image")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Our losses beside the report's (M = MNIST, F = Fashion-MNIST, h10/h20: the "
                 "MLP's last hidden width)", fontsize=10)
    return save_figure(fig, path)


def write_docs_png(src: str | Path, dst: str | Path, colors: int = 128) -> Path:
    """Copy a PNG with an adaptive palette of at most ``colors`` colours (grey ones stay grey).

    The octree quantizer keeps the ten class colours of a scatter apart (median cut,
    swamped by the many greys of the digit grids, merged some of them).
    """
    dst = Path(dst)
    with Image.open(src) as img:
        img.load()
        if img.mode not in ("L", "P"):
            img = img.convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE,
                                              dither=Image.Dither.NONE)

        atomic_write(dst, lambda tmp: img.save(tmp, format="png", optimize=True), suffix=".png")
    return dst
