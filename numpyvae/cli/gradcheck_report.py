"""The gradient-check report: every layer, several configurations, one table.

Run it with ``python -m numpyvae.gradcheck`` (or ``python -m numpyvae gradcheck``).
The cases are ``numpyvae/nn/gradcheck_cases.py`` (the layers) and
``numpyvae/models/gradcheck_cases.py`` (likelihoods and whole models).
Each row compares one hand-written gradient (with respect to the input, a
weight or a bias) with central finite differences; see ``numpyvae.nn.gradcheck``
for the rule. The exit code is 0 only if every row passes.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..models.gradcheck_cases import all_cases
from ..nn.gradcheck import MAX_ENTRIES, STEP, TOLERANCE, GradResult, gradcheck_layer
from ..nn.gradcheck_cases import Case


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass
class Row:
    case: Case
    results: list[GradResult]
    error: str = ""  # set if building or checking the case raised


def _run_case(case: Case, seed: int, max_entries: int) -> Row:
    try:
        layer, x = case.build(np.random.default_rng(seed))
        if case.max_entries is not None:
            max_entries = min(max_entries, case.max_entries)
        return Row(case, gradcheck_layer(layer, x, seed=seed, max_entries=max_entries))
    except Exception as e:  # a broken layer is a failed row, not a crashed report
        return Row(case, [], error=f"{type(e).__name__}: {e}")


def _print_table(rows: list[Row]) -> None:
    head = ("layer", "configuration", "gradient", "entries", "max error", "result")
    w_layer = max(len(head[0]), *(len(r.case.layer) for r in rows))
    w_config = max(len(head[1]), *(len(r.case.config) for r in rows))
    w_grad = max([len(head[2])] + [len(g.name) for r in rows for g in r.results])
    fmt = f"{{:<{w_layer}}}  {{:<{w_config}}}  {{:<{w_grad}}}  {{:>7}}  {{:>9}}  {{}}"
    print(fmt.format(*head))
    print(fmt.format("-" * w_layer, "-" * w_config, "-" * w_grad, "-" * 7, "-" * 9, "------"))
    previous_layer = None
    for row in rows:
        layer = row.case.layer if row.case.layer != previous_layer else ""
        previous_layer = row.case.layer
        if row.error:
            print(fmt.format(layer, row.case.config, "-", "-", "-", "ERROR"))
            print(f"{'':<{w_layer}}  -> {row.error}")
            continue
        for i, g in enumerate(row.results):
            config = row.case.config if i == 0 else ""
            print(fmt.format(layer if i == 0 else "", config, g.name, g.checked,
                             f"{g.max_error:.2e}", "PASS" if g.passed else "FAIL"))


def _parse(argv: list[str] | None, names: list[str], prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Check every layer's hand-written backward pass against central finite "
            f"differences (h = {STEP:g}, float64) of f = Σ G⊙y with a fixed random G. "
            "Per entry, error = |a − n| / max(|a| + |n|, 1e-3·S), a = analytic, n = numeric, "
            f"S = largest |n| in that check; a gradient passes if its worst error ≤ {TOLERANCE:g}."
        ),
        epilog="Exit status: 0 if every check passes, 1 if any fails, 2 for bad arguments.",
    )
    parser.add_argument("--layer", action="append", metavar="NAME",
                        help=f"only this layer (repeatable, case-insensitive): {', '.join(names)}")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for inputs, G and the sampled entries (default 0)")
    parser.add_argument("--max-entries", type=int, default=MAX_ENTRIES,
                        help=f"entries checked per tensor at most (default {MAX_ENTRIES})")
    return parser.parse_args(argv)


def run_report(argv: list[str] | None = None, prog: str = "python -m numpyvae.gradcheck") -> int:
    """Run the checks, print the table and a summary; return the exit code (0 = all pass).

    ``argv`` are the command-line arguments (None: sys.argv[1:]); ``prog`` names the
    command in ``--help``.
    """
    cases = all_cases()
    names = list(dict.fromkeys(c.layer for c in cases))
    args = _parse(argv, names, prog)
    if args.max_entries < 1:
        print(f"error: --max-entries must be at least 1, got {args.max_entries}", file=sys.stderr)
        return 2
    if args.seed < 0:
        print(f"error: --seed must be >= 0, got {args.seed}", file=sys.stderr)
        return 2
    if args.layer:
        wanted = {n.lower() for n in args.layer}
        unknown = wanted - {n.lower() for n in names}
        if unknown:
            print(f"error: unknown layer {', '.join(sorted(unknown))}; "
                  f"choose from {', '.join(names)}", file=sys.stderr)
            return 2
        cases = [c for c in cases if c.layer.lower() in wanted]

    print(f"Gradient check: f = Σ G⊙y, central differences h = {STEP:g} in float64, "
          f"≤ {args.max_entries} entries per tensor, seed {args.seed}")
    print(f"error = |a − n| / max(|a| + |n|, 1e-3·S); PASS if max error ≤ {TOLERANCE:g}")
    print("(k kernel size, s stride, p padding, op output_padding, BN BatchNorm2d, "
          "ConvT ConvTranspose2d)")
    print()
    start = time.perf_counter()
    rows = [_run_case(c, args.seed, args.max_entries) for c in cases]
    _print_table(rows)

    checks = [(row, g) for row in rows for g in row.results]
    failed = [f"{row.case.layer} [{row.case.config}] {g.name} ({g.max_error:.1e})"
              for row, g in checks if not g.passed]
    failed += [f"{row.case.layer} [{row.case.config}] raised {row.error}"
               for row in rows if row.error]
    seconds = time.perf_counter() - start
    print()
    if failed:
        total = len(checks) + sum(bool(r.error) for r in rows)
        print(f"FAILED: {len(failed)} of {_count(total, 'check')} in "
              f"{_count(len(rows), 'configuration')} ({seconds:.1f} s):")
        for line in failed:
            print(f"  {line}")
        return 1
    worst_row, worst = max(checks, key=lambda rg: rg[1].max_error)
    print(f"PASS: all {_count(len(checks), 'gradient')} in "
          f"{_count(len(rows), 'configuration')} ({seconds:.1f} s); "
          f"largest error {worst.max_error:.1e} ({worst_row.case.layer}, {worst.name}).")
    return 0
