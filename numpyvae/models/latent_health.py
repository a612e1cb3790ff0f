"""Is the latent space used? Per-dimension KL, active units and the mutual information I(x; z).

Everything is computed from the encoder's posterior q(z|x) = N(m(x), diag v(x)) on a
set of N images (the test set), with the prior p(z) = N(0, I), in nats:

    KL_j    = ½ mean_x(v_j + m_j² − 1 − log v_j)       per dimension j; Σ_j KL_j is the
                                                        KL of the training loss
    A_j     = Var_x(m_j) = Cov_x(E_q[z_j | x])         dimension j is *active* if A_j > 0.01
                                                        (Burda, Grosse & Salakhutdinov, 2016)
    I(x; z) = E_x[KL(q(z|x) ‖ p(z))] − KL(q(z) ‖ p(z))  under q, x uniform over the N images

q(z) = (1/N) Σ_j N(z; m_j, v_j) is the aggregate posterior, a mixture of N
Gaussians. Its KL from the prior has no closed form; it is estimated by Monte
Carlo: S draws z ~ q(z|x_i) for every image i, and I as the mean over them of
log q(z|x_i) − log q(z) (the same expectation, with log p(z) cancelled: see
``mutual_information``), with log q(z) = logsumexp_j log N(z; m_j, v_j) − log N.
Its standard error is over the draws, for the given images; KL(q(z) ‖ p) is
reported as Σ_j KL_j − I. Since q(z) ≥ q(z|x_i)/N at every z, I ≤ log N; near
that bound (every image's posterior apart from all the others') the estimate is
biased low and says more about N than about the model.

A dimension with KL_j ≈ 0 has q(z_j|x) ≈ p(z_j) for every x: the decoder gets
noise there, and the dimension is *collapsed*. Its mean is then the same for
every image, so A_j ≈ 0 too.

``latent_health(m, v)`` is the pure function (arrays in, a ``LatentHealth`` out, whose
``as_dict()`` is JSON-able);
``evaluate_latent(model, x)`` runs the encoder first; ``latent_report_lines``
turns it into console lines.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .vae import VAE

__all__ = [
    "ACTIVE_THRESHOLD",
    "CITATION",
    "LatentHealth",
    "active_units",
    "aggregate_log_density",
    "evaluate_latent",
    "kl_per_dimension",
    "latent_health",
    "latent_report_lines",
    "mutual_information",
    "posterior_moments",
]

ACTIVE_THRESHOLD = 0.01
CITATION = ("Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, "
            "ICLR 2016, arXiv:1509.00519")
LOG_2PI = math.log(2 * math.pi)
ENCODE_BATCH = 1000  # images per encoder call: a few MB of activations for the CNN
MAX_PAIRS = 2_000_000  # (draw, component) log-densities held at once: 16 MB per float64 array
MI_METHOD = ("Monte Carlo: S draws z ~ q(z|x_i) per image; I = mean over draws of "
             "log q(z|x_i) − log q(z), q(z) the mixture of the N posteriors")
MI_BOUND_NOTE = "I(x; z) ≤ log N for N images, and the estimate is biased low near that bound"
NEAR_BOUND = 1.0  # nats below log N from which an estimate of I is flagged as near the bound


# -- the encoder's posterior on a set of images --------------------------------
def posterior_moments(
    model: VAE,
    x: np.ndarray,
    y: np.ndarray | None = None,
    batch: int = ENCODE_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """q(z|x) = N(m, v) for every image: m and v, each (N, latent_dim) float64.

    x: images (N, 1, 28, 28) (any (N, ...) the model takes); y: labels (N,) for a
    conditional model. The encoder runs in eval mode (BatchNorm's running statistics,
    which it does not move), ``batch`` images per call; the model's mode is restored.
    """
    if not isinstance(model, VAE):
        raise ValueError(f"posterior_moments: needs a VAE (a model with a posterior q(z|x)), "
                         f"got {type(model).__name__}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"posterior_moments: batch must be an integer >= 1, got {batch!r}")
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
        what = x.shape if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"posterior_moments: expected a batch of images (N, 1, 28, 28) with "
                         f"N >= 1, got {what}")
    x = np.ascontiguousarray(x, dtype=model.dtype)
    modes = [(net, net.training) for net in (model.encoder, model.decoder)]
    model.eval()
    try:
        ms, vs = [], []
        for start in range(0, len(x), batch):
            yb = None if y is None else y[start:start + batch]
            m, v = model.encode(x[start:start + batch], yb)
            ms.append(m.astype(np.float64))
            vs.append(v.astype(np.float64))
    finally:
        for net, training in modes:
            if training:
                net.train()
    return np.concatenate(ms), np.concatenate(vs)


# -- the three figures -----------------------------------------------------------
def kl_per_dimension(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """KL_j = ½ mean_x(v_j + m_j² − 1 − log v_j): m, v (N, d) → (d,), in nats."""
    return 0.5 * np.mean(v + m * m - 1 - np.log(v), axis=0)


def active_units(m: np.ndarray, threshold: float = ACTIVE_THRESHOLD
                 ) -> tuple[np.ndarray, list[int]]:
    """Var_x(m_j), (d,), and the dimensions where it exceeds ``threshold``.

    Var is the population variance over the N images (ddof 0), as in Burda et al.
    """
    variance = np.var(m, axis=0)
    return variance, [int(j) for j in np.flatnonzero(variance > threshold)]


def _component_weights(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """W (2d + 1, N) such that [z², z, 1] @ W = log N(z; m_j, diag v_j) for every j.

    −½ Σ_k (z_k − μ_k)²/σ²_k − ½ Σ_k log σ²_k − (d/2) log 2π, expanded into
    z²·(−1/2σ²) + z·(μ/σ²) + const_j: one matrix product instead of an (M, N, d) array.
    In float64 the cancellation costs nothing that matters (terms of 1e8 at the
    variance floor lose ~1e-8).
    """
    inv = 1.0 / v
    const = -0.5 * (np.sum(m * m * inv, axis=1) + np.sum(np.log(v), axis=1)
                    + m.shape[1] * LOG_2PI)
    return np.concatenate([-0.5 * inv, m * inv, const[:, None]], axis=1).T


def aggregate_log_density(z: np.ndarray, m: np.ndarray, v: np.ndarray,
                          max_pairs: int = MAX_PAIRS) -> np.ndarray:
    """log q(z) for the mixture q(z) = (1/N) Σ_j N(z; m_j, v_j): z (M, d) → (M,) float64.

    Rows of z go in blocks of max_pairs // N, so at most about max_pairs (row, component)
    log-densities exist at once, whatever M and N.
    """
    z, m, v = (np.asarray(a, dtype=np.float64) for a in (z, m, v))
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, (int, np.integer)) \
            or max_pairs < 1:
        raise ValueError(f"aggregate_log_density: max_pairs must be an integer >= 1, "
                         f"got {max_pairs!r}")
    n = len(m)
    weights = _component_weights(m, v)
    rows = max(1, max_pairs // n)
    out = np.empty(len(z))
    for start in range(0, len(z), rows):
        zb = z[start:start + rows]
        log_dens = np.concatenate([zb * zb, zb, np.ones((len(zb), 1))], axis=1) @ weights
        top = log_dens.max(axis=1)
        log_dens -= top[:, None]  # logsumexp, in place: the block is the largest array here
        np.exp(log_dens, out=log_dens)
        out[start:start + rows] = top + np.log(log_dens.sum(axis=1)) - math.log(n)
    return out


def mutual_information(
    m: np.ndarray,
    v: np.ndarray,
    samples: int = 2,
    seed: int = 0,
    max_pairs: int = MAX_PAIRS,
    log_aggregate: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[float, float]:
    """I(x; z) under q and its standard error over the draws, in nats.

    m, v: (N, d), the posteriors of N images. ``samples`` (S >= 2) draws z_is ~ q(z|x_i)
    per image, ε from ``np.random.default_rng(seed)``, and

        I ≈ mean_is f_is,   f_is = log q(z_is|x_i) − log q(z_is)

    whose expectation is E_x[KL(q(z|x) ‖ p)] − KL(q(z) ‖ p): the log p(z) of the two
    terms cancels. Estimating only the second term by Monte Carlo (the first is exact)
    leaves log p(z) in it, whose spread grows with |m|: on posteriors far apart (I near
    log N, where trained VAEs are) its standard error is ~10⁴ times this one's.
    The images are fixed, so the variance of the mean is Σ_i Var(f_i·) / (N² S), each
    Var estimated from the image's S draws.
    ``log_aggregate(z, m, v)`` replaces ``aggregate_log_density`` (for tests).
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ValueError(f"mutual_information: samples (draws per image) must be an integer "
                         f">= 2, for the standard error; got {samples!r}")
    m, v = np.asarray(m, dtype=np.float64), np.asarray(v, dtype=np.float64)
    n, d = m.shape
    if log_aggregate is None:
        def log_aggregate(z: np.ndarray, mm: np.ndarray, vv: np.ndarray) -> np.ndarray:
            return aggregate_log_density(z, mm, vv, max_pairs)
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((n, samples, d))
    z = (m[:, None, :] + np.sqrt(v)[:, None, :] * eps).reshape(n * samples, d)
    log_q_zx = -0.5 * np.sum(eps * eps + np.log(v)[:, None, :] + LOG_2PI, axis=2)  # (N, S)
    f = log_q_zx - log_aggregate(z, m, v).reshape(n, samples)
    se = math.sqrt(float(np.sum(np.var(f, axis=1, ddof=1))) / (n * n * samples))
    return float(f.mean()), se


