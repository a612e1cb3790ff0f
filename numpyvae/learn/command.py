"""``python -m numpyvae learn [start | check | train]``: the command line of the track."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from ..training.config import int_at_least
from .loading import DEFAULT_DIR, start_command, step_path
from .steps import STEPS, get_step

TRAIN_DEFAULTS = {"mlp": (15, None), "cnn": (1, 2048)}  # (epochs, train subset)


_at_least_one = int_at_least(1, "count")
_seed = int_at_least(0, "seed")  # NumPy's generators take no negative seeds


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "learn", help="learn by implementing: write each layer yourself, graded",
        description="A graded track: write each piece yourself (stubs given), check it "
        "against the package's reference, then train the report's VAE on your own layers. "
        "Without a subcommand: the steps, what each teaches, and which are done in DIR.")
    # the subcommands' --dir suppress their default, so `learn --dir X check S` keeps X
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"your folder [{DEFAULT_DIR}]")
    p.set_defaults(func=cmd_list)
    lsub = p.add_subparsers(dest="learn_command", metavar="SUBCOMMAND")
    names = [s.name for s in STEPS]
    s = lsub.add_parser("start", help="write DIR/STEP.py, a stub to fill in (never overwrites)")
    s.add_argument("step", choices=names, metavar="STEP", help=", ".join(names))
    s.add_argument("--dir", default=argparse.SUPPRESS, help=f"your folder [{DEFAULT_DIR}]")
    s.set_defaults(func=cmd_start)
    c = lsub.add_parser("check", help="grade DIR/STEP.py; exit 0 only when every check passes")
    c.add_argument("step", choices=names, metavar="STEP", help=", ".join(names))
    c.add_argument("--dir", default=argparse.SUPPRESS, help=f"your folder [{DEFAULT_DIR}]")
    c.add_argument("--no-speed", action="store_true", help="skip the timings")
    c.add_argument("--seed", type=_seed, default=None,
                   help="draw the random configurations from this seed [a fresh one, shown]")
    c.set_defaults(func=cmd_check)
    t = lsub.add_parser(
        "train", help="the report's VAE built from your finished layers",
        description="Build the report's VAE from your finished layers (and the package's for "
        "the rest), replay a few dozen steps beside the package's layers in float64 (the "
        "verdict), then train on MNIST and print the final loss beside the package's. "
        "The CNN on NumPy layers takes seconds a step: it defaults to --epochs 1 "
        "--train-subset 2048.")
    t.add_argument("--dir", default=argparse.SUPPRESS, help=f"your folder [{DEFAULT_DIR}]")
    t.add_argument("--arch", choices=("mlp", "cnn"), default="mlp", help="architecture [mlp]")
    t.add_argument("--epochs", type=_at_least_one, default=None, help="epochs [15 mlp, 1 cnn]")
    t.add_argument("--train-subset", type=_at_least_one, default=None,
                   help="train on N images only [all for mlp, 2048 for cnn]")
    t.add_argument("--replay-steps", type=_at_least_one, default=None,
                   help="steps of the float64 replay [30 mlp, 5 cnn]")
    t.add_argument("--replay-only", action="store_true", help="stop after the replay")
    t.add_argument("--no-compare", action="store_true",
                   help="do not train the package's model for the comparison")
    t.add_argument("--seed", type=int, default=0, help="seed [0]")
    t.add_argument("--data-dir", default=None, help="data folder [$NUMPYVAE_DATA, else ./data]")
    t.add_argument("--out", default=None, help="run folder [runs/learn-{arch}-s{seed}]")
    t.set_defaults(func=cmd_train)


def cmd_list(args: argparse.Namespace) -> int:
    from .grader import step_state

    print(f"Learn by implementing: your files are in {args.dir}/\n")
    for i, step in enumerate(STEPS):
        state = step_state(step, args.dir)
        print(f"  {i}. {step.name:<17} {'[' + state + ']':<14} {step.teaches}")
        print(f"     {'':<17} {'':<14} read: {step.reading}")
    print("\nstart a step:   python -m numpyvae learn start STEP   (writes DIR/STEP.py)")
    print("grade it:       python -m numpyvae learn check STEP")
    print("then:           python -m numpyvae learn train         (the VAE on your layers)")
    return 0


def stub_text(step_name: str) -> str:
    return resources.files("numpyvae.learn").joinpath("stubs", f"{step_name}.py").read_text(
        encoding="utf-8")


def cmd_start(args: argparse.Namespace) -> int:
    step = get_step(args.step)
    path = step_path(step, args.dir)
    if path.exists():
        print(f"error: {path} exists; nothing was overwritten. Grade it with "
              f"`python -m numpyvae learn check {step.name}"
              f"{'' if Path(args.dir) == Path(DEFAULT_DIR) else ' --dir ' + args.dir}`, or "
              "move it away to start over.", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:  # a full disk fails the write: the temporary file goes too
        tmp.write_text(stub_text(step.name), encoding="utf-8")
        os.link(tmp, path)  # fails if path appeared meanwhile: still never overwrites
    except FileExistsError:
        print(f"error: {path} exists; nothing was overwritten", file=sys.stderr)
        return 1
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {path}: {step.teaches}.\nRead {step.reading}, fill in {step.todo}, then "
          f"run `{start_command(step, args.dir).replace(' start ', ' check ')}`.")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .isolate import check_in_child

    return 0 if check_in_child(args.step, args.dir, speed=not args.no_speed,
                               seed=args.seed) else 1


def cmd_train(args: argparse.Namespace) -> int:
    from .isolate import train_in_child

    return train_in_child(args)
