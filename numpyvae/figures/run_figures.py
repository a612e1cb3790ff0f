"""A run's figures, drawn into its folder: ``make_figures`` from a model, its test images and
history; ``draw_run_figures`` from a run folder's checkpoint (what ``train`` draws at the end,
and ``learn train`` and ``reproduce`` after each run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import data
from ..models.vae import VAE
from ..training.run import load_run
from .latent_health_figure import LATENT_HEALTH_NAME, make_latent_health_figure
from .plots import (
    MANIFOLD_NAME,
    _as_batch,
    interpolation_pair,
    save_class_samples,
    save_curves,
    save_interpolation,
    save_latent_scatter,
    save_manifold,
    save_reconstructions,
    save_samples,
)


def draw_run_figures(out: str | Path, log: Callable[[str], None] = print) -> list[Path]:
    """Draw the figures of the run in ``out`` from its checkpoint (the model as saved),
    on the run's test images; returns their paths."""
    out = Path(out)
    run = load_run(out)
    x_test, y_test = data.load(run.config.dataset, "test", run.config.data_dir)
    if run.config.test_subset:
        x_test, y_test = x_test[:run.config.test_subset], y_test[:run.config.test_subset]
    paths = make_figures(run.vae, x_test, y_test, run.history, out, seed=run.config.seed)
    log(f"figures: {', '.join(p.name for p in paths)} in {out}")
    return paths


def run_figure_names(config: Any) -> list[str]:
    """The names of the figures ``make_figures`` writes for a run of ``config`` (a
    TrainConfig): a conditional model has no interpolation or manifold, only z = 2 a
    manifold, the autoencoder no latent_health."""
    names = ["samples.png", "reconstructions.png", "curves.png", "latent_scatter.png"]
    if not config.conditional:
        names += ["interpolation.png"] + ([MANIFOLD_NAME] if config.latent_dim == 2 else [])
    return names + ([LATENT_HEALTH_NAME] if config.model == "vae" else [])


def make_figures(
    vae: VAE,
    x_test: np.ndarray,
    y_test: np.ndarray,
    history: Sequence[dict[str, Any]],
    run_dir: str | Path,
    seed: int = 0,
    label: str | None = None,
) -> list[Path]:
    """Write a run's figures into ``run_dir`` under their fixed names and return the paths.

    samples.png, reconstructions.png, curves.png, interpolation.png,
    latent_scatter.png, for latent_dim == 2 also manifold.png, and for a VAE
    latent_health.png (KL per latent dimension, the active ones marked).
    ``label`` (e.g. "MLP, MNIST") is added to every title.

    A conditional model gets samples.png as the class-by-style grid
    (``save_class_samples``), and no interpolation or manifold: both would need
    a class to decode with.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    x_test = _as_batch(vae, x_test, "make_figures")
    if len(x_test) != len(np.asarray(y_test).reshape(-1)):
        raise ValueError(
            f"make_figures: {len(x_test)} images but {np.asarray(y_test).size} labels"
        )
    if getattr(vae, "conditional", False):
        return [
            save_class_samples(vae, run_dir / "samples.png", seed=seed, label=label),
            save_reconstructions(vae, x_test, run_dir / "reconstructions.png", label=label,
                                 y=y_test),
            save_curves(history, run_dir / "curves.png", label=label),
            save_latent_scatter(vae, x_test, y_test, run_dir / "latent_scatter.png", seed=seed,
                                label=label),
        ] + _latent_health(vae, x_test, y_test, run_dir, label)
    i, j = interpolation_pair(y_test)
    paths = [
        save_samples(vae, run_dir / "samples.png", seed=seed, label=label),
        save_reconstructions(vae, x_test, run_dir / "reconstructions.png", label=label),
        save_curves(history, run_dir / "curves.png", label=label),
        save_interpolation(vae, x_test[i], x_test[j], run_dir / "interpolation.png", label=label),
        save_latent_scatter(vae, x_test, y_test, run_dir / "latent_scatter.png", seed=seed,
                            label=label),
    ]
    if vae.latent_dim == 2:
        paths.append(save_manifold(vae, run_dir / MANIFOLD_NAME, label=label))
    return paths + _latent_health(vae, x_test, None, run_dir, label)


def _latent_health(vae: Any, x: np.ndarray, y: np.ndarray | None, run_dir: Path,
                   label: str | None) -> list[Path]:
    """latent_health.png for a VAE; the autoencoder has no q(z|x) to draw it from."""
    if not isinstance(vae, VAE):
        return []
    return [make_latent_health_figure(vae, x, y, run_dir / LATENT_HEALTH_NAME, label=label)]
