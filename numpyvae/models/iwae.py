"""log p(x) by importance sampling: the IWAE estimate (Burda et al., 2016) and the ELBO.

The encoder's posterior q(z|x) = N(m, v) is the proposal. For each image, K
draws z_k = m + √v ⊙ ε_k give the importance weights

    log w_k = log p(x|z_k) + log N(z_k; 0, I) − log N(z_k; m, v)

and then

    ELBO     ≈ (1/K) Σ_k log w_k                 a lower bound on log p(x), on average
    log p(x) ≈ logsumexp_k(log w_k) − log K      the K-sample bound: ≥ the ELBO, and
                                                 rising to log p(x) as K grows

log p(x|z) is the likelihood's ``log_prob``: with its normalising constant,
−(D/2)·log(2πc) for the Gaussian decoder (a density: the value can be
positive), 0 for the Bernoulli one (a probability of binary images: ≤ 0).

The model runs in its own dtype; every log-density is summed in float64, so
that a sum over 784 pixels of terms of size ~1 keeps its last digits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import logsumexp

from ..nn import Conv2d, ConvTranspose2d
from .vae import VAE

__all__ = ["IWEstimate", "log_likelihood", "log_weights"]

LOG_2PI = math.log(2 * math.pi)


@dataclass
class IWEstimate:
    """Means over n images, in nats per image; ``*_se`` their standard errors over images."""

    k: int  # importance samples per image
    n: int  # images
    elbo: float  # mean over images of the per-image mean over the K samples of log w
    log_px: float  # mean over images of logsumexp_k(log w) − log K
    log_px_se: float  # standard error of log_px over images: std / √n (NaN for n = 1)
    elbo_se: float
    log_normalizer: float  # the constant in both (Gaussian: −(D/2)·log(2πc); Bernoulli: 0)
    likelihood: str  # "gaussian" | "bernoulli"
    seconds: float

    def as_dict(self) -> dict:
        """The fields, with NaN as None so that the dict is strict JSON."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


def log_normal_diag(z: np.ndarray, mean: np.ndarray | float, var: np.ndarray | float
                    ) -> np.ndarray:
    """log N(z; mean, diag(var)) summed over the last axis: z (..., d) → (...)."""
    return -0.5 * np.sum((z - mean) ** 2 / var + np.log(var) + LOG_2PI, axis=-1)


def default_max_rows(model: VAE) -> int:
    """Decoder rows per call: 1,000 for a convolutional decoder (about 0.4 MB of activations
    per row for the report's CNN), 10,000 for an MLP (about 60 kB per row, and no faster
    with more)."""
    layers = getattr(model.decoder, "layers", [model.decoder])
    return 1_000 if any(isinstance(layer, (Conv2d, ConvTranspose2d)) for layer in layers) \
        else 10_000


