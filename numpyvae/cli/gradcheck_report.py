"""The gradient-check report: every layer, several configurations, one table.

Run it with ``python -m numpyvae.gradcheck`` (or ``python -m numpyvae gradcheck``).
Each row compares one hand-written gradient (with respect to the input, a
weight or a bias) with central finite differences; see ``numpyvae.nn.gradcheck``
for the rule. The exit code is 0 only if every row passes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..models.likelihoods import Bernoulli, Gaussian, Likelihood
from ..nn import (
    ELU,
    BatchNorm2d,
    ConcatLabels,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Flatten,
    Layer,
    Reshape,
    Sequential,
    Sigmoid,
    Softplus,
)
from ..nn.gradcheck import MAX_ENTRIES, STEP, TOLERANCE, GradResult, gradcheck_layer

F64 = np.float64
Builder = Callable[[np.random.Generator], tuple[Layer, np.ndarray]]


@dataclass
class Case:
    """One configuration of one layer: ``build(rng)`` returns (float64 layer, input)."""

    layer: str
    config: str
    build: Builder


def _conv2d(*args, **kwargs) -> Conv2d:
    return Conv2d(*args, dtype=F64, **kwargs)


def _conv_transpose2d(*args, **kwargs) -> ConvTranspose2d:
    return ConvTranspose2d(*args, dtype=F64, **kwargs)


def _signed_away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Both signs, |x| in [0.05, 2]: crosses ELU's kink at 0 without any entry sitting on it
    (a finite difference across the kink would measure neither one-sided slope)."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.05, 2.0, size=shape)


def _concat_labels(rng: np.random.Generator, n: int, num_classes: int) -> ConcatLabels:
    layer = ConcatLabels(num_classes)
    layer.set_labels(rng.integers(0, num_classes, n))
    return layer


class NLLOfDecoderOutput(Layer):
    """A likelihood as a layer: decoder outputs (N, C, H, W) → nll per image (N, 1), the
    data x held fixed, so the gradient check of p(x|z) runs like any layer's."""

    def __init__(self, likelihood: Likelihood, x: np.ndarray) -> None:
        super().__init__(dtype=F64)
        self.likelihood, self.x = likelihood, x

    def forward(self, out: np.ndarray) -> np.ndarray:
        return self.likelihood.nll(self.x, out)[:, None]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.likelihood.backward(dout[:, 0])


def _likelihood(likelihood: Likelihood, rng: np.random.Generator, binary: bool
                ) -> tuple[Layer, np.ndarray]:
    x = rng.uniform(0, 1, (3, 1, 4, 5))
    x = (x < 0.5).astype(F64) if binary else x
    return NLLOfDecoderOutput(likelihood, x), 3 * rng.standard_normal(x.shape)


def _batchnorm(channels: int, rng: np.random.Generator, training: bool) -> BatchNorm2d:
    """BatchNorm2d with non-trivial γ, β and running statistics, so eval mode tests something."""
    bn = BatchNorm2d(channels, dtype=F64)
    bn.params["weight"][...] = rng.uniform(0.5, 1.5, channels)
    bn.params["bias"][...] = rng.normal(size=channels)
    bn.buffers["running_mean"][...] = rng.normal(size=channels)
    bn.buffers["running_var"][...] = rng.uniform(0.5, 2.0, channels)
    return bn.train() if training else bn.eval()


