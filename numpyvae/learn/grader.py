"""``learn check``: grade a learner's step against the package's reference.

For a layer step, on each configuration: the learner's forward against the
reference layer with the same parameters, then every gradient of the learner's
backward (input and each parameter) against central differences in float64,
under the project's rule (``numpyvae/nn/gradcheck.py``). One PASS/FAIL line per
check, with its error; a hint under each failure (``hints.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import nn
from ..nn import Reparameterize as ReferenceReparameterize
from ..nn.activations import sigmoid, softplus
from ..nn.adam import Adam as ReferenceAdam
from ..nn.gradcheck import TOLERANCE, check_gradients, gradcheck_layer, rule_error
from ..nn.gradcheck_cases import set_batchnorm_state
from . import hints, maps
from .loading import StepProblem, has_learner_frame, learner_traceback, load_module
from .steps import STEPS, Step, get_step

# Forward outputs: both sides compute in float64, the same math in another order, so they
# agree to ~1e-15 of the output's scale; 1e-9 leaves a wide margin below any real mistake
# (a wrong term or index moves outputs by far more than 1e-6 of their scale).
FORWARD_TOLERANCE = 1e-9
# The float32 run: the learner's float32 layer beside the package's float32 layer, on the
# float64 case's x cast to float32. Both round each operation to 2⁻²⁴ ≈ 6e-8 relative, and
# sum in different orders; measured on every case of every step, correct layers written
# differently (four-loop and im2col Conv2d, ConvTranspose2d on a Conv2d, staged BatchNorm2d,
# the package's NumPy forms) stay within 2.8e-7 of the output's or gradient's largest entry
# (ConvTranspose2d's dx; BatchNorm2d's 2.0e-7, activations 4e-8), and within 3.1e-6 on the
# random configurations of seeds 0..19. A 1% mistake is 1e-2. 1e-4 sits 30 times above the
# one and 100 times below the other. A layer that returns
# float64 for float32 (or casts to float16) fails the dtype check first, by name.
FLOAT32_TOLERANCE = 1e-4
STATUS_FILE = ".learn-status.json"


@dataclass
class Line:
    """One verdict: what was checked, PASS or FAIL, its error, and a hint on failure."""

    label: str
    passed: bool
    error: float | None = None
    hint: str | None = None
    where: str | None = None  # under a failing gradient: the map of where it is wrong


@dataclass
class CheckResult:
    """What ``learn check`` found. ``passed`` only when every check ran and passed."""

    step: str
    lines: list[Line] = field(default_factory=list)
    problem: str | None = None  # why the check stopped: missing file, unfilled stub, exception
    text: str = ""

    @property
    def passed(self) -> bool:
        return self.problem is None and bool(self.lines) and all(x.passed for x in self.lines)

    @property
    def failures(self) -> list[Line]:
        return [x for x in self.lines if not x.passed]

    @property
    def hints(self) -> list[str]:
        return [x.hint for x in self.lines if x.hint]

    def __repr__(self) -> str:
        state = "PASS" if self.passed else "FAIL"
        return f"CheckResult({self.step!r}: {state}, {len(self.lines)} checks, " \
               f"{len(self.failures)} failed)"


class Report:
    """Collects lines and prints each as it comes (a slow learner's conv shows progress)."""

    def __init__(self, step: str, echo: Callable[[str], None] | None, seed: int = 0) -> None:
        self.result = CheckResult(step)
        self.seed = seed
        self.echo = echo
        self._text: list[str] = []

    def say(self, text: str) -> None:
        self._text.append(text)
        if self.echo is not None:
            self.echo(text)

    def line(self, label: str, passed: bool, error: float | None = None,
             hint: str | None = None) -> bool:
        self.result.lines.append(Line(label, passed, error, None if passed else hint))
        err = "" if error is None else f"  error {error:.1e}"
        self.say(f"  {'PASS' if passed else 'FAIL'}  {label}{err}")
        if hint and not passed:
            self.say(f"        hint: {hint}")
        return passed

    def finish(self) -> CheckResult:
        self.result.text = "\n".join(self._text)
        return self.result


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| relative to b's largest entry."""
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b))) / max(scale, 1e-300) if a.size else 0.0


# -- layer steps ----------------------------------------------------------------
@dataclass
class Case:
    """One configuration of a layer step."""

    label: str
    cls: str
    args: tuple
    x_shape: tuple
    kwargs: dict = field(default_factory=dict)
    features: dict = field(default_factory=dict)
    rng_arg: bool = True  # the constructor takes rng=
    dtype_arg: bool = True  # the constructor takes dtype=
    setup: Callable[[Any, np.random.Generator], None] | None = None
    x_scale: float = 1.0
    away_from_zero: bool = False  # activations: keep x off the kink at 0


def _cases(step: str) -> list[Case]:
    if step == "dense":
        # the square one first: a transposed dW has the right shape there, so it gets its hint
        return [Case("Dense(4, 4), x (3, 4)", "Dense", (4, 4), (3, 4)),
                Case("Dense(5, 3), x (4, 5)", "Dense", (5, 3), (4, 5)),
                Case("Dense(6, 2), x (1, 6)", "Dense", (6, 2), (1, 6)),
                Case("Dense(3, 5, bias=False), x (2, 3)", "Dense", (3, 5), (2, 3),
                     {"bias": False})]
    if step == "activations":
        kw = {"rng_arg": False, "dtype_arg": False, "away_from_zero": True}
        return [Case("ELU(), x (3, 5)", "ELU", (), (3, 5), x_scale=2.0, **kw),
                Case("ELU(alpha=0.5), x (2, 2, 3, 3)", "ELU", (), (2, 2, 3, 3),
                     {"alpha": 0.5}, x_scale=2.0, **kw),
                Case("Softplus(), x (3, 5)", "Softplus", (), (3, 5), x_scale=3.0, **kw),
                Case("Sigmoid(), x (3, 5)", "Sigmoid", (), (3, 5), x_scale=3.0, **kw)]
    if step == "conv2d":
        def conv(c, f, k, s, p, x):
            kw = {"stride": s, "padding": p}
            return Case(f"Conv2d({c}, {f}, {k}, stride={s}, padding={p}), x {x}", "Conv2d",
                        (c, f, k), x, kw, {"stride": s, "padding": p})
        return [conv(2, 3, 3, 1, 0, (2, 2, 5, 5)), conv(2, 3, 3, 1, 1, (2, 2, 5, 6)),
                conv(2, 3, 3, 2, 0, (2, 2, 7, 7)), conv(2, 3, 3, 2, 1, (1, 2, 7, 5)),
                conv(3, 2, 2, 2, 1, (2, 3, 5, 5))]
    if step == "conv_transpose2d":
        def convt(c, f, k, s, p, op, x):
            kw = {"stride": s, "padding": p, "output_padding": op}
            return Case(f"ConvTranspose2d({c}, {f}, {k}, stride={s}, padding={p}, "
                        f"output_padding={op}), x {x}", "ConvTranspose2d", (c, f, k), x, kw,
                        dict(kw))
        return [convt(2, 3, 3, 1, 0, 0, (2, 2, 3, 4)), convt(2, 3, 3, 1, 1, 0, (2, 2, 4, 4)),
                convt(2, 3, 3, 2, 0, 0, (2, 2, 3, 3)), convt(2, 3, 3, 2, 1, 0, (2, 2, 3, 4)),
                convt(3, 2, 3, 2, 1, 1, (1, 3, 3, 3)), convt(2, 2, 2, 3, 0, 2, (2, 2, 2, 3))]
    if step == "batchnorm2d":
        kw = {"rng_arg": False}
        eval_, train = (partial(set_batchnorm_state, training=t) for t in (False, True))
        return [Case("BatchNorm2d(3), eval, x (4, 3, 3, 2)", "BatchNorm2d", (3,), (4, 3, 3, 2),
                     features={"training": False}, setup=eval_, **kw),
                Case("BatchNorm2d(3), training, x (4, 3, 3, 2)", "BatchNorm2d", (3,),
                     (4, 3, 3, 2), features={"training": True}, setup=train,
                     x_scale=2.0, **kw),
                Case("BatchNorm2d(2), training, x (1, 2, 3, 3)", "BatchNorm2d", (2,),
                     (1, 2, 3, 3), features={"training": True}, setup=train, **kw)]
    raise KeyError(step)


