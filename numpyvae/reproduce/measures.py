"""What the claims measure on a trained model, cached in its run folder as ``reproduce.json``.

- The latent means μ of the test set (the autoencoder's codes): their mean and std per
  dimension (claim D), and the mean over classes of ‖class mean of μ‖ (claim E).
- For MNIST models, the classifier's view of prior samples z ~ N(0, I): mean confidence
  and the entropy of the predicted classes (claim F). A conditional model is asked for
  each class equally often, and also scored on how often it gets the asked-for class.
- log p(x): the importance-weighted estimate on the first test images (``iwae.py``),
  for every model with a posterior (not the autoencoder).
- The latent space's health (``models/latent_health.py``) on the test set, for every
  model with a posterior: KL per dimension and active units (experiment 6, and the
  active-units columns). Not I(x; z): on N test images it cannot exceed log N (9.2 nats
  for 10,000) nor the KL, and where the KL is above log N (the report's runs from z = 3
  on) the estimate shows only the bound, at a minute per run; ``evaluate`` gives it.

The cache is keyed by what the numbers depend on (the run's final losses, the test
images, the sample count and the classifier), so a retrained run or a new classifier
is measured again and anything else is read back. A cache written before the health
measure existed gets that measure added, the rest kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..figures.plots import latent_means
from ..models.iwae import log_likelihood
from ..models.latent_health import evaluate_latent
from ..training.checkpoint import write_json
from ..training.run import load_run, read_final, read_json
from ..training.train import TrainConfig, evaluation_images
from .classifier import Classifier, score_samples

MEASURES_FILE = "reproduce.json"
SAMPLE_SEED = 7  # prior samples for the classifier: the same draws for every model
SAMPLE_BATCH = 1000


def latent_stats(means: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Per-dimension mean and std of latent means (N, d), and the mean over classes of the
    distance of each class's mean from the origin."""
    means = np.asarray(means, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    centres = np.stack([means[y == k].mean(axis=0) for k in np.unique(y)])
    return {"mean": means.mean(axis=0).tolist(), "std": means.std(axis=0).tolist(),
            "cluster_distance": float(np.mean(np.linalg.norm(centres, axis=1)))}


def asked_labels(model: Any, n: int) -> np.ndarray | None:
    """For a conditional model, the class asked of each of n samples: 0, 1, …, 9, 0, 1, …
    (each class equally often); None for a plain model."""
    return np.arange(n) % model.num_classes if getattr(model, "conditional", False) else None


def prior_samples(model: Any, n: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """n images decoded from z ~ N(0, I), in batches (the model is in eval mode); a
    conditional model decodes them with ``asked_labels``."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, model.latent_dim), dtype=model.dtype)
    labels = asked_labels(model, n)
    return np.concatenate([
        model.decode(z[i:i + SAMPLE_BATCH], None if labels is None else labels[i:i + SAMPLE_BATCH])
        for i in range(0, n, SAMPLE_BATCH)])


def asked_scores(classifier: Classifier, images: np.ndarray, labels: np.ndarray
                 ) -> dict[str, float]:
    """How often the classifier gives the asked-for class, and its mean probability."""
    p = classifier.predict_proba(images)
    return {"rate": float(np.mean(np.argmax(p, axis=1) == labels)),
            "confidence": float(np.mean(p[np.arange(len(p)), labels]))}


def measure_run(
    run_dir: str | Path,
    x_test: np.ndarray,
    y_test: np.ndarray,
    classifier: Classifier | None,
    classifier_id: str | None,
    prior_samples_n: int,
    loglik_k: int = 0,
    loglik_images: int = 0,
) -> dict[str, Any]:
    """The measurements of a finished run, from its cache when still valid.

    ``loglik_k`` importance samples on the first ``loglik_images`` test images give
    log p(x); 0 skips it.
    """
    run_dir = Path(run_dir)
    final = read_final(run_dir)
    config = TrainConfig.from_json(read_json(run_dir / "config.json"),
                                   where=str(run_dir / "config.json"))
    scored = classifier is not None and config.dataset == "mnist"
    with_loglik = loglik_k > 0 and loglik_images > 0 and config.model == "vae"
    key = {"final_test": final["test"], "epochs": final["epochs"], "test_images": len(x_test),
           "prior_samples": prior_samples_n if scored else 0,
           "classifier": classifier_id if scored else None,
           "loglik": [loglik_k, min(loglik_images, len(x_test))] if with_loglik else None}
    cache = run_dir / MEASURES_FILE
    cached: dict[str, Any] = {}
    if cache.is_file():
        try:  # a damaged cache is measured again
            cached = read_json(cache)
        except (OSError, ValueError):
            cached = {}
        if not isinstance(cached, dict):
            cached = {}
    health_needed = config.model == "vae"
    if cached.get("key") == key and ("health" in cached or not health_needed):
        return cached
    run = load_run(run_dir)
    labels = y_test if run.vae.conditional else None
    x_eval = evaluation_images(config, x_test)  # a binarized run: its fixed binary draw
    if cached.get("key") == key:  # measured before the health measure existed: add it only
        result = dict(cached)
    else:
        result = {"key": key,
                  "latent": latent_stats(latent_means(run.vae, x_eval, labels), y_test)}
        if scored:
            images = prior_samples(run.vae, prior_samples_n)
            result["samples"] = score_samples(classifier, images).as_dict()
            asked = asked_labels(run.vae, prior_samples_n)
            if asked is not None:
                result["asked"] = asked_scores(classifier, images, asked)
        if with_loglik:
            n = min(loglik_images, len(x_test))
            result["loglik"] = log_likelihood(run.vae, x_eval[:n], None if labels is None
                                              else labels[:n], k=loglik_k).as_dict()
    if health_needed:
        result["health"] = evaluate_latent(run.vae, x_eval, labels, with_mi=False).as_dict()
    write_json(cache, result)
    return result
