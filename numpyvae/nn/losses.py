"""Softmax cross-entropy: the loss of a classifier, with its gradient.

For logits s (N, K) and integer labels y (N,), the mean negative log-likelihood

    L = −(1/N) Σ_n log softmax(s_n)[y_n],   softmax(s)_k = e^{s_k} / Σ_j e^{s_j}

is computed in the log-sum-exp form, which never exponentiates a positive number:

    log softmax(s)_k = (s_k − max s) − log Σ_j e^{s_j − max s}

Its gradient is  dL/ds = (softmax(s) − onehot(y)) / N.

(The VAE's own loss is not here: ``numpyvae/models/vae.py`` adds its two terms, the
reconstruction from ``numpyvae/models/likelihoods.py`` and the KL from
``nn/reparameterize.py``, beside its backward.)
"""

from __future__ import annotations

import numpy as np

from .layer import FLOAT_DTYPES


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, (N, K) → (N, K), stable for logits of any size."""
    shifted = logits - np.max(logits, axis=-1, keepdims=True)  # every entry ≤ 0
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities over the last axis, (N, K) → (N, K); each row sums to 1."""
    return np.exp(log_softmax(logits))


def _check(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if not isinstance(logits, np.ndarray) or logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"softmax_cross_entropy: expected logits of shape (N, K) with N >= 1, "
                         f"got {getattr(logits, 'shape', type(logits).__name__)}")
    if logits.dtype not in FLOAT_DTYPES:
        raise ValueError(f"softmax_cross_entropy: expected float32 or float64 logits, "
                         f"got dtype {logits.dtype}")
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"softmax_cross_entropy: expected integer labels of shape "
                         f"({logits.shape[0]},), got {labels.dtype} of shape {labels.shape}")
    k = logits.shape[1]
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"softmax_cross_entropy: labels must lie in 0..{k - 1}, "
                         f"got {labels.min()}..{labels.max()}")
    return labels


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of logits (N, K) against labels (N,), and dL/dlogits (N, K).

    L = −(1/N) Σ_n log softmax(s_n)[y_n];  dL/ds = (softmax(s) − onehot(y)) / N.
    The gradient has the logits' dtype.
    """
    labels = _check(logits, labels)
    n = logits.shape[0]
    rows = np.arange(n)
    log_p = log_softmax(logits)
    loss = -float(np.mean(log_p[rows, labels]))
    dlogits = np.exp(log_p)
    dlogits[rows, labels] -= 1
    dlogits *= 1.0 / n  # a python float: float32 stays float32
    return loss, dlogits