# -- the report --------------------------------------------------------------------
@dataclass(frozen=True)
class LatentHealth:
    """Everything about q(z|x) on N images (``latent_health``), in nats.

    ``as_dict()`` is the JSON form, its keys the fields in this order; the figure and the
    console lines read the fields. The ``mi`` fields are None when I(x; z) was skipped.
    """

    latent_dim: int
    n_images: int
    kl_per_dim: list[float]  # KL_j, mean over the images
    kl_total: float  # Σ_j KL_j: the KL of the training loss
    active_variance: list[float]  # A_j = Var_x(m_j)
    active: int  # how many dimensions are active (A_j > threshold)
    active_dims: list[int]
    inactive_dims: list[int]
    threshold: float
    citation: str
    collapse: str | None  # a warning naming the inactive dimensions, or None
    mi: float | None  # I(x; z) under q
    mi_se: float | None  # its standard error over the draws
    kl_aggregate: float | None  # KL(q(z) ‖ p) = kl_total − mi
    log_n: float  # the bound on I: log N
    mi_samples: int | None
    mi_seed: int | None
    mi_method: str | None
    mi_note: str
    mi_near_bound: bool | None  # I within NEAR_BOUND nats of log N
    unit: str = "nats"

    def as_dict(self) -> dict[str, Any]:
        """The JSON-able dict of the fields, in order."""
        return dataclasses.asdict(self)