def memory_needed(model: VAE, k: int, max_rows: int | None = None) -> int:
    """A rough upper estimate of ``log_likelihood``'s memory in bytes: a block's log-weights
    (images per decoder call × k, float64) with the temporaries of logsumexp and the mean
    over them (about three more copies), and one decoder call's activations (per row about
    40 kB for an MLP, 0.4 MB for the CNN: ``default_max_rows``)."""
    max_rows = default_max_rows(model) if max_rows is None else max_rows
    images = max(1, max_rows // k)
    per_row = 400_000 if default_max_rows(model) == 1_000 else 40_000
    return 4 * 8 * images * k + images * min(k, max_rows) * per_row


def log_likelihood(
    model: VAE,
    x: np.ndarray,
    y: np.ndarray | None = None,
    k: int = 1000,
    seed: int = 0,
    max_rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IWEstimate:
    """log p(x) by importance sampling with q(z|x) as proposal (Burda et al.'s IWAE bound),
    and the ELBO from the same draws.

    x: images (N, 1, 28, 28) (any (N, ...) the model takes), float; y: labels (N,) for a
    conditional model. k: importance samples per image. ε comes from
    ``np.random.default_rng(seed)``, image after image, so the result does not depend on
    ``max_rows``: the most decoder rows (images × samples) per decoder call, which bounds
    memory (None: ``default_max_rows``). ``progress(done, total)`` is called with the
    images done so far.
    The model runs in eval mode (BatchNorm's running statistics); its mode is restored.
    """
    t0 = time.perf_counter()
    max_rows = default_max_rows(model) if max_rows is None else max_rows
    per_image_log_px, per_image_elbo = [], []
    for block in _log_weight_blocks(model, x, y, k, seed, max_rows, progress):
        per_image_log_px.append(logsumexp(block, axis=1) - math.log(k))
        per_image_elbo.append(block.mean(axis=1))
    log_px, elbo = np.concatenate(per_image_log_px), np.concatenate(per_image_elbo)
    return IWEstimate(
        k=k,
        n=len(log_px),
        elbo=float(elbo.mean()),
        log_px=float(log_px.mean()),
        log_px_se=_standard_error(log_px),
        elbo_se=_standard_error(elbo),
        log_normalizer=float(model.likelihood.log_normalizer(math.prod(x.shape[1:]))),
        likelihood=model.likelihood.name,
        seconds=time.perf_counter() - t0,
    )


def log_weights(
    model: VAE,
    x: np.ndarray,
    y: np.ndarray | None = None,
    k: int = 1000,
    seed: int = 0,
    max_rows: int | None = None,
) -> np.ndarray:
    """Every log w, (N, k) float64: the draws ``log_likelihood`` makes with the same seed.

    For looking at the weights themselves (their spread, the effective sample size);
    holds N·k numbers, so keep N·k modest.
    """
    max_rows = default_max_rows(model) if max_rows is None else max_rows
    return np.concatenate(list(_log_weight_blocks(model, x, y, k, seed, max_rows, None)))


def _log_weight_blocks(
    model: VAE,
    x: np.ndarray,
    y: np.ndarray | None,
    k: int,
    seed: int,
    max_rows: int,
    progress: Callable[[int, int], None] | None,
) -> Iterator[np.ndarray]:
    """log w for consecutive blocks of images: (images in the block, k) float64 each."""
    x, y = _check_inputs(model, x, y, k, max_rows)
    n, d = len(x), model.latent_dim
    # Whole images per decoder call while k fits in max_rows; else one image, k in pieces.
    images_per_call = max(1, max_rows // k)
    samples_per_call = min(k, max_rows)
    rng = np.random.default_rng(seed)
    modes = [(net, net.training) for net in (model.encoder, model.decoder)]
    model.eval()
    try:
        for start in range(0, n, images_per_call):
            xb = x[start:start + images_per_call]
            yb = None if y is None else y[start:start + images_per_call]
            m, v = (a.astype(np.float64) for a in model.encode(xb, yb))
            block = np.empty((len(xb), k))
            for s0 in range(0, k, samples_per_call):
                ks = min(samples_per_call, k - s0)
                # Drawn image-major, so the stream of ε is the same however it is split.
                eps = rng.standard_normal((len(xb), ks, d))
                z = m[:, None, :] + np.sqrt(v)[:, None, :] * eps  # (images, ks, d)
                rows = z.reshape(-1, d)
                x_rep = np.repeat(xb, ks, axis=0)  # exact in any dtype: out makes it float64
                y_rep = None if yb is None else np.repeat(yb, ks)
                out = model.decode_logits(rows, y_rep).astype(np.float64)
                log_px_z = model.likelihood.log_prob(x_rep, out).reshape(len(xb), ks)
                log_pz = log_normal_diag(z, 0.0, 1.0)
                log_qz = log_normal_diag(z, m[:, None, :], v[:, None, :])
                block[:, s0:s0 + ks] = log_px_z + log_pz - log_qz
            yield block
            if progress is not None:
                progress(start + len(xb), n)
    finally:
        for net, training in modes:
            if training:
                net.train()


def _check_inputs(model: VAE, x: np.ndarray, y: np.ndarray | None, k: int, max_rows: int
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Refuse what would give a wrong number or fail deep inside a layer; cast x."""
    if not isinstance(model, VAE):
        raise ValueError(f"log_likelihood: needs a VAE (a model with a posterior q(z|x) to "
                         f"sample from), got {type(model).__name__}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"log_likelihood: k (importance samples per image) must be an "
                         f"integer >= 1, got {k!r}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) \
            or max_rows < 1:
        raise ValueError(f"log_likelihood: max_rows must be an integer >= 1, got {max_rows!r}")
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        what = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"log_likelihood: expected float images (N, 1, 28, 28) with values "
                         f"in [0, 1], got {what}")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"log_likelihood: expected a batch of images (N, 1, 28, 28) with "
                         f"N >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("log_likelihood: the images contain NaN or infinite values")
    if model.conditional:
        if y is None:
            raise ValueError(f"log_likelihood: the model is conditional on the class: give "
                             f"labels y (N,) with values in [0, {model.num_classes})")
        y = np.asarray(y)
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"log_likelihood: expected integer labels of shape ({len(x)},), "
                             f"got {y.dtype} of shape {y.shape}")
        if y.min() < 0 or y.max() >= model.num_classes:
            raise ValueError(f"log_likelihood: labels must be in [0, {model.num_classes}), got "
                             f"values from {y.min()} to {y.max()}")
    elif y is not None:
        raise ValueError("log_likelihood: labels given, but the model is not conditional")
    return np.ascontiguousarray(x, dtype=model.dtype), y


def _standard_error(values: np.ndarray) -> float:
    if len(values) < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))
