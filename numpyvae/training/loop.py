"""The training loop a learner reads: for each batch, forward, backward, an Adam step.

Everything around it (data, resume, checkpoints, the history, the progress
line) lives in ``train.py``. The loop knows the model only through ``forward``
(returns the losses), ``backward`` (fills the grads), ``beta`` (the KL's weight, set
per batch during a warm-up) and its mode (``training``, ``train()``, ``eval()``:
evaluation runs in eval mode), and the optimizer only through ``step``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..models.vae import Losses

EVAL_SEED = 1234  # ε for evaluation: the same draws every epoch and every run
EVAL_BATCH = 1000

# A batch: images (B, 1, 28, 28) and, for a conditional model, labels (B,), else None.
Batch = tuple[np.ndarray, np.ndarray | None]


def kl_weight(beta: float, warmup_epochs: int, epoch: int, batch: int, batches_per_epoch: int
              ) -> float:
    """β for batch ``batch`` (0-based) of epoch ``epoch`` (0-based) under a linear KL
    warm-up over the first ``warmup_epochs`` epochs (Bowman et al. 2016; Sønderby et al.
    2016): β · min(1, (epoch·B + batch + 1) / (E·B)) with B batches per epoch.

    It rises by β/(E·B) after every step, reaches β at the last batch of epoch E and stays
    there; E = 0 is no warm-up. A pure function of its arguments: a resumed run computes
    the same β for every batch as an uninterrupted one.
    """
    if warmup_epochs == 0:
        return beta
    steps_done = epoch * batches_per_epoch + batch + 1
    return beta * min(1.0, steps_done / (warmup_epochs * batches_per_epoch))


class TrainingDiverged(RuntimeError):
    """A loss or a parameter became NaN or infinite; nothing of it was saved. ``losses``:
    the batch's losses when the loss is what was found non-finite."""

    def __init__(self, message: str, losses: Losses | None = None) -> None:
        super().__init__(message)
        self.losses = losses


def train_epoch(
    model: Any,
    optimizer: Any,
    batches: Iterable[Batch],
    rng: np.random.Generator,
    on_batch: Callable[[int, float], None] | None = None,
    beta_at: Callable[[int], float] | None = None,
) -> np.ndarray:
    """One pass over ``batches``; returns the mean (loss, recon, KL, objective) over the
    batches.

    The loss is the negative ELBO, recon + KL, averaged over the batch's images; the
    gradient is of the objective (recon + β·KL, with free bits if the model has them).
    ``beta_at(b)`` is β for batch b (0-based), set on the model before its forward
    (None: the model's β as it is). ``rng`` draws the ε of z = μ + σ·ε.
    ``on_batch(count, mean_loss)`` is called after each step (the progress line).
    """
    sums, count = np.zeros(4), 0
    for x, y in batches:
        if beta_at is not None:
            model.beta = beta_at(count)
        try:
            losses = model.forward(x, rng=rng, y=y)  # keeps the caches backward needs
        except FloatingPointError as e:  # np.errstate(... = "raise") in the caller
            raise TrainingDiverged(str(e)) from None
        if not (math.isfinite(losses.loss) and math.isfinite(losses.objective)):
            raise TrainingDiverged(f"the loss became {losses.loss} (recon {losses.recon}, "
                                   f"KL {losses.kl}, objective {losses.objective})", losses)
        model.backward()  # dL/dθ into every layer's grads
        optimizer.step()  # θ ← θ − lr · m̂ / (√v̂ + ε)
        sums += (losses.loss, losses.recon, losses.kl, losses.objective)
        count += 1
        if on_batch is not None:
            on_batch(count, sums[0] / count)
    return sums / max(count, 1)


def evaluate(
    model: Any, x: np.ndarray, batch_size: int = EVAL_BATCH, y: np.ndarray | None = None
) -> Losses:
    """Mean losses over the images ``x`` (N, 1, 28, 28), with labels ``y`` (N,) for a
    conditional model, in eval mode (BatchNorm uses its running statistics).

    z is still sampled, with one ε per image from a generator of fixed seed, so
    the figure is comparable from epoch to epoch and from run to run. Each
    batch's mean is weighted by its size: the result is the mean over images.
    """
    if len(x) == 0:
        raise ValueError("evaluate: no images to evaluate on (0 images)")
    was_training = model.training
    model.eval()
    rng = np.random.default_rng(EVAL_SEED)
    total = np.zeros(2)
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            yb = None if y is None else y[start:start + batch_size]
            losses = model.forward(xb, rng=rng, y=yb)
            total += len(xb) * np.array([losses.recon, losses.kl])
    finally:
        if was_training:
            model.train()
    recon, kl = total / len(x)
    return Losses(float(recon + kl), float(recon), float(kl))