_REFERENCE = {"Dense": nn.Dense, "ELU": nn.ELU, "Softplus": nn.Softplus, "Sigmoid": nn.Sigmoid,
              "Conv2d": nn.Conv2d, "ConvTranspose2d": nn.ConvTranspose2d,
              "BatchNorm2d": nn.BatchNorm2d}


def _arrays(layer: Any) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in layer.named_arrays().items()}


def _restore(layer: Any, saved: dict[str, np.ndarray]) -> None:
    for k, v in layer.named_arrays().items():
        v[...] = saved[k]


def _as_array(value: Any, what: str, want: tuple, dtype: Any = None) -> np.ndarray | str:
    """The learner's value as a float64 array, or a message saying what came instead (also
    when it is not in ``dtype``, the input's)."""
    if value is None:
        return f"{what} returned None, expected an array of shape {want}"
    if not isinstance(value, np.ndarray):
        return f"{what} returned {type(value).__name__}, expected an array of shape {want}"
    if dtype is not None and value.dtype != np.dtype(dtype):
        return hints.DTYPE.format(what=what, got=value.dtype, want=np.dtype(dtype))
    return value.astype(np.float64, copy=False)


RANDOM_CASES = 2  # drawn afresh each check, from a seed the printout shows


def _random_cases(step: str, rng: np.random.Generator) -> list[Case]:
    """RANDOM_CASES valid configurations of the step's layer, drawn from ``rng``."""
    out = []
    for _ in range(RANDOM_CASES):
        n, c, f, k = (int(v) for v in rng.integers(1, 4, size=4))
        s, hw = int(rng.integers(1, 4)), tuple(int(v) for v in rng.integers(1, 7, size=2))
        if step == "dense":
            d_in, d_out = int(rng.integers(1, 7)), int(rng.integers(1, 7))
            b = bool(rng.random() < 0.8)
            out.append(Case(f"Dense({d_in}, {d_out}, bias={b}), x ({n}, {d_in})", "Dense",
                            (d_in, d_out), (n, d_in), {"bias": b}))
        elif step == "activations":
            name = str(rng.choice(["ELU", "Softplus", "Sigmoid"]))
            kw = {"alpha": round(float(rng.uniform(0.2, 2.0)), 2)} if name == "ELU" else {}
            out.append(Case(f"{name}({', '.join(f'{a}={v}' for a, v in kw.items())}), "
                            f"x ({n}, {c}, {hw[0]})", name, (), (n, c, hw[0]), kw, x_scale=2.0,
                            rng_arg=False, dtype_arg=False, away_from_zero=True))
        elif step == "conv2d":
            p = int(rng.integers(0, k))
            x = (n, c, max(hw[0], k), max(hw[1], k))
            kw = {"stride": s, "padding": p}
            out.append(Case(f"Conv2d({c}, {f}, {k}, stride={s}, padding={p}), x {x}", "Conv2d",
                            (c, f, k), x, kw, dict(kw)))
        elif step == "conv_transpose2d":
            p, op = int(rng.integers(0, k)), int(rng.integers(0, s))
            x = (n, c, min(hw[0], 4) + p, min(hw[1], 4) + p)  # + p: the output stays >= 1
            kw = {"stride": s, "padding": p, "output_padding": op}
            out.append(Case(f"ConvTranspose2d({c}, {f}, {k}, stride={s}, padding={p}, "
                            f"output_padding={op}), x {x}", "ConvTranspose2d", (c, f, k), x, kw,
                            dict(kw)))
        elif step == "batchnorm2d":
            training = bool(rng.random() < 0.6)
            # at least 4 values a channel: with 2, x̂ = ±1 and dx is exactly 0 (rounding only)
            x = (n + 1, c, min(hw[0], 3) + 1, min(hw[1], 3))
            out.append(Case(f"BatchNorm2d({c}), {'training' if training else 'eval'}, x {x}",
                            "BatchNorm2d", (c,), x, features={"training": training},
                            setup=partial(set_batchnorm_state, training=training),
                            x_scale=2.0, rng_arg=False))
    return out


def grade_layers(step: Step, ns: dict, report: Report) -> None:
    history: list = []
    for i, case in enumerate(_cases(step.name)):
        seed = 1000 + i
        _grade_case(step, case, ns[case.cls], _REFERENCE[case.cls], seed, report, history)
    _say_random(report)
    for i, case in enumerate(_random_cases(step.name, np.random.default_rng(report.seed))):
        case.label = "random: " + case.label
        _grade_case(step, case, ns[case.cls], _REFERENCE[case.cls],
                    5000 + 10 * (report.seed % 10**8) + i, report, history)


def _grade_case(step: Step, case: Case, learner_cls: Any, ref_cls: Any, seed: int,
                report: Report, history: list) -> None:
    """One configuration: parameters, forward, then the gradients' names and shapes, then the
    gradient check; each stage runs only when the one before it passed."""
    ref, learner, rng = _make_layers(case, learner_cls, ref_cls, seed)
    label = case.label
    ctx = hints.Context(step.name, step.reading, dict(case.features), history=history,
                        kernel_size=case.args[2] if len(case.args) > 2 else 0)
    if not _copy_parameters(label, ref, learner, report):
        return
    ctx.weight_shape = ref.params["weight"].shape if "weight" in ref.params else ()
    training = case.features.get("training", True)
    (learner.train if training else learner.eval)()
    x = rng.standard_normal(case.x_shape) * case.x_scale
    if case.away_from_zero:
        x = np.where(x >= 0, x + 0.1, x - 0.1)
    saved_l, saved_r = _arrays(learner), _arrays(ref)

    ok = _grade_forward(label, x, ref, learner, training, ctx, report)
    if ok is None:
        return
    _restore(learner, saved_l)
    _restore(ref, saved_r)
    history.append((ctx.features, "forward", ok))
    if not ok:
        report.say("        (the gradients are checked once forward matches)")
        return

    G, g_r, g_l, problems = _backward_both(ref, learner, x, seed)
    _restore(learner, saved_l)
    _restore(ref, saved_r)
    if not _grads_match(label, ref, learner, g_r, g_l, problems, report):
        return
    if case.features.get("training") and ref.buffers:
        ctx.bn_forms = _batchnorm_forms(x, G, ref.params["weight"], ref.eps)
    ctx.dout_shape, ctx.x = G.shape, x
    # its own copy of dout for each backward: a layer may write into the dout it is given
    # (nothing in a model reads it again), but gradcheck_layer reads its G again
    backward = learner.backward
    learner.backward = lambda dout: backward(dout.copy())
    results = gradcheck_layer(learner, x, seed=seed)
    del learner.backward
    _restore(learner, saved_l)
    for res in results:
        _report_gradient(label, res, g_l[res.name], g_r[res.name], ctx, report)
        history.append((ctx.features, res.name, res.passed))
    if all(res.passed for res in results):
        _grade_two_layers(case, learner_cls, ref_cls, seed, x, report)
        _grade_float32(case, learner_cls, ref_cls, seed, x, report)


