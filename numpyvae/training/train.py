"""Training a run: the data, resume, checkpoints, the history and the progress line,
around the loop of ``loop.py``.

A run folder holds ``config.json``, ``history.json`` (one entry per epoch),
``checkpoint.npz`` (written after every epoch) and ``final.json``. A checkpoint is
written only when everything in it is finite; a run that diverges raises
TrainingDiverged and writes no ``final.json``. Figures are the CLI's business.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import data
from ..data.filelock import LockHeld, held_lock_file
from ..models.autoencoder import Autoencoder
from ..models.vae import VAE, Losses
from ..nn.adam import Adam
from .checkpoint import (
    load_model_arrays,
    load_run_checkpoint,
    remove_stray_temp_files,
    save_checkpoint,
    write_json,
)
from .config import (
    CHECKPOINT,
    DEFAULT_LR,
    FIXED_ON_RESUME,
    MODELS,
    TrainConfig,
    build_model,
    objective_options,
)
from .loop import (
    EVAL_BATCH,
    EVAL_SEED,
    Batch,
    TrainingDiverged,
    evaluate,
    kl_weight,
    train_epoch,
)
from .memory import keep_freed_memory
from .optimizer_state import load_optimizer_state, non_finite_moments, optimizer_state
from .run import LOCK, holds_no_run, read_final

__all__ = ["CHECKPOINT", "DEFAULT_LR", "EVAL_BATCH", "EVAL_SEED", "FIXED_ON_RESUME", "MODELS",
           "LOCK", "Progress", "TrainConfig", "TrainingDiverged", "build_model", "evaluate",
           "evaluation_images", "holds_no_run", "train", "unique_run_dir"]


def unique_run_dir(base: str | Path) -> Path:
    """``base``, or ``base-2``, ``base-3``, … : the first that does not exist yet."""
    base = Path(base)
    out, k = base, 2
    while out.exists():
        out, k = Path(f"{base}-{k}"), k + 1
    return out


def evaluation_images(config: TrainConfig, x: np.ndarray) -> np.ndarray:
    """The images a run is evaluated on: ``x`` itself, or for a binarized run one fixed
    binary draw of it (the same for every epoch, run and command)."""
    if not config.binarize:
        return x
    return data.binarize(x, np.random.default_rng(data.BINARIZE_SEED))


_numpy_alone_threads: list = []  # (n, threadpoolctl's limit) of --threads without numba


def set_threads(n: int) -> None:
    """``--threads n``: numba's pool and every BLAS at n threads (``kernels/threads.py``);
    on NumPy alone (no numba), BLAS only."""
    from ..nn.lazy_kernels import KERNELS_AVAILABLE

    if KERNELS_AVAILABLE:
        from ..kernels.threads import set_threads as set_kernel_threads

        return set_kernel_threads(n)
    from threadpoolctl import threadpool_limits

    top = os.cpu_count() or 1
    if not 1 <= n <= top:
        raise ValueError(f"--threads must be between 1 and {top} (the cores of this machine), "
                         f"got {n}")
    _numpy_alone_threads[:] = [(n, threadpool_limits(limits=n, user_api="blas"))]


def current_threads() -> int:
    """The thread count numba's kernels use now (``--threads`` sets BLAS's to the same);
    on NumPy alone, BLAS's: ``--threads``, else one per core."""
    try:
        import numba
    except ImportError:
        return _numpy_alone_threads[0][0] if _numpy_alone_threads else os.cpu_count() or 1
    return int(numba.get_num_threads())


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


@contextlib.contextmanager
def announce_compiles(log: Callable[[str], None]) -> Iterator[None]:
    """Say once that numba compiles, at the moment it does: a kernel that is not in the
    on-disk cache yet (numba's "numba:compile" event fires only on a cache miss)."""
    said = False

    def on_start(_event: Any) -> None:
        nonlocal said
        if not said:
            said = True
            log("compiling the numba kernels (first run only: cached on disk afterwards)...")

    try:
        from numba.core import event

        listener = type("_Announce", (event.Listener,), {
            "on_start": lambda self, e: on_start(e), "on_end": lambda self, e: None})()
        installed = event.install_listener("numba:compile", listener)
    except (ImportError, AttributeError, TypeError):  # numba's event API moved: stay quiet
        installed = contextlib.nullcontext()
    with installed:
        yield


