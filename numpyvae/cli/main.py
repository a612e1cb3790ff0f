"""The command line:
``python -m numpyvae train | sample | plot | explore | evaluate | reproduce | gradcheck``."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import data
from ..data.catalog import DATASETS
from ..models.architectures import ARCHS
from ..training.config import int_at_least
from ..training.interrupts import interrupts_recorded

RUNS_DIR = Path("runs")
# errnos that mean the disk let the run down (exit 1), not that a path was wrong (exit 2)
DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EIO, getattr(errno, "EDQUOT", errno.ENOSPC)}


_seed = int_at_least(0, "seed")  # NumPy's generators take no negative seeds
_positive = int_at_least(1, "count")


def _writable_folder(folder: Path, option: str, given: Path) -> None:
    """Raise ValueError unless files can be created in ``folder`` (or, when it does not
    exist yet, in the nearest folder above it that does): checked by creating one."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {given}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".numpyvae-probe-", dir=existing)
    except OSError as e:
        raise ValueError(f"{option} {given}: cannot write in {existing} "
                         f"({e.strerror or e})") from None
    os.close(fd)
    os.remove(probe)


def check_out_file(path: str | Path, option: str = "--out", example: str = "out.png") -> Path:
    """The output file ``path``, checked before any work: not a folder, and its folder
    writable (created later if missing)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder: give a file name, e.g. "
                         f"{path / example}")
    _writable_folder(path.parent, option, path)
    return path


def check_out_dir(path: str | Path, option: str = "--out") -> Path:
    """The output folder ``path``, checked before any work: a folder (or not there yet)
    in which files can be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file: give a folder for the figures")
    _writable_folder(path, option, path)
    return path


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Re-raise a failed write's OSError naming ``path``, not its temporary file."""
    try:
        yield
    except OSError as e:
        raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from e


def _describe_os_error(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e} (errno {e.errno})" if e.errno else f"{where}{e}"


def _readable_error(e: BaseException) -> str:
    """An exception's text without NumPy's advice to load untrusted files with pickle."""
    text = str(e)
    if "allow_pickle" in text:
        text = "it holds a Python object array, which a numpyvae file never does"
    return text


def _load_run(run_dir: str | Path):
    """``load_run`` with every way a run folder can be damaged turned into a ValueError
    (or FileNotFoundError) that names the file and what was wrong."""
    from ..training.run import load_run
    from ..training.train import CHECKPOINT

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--run {run_dir}: no such run folder")
    ckpt = run_dir / CHECKPOINT
    try:  # load_run checks the checkpoint's meta and config against its arrays
        return load_run(run_dir)
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise ValueError(f"{ckpt}: {type(e).__name__}: {_readable_error(e)}") from None
    except ValueError as e:
        raise ValueError(_readable_error(e)) from None


def _int_list(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated widths like 300,100,10, got {text!r}"
        ) from None
    return widths  # TrainConfig checks that they are positive


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from ..models.likelihoods import LIKELIHOODS
    from ..training.config import MODELS

    p = sub.add_parser(
        "train",
        help="train a VAE and write its figures",
        description="Train a VAE (the report's defaults: batch 256, Adam, lr 0.0025 MLP / "
        "0.0015 CNN, 15 epochs, c = 0.05) and write checkpoint, history and figures to a "
        "run folder. Defaults are in brackets.",
    )
    # Defaults of None mean "not given", so --resume can tell what the user asked to change.
    p.add_argument("--arch", choices=ARCHS, default=None, help="architecture [mlp]")
    p.add_argument("--model", choices=MODELS, default=None,
                   help="a VAE, or the plain autoencoder the report compares it with (MLP "
                   "only) [vae]")
    p.add_argument("--conditional", action="store_const", const=True, default=None,
                   help="a conditional VAE: encoder and decoder also see the one-hot class "
                   "label, so 'sample --label K' draws class K")
    p.add_argument("--likelihood", choices=LIKELIHOODS, default=None,
                   help="the decoder's p(x|z): the report's Gaussian with variance c, or "
                   "Bernoulli (binary cross-entropy on logits) [gaussian]")
    p.add_argument("--binarize", action=argparse.BooleanOptionalAction, default=None,
                   help="train and evaluate on binary pixels drawn from the grey levels, "
                   "fresh each time an image is seen [on with bernoulli, else off]")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="data set [mnist]")
    p.add_argument("--latent-dim", type=int, default=None, help="latent dimension z [2]")
    p.add_argument("--hidden", type=_int_list, default=None,
                   help="MLP hidden widths [300,100,10, the report's printout; its text says "
                   "300,100,20]")
    _add_optimisation_options(p)
    _add_run_options(p)
    p.set_defaults(func=cmd_train)