def _grade_two_layers(case: Case, learner_cls: Any, ref_cls: Any, seed: int, x: np.ndarray,
                      report: Report) -> None:
    """Two layers of the case at once, as a model runs them: A forward on x, B forward on
    another x, then A's backward must still be A's (a cache kept on the class, or in a
    global, is B's by then)."""
    label = f"{case.label}  two layers at once: A, B forward, then A backward"
    pairs = [_make_layers(case, learner_cls, ref_cls, seed)[:2] for _ in range(2)]
    training = case.features.get("training", True)
    for ref, mine in pairs:
        if not _copy_parameters(label, ref, mine, report):
            return
        (mine.train if training else mine.eval)()
    x_b = np.random.default_rng([seed, 2]).standard_normal(x.shape) * case.x_scale
    if case.away_from_zero:
        x_b = np.where(x_b >= 0, x_b + 0.1, x_b - 0.1)
    (ref_a, mine_a), (ref_b, mine_b) = pairs
    y = ref_a.forward(x.copy())
    ref_b.forward(x_b.copy())
    mine_a.forward(x.copy())
    mine_b.forward(x_b.copy())
    G = np.random.default_rng([seed, 3]).standard_normal(y.shape)
    want = {"dx": ref_a.backward(G.copy()), **{f"d{k}": v for k, v in ref_a.grads.items()}}
    got = {"dx": mine_a.backward(G.copy()), **{f"d{k}": mine_a.grads[k] for k in ref_a.grads}}
    errors = {k: rel_error(np.asarray(got[k], dtype=np.float64), w) if np.shape(got[k]) ==
              w.shape else np.inf for k, w in want.items()}
    what, err = max(errors.items(), key=lambda kv: kv[1])
    report.line(label, err <= FORWARD_TOLERANCE, err,
                hints.TWO_LAYERS.format(what=f"gave a {what} {err:.0e} off the package's"))


def _grade_float32(case: Case, learner_cls: Any, ref_cls: Any, seed: int, x64: np.ndarray,
                   report: Report) -> None:
    """The same case in float32 beside the package's float32 layer: forward, dx and every
    parameter gradient keep float32 and agree to ``FLOAT32_TOLERANCE``."""
    ref, learner, _ = _make_layers(case, learner_cls, ref_cls, seed, np.float32)
    if not _copy_parameters(f"{case.label}  float32", ref, learner, report):
        return
    training = case.features.get("training", True)
    (learner.train if training else learner.eval)()
    x = x64.astype(np.float32)
    names = ", ".join(hints.grad_name(k) for k in ["input", *ref.grads])
    label = f"{case.label}  float32: forward, {names}"
    y_r = ref.forward(x.copy())
    y_l = _as_array(learner.forward(x.copy()), "forward", y_r.shape, np.float32)
    if isinstance(y_l, str) or y_l.shape != y_r.shape:
        report.line(label, False, None, y_l if isinstance(y_l, str) else
                    f"forward gives shape {y_l.shape} in float32, {y_r.shape} in float64")
        return
    G = np.random.default_rng(seed).standard_normal(y_r.shape).astype(np.float32)
    errors = {"forward": rel_error(y_l, y_r)}
    dx_r = ref.backward(G.copy())
    got = {"input": learner.backward(G.copy()), **learner.grads}
    for k, want in {"input": dx_r, **ref.grads}.items():
        g = _as_array(got[k], hints.grad_name(k) if k != "input" else "backward", want.shape,
                      np.float32)
        if isinstance(g, str):
            report.line(label, False, None, g)
            return
        errors[hints.grad_name(k)] = rel_error(g, want)
    what, worst = max(errors.items(), key=lambda kv: kv[1])
    report.line(label, worst <= FLOAT32_TOLERANCE, worst,
                (hints.FLOAT32_FAR if worst > 1e-2 else hints.FLOAT32).format(
                    what=what, err=worst, tol=FLOAT32_TOLERANCE))


MAP_KIND = {"dense": "dense", "activations": "elementwise", "conv2d": "conv",
            "conv_transpose2d": "conv", "batchnorm2d": "batchnorm"}


def _report_gradient(label: str, res: Any, g: np.ndarray, r: np.ndarray, ctx: hints.Context,
                     report: Report) -> None:
    """One gradient's line; under a failing one, its hint and the map of where it is wrong
    (from the learner's analytic gradient against the reference's)."""
    name = hints.grad_name(res.name)
    if res.passed:
        report.line(f"{label}  {name}", True, res.max_error)
        return
    where = maps.gradient_map(MAP_KIND[ctx.step], name, g, r, ctx.x,
                              ctx.features.get("training"))
    ctx.where = where
    report.line(f"{label}  {name}", False, res.max_error, hints.layer_hint(res.name, g, r, ctx))
    report.result.lines[-1].where = "\n".join(where.lines)
    for line in where.lines:
        report.say(f"      {line}")


def _batchnorm_forms(x: np.ndarray, G: np.ndarray, gamma: np.ndarray, eps: float
                     ) -> dict[str, np.ndarray]:
    """Training-mode dx with one path of x left out, for the hints: μ and σ² both held
    constant ("constants"), σ² only ("no_var"), μ only ("no_mean")."""
    axes = (0, 2, 3)
    mu, inv = x.mean(axis=axes, keepdims=True), 1.0 / np.sqrt(x.var(axis=axes, keepdims=True)
                                                                + eps)
    x_hat, d_hat = (x - mu) * inv, G * gamma[None, :, None, None]
    return {"constants": inv * d_hat,
            "no_var": inv * (d_hat - d_hat.mean(axis=axes, keepdims=True)),
            "no_mean": inv * (d_hat - x_hat * (d_hat * x_hat).mean(axis=axes, keepdims=True))}


def _make_layers(case: Case, learner_cls: Any, ref_cls: Any, seed: int,
                 dtype: Any = np.float64) -> tuple[Any, Any, np.random.Generator]:
    """The reference and the learner's layer, built alike (``dtype``, the same seed), the
    reference set up by the case; and the generator that draws the input."""
    kw = dict(case.kwargs)
    if case.dtype_arg:
        kw["dtype"] = dtype
    extra = (lambda: {"rng": np.random.default_rng(seed)}) if case.rng_arg else dict
    ref = ref_cls(*case.args, **kw, **extra())
    try:
        learner = learner_cls(*case.args, **kw, **extra())
    except TypeError as e:
        if has_learner_frame(e):  # raised inside their constructor: their traceback
            raise
        args = ", ".join([*map(repr, case.args), *(f"{k}={np.dtype(v).name}" if k == "dtype"
                                                   else f"{k}={v!r}" for k, v in kw.items()),
                          *(["rng=a Generator"] if case.rng_arg else [])])
        raise StepProblem(f"{learner_cls.__name__}({args}) failed: {e}. Keep the stub's "
                          "constructor: its arguments, their names and defaults") from None
    rng = np.random.default_rng([seed, 1])  # not gradcheck_layer's seed: x must not equal G
    if case.setup is not None:
        case.setup(ref, rng)
    return ref, learner, rng