@dataclass
class RunData:
    """A run's images: training (with labels for a conditional model, else None), the
    test images as evaluated, and the monitor subset of them (``test100``)."""

    x_train: np.ndarray
    labels_train: np.ndarray | None
    x_test: np.ndarray
    labels_test: np.ndarray | None
    monitor: np.ndarray
    labels_monitor: np.ndarray | None


def load_run_data(config: TrainConfig) -> RunData:
    """Load and cut the config's data set; a subset larger than the set, or an empty
    set, is an error naming it."""
    x_train, y_train = data.load(config.dataset, "train", config.data_dir)
    x_test, y_test = data.load(config.dataset, "test", config.data_dir)
    for split, x, subset, option in (("training", x_train, config.train_subset, "--train-subset"),
                                     ("test", x_test, config.test_subset, "--test-subset")):
        if len(x) == 0:
            raise ValueError(f"the {config.dataset} {split} set in "
                             f"{data.resolve_data_dir(config.data_dir)} has 0 images; fetch it "
                             f"again with: {data.fetch_command(config.dataset, config.data_dir)}")
        if subset is not None and subset > len(x):
            raise ValueError(f"{option} {subset}: the {config.dataset} {split} set has only "
                             f"{len(x):,} images")
    if config.train_subset:
        keep = data.epoch_order(len(x_train), config.seed, 10**6)[:config.train_subset]
        x_train, y_train = x_train[keep], y_train[keep]
    if config.test_subset:
        x_test, y_test = x_test[:config.test_subset], y_test[:config.test_subset]
    x_test = evaluation_images(config, x_test)
    # The labels go to the model only when it is conditional.
    if not config.conditional:
        y_train = y_test = None
    monitor = data.monitor_indices(len(x_test), min(data.MONITOR_SIZE, len(x_test)))
    return RunData(x_train, y_train, x_test, y_test, x_test[monitor],
                   None if y_test is None else y_test[monitor])


def epoch_batches(config: TrainConfig, run_data: RunData, epoch: int,
                  noise_rng: np.random.Generator) -> Iterator[Batch]:
    """The batches of ``epoch`` in its shuffled order (it depends on (seed, epoch) only);
    a binarized run draws each batch's binary pixels from ``noise_rng``."""
    x, labels = run_data.x_train, run_data.labels_train
    for idx in data.batches(len(x), config.batch_size, config.seed, epoch):
        xb = data.binarize(x[idx], noise_rng) if config.binarize else x[idx]
        yield xb, None if labels is None else labels[idx]


@dataclass
class TrainState:
    """What a checkpoint restores: the model, Adam, the noise generator, the history."""

    model: VAE | Autoencoder
    optimizer: Adam
    noise_rng: np.random.Generator
    history: list[dict[str, Any]]

    @property
    def epoch(self) -> int:
        return len(self.history)


def new_state(config: TrainConfig) -> TrainState:
    model = build_model(config)
    return TrainState(model, Adam(model.parameters(), lr=config.lr),
                      np.random.default_rng([config.seed, 1]), [])