def _add_optimisation_options(p: argparse.ArgumentParser) -> None:
    """train's options of the optimisation and the objective: epochs, lr, batch, c, β, KL."""
    p.add_argument("--epochs", type=int, default=None,
                   help="total epochs, also with --resume [15]")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate [0.0025 for mlp, 0.0015 for cnn]")
    p.add_argument("--batch-size", type=int, default=None, help="batch size [256]")
    p.add_argument("--c", type=float, default=None,
                   help="the balance c: decoder variance, recon = SSE / 2c [0.05]")
    p.add_argument("--beta", type=float, default=None,
                   help="β, the weight on the KL: the objective is recon + β·KL; the loss "
                   "reported stays −ELBO [1]")
    p.add_argument("--kl-warmup", type=int, default=None, metavar="E",
                   help="β rises linearly from 0 over the first E epochs, batch by batch [0]")
    p.add_argument("--free-bits", type=float, default=None, metavar="LAMBDA",
                   help="the KL term is Σ_j max(λ, KL_j), KL_j the batch mean of dimension j, "
                   "in nats [0]")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """train's options of the run: seed, threads, data, its folder, resuming, subsets."""
    p.add_argument("--seed", type=int, default=None, help="seed for init, shuffling, noise [0]")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for numba and BLAS together [all cores]")
    p.add_argument("--data-dir", default=None,
                   help="data folder [$NUMPYVAE_DATA, else ./data]")
    p.add_argument("--out", default=None,
                   help="run folder [runs/{arch}-{dataset}-z{z}-s{seed}, with -b{β} -w{E} "
                   "-fb{λ} before -s when set; -2, -3... if taken]")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on N images only (a quick run)")
    p.add_argument("--test-subset", type=int, default=None,
                   help="evaluate on the first N test images only")
    p.add_argument("--no-figures", action="store_true", help="skip the figures at the end")


def _config_from_args(args: argparse.Namespace):
    from ..training.train import TrainConfig

    names = ("arch", "model", "dataset", "latent_dim", "hidden", "epochs", "lr", "batch_size", "c",
             "seed", "train_subset", "test_subset", "data_dir", "conditional", "likelihood",
             "binarize", "beta", "kl_warmup", "free_bits")
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if not args.resume:
        return TrainConfig(**given)
    if args.out is None:
        raise ValueError("--resume needs --out: the run folder to continue")
    if not Path(args.out).is_dir():
        what = "a file, not a run folder" if Path(args.out).exists() else "not there"
        raise FileNotFoundError(f"--resume: --out {args.out} is {what}: there is no run to "
                                "continue")
    from ..training.run import saved_config

    where, saved = saved_config(args.out)
    return TrainConfig.from_json(saved | given, where=where)