def _copy_parameters(label: str, ref: Any, learner: Any, report: Report) -> bool:
    """Copy the reference's parameters and buffers into the learner's layer; False (and a
    failed line) when the learner's names or shapes differ."""
    want = {k: v.shape for k, v in ref.params.items()}
    got = {k: np.shape(v) for k, v in getattr(learner, "params", {}).items()}
    if want != got:
        report.line(f"{label}  parameters", False, None,
                    f"expected parameters {want}, got {got}: keep the stub's constructor "
                    "(its names and shapes)")
        return False
    for k in ref.buffers:
        if k not in getattr(learner, "buffers", {}):
            report.line(f"{label}  buffers", False, None,
                        f"expected a buffer {k!r} (keep the stub's constructor)")
            return False
    pairs = [(f"params[{k!r}]", learner.params[k], v) for k, v in ref.params.items()]
    pairs += [(f"buffers[{k!r}]", learner.buffers[k], v) for k, v in ref.buffers.items()]
    for what, mine, theirs in pairs:
        if np.asarray(mine).dtype != theirs.dtype:
            report.line(f"{label}  {what} dtype", False, None, hints.PARAM_DTYPE.format(
                what=what, got=np.asarray(mine).dtype, want=theirs.dtype))
            return False
        mine[...] = theirs
    return True


def _grade_forward(label: str, x: np.ndarray, ref: Any, learner: Any, training: bool,
                   ctx: hints.Context, report: Report) -> bool | None:
    """Forward of both on x (and the running statistics after it, in training): whether the
    learner's matches, or None when it returned no array at all."""
    y_r = ref.forward(x.copy())
    x_in = x.copy()
    y_l = _as_array(learner.forward(x_in), "forward", y_r.shape, x.dtype)
    if isinstance(y_l, str):
        report.line(f"{label}  forward", False, None, y_l)
        return None
    if not np.array_equal(x_in, x):
        report.line(f"{label}  forward leaves x as it was", False, None, hints.MUTATED_X)
        return None
    if y_l.shape != y_r.shape:
        ok = report.line(f"{label}  forward", False, None, hints.forward_hint(y_l, y_r, ctx))
    else:
        err = rel_error(y_l, y_r)
        if err > FORWARD_TOLERANCE and ctx.step in ("conv2d", "conv_transpose2d"):
            ctx.flipped_y = _flipped_forward(ref, x)
        ok = report.line(f"{label}  forward", err <= FORWARD_TOLERANCE, err,
                         None if err <= FORWARD_TOLERANCE else
                         hints.FLOAT32_INSIDE.format(err=err) if _float32_valued(y_l, y_r)
                         else hints.forward_hint(y_l, y_r, ctx))
        if not ok and MAP_KIND[ctx.step] == "conv":  # a border, output_padding rows: a picture
            where = maps.gradient_map("conv", "y", y_l, y_r)
            report.result.lines[-1].where = "\n".join(where.lines)
            for line in where.lines:
                report.say(f"      {line}")
    if ok and ref.buffers and training:
        err = max(rel_error(learner.buffers[k], v) for k, v in ref.buffers.items())
        report.line(f"{label}  running statistics after forward", err <= FORWARD_TOLERANCE, err,
                    "the running statistics move towards the batch's mean and its unbiased "
                    "variance by momentum: see the stub's BatchNorm2d docstring")
    return ok


def _float32_valued(y: np.ndarray, r: np.ndarray) -> bool:
    """Is every entry of the float64 y a float32 number (computed in float32, cast up),
    where the reference's are not? Random float64 values almost never are."""
    def f32(a: np.ndarray) -> bool:
        with np.errstate(over="ignore"):
            return bool(np.array_equal(a.astype(np.float32).astype(np.float64), a))
    return y.dtype == np.float64 and y.size > 1 and f32(y) and not f32(r)


def _flipped_forward(ref: Any, x: np.ndarray) -> np.ndarray:
    """The reference's forward with its kernel flipped in both spatial axes: what a true
    convolution gives, for the hint."""
    w = ref.params["weight"]
    saved = w.copy()
    w[...] = saved[:, :, ::-1, ::-1]
    try:
        return ref.forward(x.copy())
    finally:
        w[...] = saved


def _backward_both(ref: Any, learner: Any, x: np.ndarray, seed: int
                   ) -> tuple[np.ndarray, dict, dict, list[tuple[str, str]]]:
    """The analytic gradients of both, for L = Σ G ⊙ y with gradcheck_layer's own G:
    (G, the reference's, the learner's, [(what, hint)] for grads rebound instead of written,
    or added to instead of overwritten)."""
    y_r = ref.forward(x.copy())
    G = np.random.default_rng(seed).standard_normal(y_r.shape)
    dx_r = ref.backward(G.copy())
    g_r = {"input": dx_r, **{k: v.copy() for k, v in ref.grads.items()}}
    learner.forward(x.copy())
    before = {k: id(v) for k, v in learner.grads.items()}
    dx_l = learner.backward(G.copy())
    problems = [(f"grads[{k!r}] written in place", hints.NO_INPLACE.format(name=k))
                for k, v in learner.grads.items() if id(v) != before.get(k)]
    dx = _as_array(dx_l, "backward", x.shape, x.dtype)
    # copies: a layer may hand out its own arrays and overwrite them on its next call
    g_l: dict[str, Any] = {"input": dx if isinstance(dx, str) else dx.copy(),
                           **{k: np.array(v, dtype=np.float64) for k, v in learner.grads.items()}}
    if not problems:  # the same forward and backward again must give the same grads
        learner.forward(x.copy())
        learner.backward(G.copy())
        for k, v in learner.grads.items():
            if not np.allclose(v, g_l[k], rtol=1e-12, atol=0):
                ratio = float(np.sum(v * g_l[k]) / max(float(np.sum(g_l[k] ** 2)), 1e-300))
                problems.append((f"grads[{k!r}] overwritten, not added to",
                                 hints.ACCUMULATES.format(name=k, k=ratio)))
    return G, g_r, g_l, problems


def _grads_match(label: str, ref: Any, learner: Any, g_r: dict, g_l: dict,
                 problems: list[tuple[str, str]], report: Report) -> bool:
    """The learner's gradients have the reference's names and shapes, and no problem was
    found in how they are written (a failed line for each)."""
    if set(learner.grads) != set(ref.grads):
        report.line(f"{label}  grads", False, None,
                    f"expected grads {sorted(ref.grads)}, got {sorted(learner.grads)}: "
                    "add_param in the constructor makes one per parameter")
        return False
    bad_shape = False
    for k, r in g_r.items():
        g = g_l[k]
        if isinstance(g, str):
            report.line(f"{label}  dx", False, None, g)
            bad_shape = True
        elif g.shape != r.shape:
            report.line(f"{label}  {hints.grad_name(k)}", False, None,
                        hints.shape_hint(k, g.shape, r.shape, tuple(np.shape(
                            ref.params.get("weight", ())))))
            bad_shape = True
    for what, hint in problems:
        report.line(f"{label}  {what}", False, None, hint)
    return not bad_shape and not problems


def grade_large_inputs(ns: dict, report: Report) -> None:
    """Activations at |x| = 1000: the exact limits of forward and backward, and no overflow on
    the way (``run_check`` raises on overflow, invalid and divide; underflow is fine)."""
    x = np.array([[-1000.0, -30.0, 0.5, 30.0, 1000.0]])
    dout = np.random.default_rng(4000).standard_normal(x.shape)
    for name in ("ELU", "Softplus", "Sigmoid"):
        ref, learner = _REFERENCE[name](), ns[name]()
        label = f"{name}(), x = ±1000, ±30  forward and backward"
        want = [ref.forward(x.copy()), ref.backward(dout.copy())]
        got: list = []
        try:
            got.append(learner.forward(x.copy()))
            got.append(learner.backward(dout.copy()))
        except FloatingPointError as e:
            where = "backward" if got else "forward"
            report.line(label, False, None, f"{where}: " + hints.OVERFLOW.format(e=e))
            continue
        errors = {}
        for what, g, w in zip(("forward", "backward"), got, want, strict=True):
            g = _as_array(g, what, w.shape, x.dtype)
            if isinstance(g, str) or g.shape != w.shape:
                errors[what] = g if isinstance(g, str) else f"{what} gives shape {g.shape}"
            else:
                errors[what] = rel_error(g, w)
        text = [v for v in errors.values() if isinstance(v, str)]
        if text:
            report.line(label, False, None, text[0])
            continue
        what, err = max(errors.items(), key=lambda kv: kv[1])
        report.line(label, err <= FORWARD_TOLERANCE, err,
                    f"{what} is wrong far from 0: check the limits of your formula there "
                    "(what f and f′ tend to as x → ±∞)")