def resume_state(config: TrainConfig, out: Path, log: Callable[[str], None]) -> TrainState:
    """The state saved in ``out``; refuses (ValueError, nothing written) when the
    checkpoint cannot continue into ``config``."""
    ckpt = out / CHECKPOINT
    if not ckpt.is_file():
        if not out.is_dir():
            raise FileNotFoundError(f"--resume: there is no run folder {out}")
        recorded = [name for name in ("final.json", "history.json") if (out / name).is_file()]
        if recorded:
            raise ValueError(
                f"--resume: {out} has {' and '.join(recorded)} but no {CHECKPOINT}: the "
                "checkpoint is gone, so the run cannot be continued, and starting over would "
                "overwrite its results. Train into another folder (nothing was changed)")
        log(f"{out} has no checkpoint yet (stopped during epoch 1): starting from epoch 1")
        return new_state(config)
    arrays, optim_state, meta = load_run_checkpoint(ckpt, resuming=True)
    saved = TrainConfig.from_json(meta["config"], where=f"{ckpt} (its config)")
    for name in FIXED_ON_RESUME:
        if getattr(saved, name) != getattr(config, name):
            raise ValueError(
                f"--resume: {name} is {getattr(saved, name)!r} in {ckpt}, "
                f"but {getattr(config, name)!r} was asked for; a resumed run keeps its config")
    if len(meta["history"]) != meta["epoch"]:
        raise ValueError(f"{ckpt}: its meta says epoch {meta['epoch']} but holds "
                         f"{len(meta['history'])} history entries: the checkpoint is damaged")
    if config.epochs < meta["epoch"]:
        raise ValueError(
            f"--resume --epochs {config.epochs}: the checkpoint in {out} is at epoch "
            f"{meta['epoch']}, and a run cannot be resumed to an earlier epoch (nothing was "
            "changed)")
    model = load_model_arrays(saved, arrays, str(ckpt), build_model)
    optimizer = Adam(model.parameters(), lr=config.lr)
    noise_rng = np.random.default_rng([config.seed, 1])
    try:
        load_optimizer_state(optimizer, optim_state)
        noise_rng.bit_generator.state = meta["noise_rng"]
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{ckpt}: its optimizer or generator state is damaged ({e})") from None
    if saved.threads is not None and config.threads is not None \
            and saved.threads != config.threads:
        log(f"note: epochs 1..{meta['epoch']} ran with {saved.threads} thread(s), this session "
            f"with {config.threads}: the result may not be bitwise the same as an uninterrupted "
            "run (BLAS products can round differently at another thread count)")
    return TrainState(model, optimizer, noise_rng, list(meta["history"]))


def _diverged(config: TrainConfig, out: Path, epoch: int, what: str, cause: str,
              run_data: RunData) -> TrainingDiverged:
    """The error for a run that diverged in ``epoch`` (0-based): ``what`` went non-finite,
    and ``cause`` ("loss", "parameters", "optimizer", "evaluation", or "first batch" when
    no parameter had moved yet) picks the hint, unless the data hold NaN: they come first."""
    bad = [f"the {split} images hold {n:,} NaN or infinite pixel values" for split, n in (
        ("training", run_data.x_train.size - np.isfinite(run_data.x_train).sum()),
        ("test", run_data.x_test.size - np.isfinite(run_data.x_test).sum())) if n]
    if bad:
        what, cause = f"{' and '.join(bad)} ({what})", "data"
    ckpt = f"the last good checkpoint (epoch {epoch}) is kept in {out}" \
        if epoch and (out / CHECKPOINT).is_file() else "no checkpoint was written"
    if cause == "data":
        hint = "the options are not the cause: check the data set's files"
    elif config.likelihood == "gaussian" and config.c < 1e-4:
        hint = (f"c = {config.c:g} is tiny: recon = SSE / 2c overflows; start a new run with a "
                "larger --c (the report's is 0.05)")
    elif config.beta > 1e4:
        hint = (f"β = {config.beta:g} weighs the KL so heavily that its gradient overflows; "
                "start a new run with a smaller --beta")
    elif cause == "first batch":
        hint = "no parameter had been updated yet, so --lr is not the cause: check the data"
    else:
        hint = (f"lr = {config.lr:g} is likely too large; --lr cannot change on --resume, so "
                "start a new run with a smaller --lr")
    return TrainingDiverged(f"training diverged in epoch {epoch + 1}, {what}; stopped, "
                            f"{ckpt}. {hint}")


def _non_finite(arrays: dict[str, np.ndarray]) -> str:
    """The names of the arrays holding NaN or infinity, and how many of their numbers do
    ("" when all are finite)."""
    bad = {k: int(a.size - np.isfinite(a).sum()) for k, a in arrays.items()
           if not np.isfinite(a).all()}
    if not bad:
        return ""
    total = sum(a.size for a in arrays.values())
    return (f"{sum(bad.values()):,} of {total:,} numbers, in {', '.join(list(bad)[:3])}"
            f"{'…' if len(bad) > 3 else ''}")


def _not_finite(state: TrainState, mean: np.ndarray, test100: Losses) -> tuple[str, str] | None:
    """(what is NaN or infinite after an epoch, its cause), or None if everything that is
    saved, Adam's state included, is finite."""
    bad = _non_finite(state.model.named_arrays())
    if bad:
        return f"after its last batch the parameters are not finite ({bad})", "parameters"
    bad = non_finite_moments(state.optimizer)
    if bad:
        return (f"Adam's state (m, v) is not finite ({bad}): the gradients overflowed, and "
                "those parameters would never move again", "optimizer")
    if not np.isfinite(mean).all():
        return f"the mean training loss is {mean[0]}", "loss"
    if not all(np.isfinite(list(test100.as_dict().values()))):
        return (f"the test100 loss is {test100.loss} (recon {test100.recon}, KL {test100.kl})",
                "evaluation")
    return None


