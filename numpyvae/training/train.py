"""Training: the loop, evaluation, checkpoints after every epoch, and the run folder.

The loop knows the model only through ``forward`` (returns the losses),
``backward`` (fills the grads) and ``parameters``; it knows nothing of layers.

A run folder holds ``config.json``, ``history.json`` (one entry per epoch),
``checkpoint.npz`` (written after every epoch), ``final.json`` and the figures.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import data
from ..kernels.jit_cache import cache_is_warm
from ..models.architectures import ARCHS, DEFAULT_HIDDEN, build_vae
from ..models.autoencoder import Autoencoder, build_mlp_autoencoder
from ..models.likelihoods import LIKELIHOODS
from ..models.vae import VAE, Losses
from ..nn.adam import Adam
from .checkpoint import load_arrays_into, load_checkpoint, save_checkpoint, write_json

DEFAULT_LR = {"mlp": 0.0025, "cnn": 0.0015}
DATASETS = ("mnist", "fashion-mnist")
EVAL_SEED = 1234  # ε for evaluation: the same draws every epoch and every run
EVAL_BATCH = 1000
CHECKPOINT = "checkpoint.npz"
# Changing these would make a resumed run a different experiment.
FIXED_ON_RESUME = ("model", "arch", "dataset", "latent_dim", "hidden", "c", "batch_size", "seed",
                   "lr", "train_subset", "test_subset", "likelihood", "conditional", "binarize")
MODELS = ("vae", "ae")  # "ae": the plain autoencoder beside the VAE (autoencoder.py)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults are the report's."""

    model: str = "vae"  # or "ae", the plain autoencoder (MLP only)
    arch: str = "mlp"
    dataset: str = "mnist"
    latent_dim: int = 2
    hidden: tuple[int, ...] = DEFAULT_HIDDEN
    epochs: int = 15
    lr: float | None = None  # None: the report's rate for the architecture
    batch_size: int = 256
    c: float = 0.05
    seed: int = 0
    train_subset: int | None = None  # train on the first N shuffled images (quick runs, CI)
    test_subset: int | None = None  # evaluate on the first N test images
    likelihood: str = "gaussian"  # p(x|z): "gaussian" (the report's, uses c) or "bernoulli"
    conditional: bool = False  # encoder and decoder also see the one-hot class label
    binarize: bool | None = None  # draw binary pixels from the grey levels; None: on for bernoulli
    data_dir: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.lr is None and self.arch in DEFAULT_LR:
            self.lr = DEFAULT_LR[self.arch]
        if self.binarize is None:
            self.binarize = self.likelihood == "bernoulli"

    def validate(self) -> None:
        """Raise ValueError for the first option that is out of range, naming it."""
        checks = [
            (self.model in MODELS, f"model must be one of {', '.join(MODELS)}, got {self.model!r}"),
            (self.model == "vae" or self.arch == "mlp",
             f"the autoencoder is built for arch mlp only, got {self.arch!r}"),
            (self.model == "vae" or not self.conditional,
             "--conditional is for the VAE only, not the autoencoder"),
            (self.likelihood in LIKELIHOODS,
             f"--likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}"),
            (self.arch in ARCHS, f"--arch must be one of {', '.join(ARCHS)}, got {self.arch!r}"),
            (self.dataset in DATASETS,
             f"--dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}"),
            (self.latent_dim >= 1, f"--latent-dim must be >= 1, got {self.latent_dim}"),
            (bool(self.hidden) and min(self.hidden) >= 1,
             f"--hidden must be positive widths like 300,100,10, got {self.hidden}"),
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.lr is not None and self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.c > 0, f"--c must be > 0, got {self.c}"),
            (self.seed >= 0, f"--seed must be >= 0, got {self.seed}"),
            (self.train_subset is None or self.train_subset >= 1,
             f"train_subset must be >= 1, got {self.train_subset}"),
            (self.test_subset is None or self.test_subset >= 1,
             f"test_subset must be >= 1, got {self.test_subset}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def unique_run_dir(base: str | Path) -> Path:
    """``base``, or ``base-2``, ``base-3``, … : the first that does not exist yet."""
    base = Path(base)
    out, k = base, 2
    while out.exists():
        out, k = Path(f"{base}-{k}"), k + 1
    return out


def build_model(config: TrainConfig, dtype: Any = np.float32) -> VAE | Autoencoder:
    """The model a config describes, initialised from its seed."""
    rng = np.random.default_rng([config.seed, 0])
    if config.model == "ae":
        return build_mlp_autoencoder(config.latent_dim, hidden=config.hidden, c=config.c,
                                     dtype=dtype, rng=rng, likelihood=config.likelihood)
    return build_vae(config.arch, config.latent_dim, hidden=config.hidden, c=config.c,
                     dtype=dtype, rng=rng, likelihood=config.likelihood,
                     num_classes=data.NUM_CLASSES if config.conditional else 0)


def evaluation_images(config: TrainConfig, x: np.ndarray) -> np.ndarray:
    """The images a run is evaluated on: ``x`` itself, or for a binarized run one fixed
    binary draw of it (the same for every epoch, run and command)."""
    if not config.binarize:
        return x
    return data.binarize(x, np.random.default_rng(data.BINARIZE_SEED))


def evaluate(
    vae: VAE, x: np.ndarray, batch_size: int = EVAL_BATCH, y: np.ndarray | None = None
) -> Losses:
    """Mean losses over ``x`` (with labels ``y`` for a conditional model) in eval mode
    (BatchNorm uses its running statistics).

    z is still sampled, with one ε per image from a generator of fixed seed, so
    the figure is comparable from epoch to epoch and from run to run.
    """
    was_training = vae.encoder.training
    vae.eval()
    rng = np.random.default_rng(EVAL_SEED)
    total = np.zeros(2)
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        yb = None if y is None else y[start:start + batch_size]
        losses = vae.forward(xb, rng=rng, y=yb)
        total += len(xb) * np.array([losses.recon, losses.kl])
    if was_training:
        vae.train()
    recon, kl = total / max(len(x), 1)
    return Losses(float(recon + kl), float(recon), float(kl))


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.active = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = 0.0

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.active and (force or now - self.last > 0.2):
            self.last = now
            self.stream.write("\r\033[K" + text)
            self.stream.flush()

    def clear(self) -> None:
        if self.active:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


def train(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    log: Callable[[str], None] = print,
    figures: bool = True,
) -> dict[str, Any]:
    """Train (or resume) a run in ``out_dir``; returns the contents of ``final.json``.

    The checkpoint is written after every epoch, so an interruption loses at
    most the epoch in progress; ``resume=True`` continues from it and ends with
    the same parameters as an uninterrupted run.
    """
    config.validate()
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    # Data first: a missing data set must fail before anything is written.
    x_train, y_train = data.load(config.dataset, "train", config.data_dir)
    x_test, y_test = data.load(config.dataset, "test", config.data_dir)
    if config.train_subset:
        keep = data.epoch_order(len(x_train), config.seed, 10**6)[:config.train_subset]
        x_train, y_train = x_train[keep], y_train[keep]
    if config.test_subset:
        x_test, y_test = x_test[:config.test_subset], y_test[:config.test_subset]
    x_test_eval = evaluation_images(config, x_test)
    # The labels go to the model only when it is conditional.
    label_train, label_test = (y_train, y_test) if config.conditional else (None, None)

    vae = build_model(config)
    adam = Adam(vae.parameters(), lr=config.lr)
    noise_rng = np.random.default_rng([config.seed, 1])
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if resume and ckpt_path.exists():
        model_arrays, optim_state, meta = load_checkpoint(ckpt_path)
        saved = TrainConfig.from_json(meta["config"])
        for name in FIXED_ON_RESUME:
            if getattr(saved, name) != getattr(config, name):
                raise ValueError(
                    f"--resume: {name} is {getattr(saved, name)!r} in {ckpt_path}, "
                    f"but {getattr(config, name)!r} was asked for; a resumed run keeps its config"
                )
        load_arrays_into(vae.named_arrays(), model_arrays, str(ckpt_path))
        adam.load_state_dict(optim_state)
        noise_rng.bit_generator.state = meta["noise_rng"]
        start_epoch = int(meta["epoch"])
        history = list(meta["history"])
    elif resume and not out.is_dir():
        raise FileNotFoundError(f"--resume: there is no run folder {out}")
    elif resume:
        log(f"{out} has no checkpoint yet (stopped during epoch 1): starting from epoch 1")
    else:
        out.mkdir(parents=True, exist_ok=False)
    write_json(out / "config.json", config.to_json())
    monitor_idx = data.monitor_indices(len(x_test), min(data.MONITOR_SIZE, len(x_test)))
    monitor = x_test_eval[monitor_idx]
    monitor_labels = None if label_test is None else label_test[monitor_idx]

    n, bs = len(x_train), config.batch_size
    n_batches = data.num_batches(n, bs)
    progress = Progress()
    if start_epoch < config.epochs:
        extras = (", conditional on the class" if config.conditional else "") + (
            f", {config.likelihood} decoder" if config.likelihood != "gaussian" else "") + (
            ", binarized pixels" if config.binarize else "")
        log(f"training {config.arch.upper()} {config.model.upper()} on {config.dataset}{extras}, "
            f"z = {config.latent_dim}, "
            f"{vae.num_params():,} params, {n:,} images, epochs {start_epoch + 1}..{config.epochs}"
            f" -> {out}")
    if start_epoch < config.epochs and not cache_is_warm():
        log("compiling the numba kernels (first run only: cached on disk afterwards)...")
    vae.train()
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        sums = np.zeros(3)
        for b, idx in enumerate(data.batches(n, bs, config.seed, epoch)):
            xb = x_train[idx]
            if config.binarize:
                xb = data.binarize(xb, noise_rng)
            losses = vae.forward(xb, rng=noise_rng,
                                 y=None if label_train is None else label_train[idx])
            if not math.isfinite(losses.loss):
                progress.clear()
                raise TrainingDiverged(
                    f"loss became {losses.loss} at epoch {epoch + 1}, batch {b + 1}/{n_batches} "
                    f"(recon {losses.recon}, KL {losses.kl}); stopped. The last good checkpoint "
                    f"({'epoch ' + str(epoch) if epoch else 'none yet'}) is kept in {out}. "
                    f"Try a smaller --lr."
                )
            vae.backward()
            adam.step()
            sums += (losses.loss, losses.recon, losses.kl)
            done = b + 1
            eta = (time.perf_counter() - t0) / done * (n_batches - done)
            progress.update(
                f"epoch {epoch + 1}/{config.epochs}  batch {done}/{n_batches}  "
                f"loss {sums[0] / done:.1f}  ETA {_fmt_seconds(eta)}"
            )
        seconds = time.perf_counter() - t0
        mean = sums / n_batches
        test100 = evaluate(vae, monitor, y=monitor_labels)
        entry = {
            "epoch": epoch + 1,
            "train": {"loss": mean[0], "recon": mean[1], "kl": mean[2]},
            "test100": test100.as_dict(),
            "seconds": seconds,
            "images_per_s": n / seconds,
        }
        history.append(entry)
        meta = {"config": config.to_json(), "epoch": epoch + 1, "history": history,
                "noise_rng": noise_rng.bit_generator.state}
        save_checkpoint(ckpt_path, vae.named_arrays(), adam.state_dict(), meta)
        write_json(out / "history.json", history)
        progress.clear()
        log(f"epoch {epoch + 1:>2}/{config.epochs}  train {mean[0]:7.2f} (recon {mean[1]:7.2f}, "
            f"KL {mean[2]:5.2f})  test100 {test100.loss:7.2f}  {seconds:6.1f} s  "
            f"{n / seconds:,.0f} img/s")

    log("evaluating on the full training and test sets (eval mode)...")
    final = {
        "train": history[-1]["train"],
        "train_eval": evaluate(vae, evaluation_images(config, x_train), y=label_train).as_dict(),
        "test": evaluate(vae, x_test_eval, y=label_test).as_dict(),
        "epochs": config.epochs,
        "seconds": sum(h["seconds"] for h in history),
    }
    write_json(out / "final.json", final)
    log(f"final: train {final['train']['loss']:.2f} (recon {final['train']['recon']:.2f}, "
        f"KL {final['train']['kl']:.2f}), train (eval mode) {final['train_eval']['loss']:.2f}, "
        f"test {final['test']['loss']:.2f}")
    if figures:
        from ..cli.plots import make_figures

        paths = make_figures(vae, x_test, y_test, history, out, seed=config.seed)
        log(f"figures: {', '.join(p.name for p in paths)} in {out}")
    return final