# -- gradcheck -------------------------------------------------------------------
def _functions(rng: np.random.Generator) -> list:
    a = rng.standard_normal(5)
    B = rng.standard_normal((4, 4))
    c = rng.standard_normal((1, 2, 3, 3))

    def lse_grad(x):
        e = np.exp(x - x.max())
        return e / e.sum()
    return [
        ("f(x) = Σ x², x (3, 4)", lambda x: float(np.sum(x * x)), lambda x: 2 * x, (3, 4)),
        ("f(x) = Σ a ⊙ sin x, x (5,)", lambda x: float(np.sum(a * np.sin(x))),
         lambda x: a * np.cos(x), (5,)),
        ("f(x) = log Σ exp x, x (2, 3)", lambda x: float(np.log(np.sum(np.exp(x)))),
         lse_grad, (2, 3)),
        ("f(x) = xᵀ B x, x (4,)", lambda x: float(x @ B @ x), lambda x: (B + B.T) @ x, (4,)),
        ("f(x) = Σ c ⊙ tanh x, x (1, 2, 3, 3)", lambda x: float(np.sum(c * np.tanh(x))),
         lambda x: c * (1 - np.tanh(x) ** 2), (1, 2, 3, 3)),
    ]


def _random_functions(rng: np.random.Generator) -> list:
    """RANDOM_CASES functions with known gradients at random shapes (2 to 4 axes) and
    frequencies, x in a memory layout other than C order (the fixed cases' x all are):
    all but the last column of a wider array, or a transposed array. (Every other column
    would not do: its entries are evenly spaced, and x.reshape(-1) would still be a view.)"""
    out = []
    for _ in range(RANDOM_CASES):
        shape = [int(v) for v in rng.integers(1, 5, size=int(rng.integers(2, 5)))]
        shape[0], shape[-1] = max(shape[0], 2), max(shape[-1], 2)  # x is then no C-order array
        a, k = rng.standard_normal(shape), round(float(rng.uniform(0.5, 3.0)), 2)
        kind = int(rng.integers(0, 3))
        if kind == 0:
            f, grad, name = (lambda x, a=a, k=k: float(np.sum(a * np.sin(k * x))),
                             lambda x, a=a, k=k: a * k * np.cos(k * x), f"Σ a ⊙ sin({k} x)")
        elif kind == 1:
            f, grad, name = (lambda x, a=a, k=k: float(np.sum(a * np.tanh(k * x))),
                             lambda x, a=a, k=k: a * k * (1 - np.tanh(k * x) ** 2),
                             f"Σ a ⊙ tanh({k} x)")
        else:
            def lse_grad(x, k=k):
                e = np.exp(k * x - np.max(k * x))
                return k * e / e.sum()
            f, grad, name = (lambda x, k=k: float(np.log(np.sum(np.exp(k * x)))), lse_grad,
                             f"log Σ exp({k} x)")
        transposed = bool(rng.random() < 0.5)
        base = rng.standard_normal(shape[::-1] if transposed else [*shape[:-1], shape[-1] + 1])
        x = base.T if transposed else base[..., :-1]
        layout = "a transposed array" if transposed else "a wider array's first columns"
        out.append((f"f(x) = {name}, x {tuple(shape)}, {layout}", f, grad, x))
    return out


def grade_gradcheck(step: Step, ns: dict, report: Report) -> None:
    numerical_gradient = ns["numerical_gradient"]
    rng = np.random.default_rng(0)
    for label, f, grad, shape in _functions(rng):
        _grade_function(step, numerical_gradient, label, f, grad, rng.standard_normal(shape),
                        report)
    # A Dense layer whose backward is 1% off must be flagged, and the correct one passed.
    _grade_planted_dense(step, numerical_gradient, (5, 3, 4), None, rng, report)
    _say_random(report)
    rng = np.random.default_rng([report.seed, 0])
    for label, f, grad, x in _random_functions(rng):
        _grade_function(step, numerical_gradient, "random: " + label, f, grad, x, report)
    d_in, d_out, n = (int(v) for v in rng.integers(1, 7, size=3))
    entry = (int(rng.integers(0, d_in)), int(rng.integers(0, d_out)))
    _grade_planted_dense(step, numerical_gradient, (d_in, d_out, n), entry, rng, report)


def _grade_function(step: Step, numerical_gradient: Callable, label: str, f: Callable,
                    grad: Callable, x: np.ndarray, report: Report) -> None:
    """The learner's gradient of f at x against the known one; x must come back unchanged."""
    h, x0 = 1e-5, x.copy()
    n = _as_array(numerical_gradient(f, x, h), "numerical_gradient", x.shape, x.dtype)
    if isinstance(n, str) or n.shape != x.shape:
        report.line(label, False, None, n if isinstance(n, str) else
                    f"numerical_gradient returned shape {n.shape}, expected x's {x.shape}")
        return
    if not np.array_equal(x, x0):
        report.line(label, False, None, hints.NOT_RESTORED)
        return
    true = grad(x)
    err = rule_error(true, n)
    report.line(label, err <= TOLERANCE, err,
                _gradcheck_hint(step, f, x, n, true, h) if err > TOLERANCE else None)


def _grade_planted_dense(step: Step, numerical_gradient: Callable, sizes: tuple[int, int, int],
                         entry: tuple[int, int] | None, rng: np.random.Generator,
                         report: Report) -> None:
    """Dense(d_in, d_out) on a batch of n: the learner's checker must agree with its correct
    dW and flag one 1% off (all of it, or only ``entry``)."""
    h, (d_in, d_out, n_rows) = 1e-5, sizes
    layer = nn.Dense(d_in, d_out, dtype=np.float64, rng=np.random.default_rng(1))
    x = rng.standard_normal((n_rows, d_in))
    G = rng.standard_normal((n_rows, d_out))
    layer.forward(x)
    layer.backward(G)
    true_dw = layer.grads["weight"].copy()
    weight = layer.params["weight"]

    def loss(w: np.ndarray) -> float:
        saved = weight.copy()
        weight[...] = w
        try:
            return float(np.sum(G * layer.forward(x)))
        finally:
            weight[...] = saved

    name = f"{'random: ' if entry else ''}Dense({d_in}, {d_out}), x ({n_rows}, {d_in})"
    n = _as_array(numerical_gradient(loss, weight, h), "numerical_gradient", weight.shape, x.dtype)
    if isinstance(n, str) or n.shape != weight.shape:
        report.line(f"{name} dW", False, None, n if isinstance(n, str) else
                    f"numerical_gradient returned shape {n.shape}, expected {weight.shape}")
        return
    err_true = rule_error(true_dw, n)
    report.line(f"{name}: the correct dW agrees with yours", err_true <= TOLERANCE,
                err_true, None if err_true <= TOLERANCE else
                "your numerical gradient disagrees with a correct backward: see the "
                f"derivation in {step.reading}")
    planted = true_dw * 1.01 if entry is None else true_dw.copy()
    if entry is not None:
        planted[entry] = true_dw[entry] * 1.01 + 1e-3 * np.max(np.abs(true_dw))
    err_planted = rule_error(planted, n)
    what = "dW 1% off" if entry is None else f"dW off at entry {entry} only"
    report.line(f"{name}: a planted {what} is flagged (error must exceed {TOLERANCE:.0e})",
                err_planted > TOLERANCE, err_planted,
                "a 1% mistake should show as an error near 5e-3 under the project's rule; "
                "check your step h and the float64 arithmetic")


def _gradcheck_hint(step: Step, f: Callable, x: np.ndarray, n: np.ndarray, true: np.ndarray,
                    h: float) -> str:
    if not x.flags.c_contiguous and not np.any(n) and np.any(true):
        return "numerical_gradient " + hints.NOT_REACHED
    one_sided = np.array([(f(_bump(x, i, h)) - f(x)) / h for i in range(x.size)])
    if hints.close(n, true * 2):
        return "numerical_gradient " + hints.HALF_STEP
    if rule_error(one_sided.reshape(x.shape), n) < 1e-6:
        return "numerical_gradient " + hints.ONE_SIDED
    return f"numerical_gradient differs from the known gradient: see the derivation in " \
        f"{step.reading}"


def _bump(x: np.ndarray, i: int, h: float) -> np.ndarray:
    y = x.copy()
    y.reshape(-1)[i] += h
    return y


# -- vae --------------------------------------------------------------------------
def grade_vae(step: Step, ns: dict, report: Report) -> None:
    for i, (n, zd) in enumerate(((3, 2), (1, 4), (5, 3))):
        rng = np.random.default_rng(2000 + i)
        m, h = rng.standard_normal((n, zd)) * 1.5, rng.standard_normal((n, zd)) * 1.5
        arrays = (m, h, *rng.standard_normal((3, n, zd)))
        _grade_vae_case(step, ns, f"Reparameterize, m, h, ε ({n}, {zd})", arrays, i, report)
    _say_random(report)
    rng = np.random.default_rng([report.seed, 2])
    for i in range(RANDOM_CASES):
        # h spread over ±a: where softplus(h) is neither ≈ 0 nor ≈ h to the last digit
        (n, zd), a = (int(v) for v in rng.integers(1, 7, size=2)), float(rng.uniform(12, 25))
        m, h = rng.standard_normal((n, zd)) * 1.5, rng.uniform(-a, a, (n, zd))
        arrays = (m, h, *rng.standard_normal((3, n, zd)))
        _grade_vae_case(step, ns, f"random: Reparameterize, m, ε ({n}, {zd}), h in ±{a:.0f}",
                        arrays, 10 + i, report)


def _grade_vae_case(step: Step, ns: dict, label: str, arrays: tuple, seed: int,
                    report: Report) -> None:
    """Forward's z and kl beside the reference's, then the gradients by central
    differences (``arrays``: m, h, ε, and the upstream dz, dkl)."""
    m, h, eps, gz, gk = arrays
    zd = m.shape[1]
    ref, learner = ReferenceReparameterize(), ns["Reparameterize"]()
    ref.set_noise(eps)
    learner.set_noise(eps.copy())
    want = ref.forward(np.concatenate([m, h], axis=1))
    got = _as_array(learner.forward(np.concatenate([m, h], axis=1)), "forward", want.shape,
                    m.dtype)
    if isinstance(got, str) or got.shape != want.shape:
        report.line(f"{label}  forward", False, None, got if isinstance(got, str) else
                    f"forward returned shape {got.shape}, expected [z, kl] of shape "
                    f"{want.shape}")
        return
    ok = True
    for what, cols in (("z", slice(0, zd)), ("kl", slice(zd, 2 * zd))):
        err = rel_error(got[:, cols], want[:, cols])
        hint = None
        if err > FORWARD_TOLERANCE:
            hint = (hints.KL_HALF.format(what="of forward") if what == "kl"
                    and hints.close(got[:, cols], 2 * want[:, cols]) else
                    f"{what} differs from the reference: see the derivation in {step.reading}")
        ok = report.line(f"{label}  forward {what}", err <= FORWARD_TOLERANCE, err,
                         hint) and ok
    if not ok:
        report.say("        (the gradients are checked once forward matches)")
        return
    _grade_vae_backward(step, learner, arrays, label, seed, report)


def _grade_vae_backward(step: Step, learner: Any, arrays: tuple, label: str, seed: int,
                        report: Report) -> None:
    m, h, eps, gz, gk = arrays
    n, zd = m.shape
    learner.forward(np.concatenate([m, h], axis=1))
    d = _as_array(learner.backward(np.concatenate([gz, gk], axis=1)), "backward", (n, 2 * zd),
                  m.dtype)
    if isinstance(d, str) or d.shape != (n, 2 * zd):
        report.line(f"{label}  backward", False, None, d if isinstance(d, str) else
                    f"backward returned shape {d.shape}, expected [dm, dh] of shape "
                    f"{(n, 2 * zd)}")
        return
    dm, dh = d[:, :zd].copy(), d[:, zd:].copy()

    def loss(learner=learner, m=m, h=h, gz=gz, gk=gk) -> float:
        y = learner.forward(np.concatenate([m, h], axis=1))
        return float(np.sum(gz * y[:, :zd]) + np.sum(gk * y[:, zd:]))

    results = check_gradients(loss, {"m": (m, dm), "h": (h, dh)}, seed=seed)
    v = softplus(h) + 1e-8
    sig = sigmoid(h)
    terms = {"zm": gz, "km": gk * m, "zh": gz * eps / (2 * np.sqrt(v)) * sig,
             "kh": gk * 0.5 * (1 - 1 / v) * sig, "sig": sig}
    found = hints.vae_hints(dm, dh, terms)
    for res in results:
        hint = None
        if not res.passed:
            hint = (found[0] if found else
                    f"d{res.name} differs from the reference: see the derivation in {step.reading}")
        report.line(f"{label}  d{res.name}", res.passed, res.max_error, hint)


def grade_vae_float32_and_extremes(step: Step, ns: dict, report: Report) -> None:
    """[m, h] in float32 beside the package's float32 layer, then h = ±1000, ±30 in float64,
    forward and backward, with overflow, invalid and divide raised (``run_check``)."""
    rng = np.random.default_rng(2100)
    h_far = np.array([[-1000.0, -30.0, 0.5], [30.0, 1000.0, -2.0]])
    for label, dtype, h in (("float32, (4, 3)", np.float32, rng.standard_normal((4, 3))),
                            ("h = ±1000, ±30", np.float64, h_far)):
        m = rng.standard_normal(h.shape).astype(dtype)
        h, eps = h.astype(dtype), rng.standard_normal(h.shape).astype(dtype)
        dy = rng.standard_normal((h.shape[0], 2 * h.shape[1])).astype(dtype)
        ref, learner = ReferenceReparameterize(), ns["Reparameterize"]()
        ref.set_noise(eps)
        want = [ref.forward(np.concatenate([m, h], axis=1)), ref.backward(dy.copy())]
        got: list = []
        try:
            learner.set_noise(eps.copy())
            got.append(learner.forward(np.concatenate([m, h], axis=1)))
            got.append(learner.backward(dy.copy()))
        except FloatingPointError as e:
            where = "backward" if got else "forward"
            report.line(f"Reparameterize, {label}", False, None,
                        f"{where}: " + hints.OVERFLOW.format(e=e))
            continue
        tol = FLOAT32_TOLERANCE if dtype == np.float32 else FORWARD_TOLERANCE
        worst, problem = 0.0, None
        for what, g, w in zip(("forward", "backward"), got, want, strict=True):
            g = _as_array(g, what, w.shape, dtype)
            if isinstance(g, str) or g.shape != w.shape:
                problem = g if isinstance(g, str) else f"{what} has shape {g.shape}"
                break
            worst = max(worst, rel_error(g, w))
        report.line(f"Reparameterize, {label}", problem is None and worst <= tol,
                    None if problem else worst,
                    problem or f"differs from the reference where h is far from 0 or in "
                    f"float32 ({worst:.1e}): check your formulas' limits and dtypes")


