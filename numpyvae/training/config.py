"""What defines a run, checked once: ``TrainConfig`` refuses a bad option when it is made.

The CLI builds a TrainConfig from its options and a run folder's files are read
back through ``TrainConfig.from_json``; both end in ``validate``, so nothing
further down (the loop, the model builders) checks an option again.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.catalog import DATASETS
from ..data.datasets import NUM_CLASSES
from ..models.architectures import ARCHS, DEFAULT_HIDDEN, PIXELS, build_vae
from ..models.autoencoder import Autoencoder, build_mlp_autoencoder
from ..models.likelihoods import LIKELIHOODS
from ..models.vae import VAE

CHECKPOINT = "checkpoint.npz"  # a run folder's record, beside config.json
MODELS = ("vae", "ae")  # "ae": the plain autoencoder beside the VAE (autoencoder.py)
DEFAULT_LR = {"mlp": 0.0025, "cnn": 0.0015}
# Changing these would make a resumed run a different experiment.
FIXED_ON_RESUME = ("model", "arch", "dataset", "latent_dim", "hidden", "c", "batch_size", "seed",
                   "lr", "train_subset", "test_subset", "likelihood", "conditional", "binarize",
                   "beta", "kl_warmup", "free_bits")
# The CNN's arrays that do not depend on z or K: 6 convolutions and 6 BatchNorms
# (gamma, beta, running mean, running variance), as built in architectures.py.
_CNN_FIXED_ARRAYS = (320 + 18496 + 18464 + 18496 + 18464 + 9248 + 289
                     + 4 * (32 + 64 + 32 + 64 + 32 + 32))
_CNN_ACTIVATIONS = 32 * 14 * 14 + 64 * 7 * 7 + 32 * 4 * 4 + 64 * 7 * 7 + 32 * 14 * 14 + 32 * 784


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults are the report's.

    Made with a bad option, it raises ValueError naming the option.
    """

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
    # The objective recon + β·Σ_j max(λ, KL_j) (models/vae.py); the loss reported stays −ELBO.
    beta: float = 1.0  # β, the weight on the KL
    kl_warmup: int = 0  # epochs over which β rises linearly from 0 (loop.kl_weight)
    free_bits: float = 0.0  # λ, in nats per latent dimension (Kingma et al. 2016)
    data_dir: str | None = field(default=None, compare=False)
    # The thread count of the last training session: a record, not a setting (BLAS
    # products may differ in the last bits between thread counts).
    threads: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.hidden, (list, tuple)):
            self.hidden = tuple(int(h) if _is_int(h) else h for h in self.hidden)
        if self.lr is None and self.arch in DEFAULT_LR:
            self.lr = DEFAULT_LR[self.arch]
        if self.binarize is None:
            self.binarize = self.likelihood == "bernoulli"
        self.validate()

    def validate(self) -> None:
        """Raise ValueError for the first option that is out of range, naming it."""
        _check_types(self, "TrainConfig")
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
            (self.lr is not None and math.isfinite(self.lr) and self.lr > 0,
             f"--lr must be > 0 and finite, got {self.lr}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (math.isfinite(self.c) and self.c > 0, f"--c must be > 0 and finite, got {self.c}"),
            (self.seed >= 0, f"--seed must be >= 0, got {self.seed}"),
            (self.train_subset is None or self.train_subset >= 1,
             f"--train-subset must be >= 1, got {self.train_subset}"),
            (self.test_subset is None or self.test_subset >= 1,
             f"--test-subset must be >= 1, got {self.test_subset}"),
            (math.isfinite(self.beta) and self.beta > 0,
             f"--beta must be > 0 and finite, got {self.beta}"),
            (self.kl_warmup >= 0, f"--kl-warmup must be >= 0 epochs, got {self.kl_warmup}"),
            (math.isfinite(self.free_bits) and self.free_bits >= 0,
             f"--free-bits must be >= 0 and finite, got {self.free_bits}"),
            (self.model == "vae" or (self.beta, self.kl_warmup, self.free_bits) == (1, 0, 0),
             "--beta, --kl-warmup and --free-bits are for the VAE only, not the autoencoder"),
            (self.threads is None or self.threads >= 1,
             f"threads must be >= 1, got {self.threads}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        _check_fits_in_memory(self)

    def objective_tags(self) -> str:
        """The objective's options that are not the default, as run-name tags:
        ``-b4`` (β), ``-w5`` (warm-up epochs), ``-fb0.1`` (free bits); "" for −ELBO."""
        return objective_tags(self.beta, self.kl_warmup, self.free_bits)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_json(cls, d: Any, where: str = "config") -> TrainConfig:
        """The config saved as ``d`` (read from ``where``, named in errors).

        Keys it does not know are ignored, missing ones take their defaults (run
        folders written before an option existed); a value of the wrong type is an error.
        """
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a JSON object of options, got "
                             f"{type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if isinstance(kwargs.get("hidden"), list):
            kwargs["hidden"] = tuple(kwargs["hidden"])
        try:
            return cls(**kwargs)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_types(config: TrainConfig, where: str) -> None:
    """Each field has its declared type (an int where an int is meant, never a bool)."""
    is_int = _is_int

    def is_number(v: Any) -> bool:
        return is_int(v) or isinstance(v, numbers.Real) and not isinstance(v, bool)

    kinds = {
        "model": (lambda v: isinstance(v, str), "a string"),
        "arch": (lambda v: isinstance(v, str), "a string"),
        "dataset": (lambda v: isinstance(v, str), "a string"),
        "likelihood": (lambda v: isinstance(v, str), "a string"),
        "latent_dim": (is_int, "an integer"),
        "epochs": (is_int, "an integer"),
        "batch_size": (is_int, "an integer"),
        "seed": (is_int, "an integer"),
        "hidden": (lambda v: isinstance(v, tuple) and all(is_int(h) for h in v),
                   "a list of integer widths"),
        "lr": (lambda v: v is None or is_number(v), "a number"),
        "c": (is_number, "a number"),
        "beta": (is_number, "a number"),
        "kl_warmup": (is_int, "an integer"),
        "free_bits": (is_number, "a number"),
        "conditional": (lambda v: isinstance(v, bool), "true or false"),
        "binarize": (lambda v: isinstance(v, bool), "true or false"),
        "train_subset": (lambda v: v is None or is_int(v), "an integer or null"),
        "test_subset": (lambda v: v is None or is_int(v), "an integer or null"),
        "threads": (lambda v: v is None or is_int(v), "an integer or null"),
        "data_dir": (lambda v: v is None or isinstance(v, str), "a path or null"),
    }
    for name, (ok, what) in kinds.items():
        value = getattr(config, name)
        if not ok(value):
            raise ValueError(f"{name} must be {what}, got {value!r}")


def num_arrays(config: TrainConfig) -> int:
    """How many numbers the model's arrays hold (parameters and BatchNorm buffers),
    computed from the config alone: a model can be sized before it is built."""
    k = NUM_CLASSES if config.conditional else 0
    z = config.latent_dim

    def dense(widths: tuple[int, ...]) -> int:
        return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))

    if config.arch == "cnn":
        return _CNN_FIXED_ARRAYS + dense((512 + k, 2 * z)) + dense((z + k, 512))
    code = z if config.model == "ae" else 2 * z
    h = config.hidden
    return dense((PIXELS + k, *h, code)) + dense((z + k, *h[::-1], PIXELS))


