"""The sweep: train what is missing, measure, judge the claims, write tables and figures.

Layout of the output folder (``--out``, default ``runs/report``):

    runs/NAME/          one folder per run (see experiments.RunSpec.name): config.json,
                        history.json, checkpoint.npz, final.json, the run's figures, and
                        reproduce.json (the measurements the claims use)
    classifier.npz      the MNIST classifier that scores samples (claim F), trained once
    figures/            the figures across runs
    results.json        one row per (experiment, run); see tables.py
    results.md          the tables, the claims with their verdicts, the figures
    sweep.json          every invocation: when, how long, what it trained

It is resumable: a run whose final.json exists is skipped, and a run with a
checkpoint but no final.json resumes from it. Tables, claims and figures always
cover every finished run of the plan, whichever experiments ``only`` trained.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import data
from ..figures.run_figures import draw_run_figures, run_figure_names
from ..models.architectures import DEFAULT_HIDDEN
from ..models.report_losses import REPORT_SPLIT
from ..training.checkpoint import atomic_write, write_json
from ..training.run import load_run, read_final, read_json
from ..training.train import FIXED_ON_RESUME, TrainConfig, train
from . import claims as claim_rules
from . import figures as figs
from .classifier import load_classifier, save_classifier, train_classifier
from .experiments import (
    AE_SPEC,
    BALANCES,
    BEYOND_DIMS,
    EXPERIMENTS,
    FULL,
    LATENT_DIMS,
    QUICK,
    REPORT_C,
    RunSpec,
    Settings,
    experiment_specs,
    members,
    unique_specs,
    vae_spec,
)
from .measures import measure_run
from .tables import console_summary, make_row, results_markdown

DEFAULT_OUT = Path("runs/report")
DEFAULT_QUICK_OUT = Path("runs/report-quick")
CLASSIFIER_FILE = "classifier.npz"
CLASSIFIER_SEED = 0
FIGURES = ("mlp_mnist_z2.png", "cnn_mnist_z2.png", "samples_across_z.png",
           "samples_across_c.png", "ae_vs_vae.png", "losses_vs_report.png",
           "conditional_samples.png")


@dataclass
class Result:
    """What one invocation produced."""

    out: Path
    rows: list[dict[str, Any]]
    claims: list[claim_rules.Claim]
    trained: list[str]
    skipped: list[str]
    wall_seconds: float


def run_dir(out: Path, spec: RunSpec) -> Path:
    return out / "runs" / spec.name


def _differs(path: Path, config: TrainConfig) -> str | None:
    """The first setting in which the run in ``path`` differs from ``config``, or None."""
    saved = TrainConfig.from_json(read_json(path / "config.json"), where=str(path / "config.json"))
    for name in FIXED_ON_RESUME + ("epochs",):
        if getattr(saved, name) != getattr(config, name):
            return (f"{name} = {getattr(saved, name)!r}, but this sweep needs "
                    f"{getattr(config, name)!r}")
    return None


def _finished(path: Path, config: TrainConfig) -> bool:
    """True if the run in ``path`` is done; a folder holding another run is an error."""
    if not (path / "final.json").is_file():
        return False
    difference = _differs(path, config)
    if difference:
        raise ValueError(
            f"{path} holds a run with {difference} (a --quick folder reused for the full "
            "sweep, or the reverse?): choose another --out, nothing was changed"
        )
    return True


def train_missing(
    specs: Sequence[RunSpec], out: Path, settings: Settings, data_dir: str | None,
    log: Callable[[str], None], trained: list[str] | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> tuple[list[str], list[str]]:
    """Train every run of ``specs`` that has no final.json, and draw its figures (those of
    a finished run whose drawing was interrupted, too); returns (trained, skipped) names.

    ``trained`` (appended to as runs finish) lets a caller see what was done before an
    interruption; ``stop_requested()`` true stops at the next batch, as in train.
    """
    trained = [] if trained is None else trained
    skipped: list[str] = []
    for i, spec in enumerate(specs, 1):
        _stop_if_requested(stop_requested)
        path = run_dir(out, spec)
        config = spec.config(settings, data_dir)
        head = f"[{i}/{len(specs)}] {spec.name}"
        if _finished(path, config):
            missing = [n for n in run_figure_names(config) if not (path / n).is_file()]
            log(f"{head}: finished, {'drawing its missing figures' if missing else 'skipped'}")
            if missing:
                draw_run_figures(path, log=lambda s: log(f"    {s}"))
            skipped.append(spec.name)
            continue
        resuming = (path / "checkpoint.npz").is_file()
        log(f"{head}: {'resuming from its checkpoint' if resuming else 'training'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        train(config, path, resume=path.exists(), log=lambda s: log(f"    {s}"),
              stop_requested=stop_requested)
        draw_run_figures(path, log=lambda s: log(f"    {s}"))
        trained.append(spec.name)
    _stop_if_requested(stop_requested)
    return trained, skipped


def _stop_if_requested(stop_requested: Callable[[], bool]) -> None:
    """An interrupt whose KeyboardInterrupt was swallowed stops the sweep here."""
    if stop_requested():
        raise KeyboardInterrupt


def classifier_for(out: Path, settings: Settings, data_dir: str | None,
                   log: Callable[[str], None]) -> tuple[Any, dict[str, Any], str]:
    """The cached classifier if it was trained with these settings, else a new one.

    Returns (classifier, info, id); the id (a hash of the file) keys the measurements.
    """
    path = out / CLASSIFIER_FILE
    wanted = {"epochs": settings.classifier_epochs, "subset": settings.classifier_subset,
              "test_subset": settings.classifier_test_subset, "seed": CLASSIFIER_SEED}
    if path.is_file():
        clf, info = load_classifier(path)
        if info.get("settings") == wanted:
            return clf, info, _file_id(path)
        log(f"{path} was trained with other settings: training a new one")
    x, y = data.load("mnist", "train", data_dir)
    if settings.classifier_subset:
        keep = np.random.default_rng(CLASSIFIER_SEED).permutation(len(x))[
            :settings.classifier_subset]
        x, y = x[keep], y[keep]
    x_test, y_test = data.load("mnist", "test", data_dir)
    if settings.classifier_test_subset:
        x_test, y_test = x_test[:settings.classifier_test_subset], \
            y_test[:settings.classifier_test_subset]
    epochs = settings.classifier_epochs
    log(f"training the MNIST classifier that scores samples ({epochs} "
        f"epoch{'s' if epochs > 1 else ''} on {len(x):,} images)")
    t0 = time.perf_counter()
    clf = train_classifier(x, y, epochs=settings.classifier_epochs, seed=CLASSIFIER_SEED,
                           log=lambda s: log(f"    {s}"))
    info = {"settings": wanted, "accuracy": clf.accuracy(x_test, y_test),
            "hidden": list(clf.hidden), "epochs": settings.classifier_epochs,
            "train_images": len(x), "test_images": len(x_test),
            "seconds": time.perf_counter() - t0}
    log(f"classifier test accuracy {info['accuracy']:.2%} on {len(x_test):,} images")
    save_classifier(clf, path, info)
    return clf, info, _file_id(path)


def _file_id(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class _TestSets:
    """Test images and labels per data set, loaded once, cut to the sweep's test subset."""

    def __init__(self, settings: Settings, data_dir: str | None) -> None:
        self.settings, self.data_dir = settings, data_dir
        self.cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, dataset: str) -> tuple[np.ndarray, np.ndarray]:
        if dataset not in self.cache:
            x, y = data.load(dataset, "test", self.data_dir)
            n = self.settings.test_subset or len(x)
            self.cache[dataset] = (x[:n], y[:n])
        return self.cache[dataset]


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def claim_inputs(finished: dict[RunSpec, dict[str, Any]],
                 measures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The plain numbers each claim rule takes, from the finished runs and their measures.

    ``finished`` maps a spec to its final.json. Means are over the seeds that finished.
    """
    def reference(spec: RunSpec) -> bool:  # the report's setting on MNIST, any z and seed
        return (spec.model == "vae" and spec.dataset == "mnist" and spec.c == REPORT_C
                and spec.hidden in (None, DEFAULT_HIDDEN) and spec.likelihood == "gaussian"
                and not spec.conditional and spec.remedy == "plain")

    loss: dict[str, dict[int, float]] = {}
    scores: dict[str, dict[int, dict[str, float]]] = {}
    for arch in ("mlp", "cnn"):
        for z in LATENT_DIMS:
            specs = [s for s in finished if reference(s) and s.arch == arch and s.latent_dim == z]
            if specs:
                loss.setdefault(arch, {})[z] = _mean(finished[s]["test"]["loss"] for s in specs)
            scored = [measures[s.name]["samples"] for s in specs
                      if "samples" in measures.get(s.name, {})]
            if scored:
                scores.setdefault(arch, {})[z] = {
                    k: _mean(sc[k] for sc in scored) for k in ("confidence", "diversity")}
    # E compares the balance experiment's own runs (seed 0 at every c), like with like
    balance_runs = set(experiment_specs("balance"))
    distance, sse, kl = {}, {}, {}
    for c in BALANCES:
        specs = [s for s in finished if s in balance_runs and s.c == c]
        if specs:
            test = [finished[s]["test"] for s in specs]
            sse[c] = _mean(t["recon"] * 2 * c for t in test)
            kl[c] = _mean(t["kl"] for t in test)
            dist = [measures[s.name]["latent"]["cluster_distance"] for s in specs
                    if s.name in measures]
            if dist:
                distance[c] = _mean(dist)
    latent = {name: measures[spec.name]["latent"] if spec.name in measures else None
              for name, spec in (("vae", vae_spec("mlp")), ("ae", AE_SPEC))}
    # G and H: (test −ELBO, active units) per finished and measured seed of experiment 6
    collapse: dict[str, dict[int, list[tuple[float, int]]]] = {}
    for spec in experiment_specs("collapse"):
        health = measures.get(spec.name, {}).get("health")
        if spec in finished and health:
            collapse.setdefault(spec.remedy, {}).setdefault(spec.latent_dim, []).append(
                (finished[spec]["test"]["loss"], health["active"]))
    return {"loss": loss, "scores": scores, "distance": distance, "sse": sse, "kl": kl,
            "latent": latent, "collapse": collapse}


def judge(inputs: dict[str, Any], accuracy: float | None) -> list[claim_rules.Claim]:
    """Apply the rules A-H to the measured numbers."""
    loss = inputs["loss"]
    return [
        claim_rules.claim_a(loss),
        claim_rules.claim_b(loss.get("mlp", {}).get(2), loss.get("cnn", {}).get(2)),
        claim_rules.claim_c(loss.get("mlp", {}).get(20), loss.get("cnn", {}).get(20)),
        claim_rules.claim_d(inputs["latent"]["vae"], inputs["latent"]["ae"]),
        claim_rules.claim_e(inputs["distance"], inputs["sse"], inputs["kl"]),
        claim_rules.claim_f(inputs["scores"], accuracy),
        claim_rules.claim_g(inputs["collapse"]),
        claim_rules.claim_h(inputs["collapse"]),
    ]


def make_figures(out: Path, finished: dict[RunSpec, dict[str, Any]], rows: list[dict],
                 tests: _TestSets, log: Callable[[str], None]) -> list[str]:
    """Draw the figures across runs into out/figures, unless nothing changed since last time."""
    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = hashlib.sha256(json.dumps(
        [sorted(s.name for s in finished), rows], sort_keys=True, default=str).encode()
    ).hexdigest()
    stamp_file = folder / ".stamp"
    if (stamp_file.is_file() and stamp_file.read_text() == stamp
            and all((folder / f).is_file() for f in FIGURES)):
        log("figures: nothing changed, kept")
        return list(FIGURES)
    models: dict[RunSpec, Any] = {}

    def model(spec: RunSpec) -> Any | None:
        if spec not in finished:
            return None
        if spec not in models:
            models[spec] = load_run(run_dir(out, spec)).vae
        return models[spec]

    x, y = tests("mnist")
    for arch in ("mlp", "cnn"):
        m = model(vae_spec(arch))
        path = folder / f"{arch}_mnist_z2.png"
        if m is not None:
            figs.model_figure(m, x, y, path, f"{vae_spec(arch).label.rsplit(', seed', 1)[0]}")
        elif path.exists():
            path.unlink()
    figs.samples_row_figure(
        [(arch.upper(), [(f"z = {z}", model(vae_spec(arch, z=z))) for z in LATENT_DIMS])
         for arch in ("mlp", "cnn")],
        folder / "samples_across_z.png",
        "Samples from the prior across the latent size z (MNIST, seed 0)")
    figs.samples_row_figure(
        [("MLP, z = 2", [(f"c = {c:g}", model(vae_spec("mlp", c=c))) for c in BALANCES])],
        folder / "samples_across_c.png", "Samples from the prior across the balance c")
    figs.ae_vs_vae_figure(model(AE_SPEC), model(vae_spec("mlp")), x, y, folder / "ae_vs_vae.png")
    figs.losses_figure(rows, folder / "losses_vs_report.png")
    figs.conditional_figure(
        [(f"z = {z}", model(replace(vae_spec("mlp", z=z), conditional=True)))
         for z in BEYOND_DIMS],
        folder / "conditional_samples.png")
    atomic_write(stamp_file, lambda tmp: Path(tmp).write_text(stamp))
    names = [f for f in FIGURES if (folder / f).is_file()]
    log(f"figures: {', '.join(names)} in {folder}")
    return names


def write_docs(out: Path, docs: Path, figure_names: Sequence[str],
               log: Callable[[str], None]) -> int:
    """Copy results.md, results.json and the figures (128-colour PNGs) into ``docs``.

    Returns the total size in bytes of what was written.
    """
    (docs / "figures").mkdir(parents=True, exist_ok=True)
    total = 0
    for name in ("results.md", "results.json"):
        copy = (out / name).read_bytes()
        atomic_write(docs / name, lambda tmp, copy=copy: Path(tmp).write_bytes(copy))
        total += (docs / name).stat().st_size
    png = 0
    for name in figure_names:
        png += figs.write_docs_png(out / "figures" / name, docs / "figures" / name).stat().st_size
    log(f"docs: results.md, results.json and {len(figure_names)} figures "
        f"({png / 1024:.0f} kB of PNG) in {docs}")
    return total + png


def plan_status(out: str | Path | None = None, quick: bool = False,
                only: Sequence[str] | None = None) -> list[tuple[RunSpec, str]]:
    """Each run the sweep would train, with its state in ``out``: finished, partly
    trained (epochs done of total) or not started."""
    settings = QUICK if quick else FULL
    out = _default_out(out, quick)
    status = []
    for spec in unique_specs(members(settings, _check_only(only))):
        path = run_dir(out, spec)
        if (path / "config.json").is_file() and _differs(path, spec.config(settings)):
            state = "CONFLICT"  # another run's folder: reproduce will stop on it
        elif (path / "final.json").is_file():
            state = "finished"
        elif (path / "history.json").is_file():
            state = f"{len(read_json(path / 'history.json'))}/{settings.epochs} epochs"
        else:
            state = "to train"
        status.append((spec, state))
    return status


def _measure_all(out: Path, finished: dict[RunSpec, Any], tests: _TestSets, settings: Settings,
                 classifier: tuple[Any, str], log: Callable[[str], None],
                 stop_requested: Callable[[], bool]) -> dict[str, dict[str, Any]]:
    """Each finished run's measures (read back from its cache when still valid)."""
    measures = {}
    for spec in finished:
        _stop_if_requested(stop_requested)
        x_test, y_test = tests(spec.dataset)
        log(f"measuring {spec.name}")
        images = settings.loglik_images_cnn if spec.arch == "cnn" else settings.loglik_images
        measures[spec.name] = measure_run(run_dir(out, spec), x_test, y_test, *classifier,
                                          settings.prior_samples, settings.loglik_k, images)
    return measures


def _read_sweep_log(path: Path) -> list[dict[str, Any]]:
    """sweep.json's records of the past invocations ([] when there is none yet); a damaged
    one is a ValueError naming it, before anything is trained."""
    if not path.is_file():
        return []
    log = read_json(path)
    if not isinstance(log, list) or not all(
            isinstance(r, dict) and isinstance(r.get("trained"), list)
            and isinstance(r.get("wall_seconds"), (int, float)) for r in log):
        raise ValueError(f"{path}: expected a list of one object per invocation, each with "
                         f"'trained' and 'wall_seconds', got {json.dumps(log)[:60]}: it is "
                         "damaged; move it away (it records only past invocations' times), "
                         "then run again (nothing was trained)")
    return log


def _default_out(out: str | Path | None, quick: bool) -> Path:
    return Path(out) if out is not None else (DEFAULT_QUICK_OUT if quick else DEFAULT_OUT)


def _check_only(only: Sequence[str] | None) -> Sequence[str]:
    unknown = [name for name in only or () if name not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiment {unknown[0]!r}: expected some of "
                         f"{', '.join(EXPERIMENTS)}")
    return only or tuple(EXPERIMENTS)


def reproduce(
    out: str | Path | None = None,
    quick: bool = False,
    only: Sequence[str] | None = None,
    data_dir: str | None = None,
    docs: str | Path | None = None,
    log: Callable[[str], None] = print,
    stop_requested: Callable[[], bool] = lambda: False,
) -> Result:
    """Run the sweep (or its ``quick`` version) into ``out``; see the module docstring.
    ``stop_requested()`` true (a signal came) raises KeyboardInterrupt at the next batch,
    or between the steps after training."""
    t_start = time.perf_counter()
    settings = QUICK if quick else FULL
    only = _check_only(only)
    out = _default_out(out, quick)
    plan = members(settings)
    to_train = unique_specs(members(settings, only))
    # The data first: a missing data set fails before anything is written.
    for dataset in sorted({s.dataset for s in to_train} | {"mnist"}):
        data.load(dataset, "test", data_dir)
    out.mkdir(parents=True, exist_ok=True)
    log(f"reproduce{' --quick' if quick else ''}: {len(to_train)} runs to check in {out} "
        f"({', '.join(only)})")
    record: dict[str, Any] = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "quick": quick, "only": list(only), "trained": []}
    previous = _read_sweep_log(out / "sweep.json")
    try:
        trained, skipped = train_missing(to_train, out, settings, data_dir, log, record["trained"],
                                         stop_requested)
        clf, clf_info, clf_id = classifier_for(out, settings, data_dir, log)
        tests = _TestSets(settings, data_dir)
        finished = {s: read_final(run_dir(out, s)) for s in unique_specs(plan)
                    if (run_dir(out, s) / "final.json").is_file()}
        measures = _measure_all(out, finished, tests, settings, (clf, clf_id), log,
                                stop_requested)
        rows = [make_row(m, finished[m.spec], measures.get(m.spec.name)) for m in plan
                if m.spec in finished]
        _stop_if_requested(stop_requested)
        claims = judge(claim_inputs(finished, measures), clf_info["accuracy"])
        figure_names = make_figures(out, finished, rows, tests, log)
        now = time.perf_counter() - t_start
        timing = {"finished": len(finished),
                  "train_seconds": sum(f["seconds"] for f in finished.values()),
                  "wall_seconds": sum(r["wall_seconds"] for r in previous if r["trained"])
                  + (now if trained else 0.0)}
        write_json(out / "results.json", rows)
        text = results_markdown(rows, plan, measures, claims, clf_info, timing, settings,
                                figure_names, REPORT_SPLIT)
        atomic_write(out / "results.md", lambda tmp: Path(tmp).write_text(text))
        log("")
        log(console_summary(rows, claims))
        log(f"\nwrote results.json ({len(rows)} rows), results.md and figures/ in {out}")
        if docs is not None:
            write_docs(out, Path(docs), figure_names, log)
    finally:
        record["wall_seconds"] = time.perf_counter() - t_start
        write_json(out / "sweep.json", [*previous, record])
    return Result(out, rows, claims, trained, skipped, time.perf_counter() - t_start)