def grade_adam_float32(step: Step, ns: dict, report: Report) -> None:
    """12 steps on float32 parameters near 0 (so an update is not lost in the parameter's
    own rounding) beside the package's Adam: each update to ``FLOAT32_TOLERANCE``. Only
    once float64 agrees."""
    if report.result.failures:
        return
    rng = np.random.default_rng(3100)
    shapes = [(3, 4), (5,)]
    start = [(rng.standard_normal(s) * 1e-3).astype(np.float32) for s in shapes]
    pairs_l = [(p.copy(), np.zeros_like(p)) for p in start]
    pairs_r = [(p.copy(), np.zeros_like(p)) for p in start]
    learner, ref = ns["Adam"](pairs_l, lr=1e-3), ReferenceAdam(pairs_r, lr=1e-3)
    worst = 0.0
    for _ in range(12):
        prev = [p.copy() for p, _ in pairs_r]
        for (_, gl), (_, gr) in zip(pairs_l, pairs_r, strict=True):
            gl[...] = gr[...] = rng.standard_normal(gl.shape) * 10.0 ** rng.integers(-4, 1)
        learner.step()
        ref.step()
        worst = max([worst] + [rel_error(pl.astype(np.float64) - q, pr.astype(np.float64) - q)
                               for (pl, _), (pr, _), q in zip(pairs_l, pairs_r, prev,
                                                              strict=True)])
        for (pl, _), (pr, _) in zip(pairs_l, pairs_r, strict=True):
            pl[...] = pr
    report.line("Adam(lr=0.001), float32 parameters, 12 steps", worst <= FLOAT32_TOLERANCE,
                worst, hints.FLOAT32.format(what="the update", err=worst, tol=FLOAT32_TOLERANCE))


# -- adam ----------------------------------------------------------------------------
def _adam_variant(params, grads_seq, lr_seq, betas, eps, correct: bool, eps_inside: bool,
                  efficient: bool = False):
    """Adam as a learner might have written it, for the hints; yields each step's updates
    (they depend on the gradients only, not on where the params are). ``efficient``: the
    paper's step size α√(1 − β₂ᵗ)/(1 − β₁ᵗ) on m/(√v + ε), ε not rescaled."""
    b1, b2 = betas
    p = [q.copy() for q in params]
    m = [np.zeros_like(q) for q in p]
    v = [np.zeros_like(q) for q in p]
    prev = [q.copy() for q in p]
    for t, (grads, lr) in enumerate(zip(grads_seq, lr_seq, strict=True), start=1):
        for q, g, mm, vv in zip(p, grads, m, v, strict=True):
            mm[...] = b1 * mm + (1 - b1) * g
            vv[...] = b2 * vv + (1 - b2) * g * g
            if efficient:
                q -= lr * np.sqrt(1 - b2**t) / (1 - b1**t) * mm / (np.sqrt(vv) + eps)
                continue
            mh = mm / (1 - b1**t) if correct else mm
            vh = vv / (1 - b2**t) if correct else vv
            q -= lr * mh / (np.sqrt(vh + eps) if eps_inside else np.sqrt(vh) + eps)
        yield [q - q0 for q, q0 in zip(p, [q.copy() for q in prev], strict=True)]
        prev = [q.copy() for q in p]


@dataclass
class AdamCase:
    """One run of the adam step: the params' shapes, the hyperparameters, each step's lr."""

    label: str
    shapes: list[tuple[int, ...]]
    lr: float
    betas: tuple[float, float]
    eps: float
    lr_seq: list[float]


def _adam_cases() -> list[AdamCase]:
    lr2 = [0.05] * 6 + [0.01] * 6
    return [AdamCase("Adam(lr=0.001), 12 steps", [(3, 4), (5,)], 1e-3, (0.9, 0.999), 1e-8,
                     [1e-3] * 12),
            AdamCase("Adam(lr=0.05, betas=(0.8, 0.95), eps=1e-6), lr 0.01 from step 7, "
                     "12 steps", [(3, 4), (5,)], 0.05, (0.8, 0.95), 1e-6, lr2)]


def _random_adam_cases(rng: np.random.Generator) -> list[AdamCase]:
    """RANDOM_CASES runs: 2 to 4 params of 1 to 4 axes, two of them of one shape (as a
    model's biases of one width are), random lr, betas, ε, 2 to 30 steps, lr changed at a
    random step (or not)."""
    out = []
    for _ in range(RANDOM_CASES):
        shapes = [tuple(int(v) for v in rng.integers(1, 5, size=int(rng.integers(1, 5))))
                  for _ in range(int(rng.integers(1, 4)))]
        shapes.insert(int(rng.integers(0, len(shapes) + 1)), shapes[0])
        lr = float(f"{10 ** rng.uniform(-4, -1):.2g}")
        betas = (round(float(rng.uniform(0.5, 0.95)), 3), round(float(rng.uniform(0.9, 0.9999)), 4))
        eps = float(f"{10 ** rng.uniform(-8, -5):.1g}")
        steps, change = int(rng.integers(2, 31)), int(rng.integers(1, 31))
        lr_seq = [lr if t < change else lr / 4 for t in range(steps)]
        then = f", lr {lr / 4:.2g} from step {change + 1}" if change < steps else ""
        out.append(AdamCase(f"Adam(lr={lr:g}, betas={betas}, eps={eps:g}), params "
                            f"{', '.join(map(str, shapes))}{then}, {steps} steps", shapes, lr,
                            betas, eps, lr_seq))
    return out


def grade_adam(step: Step, ns: dict, report: Report) -> None:
    for i, case in enumerate(_adam_cases()):
        _grade_adam_case(step, ns["Adam"], case, np.random.default_rng(3000 + i), report)
    _say_random(report)
    rng = np.random.default_rng([report.seed, 3])
    for case in _random_adam_cases(rng):
        case.label = "random: " + case.label
        _grade_adam_case(step, ns["Adam"], case, rng, report)


def _grade_adam_case(step: Step, adam: Any, case: AdamCase, rng: np.random.Generator,
                     report: Report) -> None:
    """The learner's Adam beside the package's on the same gradients, step by step: each
    update to ``FORWARD_TOLERANCE`` of the reference's (every step from the same params)."""
    shapes, betas, eps, lr_seq, n = case.shapes, case.betas, case.eps, case.lr_seq, len(case.lr_seq)
    start = [rng.standard_normal(s) for s in shapes]
    grads_seq = [[rng.standard_normal(s) * 10.0 ** rng.integers(-4, 1) for s in shapes]
                 for _ in range(n)]
    pairs_l = [(p.copy(), np.zeros_like(p)) for p in start]
    pairs_r = [(p.copy(), np.zeros_like(p)) for p in start]
    learner = adam(pairs_l, lr=case.lr, betas=betas, eps=eps)
    ref = ReferenceAdam(pairs_r, lr=case.lr, betas=betas, eps=eps)
    variants = {
        hints.ADAM_NO_CORRECTION: _adam_variant(start, grads_seq, lr_seq, betas, eps,
                                                False, False),
        hints.ADAM_EPS_INSIDE: _adam_variant(start, grads_seq, lr_seq, betas, eps, True, True),
        hints.ADAM_EFFICIENT_EPS: _adam_variant(start, grads_seq, lr_seq, betas, eps,
                                                True, False, efficient=True)}
    matches = dict.fromkeys(variants, True)
    worst, first_bad = 0.0, None
    for t in range(n):
        learner.lr = ref.lr = lr_seq[t]
        prev = [p.copy() for p, _ in pairs_r]
        for (_, gl), (_, gr), g in zip(pairs_l, pairs_r, grads_seq[t], strict=True):
            gl[...] = g
            gr[...] = g
        learner.step()
        ref.step()
        for hint, it in variants.items():
            cand = next(it)
            matches[hint] &= all(hints.close(p - q, c) for (p, _), q, c in zip(
                pairs_l, prev, cand, strict=True))
        # the error of the update, relative to the reference's update
        err = max(rel_error(pl - q, pr - q)
                  for (pl, _), (pr, _), q in zip(pairs_l, pairs_r, prev, strict=True))
        worst = max(worst, err)
        if err > FORWARD_TOLERANCE and first_bad is None:
            first_bad = t + 1
        for (pl, _), (pr, _) in zip(pairs_l, pairs_r, strict=True):
            pl[...] = pr  # each step starts from the same params, so errors do not pile up
    hint = None
    if first_bad is not None:
        found = [h for h, ok in matches.items() if ok]
        hint = (found[0] if found else
                f"the update differs from step {first_bad} on: see the derivation in "
                f"{step.reading}")
    report.line(case.label, first_bad is None, worst, hint)