def estimated_bytes(config: TrainConfig) -> int:
    """A rough upper estimate of training's memory: the arrays four times over (values,
    gradients, Adam's two moments) and each layer's activations kept for a batch."""
    per_image = _CNN_ACTIVATIONS if config.arch == "cnn" else \
        2 * (PIXELS + sum(config.hidden) + 2 * config.latent_dim)
    return 4 * (4 * num_arrays(config) + 4 * config.batch_size * per_image)


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: no bound
        return None


def objective_tags(beta: float = 1.0, kl_warmup: int = 0, free_bits: float = 0.0) -> str:
    """See ``TrainConfig.objective_tags``; also names the sweep's run folders."""
    return ((f"-b{beta:g}" if beta != 1 else "")
            + (f"-w{kl_warmup}" if kl_warmup else "")
            + (f"-fb{free_bits:g}" if free_bits else ""))


def _check_fits_in_memory(config: TrainConfig) -> None:
    need, have = estimated_bytes(config), _physical_memory()
    if have is not None and need > have:
        sizes = (f"--latent-dim {config.latent_dim}" + (
            f", --hidden {','.join(map(str, config.hidden))}" if config.arch == "mlp" else "")
            + f", --batch-size {config.batch_size}")
        raise ValueError(
            f"this model cannot fit in memory ({sizes}): it would hold {num_arrays(config):,} "
            f"numbers and need about {need / 2**30:,.1f} GiB to train, and this machine has "
            f"{have / 2**30:,.1f} GiB"
        )


def build_model(config: TrainConfig, dtype: Any = np.float32) -> VAE | Autoencoder:
    """The model a config describes, initialised from its seed."""
    rng = np.random.default_rng([config.seed, 0])
    if config.model == "ae":
        return build_mlp_autoencoder(config.latent_dim, hidden=config.hidden, c=config.c,
                                     dtype=dtype, rng=rng, likelihood=config.likelihood)
    vae = build_vae(config.arch, config.latent_dim, hidden=config.hidden, c=config.c,
                    dtype=dtype, rng=rng, likelihood=config.likelihood,
                    num_classes=NUM_CLASSES if config.conditional else 0)
    vae.beta, vae.free_bits = config.beta, config.free_bits  # the loop sets β per batch
    return vae


def objective_options(config: TrainConfig) -> str:
    """The objective's options in words, e.g. ``β = 4, KL warm-up over 5 epochs``."""
    return ", ".join(
        ([f"β = {config.beta:g}"] if config.beta != 1 or not config.free_bits else [])
        + ([f"KL warm-up over {config.kl_warmup} epochs"] if config.kl_warmup else [])
        + ([f"free bits λ = {config.free_bits:g} nats per dimension"]
           if config.free_bits else []))


def int_at_least(low: int, what: str) -> Any:
    """An argparse type for an integer option >= ``low`` (the CLIs' one copy of this check);
    ``what`` names the type in argparse's messages. 0 must not mean a default and -1 must
    not mean "none", so both are refused where a count is asked for."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") \
                from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse
