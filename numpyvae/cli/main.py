"""The command line:
``python -m numpyvae train | sample | plot | explore | evaluate | reproduce | gradcheck``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .. import data

RUNS_DIR = Path("runs")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated widths like 300,100,10, got {text!r}"
        ) from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive integers, got {text!r}")
    return widths


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a VAE and write its figures",
        description="Train a VAE (the report's defaults: batch 256, Adam, lr 0.0025 MLP / "
        "0.0015 CNN, 15 epochs, c = 0.05) and write checkpoint, history and figures to a "
        "run folder. Defaults are in brackets.",
    )
    # Defaults of None mean "not given", so --resume can tell what the user asked to change.
    p.add_argument("--arch", choices=("mlp", "cnn"), default=None, help="architecture [mlp]")
    p.add_argument("--model", choices=("vae", "ae"), default=None,
                   help="a VAE, or the plain autoencoder the report compares it with (MLP "
                   "only) [vae]")
    p.add_argument("--conditional", action="store_const", const=True, default=None,
                   help="a conditional VAE: encoder and decoder also see the one-hot class "
                   "label, so 'sample --label K' draws class K")
    p.add_argument("--likelihood", choices=("gaussian", "bernoulli"), default=None,
                   help="the decoder's p(x|z): the report's Gaussian with variance c, or "
                   "Bernoulli (binary cross-entropy on logits) [gaussian]")
    p.add_argument("--binarize", action=argparse.BooleanOptionalAction, default=None,
                   help="train and evaluate on binary pixels drawn from the grey levels, "
                   "fresh each time an image is seen [on with bernoulli, else off]")
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default=None,
                   help="data set [mnist]")
    p.add_argument("--latent-dim", type=int, default=None, help="latent dimension z [2]")
    p.add_argument("--hidden", type=_int_list, default=None,
                   help="MLP hidden widths [300,100,10, the report's printout; its text says "
                   "300,100,20]")
    p.add_argument("--epochs", type=int, default=None,
                   help="total epochs, also with --resume [15]")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate [0.0025 for mlp, 0.0015 for cnn]")
    p.add_argument("--batch-size", type=int, default=None, help="batch size [256]")
    p.add_argument("--c", type=float, default=None,
                   help="the balance c: decoder variance, recon = SSE / 2c [0.05]")
    p.add_argument("--seed", type=int, default=None, help="seed for init, shuffling, noise [0]")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for numba and BLAS together [all cores]")
    p.add_argument("--data-dir", default=None,
                   help="data folder [$NUMPYVAE_DATA, else ./data]")
    p.add_argument("--out", default=None,
                   help="run folder [runs/{arch}-{dataset}-z{z}-s{seed}, -2, -3... if taken]")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on N images only (a quick run)")
    p.add_argument("--test-subset", type=int, default=None,
                   help="evaluate on the first N test images only")
    p.add_argument("--no-figures", action="store_true", help="skip the figures at the end")
    p.set_defaults(func=cmd_train)


def _config_from_args(args: argparse.Namespace):
    from ..training.train import TrainConfig

    names = ("arch", "model", "dataset", "latent_dim", "hidden", "epochs", "lr", "batch_size", "c",
             "seed", "train_subset", "test_subset", "data_dir", "conditional", "likelihood",
             "binarize")
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.resume:
        if args.out is None:
            raise ValueError("--resume needs --out: the run folder to continue")
        cfg_path = Path(args.out) / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"--resume: no run to continue, {cfg_path} does not exist")
        from ..training.run import read_json

        saved = read_json(cfg_path)
        saved.update(given)
        return TrainConfig.from_json(saved)
    return TrainConfig(**given)


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.train import TrainingDiverged, train, unique_run_dir

    config = _config_from_args(args)
    config.validate()
    if args.out is None:
        prefix = "ae-" if config.model == "ae" else "cvae-" if config.conditional else ""
        suffix = "-bernoulli" if config.likelihood == "bernoulli" else ""
        out = unique_run_dir(
            RUNS_DIR / f"{prefix}{config.arch}-{config.dataset}-z{config.latent_dim}{suffix}"
            f"-s{config.seed}"
        )
    else:
        out = Path(args.out)
        if out.exists() and not args.resume:
            raise ValueError(
                f"--out {out} exists: add --resume to continue it, or choose another folder "
                "(nothing was overwritten)"
            )
    if args.threads is not None:
        from ..kernels.threads import set_threads

        set_threads(args.threads)
    _ensure_data(config.dataset, config.data_dir)
    resume_cmd = (f"python -m numpyvae train --out {shlex.quote(str(out))} --resume"
                  + (f" --epochs {config.epochs}" if args.epochs is not None else ""))
    try:
        train(config, out, resume=args.resume, figures=not args.no_figures)
    except KeyboardInterrupt:
        print(f"\ninterrupted. The last checkpoint (end of the last finished epoch) is kept in "
              f"{out}.\nResume with:\n    {resume_cmd}", file=sys.stderr)
        return 130
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


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
    from ..training.run import load_run
    from .plots import save_samples

    run = load_run(args.run)
    vae = run.vae
    if args.label is not None and not vae.conditional:
        raise ValueError(f"--label: the model in {args.run} is not conditional (train it "
                         "with --conditional to draw a chosen class)")
    if args.label is not None and not 0 <= args.label < vae.num_classes:
        raise ValueError(f"--label must be in 0..{vae.num_classes - 1}, got {args.label}")
    if vae.conditional and args.label is None:
        from .plots import save_class_samples

        out = Path(args.out) if args.out else Path(args.run) / "samples.png"
        path = save_class_samples(vae, out, n=10, seed=args.seed)
        print(f"wrote 10 samples of each class (the same z in every row) to {path}")
        return 0
    name = "samples.png" if args.label is None else f"samples-label{args.label}.png"
    out = Path(args.out) if args.out else Path(args.run) / name
    path = save_samples(vae, out, n=args.n, seed=args.seed, labels=args.label)
    what = "" if args.label is None else f" of class {args.label}"
    print(f"wrote {args.n} samples{what} from the prior to {path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ..training.run import load_run
    from .plots import make_figures

    run = load_run(args.run)
    out = Path(args.out) if args.out else Path(args.run)
    x_test, y_test = data.load(run.config.dataset, "test", args.data_dir or run.config.data_dir)
    paths = make_figures(run.vae, x_test, y_test, run.history, out, seed=args.seed)
    if (Path(args.run) / "final.json").is_file():
        from ..training.checkpoint import atomic_write
        from ..training.run import summary_markdown

        text = summary_markdown(args.run)
        atomic_write(out / "summary.md", lambda tmp: Path(tmp).write_text(text))
        paths.append(out / "summary.md")
    print(f"wrote {', '.join(p.name for p in paths)} in {out}")
    return 0


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
    from .explore import explore

    return explore(args.run, z=args.z, label=args.label, out=args.out, data_dir=args.data_dir)


def _evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = _run_parser(sub, "evaluate", "estimate log p(x) on the test set by importance "
                    "sampling (the IWAE bound, K samples per image), beside the ELBO")
    p.add_argument("--iw", type=int, default=1000, metavar="K",
                   help="K: importance samples per image (more: tighter, and slower)")
    p.add_argument("--subset", type=int, default=None, metavar="N",
                   help="the first N test images only [all 10,000]")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed for the draws z ~ q(z|x)")
    p.add_argument("--max-rows", type=int, default=None, metavar="R",
                   help="decoder rows (images × samples) per call, which bounds memory: "
                   "~40 kB a row for the MLP, ~0.4 MB for the CNN [10000 mlp, 1000 cnn]")
    p.add_argument("--data-dir", default=None, help="data folder [the run's, else default]")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="JSON file for the result [RUN/loglik-k{K}-n{N}.json]")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import os
    import time

    from ..models.iwae import default_max_rows, log_likelihood
    from ..models.vae import VAE
    from ..training.checkpoint import write_json
    from ..training.run import load_run
    from ..training.train import Progress, _fmt_seconds, evaluate, evaluation_images

    if args.iw < 1:
        raise ValueError(f"--iw must be >= 1, got {args.iw}")
    if args.subset is not None and args.subset < 1:
        raise ValueError(f"--subset must be >= 1, got {args.subset}")
    if args.max_rows is not None and args.max_rows < 1:
        raise ValueError(f"--max-rows must be >= 1, got {args.max_rows}")
    run = load_run(args.run)
    config, vae = run.config, run.vae
    if not isinstance(vae, VAE):
        raise ValueError(f"{args.run} holds a plain autoencoder: with no posterior q(z|x) "
                         "there is no likelihood to estimate")
    x, y = data.load(config.dataset, "test", args.data_dir or config.data_dir)
    if args.subset is not None and args.subset > len(x):
        raise ValueError(f"--subset {args.subset}: the test set has {len(x)} images")
    n = args.subset or len(x)
    out = Path(args.out) if args.out else Path(args.run) / f"loglik-k{args.iw}-n{n}.json"
    if not os.access(out.parent, os.W_OK):  # fail now, not after the work
        raise ValueError(f"cannot write in {out.parent}: choose another file with --out")
    x_eval = evaluation_images(config, x[:n])
    progress, t0 = Progress(), time.perf_counter()

    def show(done: int, total: int) -> None:
        eta = (time.perf_counter() - t0) / done * (total - done)
        progress.update(f"evaluate: {done:,}/{total:,} images, K = {args.iw}  "
                        f"ETA {_fmt_seconds(eta)}")

    max_rows = args.max_rows or default_max_rows(run.vae)
    labels = y[:n] if vae.conditional else None
    try:
        est = log_likelihood(vae, x_eval, labels, k=args.iw, seed=args.seed,
                             max_rows=max_rows, progress=show)
    finally:
        progress.clear()
    loss = evaluate(vae, x_eval, y=labels).loss  # the training loss on the same images
    images = f"{config.dataset} test images" + (", binarized" if config.binarize else "")
    print(f"{args.run}: K = {est.k} importance samples per image, n = {est.n:,} {images}, "
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
    if vae.conditional:
        print("Conditional model: each image is scored with its true label y, so these are "
              "log p(x | y)\nand its ELBO, not log p(x).")
    constant = f" + {est.log_normalizer:.2f}" if est.log_normalizer else ""
    print(f"Check: the training loss on these images (recon without the constant, + KL, one z "
          f"each)\nis {loss:.2f}; −ELBO{constant} = {est.log_normalizer - est.elbo:.2f} "
          "estimates the same quantity.")
    write_json(out, est.as_dict() | {"run": str(args.run), "dataset": config.dataset,
                                     "iw": args.iw, "subset": args.subset, "seed": args.seed,
                                     "max_rows": max_rows, "data_dir": args.data_dir,
                                     "binarized": bool(config.binarize), "test_loss": loss})
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m numpyvae",
        description="Variational Autoencoders from scratch in NumPy.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub)
    p = _run_parser(sub, "sample", "decode draws from the prior into an image grid")
    p.add_argument("--n", type=int, default=100, help="how many samples")
    p.add_argument("--label", type=int, default=None,
                   help="for a conditional model: draw this class only (without it, a "
                   "conditional model gives one row per class)")
    p.add_argument("--seed", type=int, default=0, help="seed for z ~ N(0, I)")
    p.add_argument("--out", default=None, help="PNG to write [RUN/samples.png]")
    p.set_defaults(func=cmd_sample)
    p = _run_parser(sub, "plot", "(re)draw every figure of a run, and summary.md beside them")
    p.add_argument("--seed", type=int, default=0, help="seed for the prior samples")
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
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