def _first_non_finite(state: TrainState, e: TrainingDiverged, moved: bool) -> tuple[str, str]:
    """What went non-finite first when the loop stopped on a non-finite loss (the data are
    checked by _diverged): the parameters (the loss followed), or a term of the loss."""
    params = _non_finite(state.model.named_arrays())
    if params:
        return f"{e}; the first to go non-finite: the parameters ({params})", "parameters"
    cause = "loss" if moved else "first batch"
    losses = e.losses
    if losses is None:
        return str(e), cause
    terms = [name for name, v in (("the reconstruction term", losses.recon),
                                  ("the KL term", losses.kl)) if not np.isfinite(v)]
    if not terms:
        terms = ["the loss" if not np.isfinite(losses.loss) else "the objective (recon + β·KL)"]
    return f"{e}; the first to go non-finite: {' and '.join(terms)}", cause


def train(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    log: Callable[[str], None] = print,
    stop_requested: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run in ``out_dir``; returns the contents of ``final.json``.

    The checkpoint is written after every epoch, so an interruption loses at
    most the epoch in progress; ``resume=True`` continues from it and ends with
    the same parameters as an uninterrupted run. A finished run is never
    rewritten: resuming it to the same epoch only returns its ``final.json``.
    One process at a time writes a run folder: it holds ``.lock`` meanwhile.
    ``stop_requested()`` true (a signal came, even one whose KeyboardInterrupt was
    swallowed) raises KeyboardInterrupt at the next batch, before anything is saved.
    """
    out = Path(out_dir)
    keep_freed_memory()  # each step's large arrays reuse the last step's pages
    config = copy.copy(config)  # checked when it was made; only the record changes
    config.threads = current_threads()
    run_data = load_run_data(config)  # data first: a missing data set fails before any write
    made = False
    if not resume:
        made = _make_run_folder(out)
    elif not out.is_dir():
        raise FileNotFoundError(f"--resume: there is no run folder {out}")
    try:
        with held_lock_file(out / LOCK):  # LockHeld comes only from taking it
            if not resume:
                _write_new_config(out, config, made, log)
            return _train_session(config, out, resume, run_data, log,
                                  stop_requested or (lambda: False))
    except LockHeld as e:
        raise ValueError(f"{out} is being written by another process (PID {e.pid}): a run "
                         "folder takes one writer at a time; wait for it to end or stop it "
                         "(nothing was changed)") from None
    except BaseException:
        # a folder made here that never got its config.json (a full or read-only disk, an
        # interrupt) is removed again: the same command can rerun
        if not resume and made and holds_no_run(out):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _make_run_folder(out: Path) -> bool:
    """Make the run folder ``out``; True if made, False if it was there holding no run
    (``holds_no_run``: a run killed before it wrote config.json), FileExistsError else."""
    try:
        out.mkdir(parents=True)
    except FileExistsError:
        if not holds_no_run(out):
            raise FileExistsError(f"{out} exists: resume it, or choose another folder "
                                  "(nothing was overwritten)") from None
        return False
    return True


def _write_new_config(out: Path, config: TrainConfig, made: bool,
                      log: Callable[[str], None]) -> None:
    """config.json of a new run, the folder's lock held. A folder that was there is checked
    again, under the lock, to hold no run."""
    if not made:
        if not holds_no_run(out):  # another process wrote a run there since
            raise FileExistsError(f"{out} exists: resume it, or choose another folder "
                                  "(nothing was overwritten)")
        left = remove_stray_temp_files(out)
        log(f"note: {out} exists but holds no run (left by a run stopped before it wrote "
            f"config.json{f'; removed {len(left)} temporary file(s)' if left else ''}): "
            "reusing it")
    write_json(out / "config.json", config.to_json())


def _train_session(config: TrainConfig, out: Path, resume: bool, run_data: RunData,
                   log: Callable[[str], None], stop_requested: Callable[[], bool]
                   ) -> dict[str, Any]:
    """train()'s work, with the run folder's lock held."""
    state = resume_state(config, out, log) if resume else new_state(config)
    if state.epoch == config.epochs and (out / "final.json").is_file():
        log(f"{out} is finished at epoch {config.epochs}: nothing to do (give a larger --epochs "
            "to train further)")
        try:
            return read_final(out, state.history)
        except ValueError as e:
            raise ValueError(f"{e}. The checkpoint is the record: delete final.json and "
                             "resume again to redo the final evaluation") from None
    if resume:  # config.json is rewritten with the next checkpoint, never ahead of it
        remove_stray_temp_files(out)
        write_json(out / "history.json", state.history)  # it may lag the checkpoint
    if state.epoch < config.epochs:
        log(_banner(config, state, len(run_data.x_train), out))
    final = None
    while state.epoch < config.epochs:
        with announce_compiles(log):
            entry = _train_one_epoch(config, state, run_data, out, stop_requested)
        state.history.append(entry)
        if state.epoch == config.epochs:  # a checkpoint is good only with a finite evaluation
            final = _final_evaluation(config, state, run_data, out)
        _stop_if_requested(stop_requested)
        _save_epoch(config, state, out)
        log(_epoch_line(config, entry))
    if final is None:  # resumed at its last epoch, before final.json was written
        final = _final_evaluation(config, state, run_data, out)
    _stop_if_requested(stop_requested)
    write_json(out / "final.json", final)
    log(f"final: train {final['train']['loss']:.2f} (recon {final['train']['recon']:.2f}, "
        f"KL {final['train']['kl']:.2f}{_objective_note(config, final['train'])}), "
        f"train (eval mode) {final['train_eval']['loss']:.2f}, "
        f"test {final['test']['loss']:.2f}")
    return final


def _stop_if_requested(stop_requested: Callable[[], bool]) -> None:
    """An interrupt whose KeyboardInterrupt was lost (raised inside a callback that
    swallows exceptions, as numba's compiler runs some) still stops the run here."""
    if stop_requested():
        raise KeyboardInterrupt


def _banner(config: TrainConfig, state: TrainState, n: int, out: Path) -> str:
    extras = (", conditional on the class" if config.conditional else "") + (
        f", {config.likelihood} decoder" if config.likelihood != "gaussian" else "") + (
        ", binarized pixels" if config.binarize else "") + (
        f", objective recon + β·KL with {objective_options(config)}"
        if config.objective_tags() else "")
    note = "" if config.kl_warmup <= config.epochs else (
        f"\nnote: --kl-warmup {config.kl_warmup} is longer than --epochs {config.epochs}: β "
        f"rises only to {config.beta * config.epochs / config.kl_warmup:g} (of {config.beta:g}) "
        "by the end of the run")
    return (f"training {config.arch.upper()} {config.model.upper()} on {config.dataset}{extras}, "
            f"z = {config.latent_dim}, {state.model.num_params():,} params, {n:,} images, "
            f"epochs {state.epoch + 1}..{config.epochs} -> {out}{note}")


def _objective_note(config: TrainConfig, train_loss: dict[str, Any]) -> str:
    """``, objective … at β …`` when training optimises something else than −ELBO."""
    if "beta" not in train_loss or (config.beta, config.kl_warmup, config.free_bits) == (1, 0, 0):
        return ""
    b0, b1 = train_loss["beta"]
    beta = f"{b0:.3g}" if b0 == b1 else f"{b0:.3g}..{b1:.3g}"
    fb = f", free bits {config.free_bits:g}" if config.free_bits else ""
    return f", objective {train_loss['objective']:7.2f} at β {beta}{fb}"


def _epoch_line(config: TrainConfig, entry: dict[str, Any]) -> str:
    train_loss, test100 = entry["train"], entry["test100"]
    return (f"epoch {entry['epoch']:>2}/{config.epochs}  train {train_loss['loss']:7.2f} "
            f"(recon {train_loss['recon']:7.2f}, KL {train_loss['kl']:5.2f}"
            f"{_objective_note(config, train_loss)})  test100 "
            f"{test100['loss']:7.2f}  {entry['seconds']:6.1f} s  "
            f"{entry['images_per_s']:,.0f} img/s")


def _save_epoch(config: TrainConfig, state: TrainState, out: Path) -> None:
    """The checkpoint, then config.json and history.json beside it; a final.json of an
    earlier epoch goes first, so that no file says more than the checkpoint."""
    (out / "final.json").unlink(missing_ok=True)
    meta = {"config": config.to_json(), "epoch": state.epoch, "history": state.history,
            "noise_rng": state.noise_rng.bit_generator.state}
    save_checkpoint(out / CHECKPOINT, state.model.named_arrays(), optimizer_state(state.optimizer),
                    meta)
    write_json(out / "config.json", config.to_json())
    write_json(out / "history.json", state.history)


def _train_one_epoch(config: TrainConfig, state: TrainState, run_data: RunData,
                     out: Path, stop_requested: Callable[[], bool] = lambda: False
                     ) -> dict[str, Any]:
    """Epoch ``state.epoch`` + 1 through the loop, checked, as its history entry."""
    epoch, n = state.epoch, len(run_data.x_train)
    n_batches = data.num_batches(n, config.batch_size)
    progress, t0, steps = Progress(), time.perf_counter(), [0]

    def show(done: int, mean_loss: float) -> None:
        _stop_if_requested(stop_requested)
        steps[0] = done
        eta = (time.perf_counter() - t0) / done * (n_batches - done)
        progress.update(f"epoch {epoch + 1}/{config.epochs}  batch {done}/{n_batches}  "
                        f"loss {mean_loss:.1f}  ETA {_fmt_seconds(eta)}")

    state.model.train()
    batches = epoch_batches(config, run_data, epoch, state.noise_rng)
    beta_at = None if config.model != "vae" else \
        lambda b: kl_weight(config.beta, config.kl_warmup, epoch, b, n_batches)
    try:
        mean = train_epoch(state.model, state.optimizer, batches, state.noise_rng, show,
                           beta_at)
        test100 = evaluate(state.model, run_data.monitor, y=run_data.labels_monitor)
    except (TrainingDiverged, FloatingPointError) as e:
        moved = epoch > 0 or steps[0] > 0
        if isinstance(e, TrainingDiverged):
            what, cause = _first_non_finite(state, e, moved)
            what = f"batch {steps[0] + 1}/{n_batches}: {what}"
        else:
            what, cause = f"the test100 evaluation: {e}", "evaluation"
        raise _diverged(config, out, epoch, what, cause, run_data) from None
    finally:
        progress.clear()
    problem = _not_finite(state, mean, test100)
    if problem:
        raise _diverged(config, out, epoch, *problem, run_data)
    seconds = time.perf_counter() - t0
    # loss is −ELBO; objective is what was optimised (the mean over batches of each
    # batch's recon + β·KL term) and beta the first and last batch's β.
    betas = [beta_at(0), beta_at(n_batches - 1)] if beta_at is not None else [1.0, 1.0]
    return {"epoch": epoch + 1,
            "train": {"loss": float(mean[0]), "recon": float(mean[1]), "kl": float(mean[2]),
                      "objective": float(mean[3]), "beta": betas},
            "test100": test100.as_dict(), "seconds": seconds, "images_per_s": n / seconds,
            "threads": config.threads}


def _final_evaluation(config: TrainConfig, state: TrainState, run_data: RunData,
                      out: Path) -> dict[str, Any]:
    """final.json's contents: the full training and test sets in eval mode, all finite."""
    try:
        train_eval = evaluate(state.model, evaluation_images(config, run_data.x_train),
                              y=run_data.labels_train)
        test = evaluate(state.model, run_data.x_test, y=run_data.labels_test)
    except FloatingPointError as e:
        raise _diverged(config, out, state.epoch - 1, f"final evaluation: {e}",
                        "evaluation", run_data) from None
    for name, losses in (("training", train_eval), ("test", test)):
        if not all(np.isfinite(list(losses.as_dict().values()))):
            raise _diverged(config, out, state.epoch - 1,
                            f"the final evaluation on the {name} set is {losses.loss}",
                            "evaluation", run_data)
    return {
        "train": state.history[-1]["train"],
        "train_eval": train_eval.as_dict(),
        "test": test.as_dict(),
        "epochs": config.epochs,
        "seconds": sum(h["seconds"] for h in state.history),
    }
