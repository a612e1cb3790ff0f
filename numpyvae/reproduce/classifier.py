"""A small MNIST digit classifier from the package's own layers: the judge of sample quality.

The report judges its samples by eye ("not diverse", "diverse and real", "less
authentic"). A classifier trained on real digits turns that into two numbers for
a set of generated images (``score_samples``):

- confidence (authenticity): the mean over images of the largest class probability;
  a real-looking digit is classified with confidence, a smudge is not.
- diversity: the entropy, in bits, of the histogram of predicted classes; log2(10)
  ≈ 3.32 when every digit is drawn equally often, 0 when all are one digit.

The network is an MLP, 784 → 256 → 128 → 10 with ELU between, trained with softmax
cross-entropy (``losses.py``) and Adam (lr 1e-3, batch 128); ten epochs on the 60,000
training images reach about 97.7% test accuracy (measured: 97.3% after five).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import data
from ..models.architectures import NUM_CLASSES, PIXELS, _mlp
from ..nn import Flatten, Sequential
from ..nn.adam import Adam
from ..nn.losses import softmax, softmax_cross_entropy
from ..training.checkpoint import load_arrays_into, load_checkpoint, save_checkpoint

DEFAULT_HIDDEN = (256, 128)
BATCH = 1000  # images per call when predicting


class Classifier:
    """logits = MLP(x): images (N, 1, 28, 28) → logits (N, 10)."""

    def __init__(
        self,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.hidden = tuple(int(h) for h in hidden)
        rng = np.random.default_rng() if rng is None else rng
        self.net = Sequential(Flatten(), *_mlp((PIXELS, *self.hidden, NUM_CLASSES), dtype, rng))
        self.dlogits: np.ndarray | None = None

    @property
    def dtype(self) -> np.dtype:
        return self.parameters()[0][0].dtype

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.net.parameters()

    def named_parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return self.net.named_parameters()

    def named_arrays(self) -> dict[str, np.ndarray]:
        return self.net.named_arrays()

    def forward(self, x: np.ndarray, labels: np.ndarray) -> float:
        """The mean cross-entropy of a batch; keeps dL/dlogits for ``backward``."""
        loss, self.dlogits = softmax_cross_entropy(self.net.forward(x), labels)
        return loss

    def backward(self, dloss: float = 1.0) -> None:
        """Write dL/dθ into the layers' grads, for L = dloss · (mean cross-entropy):
        dlogits = dloss·(softmax − onehot)/N, back through the MLP."""
        if self.dlogits is None:
            raise RuntimeError("Classifier.backward called before forward: run forward first")
        self.net.backward(self.dlogits if dloss == 1.0 else self.dlogits * dloss)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, 10) for images (N, 1, 28, 28), in batches."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if len(x) == 0:
            return np.zeros((0, NUM_CLASSES), self.dtype)
        return np.concatenate([self.net.infer(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (N, 10)."""
        return softmax(self.logits(x))

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """The fraction of images whose most probable class is the label."""
        return float(np.mean(np.argmax(self.logits(x), axis=1) == np.asarray(y)))


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    log: Callable[[str], None] = print,
) -> Classifier:
    """Train a Classifier on images x (N, 1, 28, 28) and labels y (N,) with Adam."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"train_classifier: epochs and batch_size must be >= 1, "
                         f"got {epochs} and {batch_size}")
    clf = Classifier(hidden, dtype=x.dtype, rng=np.random.default_rng([seed, 2]))
    adam = Adam(clf.parameters(), lr=lr)
    for epoch in range(epochs):
        total, count = 0.0, 0
        for idx in data.batches(len(x), batch_size, seed, epoch):
            loss = clf.forward(x[idx], y[idx])
            if not math.isfinite(loss):
                raise RuntimeError(f"classifier: loss became {loss} in epoch {epoch + 1}")
            clf.backward()
            adam.step()
            total, count = total + loss * len(idx), count + len(idx)
        log(f"classifier epoch {epoch + 1}/{epochs}: cross-entropy {total / count:.4f}")
    return clf


def save_classifier(clf: Classifier, path: str | Path, info: dict[str, Any]) -> None:
    """Save the weights and ``info`` (JSON-able: accuracy, how it was trained) as .npz."""
    save_checkpoint(path, clf.named_arrays(), {}, {"hidden": list(clf.hidden), "info": info})


def load_classifier(path: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """The classifier saved at ``path`` and its ``info``."""
    arrays, _, meta = load_checkpoint(path)
    clf = Classifier(meta["hidden"], dtype=next(iter(arrays.values())).dtype)
    load_arrays_into(clf.named_arrays(), arrays, str(path))
    return clf, meta["info"]


@dataclass
class SampleScore:
    """How a classifier sees a set of images: confidence, diversity and the class histogram."""

    confidence: float  # mean of the largest class probability, in [0.1, 1]
    diversity: float  # entropy of the predicted-class histogram in bits, in [0, log2 10]
    histogram: list[int]  # images predicted as each class 0..9

    def as_dict(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "diversity": self.diversity,
                "histogram": self.histogram}


def score_samples(clf: Classifier, images: np.ndarray) -> SampleScore:
    """Score images (N, 1, 28, 28): mean confidence and the entropy of the predicted classes."""
    if len(images) == 0:
        raise ValueError("score_samples: no images given")
    p = clf.predict_proba(images).astype(np.float64)
    counts = np.bincount(np.argmax(p, axis=1), minlength=NUM_CLASSES)
    freq = counts[counts > 0] / counts.sum()
    entropy = float(np.sum(freq * np.log2(1 / freq)))  # written so one class gives +0, not −0
    return SampleScore(float(np.mean(np.max(p, axis=1))), entropy, [int(k) for k in counts])
