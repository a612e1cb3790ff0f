"""The report's four experiments (and two beyond it) as lists of runs, and the settings of a
full or quick sweep.

A run is a ``RunSpec`` (model, arch, data set, z, hidden widths, c, seed); its folder
name says all of it, so one folder serves every experiment that uses the same run
(the MLP on MNIST at z = 2, seed 0, is in all four). A ``Member`` is a run's place in
one experiment, with the report's figure to compare it with (experiment 1 with the
report's figures 4-7, experiment 2 with 8 and 9; the others have none).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ..models.architectures import DEFAULT_HIDDEN
from ..models.report_losses import report_loss
from ..training.config import objective_tags
from ..training.train import TrainConfig

EXPERIMENTS: dict[str, str] = {
    "arch": "1. Architectures x data sets, z = 2 (the report's figures 4-7)",
    "latent": "2. Latent dimension, MLP and CNN on MNIST (figures 8 and 9)",
    "balance": "3. The balance c, MLP on MNIST, z = 2 (figure 10)",
    "ae": "4. Autoencoder vs VAE latent space, MLP on MNIST, z = 2 (figure 1)",
    "beyond": "5. Beyond the report: conditional VAE and Bernoulli decoder, MLP on MNIST, "
              "z = 2 and 20",
    "collapse": "6. Beyond the report: KL warm-up and free bits against posterior collapse, "
                "MLP 300-100-10 on MNIST, z = 5 and 20",
}
BEYOND_DIMS = (2, 20)
# Experiment 6: the two z where the report's seeds disagreed most (width 10), and the two
# remedies beside plain training, each at the value the issue names.
COLLAPSE_DIMS = (5, 20)
REMEDIES: dict[str, dict[str, float]] = {
    "plain": {},
    "warm-up": {"kl_warmup": 5},
    "free bits": {"free_bits": 0.1},
}
DATASETS = ("mnist", "fashion-mnist")
LATENT_DIMS = (1, 2, 3, 5, 20)
BALANCES = (0.0001, 0.001, 0.01, 0.05, 0.1, 1.0)
REPORT_C = 0.05
MLP_SEEDS = (0, 1, 2)  # MLP runs are cheap: three seeds show how much the numbers move by chance
CNN_SEEDS = (0,)
# The report's printout (last hidden width 10, our default) and its text (20).
WIDTHS = (DEFAULT_HIDDEN, (300, 100, 20))


@dataclass(frozen=True)
class RunSpec:
    """One training run. ``hidden`` is None for the CNN, which has no hidden widths.

    ``likelihood`` and ``conditional`` are experiment 5's, ``kl_warmup`` (epochs) and
    ``free_bits`` (nats per dimension) experiment 6's; the report's runs keep the defaults
    (and their folder names).
    """

    model: str  # "vae" or "ae"
    arch: str
    dataset: str
    latent_dim: int
    hidden: tuple[int, ...] | None
    c: float
    seed: int
    likelihood: str = "gaussian"
    conditional: bool = False
    kl_warmup: int = 0
    free_bits: float = 0.0

    @property
    def kind(self) -> str:
        """"vae", "ae", or "cvae" for a conditional VAE."""
        return "cvae" if self.conditional else self.model

    @property
    def name(self) -> str:
        """The run's folder name, e.g. ``vae-mlp-mnist-z2-h300.100.10-c0.05-s0``; a Bernoulli
        run has ``-bernoulli`` where the c would be (c plays no part in it), and a remedy
        adds its tags (``config.objective_tags``: ``-w5``, ``-fb0.1``) before the seed."""
        widths = f"-h{'.'.join(map(str, self.hidden))}" if self.hidden else ""
        balance = "-bernoulli" if self.likelihood == "bernoulli" else f"-c{self.c:g}"
        return (f"{self.kind}-{self.arch}-{self.dataset}-z{self.latent_dim}{widths}"
                f"{balance}{self.remedy_tags}-s{self.seed}")

    @property
    def remedy_tags(self) -> str:
        return objective_tags(kl_warmup=self.kl_warmup, free_bits=self.free_bits)

    @property
    def remedy(self) -> str:
        """Experiment 6's name for the objective: "plain", "warm-up" or "free bits"."""
        settings = {"kl_warmup": self.kl_warmup, "free_bits": self.free_bits}
        for name, options in REMEDIES.items():
            if {**{"kl_warmup": 0, "free_bits": 0.0}, **options} == settings:
                return name
        return self.remedy_tags.lstrip("-")

    @property
    def label(self) -> str:
        """A short human label, e.g. ``MLP 300-100-10 VAE, mnist, z = 2, c = 0.05, seed 0``."""
        arch = self.arch.upper() + (f" {'-'.join(map(str, self.hidden))}" if self.hidden else "")
        balance = "Bernoulli" if self.likelihood == "bernoulli" else f"c = {self.c:g}"
        remedy = ((f", KL warm-up over {self.kl_warmup} epochs" if self.kl_warmup else "")
                  + (f", free bits {self.free_bits:g}" if self.free_bits else ""))
        return (f"{arch} {self.kind.upper()}, {self.dataset}, z = {self.latent_dim}, "
                f"{balance}{remedy}, seed {self.seed}")

    def config(self, settings: Settings, data_dir: str | None = None) -> TrainConfig:
        """The TrainConfig of this run under ``settings`` (epochs, subsets)."""
        extra = {"hidden": self.hidden} if self.hidden else {}
        return TrainConfig(model=self.model, arch=self.arch, dataset=self.dataset,
                           latent_dim=self.latent_dim, c=self.c, seed=self.seed,
                           epochs=settings.epochs, train_subset=settings.train_subset,
                           test_subset=settings.test_subset, data_dir=data_dir,
                           likelihood=self.likelihood, conditional=self.conditional,
                           kl_warmup=self.kl_warmup, free_bits=self.free_bits, **extra)


