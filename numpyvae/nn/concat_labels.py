"""ConcatLabels: append a one-hot class label to every row, for the conditional VAE."""

from __future__ import annotations

import numpy as np

from .layer import Layer


class ConcatLabels(Layer):
    """(N, D) → (N, D + K): [x, onehot(y)], with the labels set beforehand.

    The labels are a second input that is not learned and needs no gradient, so
    the model hands them over with ``set_labels`` before ``forward``; the layer
    then fits in a ``Sequential`` like any other.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if int(num_classes) < 2:
            raise ValueError(f"ConcatLabels: num_classes must be >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.labels: np.ndarray | None = None

    def set_labels(self, labels: np.ndarray) -> None:
        """Integer class labels (N,), each in [0, num_classes)."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"ConcatLabels: expected integer labels of shape (N,), got "
                             f"{labels.dtype} of shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"ConcatLabels: labels must be in [0, {self.num_classes}), got "
                             f"values from {labels.min()} to {labels.max()}")
        self.labels = labels

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x, (None, None))
        if self.labels is None:
            raise ValueError("ConcatLabels: no labels set: this model is conditional, "
                             "give it the class labels")
        if len(self.labels) != len(x):
            raise ValueError(f"ConcatLabels: {len(self.labels)} labels for a batch of "
                             f"{len(x)} rows")
        onehot = np.zeros((len(x), self.num_classes), dtype=x.dtype)
        onehot[np.arange(len(x)), self.labels] = 1
        self.cache = x
        return np.concatenate([x, onehot], axis=1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, D + K) → dx (N, D): the first D columns are x itself, the rest are
        the labels, which take no gradient."""
        x = self._saved()
        self.check_dout(dout, (x.shape[0], x.shape[1] + self.num_classes), x.dtype)
        return np.ascontiguousarray(dout[:, :x.shape[1]])

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"
