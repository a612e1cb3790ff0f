"""``python -m numpyvae reproduce``: its options, and the call into the sweep."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..training.interrupts import interrupts_recorded
from .experiments import EXPERIMENTS


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``reproduce`` subcommand on the CLI's subparsers."""
    experiments = "\n".join(f"  {name:<8} {title}" for name, title in EXPERIMENTS.items())
    p = sub.add_parser(
        "reproduce",
        help="rerun the report's experiments; tables, claims and figures",
        description="Rerun the report's experiments, put our numbers beside the report's, "
        "test each of its claims by a fixed rule, and draw the figures. Resumable: a run "
        "whose final.json exists is skipped, an interrupted run resumes from its checkpoint. "
        "Writes results.json, results.md and figures/ into --out.",
        epilog=f"experiments (for --only):\n{experiments}\n\n"
        "examples:\n"
        "  python -m numpyvae reproduce --quick              # the machinery in minutes\n"
        "  python -m numpyvae reproduce --only arch ae       # two experiments\n"
        "  python -m numpyvae reproduce --docs docs/report   # all, then the curated copy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default=None,
                   help="output folder, may be outside the checkout "
                   "[runs/report; runs/report-quick with --quick]")
    p.add_argument("--only", nargs="+", choices=tuple(EXPERIMENTS), metavar="NAME",
                   help="train only these experiments (tables still cover every finished "
                   f"run): {', '.join(EXPERIMENTS)}")
    p.add_argument("--quick", action="store_true",
                   help="three runs (MLP and CNN at z = 2, the autoencoder), one epoch on "
                   "2,048 images, evaluated on 500: tests the machinery, not the report")
    p.add_argument("--data-dir", default=None, help="data folder [$NUMPYVAE_DATA, else ./data]")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for numba and BLAS together [all cores]")
    p.add_argument("--docs", default=None, metavar="DIR",
                   help="afterwards, copy results.md, results.json and the figures "
                   "(small PNGs) into DIR, e.g. docs/report")
    p.add_argument("--list", action="store_true",
                   help="list the runs with their state in --out (finished, epochs done, to "
                   "train) and stop")
    p.set_defaults(func=cmd_reproduce)
    return p


def cmd_reproduce(args: argparse.Namespace) -> int:
    if args.threads is not None:
        from ..training.train import set_threads

        set_threads(args.threads)
    from .sweep import plan_status, reproduce

    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a file: give a folder for the sweep (nothing "
                         "was trained)")
    if args.list:
        status = plan_status(args.out, quick=args.quick, only=args.only)
        for spec, state in status:
            print(f"{state:<12} {spec.name}")
        done = sum(state == "finished" for _, state in status)
        print(f"{done} of {len(status)} runs finished")
        # flush here, so that a reader that left early (`| head -3`) raises BrokenPipeError
        # inside the command, where the CLI ends quietly, not at interpreter exit
        sys.stdout.flush()
        return 0
    if args.docs is not None and Path(args.docs).exists() and not Path(args.docs).is_dir():
        raise ValueError(f"--docs {args.docs} is a file: give a folder for the copy, e.g. "
                         "docs/report (checked before the sweep; nothing was trained)")
    # `kill` (SIGTERM) stops the sweep like Ctrl-C, at the next batch even when a callback
    # swallowed its KeyboardInterrupt, and sweep.json still records what was trained
    with interrupts_recorded() as seen:
        try:
            reproduce(args.out, quick=args.quick, only=args.only, data_dir=args.data_dir,
                      docs=args.docs, stop_requested=lambda: bool(seen))
            if seen:
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            again = " ".join(shlex.quote(a) for a in sys.argv[1:]) or "reproduce"
            print("\ninterrupted. Finished runs are kept, and the interrupted run resumes from "
                  "its last checkpoint: run the same command again:\n    python -m numpyvae "
                  f"{again}", file=sys.stderr)
            return 130
    return 0