def _cases() -> list[Case]:
    def normal(rng, *shape):
        return rng.standard_normal(shape)

    return [
        Case("Dense", "5 → 4, x (3, 5)",
             lambda r: (Dense(5, 4, dtype=F64, rng=r), normal(r, 3, 5))),
        Case("Dense", "4 → 6, bias=False, x (2, 4)",
             lambda r: (Dense(4, 6, bias=False, dtype=F64, rng=r), normal(r, 2, 4))),
        Case("BatchNorm2d", "train, x (4, 3, 3, 2)",
             lambda r: (_batchnorm(3, r, training=True), 1 + 2 * normal(r, 4, 3, 3, 2))),
        Case("BatchNorm2d", "train, 1×1 maps, x (5, 2, 1, 1)",
             lambda r: (_batchnorm(2, r, training=True), normal(r, 5, 2, 1, 1))),
        Case("BatchNorm2d", "eval (running stats), x (4, 3, 3, 2)",
             lambda r: (_batchnorm(3, r, training=False), 1 + 2 * normal(r, 4, 3, 3, 2))),
        Case("ELU", "alpha=1.0, x of both signs, |x| ≥ 0.05",
             lambda r: (ELU(), _signed_away_from_zero(r, (4, 6)))),
        Case("ELU", "alpha=0.5, x (2, 3, 2, 2)",
             lambda r: (ELU(alpha=0.5), _signed_away_from_zero(r, (2, 3, 2, 2)))),
        Case("Softplus", "x ~ N(0, 4²), x (4, 6)", lambda r: (Softplus(), 4 * normal(r, 4, 6))),
        Case("Sigmoid", "x ~ N(0, 4²), x (4, 6)", lambda r: (Sigmoid(), 4 * normal(r, 4, 6))),
        Case("Flatten", "(2, 3, 2, 2) → (2, 12)", lambda r: (Flatten(), normal(r, 2, 3, 2, 2))),
        Case("Reshape", "(2, 12) → (2, 3, 2, 2)", lambda r: (Reshape(3, 2, 2), normal(r, 2, 12))),
        Case("Conv2d", "3 → 4, k3 s1 p1, x (2, 3, 5, 5)",
             lambda r: (_conv2d(3, 4, 3, stride=1, padding=1, rng=r), normal(r, 2, 3, 5, 5))),
        Case("Conv2d", "3 → 2, k3 s2 p1, x (2, 3, 6, 5)",
             lambda r: (_conv2d(3, 2, 3, stride=2, padding=1, rng=r), normal(r, 2, 3, 6, 5))),
        Case("Conv2d", "2 → 3, k2 s2 p0, bias=False, x (1, 2, 5, 4)",
             lambda r: (_conv2d(2, 3, 2, stride=2, bias=False, rng=r), normal(r, 1, 2, 5, 4))),
        Case("ConvTranspose2d", "3 → 2, k3 s1 p1, x (2, 3, 4, 4)",
             lambda r: (_conv_transpose2d(3, 2, 3, stride=1, padding=1, rng=r),
                        normal(r, 2, 3, 4, 4))),
        Case("ConvTranspose2d", "3 → 2, k3 s2 p1, x (2, 3, 3, 4)",
             lambda r: (_conv_transpose2d(3, 2, 3, stride=2, padding=1, rng=r),
                        normal(r, 2, 3, 3, 4))),
        Case("ConvTranspose2d", "3 → 2, k3 s2 p1 op1, x (2, 3, 3, 3)",
             lambda r: (_conv_transpose2d(3, 2, 3, stride=2, padding=1, output_padding=1, rng=r),
                        normal(r, 2, 3, 3, 3))),
        Case("ConcatLabels", "(4, 5) + one-hot of 3 classes",
             lambda r: (_concat_labels(r, 4, 3), normal(r, 4, 5))),
        Case("Gaussian p(x|z)", "c = 0.05, sigmoid output, nll per image",
             lambda r: _likelihood(Gaussian(0.05), r, binary=False)),
        Case("Bernoulli p(x|z)", "logits, binary x, nll per image",
             lambda r: _likelihood(Bernoulli(), r, binary=True)),
        Case("Sequential", "Dense → ELU → Dense → Softplus",
             lambda r: (Sequential(Dense(6, 5, dtype=F64, rng=r), ELU(),
                                   Dense(5, 3, dtype=F64, rng=r), Softplus()),
                        _signed_away_from_zero(r, (4, 6)))),
        Case("Sequential", "Conv2d → BN(train) → ELU: conv bias grad is 0",
             lambda r: (Sequential(_conv2d(2, 3, 3, padding=1, rng=r),
                                   _batchnorm(3, r, training=True), ELU()),
                        normal(r, 2, 2, 4, 4))),
        Case("Sequential", "mini decoder: Dense, ConvT op1, BN, Conv2d",
             lambda r: (Sequential(Dense(3, 8, dtype=F64, rng=r), Reshape(2, 2, 2),
                                   _conv_transpose2d(2, 3, 3, stride=2, padding=1,
                                                     output_padding=1, rng=r),
                                   _batchnorm(3, r, training=True), ELU(),
                                   _conv2d(3, 1, 3, padding=1, rng=r), Sigmoid()),
                        normal(r, 3, 3))),
    ]


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
    cases = _cases()
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
