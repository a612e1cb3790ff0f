"""The figure ``latent_health.png``: KL per latent dimension, sorted, active units marked.

Drawn from the ``LatentHealth`` of ``numpyvae.models.latent_health.latent_health`` (or
``evaluate_latent``), with the plumbing of ``plots.py``: a matplotlib Figure on
its own Agg canvas (never pyplot), written to a temporary name and renamed into
place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models.latent_health import LatentHealth, evaluate_latent
from ..models.vae import VAE
from .plots import new_figure, save_figure

__all__ = ["LATENT_HEALTH_NAME", "make_latent_health_figure", "save_latent_health"]

LATENT_HEALTH_NAME = "latent_health.png"
ACTIVE_COLOR = "tab:blue"
INACTIVE_COLOR = "tab:gray"


def save_latent_health(result: LatentHealth, path: str | Path, label: str | None = None
                       ) -> Path:
    """Bars of KL_j (nats, mean over images), largest first, active dimensions in colour.

    result: a ``LatentHealth`` (of ``latent_health``); label: a run name for the title.
    Returns path.
    """
    if not isinstance(result, LatentHealth):
        raise ValueError(f"save_latent_health: expected the LatentHealth of latent_health, "
                         f"got {type(result).__name__}")
    kl = np.asarray(result.kl_per_dim, dtype=np.float64)
    d = len(kl)
    order = np.argsort(-kl, kind="stable")
    active = set(result.active_dims)
    is_active = np.array([j in active for j in order], dtype=bool)
    fig = new_figure(max(5.0, min(14.0, 2.0 + 0.3 * d)), 3.8)
    ax = fig.add_subplot()
    positions = np.arange(d)
    for mask, color, name in (
        (is_active, ACTIVE_COLOR, f"active (Var_x(E_q[z_j|x]) > {result.threshold:g})"),
        (~is_active, INACTIVE_COLOR, "inactive"),
    ):
        if mask.any():
            ax.bar(positions[mask], kl[order][mask], color=color, label=name)
    ax.set_xticks(positions, [f"z{j}" for j in order], rotation=90 if d > 20 else 0,
                  fontsize=8 if d > 20 else 10)
    ax.set_xlim(-0.7, d - 0.3)
    ax.set_xlabel("latent dimension, by KL")
    ax.set_ylabel("KL(q(z_j|x) ‖ p(z_j)), nats")
    ax.legend(loc="upper right", fontsize=8)
    title = (f"{len(active)} of {d} latent dimensions active, KL {kl.sum():.2f} nats "
             f"(n = {result.n_images:,})")
    if result.mi is not None:
        title += f"\nI(x; z) = {result.mi:.2f} ± {result.mi_se:.2f} nats " \
                 f"(≤ log N = {result.log_n:.2f})"
    ax.set_title(f"{label}: {title}" if label else title, fontsize=10)
    return save_figure(fig, path)


def make_latent_health_figure(vae: VAE, x: np.ndarray, y: np.ndarray | None, path: str | Path,
                              label: str | None = None) -> Path:
    """Encode x (labels y for a conditional model) in eval mode and draw ``latent_health.png``
    without the mutual information, which the figure does not need (``plot``'s entry)."""
    return save_latent_health(evaluate_latent(vae, x, y, with_mi=False), path, label)