def _say_random(report: Report) -> None:
    report.say(f"  random configurations from seed {report.seed} (`--seed {report.seed}` on "
               "learn check, or seed= in check(), draws them again):")


GRADERS = {"gradcheck": (grade_gradcheck,),
           "vae": (grade_vae, grade_vae_float32_and_extremes),
           "adam": (grade_adam, grade_adam_float32)}


def _grade(step: Step, ns: dict, report: Report) -> None:
    if step.name in GRADERS:
        for grader in GRADERS[step.name]:
            grader(step, ns, report)
    else:
        grade_layers(step, ns, report)
        if step.name == "activations":
            grade_large_inputs(ns, report)


def _speed(step: Step, ns: dict, report: Report) -> None:
    """The timings are information: a layer that cannot be timed (say, float64 only) is no
    failure of the step."""
    from .speed import report_speed

    try:
        report_speed(step, ns, report)
    except Exception as e:  # noqa: BLE001 - anything the learner's layer raises here
        report.say(f"speed: not measured, your code raised {type(e).__name__}: {e} "
                   "(on float32 inputs of the sizes the report's models use)")


# -- the entry point -----------------------------------------------------------------
def namespace(step: Step, obj: Any) -> dict:
    """What the learner handed over, as {name: object}: a module, a dict, or one object."""
    if isinstance(obj, types.ModuleType):
        return {k: getattr(obj, k) for k in step.defines if hasattr(obj, k)}
    if isinstance(obj, dict):
        return dict(obj)
    if len(step.defines) == 1:
        return {step.defines[0]: obj}
    name = getattr(obj, "__name__", "")
    return {name: obj}


def _check_kinds(step: Step, ns: dict) -> None:
    """A class where the step builds its own (every step but gradcheck), a function for
    gradcheck: an instance handed over gets its own message, not a TypeError from inside."""
    for name in step.defines:
        obj = ns.get(name)
        if step.name == "gradcheck":
            if not callable(obj):
                raise StepProblem(f"{name} should be a function, got {type(obj).__name__}")
        elif not isinstance(obj, type):
            made = (f"an instance of {type(obj).__name__}" if obj is not None else "None")
            raise StepProblem(f"{name} should be the class, got {made}: the check builds "
                              f"its own layers with the arguments each case needs, so pass "
                              f"the class itself, e.g. check({step.name!r}, {name})")
        elif step.name != "adam" and not issubclass(obj, nn.Layer):
            raise StepProblem(f"{name} should subclass Layer (`from numpyvae.nn import "
                              f"Layer`), as the stub's {name} does; {obj.__name__} does not. "
                              "The check and the model use what the base gives: params, grads "
                              "and buffers, train() and eval(), named_arrays(), infer()")


def run_check(step_name: str, directory: str | Path | None = None, obj: Any = None,
              echo: Callable[[str], None] | None = print, speed: bool = True,
              seed: int | None = None) -> CheckResult:
    """Grade a step: from DIR/STEP.py (``directory``), or from ``obj`` (a notebook's class).
    ``seed`` draws the random configurations (a fresh one, printed, when None)."""
    step = get_step(step_name)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 10**6)
    report = Report(step.name, echo, seed)
    where = f"{Path(directory) / (step.name + '.py')}" if obj is None else "your code"
    report.say(f"learn check {step.name} ({where}): {step.teaches}")
    problem, unfilled = None, False
    try:
        ns = namespace(step, load_module(step, directory) if obj is None else obj)
        missing = [k for k in step.defines if k not in ns]
        if missing:
            raise StepProblem(f"{where} defines no {', '.join(missing)}: the step expects "
                              f"{', '.join(step.defines)} (see its stub)")
        _check_kinds(step, ns)
        # overflow, invalid and divide are errors in the learner's code; a correct ELU's
        # exp(−1000) underflows to 0, which is right
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            _grade(step, ns, report)
        if speed:
            _speed(step, ns, report)
    except StepProblem as e:
        problem = str(e)
    except NotImplementedError:
        problem = f"not implemented yet: write {step.todo} in {where}"
        unfilled = True
    except SystemExit as e:  # sys.exit() in their code: no exit of theirs is a verdict
        problem = learner_traceback(e, f"your code called sys.exit({e.code!r}), which ends "
                                    "the check: a layer returns its result, it never exits")
    except Exception as e:
        if not has_learner_frame(e):
            raise
        headline = ("your code overflowed: " + hints.OVERFLOW.format(e=e)
                    if isinstance(e, FloatingPointError) else "your code raised an exception")
        problem = learner_traceback(e, headline)
    result = report.result
    if problem is not None:
        result.problem = problem
        report.say(problem)
    report.say(_summary(step, result))
    if obj is None and step_path_exists(step, directory):
        record_status(step, directory, "done" if result.passed else
                      "started" if unfilled else "failing")
    return report.finish()


def _summary(step: Step, result: CheckResult) -> str:
    """The last line: PASS, or FAIL with what stopped the check and how many failed."""
    n, n_fail = len(result.lines), len(result.failures)
    if result.passed:
        after = f"; now compare yours with the package's, {step.compare}" if step.compare else ""
        return f"PASS: all {n} checks of {step.name} passed{after}"
    if result.problem is None:
        return f"FAIL: {step.name}, {n_fail} of {n} checks failed"
    ran = f" after {n} checks ({n_fail} failed)" if n else ""
    return f"FAIL: {step.name}: the check stopped{ran}, for the reason above"


def step_path_exists(step: Step, directory: str | Path) -> bool:
    return (Path(directory) / f"{step.name}.py").is_file()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_status(directory: str | Path) -> dict:
    path = Path(directory) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def record_status(step: Step, directory: str | Path, state: str) -> None:
    """Remember the verdict with the file's hash: an edit afterwards un-does "done"."""
    path = Path(directory) / f"{step.name}.py"
    status = read_status(directory)
    status[step.name] = {"state": state, "sha256": _file_hash(path)}
    target = Path(directory) / STATUS_FILE
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(status, indent=1))
    os.replace(tmp, target)


def step_state(step: Step, directory: str | Path) -> str:
    """"not started", "started", "done" (its check passed on the file as it is) or "failing"."""
    path = Path(directory) / f"{step.name}.py"
    if not path.is_file():
        return "not started"
    entry = read_status(directory).get(step.name)
    if not entry or entry.get("sha256") != _file_hash(path):
        return "started"
    return entry.get("state", "started")


def done_steps(directory: str | Path) -> list[str]:
    return [s.name for s in STEPS if step_state(s, directory) == "done"]
