"""What the claims measure on a trained model, cached in its run folder as ``reproduce.json``.

- The latent means μ of the test set (the autoencoder's codes): their mean and std per
  dimension (claim D), and the mean over classes of ‖class mean of μ‖ (claim E).
- For MNIST models, the classifier's view of prior samples z ~ N(0, I): mean confidence
  and the entropy of the predicted classes (claim F).

The cache is keyed by what the numbers depend on (the run's final losses, the test
images, the sample count and the classifier), so a retrained run or a new classifier
is measured again and anything else is read back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import write_json
from ..classifier import Classifier, score_samples
from ..plots import latent_means
from ..run import load_run, read_json

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


def prior_samples(model: Any, n: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """n images decoded from z ~ N(0, I), in batches (the model is in eval mode)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, model.latent_dim), dtype=model.dtype)
    return np.concatenate([model.decode(z[i:i + SAMPLE_BATCH])
                           for i in range(0, n, SAMPLE_BATCH)])


def measure_run(
    run_dir: str | Path,
    x_test: np.ndarray,
    y_test: np.ndarray,
    classifier: Classifier | None,
    classifier_id: str | None,
    prior_samples_n: int,
) -> dict[str, Any]:
    """The measurements of a finished run, from its cache when still valid."""
    run_dir = Path(run_dir)
    final = read_json(run_dir / "final.json")
    config = read_json(run_dir / "config.json")
    scored = classifier is not None and config["dataset"] == "mnist"
    key = {"final_test": final["test"], "epochs": final["epochs"], "test_images": len(x_test),
           "prior_samples": prior_samples_n if scored else 0,
           "classifier": classifier_id if scored else None}
    cache = run_dir / MEASURES_FILE
    if cache.is_file():
        try:
            cached = read_json(cache)
        except (OSError, json.JSONDecodeError):
            cached = {}
        if cached.get("key") == key:
            return cached
    run = load_run(run_dir)
    result: dict[str, Any] = {"key": key,
                              "latent": latent_stats(latent_means(run.vae, x_test), y_test)}
    if scored:
        images = prior_samples(run.vae, prior_samples_n)
        result["samples"] = score_samples(classifier, images).as_dict()
    write_json(cache, result)
    return result