def latent_health(
    m: np.ndarray,
    v: np.ndarray,
    threshold: float = ACTIVE_THRESHOLD,
    samples: int = 2,
    seed: int = 0,
    with_mi: bool = True,
    max_pairs: int = MAX_PAIRS,
) -> LatentHealth:
    """Everything about q(z|x) on N images, as a ``LatentHealth``.

    m, v: (N, d) means and variances of q(z|x) (``posterior_moments``). ``with_mi=False``
    skips the O(N² S d) estimate of I (mi and mi_se are then None), for a figure.
    """
    m, v = _checked_moments(m, v, threshold)
    n, d = m.shape
    kl = kl_per_dimension(m, v)
    variance, active = active_units(m, threshold)
    inactive = [j for j in range(d) if j not in set(active)]
    mi = mi_se = near_bound = None
    if with_mi:
        mi, mi_se = mutual_information(m, v, samples, seed, max_pairs)
        near_bound = bool(mi > math.log(n) - NEAR_BOUND)
    collapse = None
    if inactive:
        collapse = (f"posterior collapse: {len(active)} of {d} latent dimensions active; "
                    f"inactive (Var_x(E_q[z_j|x]) <= {threshold:g}): "
                    f"{', '.join(map(str, inactive))}")
    return LatentHealth(
        latent_dim=d,
        n_images=n,
        kl_per_dim=[float(k) for k in kl],
        kl_total=float(np.sum(kl)),
        active_variance=[float(a) for a in variance],
        active=len(active),
        active_dims=active,
        inactive_dims=inactive,
        threshold=float(threshold),
        citation=CITATION,
        collapse=collapse,
        mi=mi,
        mi_se=mi_se,
        kl_aggregate=None if mi is None else float(np.sum(kl)) - mi,
        log_n=math.log(n),
        mi_samples=samples if with_mi else None,
        mi_seed=seed if with_mi else None,
        mi_method=MI_METHOD if with_mi else None,
        mi_note=MI_BOUND_NOTE,
        mi_near_bound=near_bound,
    )