@dataclass(frozen=True)
class Member:
    """A run's place in one experiment, with the report's (figure, loss) to compare, if any."""

    experiment: str
    spec: RunSpec
    report: tuple[str, float] | None


@dataclass(frozen=True)
class Settings:
    """How long each run trains and how much is measured: the full sweep or ``--quick``."""

    quick: bool
    epochs: int = 15
    train_subset: int | None = None  # None: all 60,000 training images
    test_subset: int | None = None  # None: all 10,000 test images
    prior_samples: int = 10_000  # prior samples per model scored by the classifier
    classifier_epochs: int = 10
    classifier_subset: int | None = None
    classifier_test_subset: int | None = None
    loglik_k: int = 1000  # importance samples per image for log p(x) (iwae.py)
    loglik_images: int = 1000  # the first N test images: minutes for the sweep, not hours
    # The CNN's decoder costs 45 times the MLP's per image (24 vs 0.54 MFLOP): K = 1000 on
    # 1,000 images would take 7-15 min per CNN run on 2 cores, so it gets fewer images.
    loglik_images_cnn: int = 200


FULL = Settings(quick=False)
QUICK = Settings(quick=True, epochs=1, train_subset=2048, test_subset=500, prior_samples=1000,
                 classifier_epochs=1, classifier_subset=8192, classifier_test_subset=500,
                 loglik_k=50, loglik_images=100, loglik_images_cnn=20)


def vae_spec(arch: str, dataset: str = "mnist", z: int = 2,
             hidden: tuple[int, ...] | None = None, c: float = REPORT_C, seed: int = 0
             ) -> RunSpec:
    """A VAE run, the report's settings unless given (the MLP at its default widths)."""
    if arch == "mlp" and hidden is None:
        hidden = DEFAULT_HIDDEN
    return RunSpec("vae", arch, dataset, z, hidden, c, seed)


# Experiment 4's autoencoder: the VAE's MLP without sampling or KL (autoencoder.py)
AE_SPEC = RunSpec("ae", "mlp", "mnist", 2, DEFAULT_HIDDEN, REPORT_C, 0)


def experiment_specs(name: str) -> list[RunSpec]:
    """The runs of one experiment, in table order."""
    if name == "arch":
        return ([vae_spec("mlp", d, seed=s) for d in DATASETS for s in MLP_SEEDS]
                + [vae_spec("cnn", d, seed=s) for d in DATASETS for s in CNN_SEEDS])
    if name == "latent":
        return ([vae_spec("mlp", z=z, hidden=w, seed=s)
                 for z in LATENT_DIMS for w in WIDTHS for s in MLP_SEEDS]
                + [vae_spec("cnn", z=z, seed=s) for z in LATENT_DIMS for s in CNN_SEEDS])
    if name == "balance":
        return [vae_spec("mlp", c=c) for c in BALANCES]
    if name == "ae":
        return [AE_SPEC, vae_spec("mlp")]
    if name == "beyond":
        return [replace(vae_spec("mlp", z=z), **kind) for kind in
                ({}, {"conditional": True}, {"likelihood": "bernoulli"}) for z in BEYOND_DIMS]
    if name == "collapse":
        return [replace(vae_spec("mlp", z=z, seed=s), **options) for z in COLLAPSE_DIMS
                for options in REMEDIES.values() for s in MLP_SEEDS]
    raise ValueError(f"unknown experiment {name!r}: expected one of {', '.join(EXPERIMENTS)}")


# --quick: the MLP and the CNN at z = 2 on MNIST, the autoencoder, experiment 5's
# conditional and Bernoulli MLP at z = 2, and one run of experiment 6 (free bits, z = 5).
QUICK_SPECS = frozenset({vae_spec("mlp"), vae_spec("cnn"), AE_SPEC,
                         replace(vae_spec("mlp"), conditional=True),
                         replace(vae_spec("mlp"), likelihood="bernoulli"),
                         replace(vae_spec("mlp", z=5), **REMEDIES["free bits"])})


def members(settings: Settings, experiments: Iterable[str] = EXPERIMENTS) -> list[Member]:
    """Every (experiment, run) pair of the sweep; a quick sweep keeps only QUICK_SPECS."""
    out = []
    for name in experiments:
        for spec in experiment_specs(name):
            if settings.quick and spec not in QUICK_SPECS:
                continue
            report = (report_figure(name, spec.arch, spec.dataset, spec.latent_dim)
                      if spec.model == "vae" else None)
            out.append(Member(name, spec, report))
    return out


def unique_specs(items: Sequence[Member]) -> list[RunSpec]:
    """The distinct runs of ``items``, in first-seen order: each is trained once."""
    return list(dict.fromkeys(m.spec for m in items))


# Which of the report's figures each reproduced experiment is compared with: the
# architectures (experiment 1) with figures 4-7, the latent sweep (2) with 8 and 9.
EXPERIMENT_FIGURES: dict[str, tuple[str, ...]] = {
    "arch": ("fig4", "fig5", "fig6", "fig7"),
    "latent": ("fig8", "fig9"),
}


def report_figure(experiment: str, arch: str, dataset: str, latent_dim: int
                  ) -> tuple[str, float] | None:
    """(figure, loss) the report gives for this configuration in this experiment, or None."""
    for fig, loss in report_loss(arch, dataset, latent_dim).items():
        if fig in EXPERIMENT_FIGURES.get(experiment, ()):
            return fig, loss
    return None