def cmd_train(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    out = _run_folder(args, config)
    if args.threads is not None:
        from ..training.train import set_threads

        set_threads(args.threads)
    _ensure_data(config.dataset, config.data_dir)
    resume_cmd = (f"python -m numpyvae train --out {shlex.quote(str(out))} --resume"
                  + (f" --epochs {config.epochs}" if args.epochs is not None else ""))

    def final_mtime(run: Path) -> int | None:
        path = run / "final.json"
        return path.stat().st_mtime_ns if path.is_file() else None

    finished_before = final_mtime(out)
    with interrupts_recorded() as seen:
        code = _train_or_say_why(config, out, args.resume, seen, resume_cmd)
        if code is not None:
            return code
        # a finished run that was only reopened is left as it was
        draw = not args.no_figures and final_mtime(out) != finished_before
        return _draw_or_say_why(out, draw, seen)


def _kept(out: Path, resume_cmd: str, resume: str = "Resume with") -> str:
    """What an interrupted or failed training left in ``out``, and the command that goes on."""
    from ..training.train import CHECKPOINT, holds_no_run

    if not out.is_dir() or holds_no_run(out):
        where = f"{out} holds no run" if out.is_dir() else f"there is no {out}"
        return f"Nothing was kept: {where}. Run the same command again."
    kept = (f"The last checkpoint (end of the last finished epoch) is kept in {out}."
            if (out / CHECKPOINT).is_file() else
            f"No epoch had finished, so there is no checkpoint yet in {out}; resuming "
            "starts at epoch 1.")
    return f"{kept}\n{resume}:\n    {resume_cmd}"


def _once_writable(e: OSError) -> str:
    full = e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    return "Once the disk has room" if full else "Once the disk can be written again"


def _train_or_say_why(config: Any, out: Path, resume: bool, seen: list[int],
                      resume_cmd: str) -> int | None:
    """train(); None when it ended, else the exit status, with what was kept printed:
    130 interrupted, 1 diverged or the disk failed (full, read-only)."""
    import numpy as np

    from ..training.train import TrainingDiverged, train

    try:
        # Divergence is detected by checking for NaN and inf; numpy's warnings add nothing.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            train(config, out, resume=resume, stop_requested=lambda: bool(seen))
    except KeyboardInterrupt:
        print(f"\ninterrupted. {_kept(out, resume_cmd)}", file=sys.stderr)
        return 130
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno not in DISK_ERRNOS:
            raise
        print(f"error: train: {_describe_os_error(e)}. Every file is whole. "
              f"{_kept(out, resume_cmd, f'{_once_writable(e)}, resume with')}",
              file=sys.stderr)
        return 1
    return None


def _draw_or_say_why(out: Path, draw: bool, seen: list[int]) -> int:
    """The figures of the finished run in ``out`` (if ``draw``); 0, or 130 interrupted, 1
    the disk failed, with the command that draws them."""
    from ..figures.run_figures import draw_run_figures

    plot = f"python -m numpyvae plot --run {shlex.quote(str(out))}"
    try:
        if draw:
            draw_run_figures(out)
        if seen:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        print(f"\ninterrupted while drawing the figures: the run in {out} is finished and "
              f"saved, and no half-written figure is left. Draw them with:\n    {plot}",
              file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno not in DISK_ERRNOS:
            raise
        print(f"error: train: {_describe_os_error(e)}. The run in {out} is finished and "
              f"saved, and no half-written figure is left. {_once_writable(e)}, draw them "
              f"with:\n    {plot}", file=sys.stderr)
        return 1
    return 0


def _run_folder(args: argparse.Namespace, config: Any) -> Path:
    """train's run folder: --out (refused if it exists, unless resuming or it holds no run
    at all), else a new one named after the config under runs/."""
    from ..training.train import holds_no_run, unique_run_dir

    if args.out is None:
        prefix = "ae-" if config.model == "ae" else "cvae-" if config.conditional else ""
        suffix = ("-bernoulli" if config.likelihood == "bernoulli" else "") \
            + config.objective_tags()
        return unique_run_dir(
            RUNS_DIR / f"{prefix}{config.arch}-{config.dataset}-z{config.latent_dim}{suffix}"
            f"-s{config.seed}"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a run folder: choose a folder (nothing "
                         "was changed)")
    if out.exists() and not args.resume and not holds_no_run(out):
        raise ValueError(
            f"--out {out} exists: add --resume to continue it, or choose another folder "
            "(nothing was overwritten)"
        )
    return out


def _ensure_data(dataset: str, data_dir: str | None) -> None:
    """Fail early with the fetch command, or offer to fetch on a terminal."""
    try:
        data.load(dataset, "test", data_dir)
    except data.DataNotFoundError as e:
        if sys.stdin.isatty() and sys.stdout.isatty():
            print(e, file=sys.stderr)
            answer = input(f"Download {dataset} from the public mirrors now? [y/N] ")
            if answer.strip().lower() in ("y", "yes"):
                data.fetch([dataset], data.resolve_data_dir(data_dir))
                return
        raise


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where there is a default that the help does not give
    in brackets already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is argparse.SUPPRESS or "[" in text \
                or isinstance(action.default, bool):
            return text
        return super()._get_help_string(action)


def _run_parser(
    sub: argparse._SubParsersAction, name: str, help_text: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text,
                       formatter_class=_DefaultsHelp)
    p.add_argument("--run", required=True, help="a run folder written by 'train'")
    return p


def cmd_sample(args: argparse.Namespace) -> int:
    from ..figures.plots import check_sample_memory, save_class_samples, save_samples

    run = _load_run(args.run)
    vae = run.vae
    if args.label is not None and not vae.conditional:
        raise ValueError(f"--label: the model in {args.run} is not conditional (train it "
                         "with --conditional to draw a chosen class)")
    if args.label is not None and not 0 <= args.label < vae.num_classes:
        raise ValueError(f"--label must be in 0..{vae.num_classes - 1}, got {args.label}")
    per_class = vae.conditional and args.label is None  # one row per class
    n = args.n if args.n is not None else 10 if per_class else 100
    check_sample_memory(n * (vae.num_classes if per_class else 1), "--n")
    name = "samples.png" if args.label is None else f"samples-label{args.label}.png"
    out = check_out_file(args.out if args.out else Path(args.run) / name, example=name)
    out.parent.mkdir(parents=True, exist_ok=True)
    if per_class:
        path = save_class_samples(vae, out, n=n, seed=args.seed)
        print(f"wrote {n} samples of each class (the same z in every row) to {path}")
        return 0
    path = save_samples(vae, out, n=n, seed=args.seed, labels=args.label)
    what = "" if args.label is None else f" of class {args.label}"
    print(f"wrote {n} samples{what} from the prior to {path}")
    return 0


def _check_final(final: Any, path: Path) -> None:
    """Raise ValueError naming final.json and what it lacks for the summary."""
    if not isinstance(final, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(final).__name__}")
    for key in ("train", "train_eval", "test"):
        part = final.get(key)
        if not isinstance(part, dict) or not all(
                isinstance(part.get(k), (int, float)) for k in ("loss", "recon", "kl")):
            raise ValueError(f"{path}: {key!r} must be an object with numbers loss, recon "
                             f"and kl, got {part!r}")
    if not isinstance(final.get("seconds"), (int, float)):
        raise ValueError(f"{path}: 'seconds' must be a number, got {final.get('seconds')!r}")


def _check_history(history: list, where: str) -> None:
    """Raise ValueError unless every epoch has what the curves and the summary read."""
    if not history:
        raise ValueError(f"{where}: the history is empty (no finished epoch to plot)")
    for i, h in enumerate(history):
        ok = isinstance(h.get("epoch"), int) and isinstance(h.get("images_per_s"), (int, float))
        for split in ("train", "test100"):
            part = h.get(split)
            ok = ok and isinstance(part, dict) and all(
                isinstance(part.get(k), (int, float)) for k in ("loss", "recon", "kl"))
        if not ok:
            raise ValueError(f"{where}: history entry {i} lacks epoch, images_per_s, or "
                             "train / test100 with numbers loss, recon and kl")


def cmd_plot(args: argparse.Namespace) -> int:
    from ..figures.run_figures import make_figures
    from ..training.checkpoint import atomic_write
    from ..training.run import read_json, summary_markdown

    run = _load_run(args.run)
    ckpt = Path(args.run) / "checkpoint.npz"
    _check_history(run.history, f"{ckpt} (its history)")
    out = check_out_dir(args.out if args.out else args.run)
    final_path = Path(args.run) / "final.json"
    summary = None
    if final_path.is_file():
        final = read_json(final_path)  # a ValueError names the file and what is wrong
        _check_final(final, final_path)
        summary = summary_markdown(args.run)  # from the checkpoint, not config.json alone
    x_test, y_test = data.load(run.config.dataset, "test", args.data_dir or run.config.data_dir)
    # everything is checked: now draw
    paths = make_figures(run.vae, x_test, y_test, run.history, out, seed=args.seed)
    # history.json and config.json are copies of the checkpoint's, which is the record
    _repair_copy(Path(args.run) / "history.json", run.history, "history", run.epoch)
    _repair_copy(Path(args.run) / "config.json", run.config.to_json(), "config", run.epoch)
    if summary is not None:
        with _naming(out / "summary.md"):
            atomic_write(out / "summary.md", lambda tmp: Path(tmp).write_text(summary))
        paths.append(out / "summary.md")
    print(f"wrote {', '.join(p.name for p in paths)} in {out}")
    return 0


def _repair_copy(path: Path, record: Any, what: str, epoch: int) -> None:
    """Rewrite ``path``, a copy of the checkpoint's ``what``, from the checkpoint when it is
    damaged or differs (a killed run can leave history.json an epoch behind), with a note."""
    from ..training.checkpoint import write_json
    from ..training.run import read_json

    try:
        stale = read_json(path) != record
    except (OSError, ValueError, UnicodeDecodeError):
        stale = True
    if not stale:
        return
    try:
        write_json(path, record)
    except OSError as e:  # e.g. a read-only run folder drawn into --out elsewhere
        print(f"note: {path} differs from the checkpoint's {what} and could not be rewritten "
              f"({e.strerror or e})", file=sys.stderr)
    else:
        print(f"note: rewrote {path} from the checkpoint (epoch {epoch})", file=sys.stderr)


def _explore_parser(sub: argparse._SubParsersAction) -> None:
    p = _run_parser(sub, "explore", "move through the latent space by hand: a window with one "
                    "slider per latent dimension (and for z = 2 a clickable latent scatter); "
                    "with no display, or with --out, the same view as a PNG")
    p.add_argument("--z", default=None,
                   help="the starting point, one comma-separated value per latent dimension "
                   "(write --z=-1,0.5 when the first is negative) [all 0]")
    p.add_argument("--label", type=int, default=None,
                   help="for a conditional model: the class to decode [0]")
    p.add_argument("--out", default=None,
                   help="write the view as this PNG instead of opening a window "
                   "[RUN/explore.png when there is no display]")
    p.add_argument("--data-dir", default=None,
                   help="data folder for the z = 2 scatter [the run's, else default]")
    p.set_defaults(func=cmd_explore)


def cmd_explore(args: argparse.Namespace) -> int:
    from .explore import PNG_NAME, explore

    _load_run(args.run)  # a damaged run folder is named before anything else
    out = None if args.out is None else check_out_file(args.out, example=PNG_NAME)
    return explore(args.run, z=args.z, label=args.label, out=out, data_dir=args.data_dir)


def _evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = _run_parser(sub, "evaluate", "estimate log p(x) on the test set by importance "
                    "sampling (the IWAE bound, K samples per image), beside the ELBO")
    p.add_argument("--iw", type=int, default=1000, metavar="K",
                   help="K: importance samples per image (more: tighter, and slower)")
    p.add_argument("--subset", type=int, default=None, metavar="N",
                   help="the first N test images only [all 10,000]")
    p.add_argument("--seed", type=_seed, default=0, metavar="S",
                   help="seed for the draws z ~ q(z|x)")
    p.add_argument("--max-rows", type=int, default=None, metavar="R",
                   help="decoder rows (images × samples) per call, which bounds memory: "
                   "~40 kB a row for the MLP, ~0.4 MB for the CNN [10000 mlp, 1000 cnn]")
    p.add_argument("--data-dir", default=None, help="data folder [the run's, else default]")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="JSON file for the log p(x) result [RUN/loglik-k{K}-n{N}.json]")
    p.add_argument("--latent", action="store_true",
                   help="only the latent-space diagnostics (KL per dimension, active units, "
                   "I(x; z)), which evaluate always writes to RUN/latent-n{N}.json and "
                   "RUN/latent_health.png; skips log p(x)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import time

    from ..models.iwae import default_max_rows, log_likelihood
    from ..models.vae import VAE
    from ..training.checkpoint import write_json
    from ..training.train import Progress, _fmt_seconds, evaluate, evaluation_images

    _check_evaluate_options(args)
    run = _load_run(args.run)
    config, vae = run.config, run.vae
    if not isinstance(vae, VAE):
        raise ValueError(f"{args.run} holds a plain autoencoder: with no posterior q(z|x) "
                         "there is no likelihood to estimate")
    _check_iw_memory(vae, args.iw, args.max_rows)
    if args.out:  # fail now, not after minutes of work
        check_out_file(args.out, example="loglik.json")
    x, y = data.load(config.dataset, "test", args.data_dir or config.data_dir)
    if args.subset is not None and args.subset > len(x):
        raise ValueError(f"--subset {args.subset}: the test set has {len(x)} images")
    n = args.subset or len(x)
    out = check_out_file(args.out if args.out else Path(args.run) / f"loglik-k{args.iw}-n{n}.json",
                         example="loglik.json")
    x_eval = evaluation_images(config, x[:n])
    progress, t0 = Progress(), time.perf_counter()

    def show(done: int, total: int) -> None:
        eta = (time.perf_counter() - t0) / done * (total - done)
        progress.update(f"evaluate: {done:,}/{total:,} images, K = {args.iw}  "
                        f"ETA {_fmt_seconds(eta)}")

    labels = y[:n] if vae.conditional else None
    _evaluate_latent(args, config, vae, x_eval, labels, n)
    if args.latent:
        return 0
    max_rows = args.max_rows or default_max_rows(run.vae)
    try:
        est = log_likelihood(vae, x_eval, labels, k=args.iw, seed=args.seed,
                             max_rows=max_rows, progress=show)
    finally:
        progress.clear()
    loss = evaluate(vae, x_eval, y=labels).loss  # the training loss on the same images
    _print_log_likelihood(args.run, config, vae.conditional, est, loss)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _naming(out):
        write_json(out, est.as_dict() | {"run": str(args.run), "dataset": config.dataset,
                                         "iw": args.iw, "subset": args.subset,
                                         "seed": args.seed, "max_rows": max_rows,
                                         "data_dir": args.data_dir,
                                         "binarized": bool(config.binarize), "test_loss": loss})
    print(f"wrote {out}")
    return 0


def _check_evaluate_options(args: argparse.Namespace) -> None:
    """--iw, --subset and --max-rows are counts of at least 1."""
    if args.iw < 1:
        raise ValueError(f"--iw must be >= 1, got {args.iw}")
    if args.subset is not None and args.subset < 1:
        raise ValueError(f"--subset must be >= 1, got {args.subset}")
    if args.max_rows is not None and args.max_rows < 1:
        raise ValueError(f"--max-rows must be >= 1, got {args.max_rows}")


def _print_log_likelihood(run: str, config: Any, conditional: bool, est: Any, loss: float
                          ) -> None:
    """The estimate of log p(x) beside the ELBO, and what the two numbers are."""
    images = f"{config.dataset} test images" + (", binarized" if config.binarize else "")
    print(f"{run}: K = {est.k} importance samples per image, n = {est.n:,} {images}, "
          f"{est.seconds:.1f} s")
    print(f"  ELBO      {est.elbo:10.2f} ± {est.elbo_se:.2f} nats/image")
    print(f"  log p(x)  {est.log_px:10.2f} ± {est.log_px_se:.2f} nats/image   (IWAE bound; ± one "
          "standard error over images)")
    if est.likelihood == "gaussian":
        print(f"Gaussian decoder, c = {config.c:g}: both figures include the normalising constant\n"
              f"−(784/2)·log(2πc) = {est.log_normalizer:+.2f} nats. They are log-densities of "
              "grey-level images, so they\ncan be positive, and they are not comparable with a "
              "Bernoulli model's figures\n(log-probabilities of binarized images).")
    else:
        print("Bernoulli decoder: log p(x) is the log-probability of the binarized test images\n"
              "(one fixed binary draw, as the run is evaluated), in nats per image.")
        if not config.binarize:
            print("note: this run does not binarize: on grey-level pixels the Bernoulli "
                  "likelihood is\nnot normalised, so this is not a true log-probability.")
    if conditional:
        print("Conditional model: each image is scored with its true label y, so these are "
              "log p(x | y)\nand its ELBO, not log p(x).")
    constant = f" + {est.log_normalizer:.2f}" if est.log_normalizer else ""
    print(f"Check: the training loss on these images (recon without the constant, + KL, one z "
          f"each)\nis {loss:.2f}; −ELBO{constant} = {est.log_normalizer - est.elbo:.2f} "
          "estimates the same quantity.")


def _check_iw_memory(vae: Any, k: int, max_rows: int | None) -> None:
    """Refuse, before any work, a --iw whose log-weights cannot fit in the memory available."""
    from ..figures.plots import available_memory
    from ..models.iwae import memory_needed

    need, have = memory_needed(vae, k, max_rows), available_memory()
    if have is not None and need > have:
        raise ValueError(f"--iw {k:,}: the log-weights need about {need / 1e9:,.1f} GB "
                         "(k float64 numbers per image, with logsumexp's copies), and "
                         f"{have / 1e9:,.1f} GB are available; use a smaller --iw")


def _evaluate_latent(args: argparse.Namespace, config: Any, vae: Any, x: Any, labels: Any,
                     n: int) -> None:
    """Is the latent space used? Print, and write RUN/latent-n{N}.json and latent_health.png."""
    from ..figures.latent_health_figure import LATENT_HEALTH_NAME, save_latent_health
    from ..models.latent_health import evaluate_latent, latent_report_lines
    from ..training.checkpoint import write_json

    run_dir = Path(args.run)
    out = check_out_file(run_dir / f"latent-n{n}.json", example="latent.json")
    result = evaluate_latent(vae, x, labels, samples=2, seed=args.seed)
    print("\n".join(latent_report_lines(result)))
    with _naming(out):
        write_json(out, result.as_dict() | {"run": str(args.run), "dataset": config.dataset,
                                  "binarized": bool(config.binarize)})
    figure = run_dir / LATENT_HEALTH_NAME
    with _naming(figure):
        save_latent_health(result, figure, label=run_dir.name)
    print(f"wrote {out} and {figure}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m numpyvae",
        description="Variational Autoencoders from scratch in NumPy.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub)
    p = _run_parser(sub, "sample", "decode draws from the prior into an image grid")
    p.add_argument("--n", type=_positive, default=None,
                   help="how many samples [100; for a conditional model without --label, "
                   "10 per class row]")
    p.add_argument("--label", type=int, default=None,
                   help="for a conditional model: draw this class only (without it, a "
                   "conditional model gives one row per class)")
    p.add_argument("--seed", type=_seed, default=0, help="seed for z ~ N(0, I)")
    p.add_argument("--out", default=None, help="PNG to write [RUN/samples.png]")
    p.set_defaults(func=cmd_sample)
    p = _run_parser(sub, "plot", "(re)draw every figure of a run, and summary.md beside them")
    p.add_argument("--seed", type=_seed, default=0, help="seed for the prior samples")
    p.add_argument("--out", default=None, help="folder for the figures [the run folder]")
    p.add_argument("--data-dir", default=None, help="data folder [the run's, else default]")
    p.set_defaults(func=cmd_plot)
    _explore_parser(sub)
    _evaluate_parser(sub)
    from ..reproduce.command import add_parser as add_reproduce_parser

    add_reproduce_parser(sub)
    __import__("numpyvae.learn.command").learn.command.add_parser(sub)
    # Listed for --help only: main() hands "gradcheck" to gradcheck_report before parsing.
    sub.add_parser("gradcheck", help="check every layer's backward against finite "
                   "differences (see: python -m numpyvae gradcheck --help)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["gradcheck"]:
        # argparse's REMAINDER drops "--options" inside a subcommand: hand them over whole.
        from .gradcheck_report import run_report

        return run_report(argv[1:], prog="python -m numpyvae gradcheck")
    args = build_parser().parse_args(argv)
    try:
        with interrupts_recorded() as seen:
            code = args.func(args)
            if seen:  # its KeyboardInterrupt was swallowed: the command did not stop
                raise KeyboardInterrupt
        return code
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {args.command} stopped (every file is written whole or not "
              "at all)", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"error: {args.command}: out of memory; try smaller sizes", file=sys.stderr)
        return 1
    except BrokenPipeError:
        _quiet_stdout()  # the reader left (e.g. `| head`): nothing more to say
        return 0
    except OSError as e:
        print(f"error: {args.command}: {_describe_os_error(e)}", file=sys.stderr)
        return 1 if e.errno in DISK_ERRNOS else 2


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into a closed pipe
    does not print "Exception ignored ... BrokenPipeError"."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # not a real file (e.g. under a test)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)