def _checked_moments(m: np.ndarray, v: np.ndarray, threshold: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """m and v as float64 (N, d) arrays, N, d >= 1, finite, v > 0; and threshold >= 0."""
    m, v = np.asarray(m, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if m.ndim != 2 or m.shape != v.shape or len(m) == 0 or m.shape[1] == 0:
        raise ValueError(f"latent_health: expected means and variances of the same shape "
                         f"(N, d) with N, d >= 1, got {m.shape} and {v.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(v))):
        raise ValueError("latent_health: the means or variances contain NaN or infinite values")
    if not np.all(v > 0):
        raise ValueError(f"latent_health: variances must be > 0, got a minimum of {v.min()}")
    if not threshold >= 0:
        raise ValueError(f"latent_health: threshold must be >= 0, got {threshold}")
    return m, v


def evaluate_latent(
    model: VAE,
    x: np.ndarray,
    y: np.ndarray | None = None,
    threshold: float = ACTIVE_THRESHOLD,
    samples: int = 2,
    seed: int = 0,
    with_mi: bool = True,
    batch: int = ENCODE_BATCH,
    max_pairs: int = MAX_PAIRS,
) -> LatentHealth:
    """``latent_health`` of the model's posterior on the images x (and labels y, for a
    conditional model), encoded in eval mode; parameters and buffers do not change."""
    m, v = posterior_moments(model, x, y, batch)
    return latent_health(m, v, threshold, samples, seed, with_mi, max_pairs)


def latent_report_lines(result: LatentHealth) -> list[str]:
    """A ``LatentHealth`` as console lines (no trailing newlines)."""
    d, n = result.latent_dim, result.n_images
    kl = result.kl_per_dim
    order = sorted(range(d), key=lambda j: -kl[j])
    active = set(result.active_dims)
    lines = [
        f"Latent space: z = {d}, on n = {n:,} images (q(z|x) in eval mode), in nats",
        f"  KL per dimension, mean over images (sum {result.kl_total:.2f} = the KL of the "
        "loss):",
    ]
    for j in order:
        mark = "active" if j in active else "inactive"
        lines.append(f"    z{j:<3d} KL {kl[j]:8.3f}   Var_x(E_q[z_j|x]) "
                     f"{result.active_variance[j]:9.4f}   {mark}")
    lines.append(f"  Active units: {result.active} of {d} (Var_x(E_q[z_j|x]) > "
                 f"{result.threshold:g}; {result.citation})")
    if result.mi is not None:
        lines.append(f"  I(x; z) under q: {result.mi:.3f} ± {result.mi_se:.3f} nats "
                     f"(± one standard error over {result.mi_samples} draws per image)")
        lines.append(f"    {result.mi_method}")
        lines.append(f"    = KL of the loss {result.kl_total:.3f} − KL(q(z) ‖ p(z)) "
                     f"{result.kl_aggregate:.3f}")
        lines.append(f"    {result.mi_note}: here log N = {result.log_n:.3f}")
        if result.mi_near_bound:
            lines.append(f"    the estimate is within {NEAR_BOUND:g} nat of log N: the images' "
                         "posteriors barely overlap, and it is biased low")
    if result.collapse:
        lines.append(f"warning: {result.collapse}")
    return lines
