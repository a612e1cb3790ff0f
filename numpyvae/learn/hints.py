"""Hints: what a failing gradient most likely got wrong, found by comparing it with the reference.

Each hint names the likely mistake and where to look; none gives the formula.
A hint is only given when the learner's numbers match the pattern of that
mistake (up to ``MATCH``), or when the same gradient passes in every simpler
configuration of the step and fails only where one feature (stride,
output_padding, training mode) is switched on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Two float64 computations of the same quantity in a different order agree to ~1e-15
# relative; a pattern is "matched" well inside that and far outside any real mistake.
MATCH = 1e-7

TRANSPOSED = ("looks transposed: it holds the reference's numbers with its axes swapped. "
              "Check the order of the two factors in the product, and which axis of the "
              "weight (shape {shape}) is the input and which the output.")
SCALED = ("is the reference's divided by {k} ({what}): it looks averaged where the loss adds "
          "up every output's contribution. Each output the parameter touches adds its own term.")
MULTIPLIED = ("is the reference's times {k}: look for a factor counted twice or a ½ lost in "
              "the derivation.")
SIGN = "has the opposite sign of the reference: check the sign of each term you wrote."
FLIPPED = ("looks flipped in the kernel's spatial axes: forward is a cross-correlation "
           "(no flip), so the gradient reads the windows in the same orientation.")
BN_TRAIN = ("is right in eval mode but wrong in training: in training μ and σ are computed "
            "from x, so x reaches the output three ways (directly, through μ and through σ); "
            "go over each path in the derivation in {reading}.")
BN_CONSTANTS = ("is right in eval mode but wrong in training: it treats the batch mean and "
                "variance as constants. In training they are computed from x, so x reaches the "
                "output three ways (directly, through μ and through σ): see the derivation in "
                "{reading}.")
BN_NO_VAR = ("in training, follows x directly and through μ, but not through the variance: "
             "σ² = mean((x − μ)²) is computed from x too, so x reaches x̂ a third way. See the "
             "derivation in {reading}.")
BN_NO_MEAN = ("in training, follows x directly and through the variance, but not through μ: "
              "μ = mean(x) is computed from x too, so x reaches x̂ through it as well. See the "
              "derivation in {reading}.")
BORDER = ("is right in the interior but wrong within {w} pixel(s) of the border: look at "
          "how the padding is handled in backward (what is padded, and what is cut away).")
STRIDE = ("is right with stride 1 but wrong with stride {s}: stride is handled in forward "
          "but not the same way in backward (which input pixels each output window read).")
OUTPUT_PADDING = ("is right with output_padding=0 but wrong with output_padding={op}: look "
                  "at the extra bottom rows and right columns output_padding adds, in forward "
                  "and in backward.")
NO_INPLACE = ("backward replaced self.grads[{name!r}] with a new array; the contract "
              "(numpyvae/nn/layer.py's docstring) writes into it in place, so an optimizer "
              "holding the old array still sees it.")
ACCUMULATES = ("backward adds into self.grads[{name!r}] instead of overwriting it: the same "
               "forward and backward run twice gave {k:.3g} times the first result the second "
               "time. Nothing zeroes the grads between steps; backward writes "
               "grads[k][...] = ... afresh each time.")
DTYPE = ("{what} returned {got} for a {want} input: every array your code returns keeps the "
         "input's dtype (training runs in float32, the checks in float64). Look for an array "
         "made without dtype= (zeros, empty, a constant array) or an astype.")
MUTATED_X = ("forward changed the x it was given: it writes into the caller's array (an "
             "in-place operation such as x *= or x[...] = on the input, or on a view of it). "
             "The layer before still needs its own output; compute into a new array.")
FLOAT32_INSIDE = ("forward agrees with the reference only to {err:.0e}, float32's precision, "
                  "and every value it returns is a float32 number cast up: for a float64 input "
                  "your code computes in float32 somewhere (an astype, or an array made "
                  "float32). Keep x's dtype throughout.")
PARAM_DTYPE = ("{what} is {got} in a layer built with dtype={want}: make every parameter and "
               "buffer in the dtype the constructor is given (it is float32 in training, "
               "float64 in the gradient check).")
TWO_LAYERS = ("two of your layers at once disagree with two of the package's: after a second "
              "layer ran forward, the first one's backward {what}. Keep what backward needs "
              "on the instance (self.cache), never on the class or in a module's global: a "
              "model runs every forward before any backward.")
FLOAT32 = ("in float32, {what} differs from the package's float32 layer by {err:.1e} of its "
           "largest entry (float32 rounding alone stays below {tol:.0e}), though float64 "
           "agrees: look for a step that loses precision in float32, such as a large sum "
           "subtracted from another, or a constant that is not in the input's dtype.")
FLOAT32_FAR = ("in float32, {what} differs from the package's float32 layer by {err:.1e} of its "
               "largest entry, far beyond float32 rounding (below {tol:.0e}), though float64 "
               "agrees: your code may take another path for float32 (a branch on the dtype, a "
               "float32-only function), or a step there loses all its digits (a large sum "
               "subtracted from another, such as E[x²] − E[x]²).")
OVERFLOW = ("{e}: the check raises on overflow, invalid (inf − inf, 0·inf) and division by "
            "zero, where NumPy would only warn. Never exponentiate a large positive number: "
            "write each f with exp of values ≤ 0 only (the derivation in the stub says how).")
SHAPE = "has shape {got}, expected {want} (the parameter's own shape)."
NOT_REPEATABLE = ("fails the check by central differences, yet the one your backward gave first "
                  "matches the reference's everywhere: your layer gives another result when "
                  "called again (state carried from one call to the next, such as a sum "
                  "never reset, or an array you return and change later).")
GENERIC = "differs from the reference all over: go back to the derivation in {reading}."
LOCAL = ("differs from the reference in {where} (the map below), and is right elsewhere: "
         "find the term of the derivation in {reading} that only those entries need.")
SIGN_SIDE = ("is right where x {right} 0 but wrong where x {wrong} 0: go over f′ on that side "
             "of the derivation in {reading} (which branch of f, and every factor of it).")
FLIPPED_FORWARD = ("forward matches a true convolution, the kernel flipped in both spatial "
                   "axes: this layer is a cross-correlation, as PyTorch's, so each window is "
                   "multiplied by the kernel in the same orientation (the formula in {reading}).")


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """a equals b to ``MATCH``, relative to b's largest entry."""
    if a.shape != b.shape:
        return False
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b))) <= MATCH * max(scale, 1e-300) if a.size else True


def grad_name(tensor: str) -> str:
    return "dx" if tensor == "input" else f"d{tensor}"


@dataclass
class Context:
    """What a hint may look at besides the two gradients."""

    step: str
    reading: str
    features: dict = field(default_factory=dict)  # stride, padding, output_padding, training
    dout_shape: tuple = ()
    kernel_size: int = 0
    bn_forms: dict = field(default_factory=dict)  # BN in training: dx with a path left out
    weight_shape: tuple = ()
    x: np.ndarray | None = None
    flipped_y: np.ndarray | None = None  # conv: forward with the kernel flipped
    where: Any = None  # maps.Where of the failing gradient
    history: list = field(default_factory=list)  # (features, tensor, passed) of earlier cases


def _passed_everywhere(history: list, tensor: str, where) -> bool:
    """The tensor passed in every earlier case that ``where(features)`` selects (and one ran)."""
    seen = [passed for feats, t, passed in history if t == tensor and where(feats)]
    return bool(seen) and all(seen)


def shape_hint(tensor: str, got: tuple, want: tuple, weight_shape: tuple = ()) -> str:
    g = grad_name(tensor)
    if len(got) == len(want) and tuple(reversed(got)) == tuple(want):
        return f"{g} " + TRANSPOSED.format(shape=weight_shape or want)
    return f"{g} " + SHAPE.format(got=got, want=want)


def _batchnorm_hint(name: str, g: np.ndarray, ctx: Context) -> str | None:
    forms = ctx.bn_forms
    for key, text in (("constants", BN_CONSTANTS), ("no_var", BN_NO_VAR),
                      ("no_mean", BN_NO_MEAN)):
        if key in forms and close(g, forms[key]):
            return f"{name} " + text.format(reading=ctx.reading)
    everywhere = ctx.where is None or ctx.where.everywhere
    if everywhere and _passed_everywhere(ctx.history, "input",
                                         lambda x: x.get("training") is False):
        return f"{name} " + BN_TRAIN.format(reading=ctx.reading)
    return None


def _where_hint(name: str, ctx: Context) -> str:
    """The last resort, localised by the map: "all over" only when every entry is off."""
    w = ctx.where
    if w is None or w.everywhere:
        return f"{name} " + GENERIC.format(reading=ctx.reading)
    if w.summary in ("only where x < 0", "only where x > 0"):
        wrong = w.summary[-3]
        right = ">" if wrong == "<" else "<"
        return f"{name} " + SIGN_SIDE.format(right=right, wrong=wrong, reading=ctx.reading)
    return f"{name} " + LOCAL.format(where=w.summary, reading=ctx.reading)


def layer_hint(tensor: str, g: np.ndarray, r: np.ndarray, ctx: Context) -> str:
    """The likely mistake behind a failing gradient g of ``tensor`` (reference r)."""
    name = grad_name(tensor)
    f = ctx.features
    if ctx.where is not None and ctx.where.bad == 0:
        return f"{name} " + NOT_REPEATABLE
    if tensor == "input" and f.get("training") and ctx.step == "batchnorm2d":
        hint = _batchnorm_hint(name, g, ctx)
        if hint:
            return hint
    if g.ndim == 2 and g.shape == r.shape and close(g, r.T):
        return f"{name} " + TRANSPOSED.format(shape=ctx.weight_shape or r.shape)
    if g.ndim == 4 and tensor != "input":
        if close(g, r.swapaxes(0, 1)):
            return f"{name} " + TRANSPOSED.format(shape=ctx.weight_shape or r.shape)
        if close(g, r[:, :, ::-1, ::-1]):
            return f"{name} " + FLIPPED
    if close(g, -r):
        return f"{name} " + SIGN
    for k, what in _divisors(ctx):
        if close(g * k, r):
            return f"{name} " + SCALED.format(k=k, what=what)
    for k in (2, 0.5):
        if close(g, r * k):
            return f"{name} " + MULTIPLIED.format(k=k)
    s, p, op = f.get("stride", 1), f.get("padding", 0), f.get("output_padding", 0)
    # a window that overlaps the padding reaches up to K − 1 pixels into x
    w = max(p, ctx.kernel_size - 1, 1)
    if tensor == "input" and p > 0 and g.ndim == 4 and _only_border(g, r, w):
        return f"{name} " + BORDER.format(w=w)
    if op > 0 and _passed_everywhere(ctx.history, tensor,
                                     lambda x: x.get("output_padding", 0) == 0):
        return f"{name} " + OUTPUT_PADDING.format(op=op)
    if s > 1 and _passed_everywhere(ctx.history, tensor, lambda x: x.get("stride", 1) == 1):
        return f"{name} " + STRIDE.format(s=s)
    return _where_hint(name, ctx)


def forward_hint(y: np.ndarray, r: np.ndarray, ctx: Context) -> str:
    """The likely mistake behind a forward output y that differs from the reference r."""
    f = ctx.features
    op, p = f.get("output_padding", 0), f.get("padding", 0)
    if y.shape != r.shape:
        text = f"forward gives shape {y.shape}, expected {r.shape}"
        if op and y.shape[:2] == r.shape[:2] and y.shape[2:] == (r.shape[2] - op,
                                                                 r.shape[3] - op):
            return text + ": the output_padding rows and columns are missing."
        return text + f": check the output size formula in {ctx.reading}."
    if op and r.ndim == 4:
        bad = _bad(y, r)
        if bad[:, :, -op:, :].any() or bad[:, :, :, -op:].any():
            inner = bad[:, :, :-op, :-op]
            if not inner.any():
                return "forward is wrong only in the last output_padding rows/columns: " \
                    + OUTPUT_PADDING.format(op=op)
    if ctx.flipped_y is not None and close(y, ctx.flipped_y):
        return FLIPPED_FORWARD.format(reading=ctx.reading)
    if p and r.ndim == 4 and _only_border(y, r, p):
        return "forward " + BORDER.format(w=p)
    if f.get("training") is False:
        return ("forward is wrong in eval mode: eval normalises with the running statistics "
                "(buffers), not the batch's.")
    if f.get("training"):
        return ("forward is wrong in training mode: it normalises with the batch's own mean "
                "and biased variance per channel (over N, H, W).")
    return f"forward differs from the reference: go back to the derivation in {ctx.reading}."


def _divisors(ctx: Context) -> list[tuple[int, str]]:
    """Counts a sum over outputs might have been divided by instead."""
    d = ctx.dout_shape
    out: list[tuple[int, str]] = []
    if d and d[0] > 1:
        out.append((d[0], f"N = {d[0]}, the batch size"))
    if len(d) == 4:
        hw = d[2] * d[3]
        out.append((d[0] * hw, f"N·H·W = {d[0] * hw}, the outputs per channel"))
        out.append((hw, f"H·W = {hw}, the output pixels"))
    return [(k, w) for k, w in out if k > 1]


def _bad(g: np.ndarray, r: np.ndarray) -> np.ndarray:
    scale = max(float(np.max(np.abs(r))), 1e-300)
    return np.abs(g - r) > 1e-6 * scale


def _only_border(g: np.ndarray, r: np.ndarray, w: int) -> bool:
    """Every wrong entry lies within w pixels of the spatial border, and there is one."""
    bad = _bad(g, r)
    if not bad.any() or g.shape[2] <= 2 * w or g.shape[3] <= 2 * w:
        return False
    return not bad[:, :, w:-w, w:-w].any()


# -- the vae step --------------------------------------------------------------
KL_HALF = ("the KL part {what} is twice the reference: the ½ in front of KL = ½ Σ (v + m² − 1 "
           "− log v) (the stub's docstring, the report section 3).")
SQRT_HALF = ("the z part of dh is {k} times the reference: look at the derivative of √v "
             "(d√v/dv has a 1/(2√v)).")
SOFTPLUS = ("dh misses the last link of the chain: v = softplus(h) + 1e-8, so dv must still "
            "go through softplus′(h).")


def vae_hints(dm: np.ndarray, dh: np.ndarray, terms: dict[str, np.ndarray]) -> list[str]:
    """Hints for [dm, dh] against the reference's four terms:
    dm = zm + km (z path, KL path), dh = zh + kh."""
    zm, km, zh, kh = terms["zm"], terms["km"], terms["zh"], terms["kh"]
    hints = []
    if not close(dm, zm + km) and close(dm, zm + 2 * km):
        hints.append(KL_HALF.format(what="of dm"))
    if not close(dh, zh + kh):
        if close(dh, zh + 2 * kh) or close(dh, 2 * zh + 2 * kh) and close(dm, zm + 2 * km):
            hints.append(KL_HALF.format(what="of dh"))
        elif close(dh, 2 * zh + kh):
            hints.append(SQRT_HALF.format(k=2))
        elif close(dh, 0.5 * zh + kh):
            hints.append(SQRT_HALF.format(k="½"))
        elif close(dh, (zh + kh) / terms["sig"]):
            hints.append(SOFTPLUS)
    return hints


# -- the adam step --------------------------------------------------------------
ADAM_NO_CORRECTION = ("your updates match Adam without bias correction: m and v start at 0, "
                      "so early on they are too small; see m̂ and v̂ in the stub's derivation.")
ADAM_EFFICIENT_EPS = ("your updates match the paper's \"efficient\" form (the step size "
                      "α√(1 − β₂ᵗ)/(1 − β₁ᵗ) applied to m/(√v + ε)) with ε as given: there ε "
                      "sits beside √v, not √v̂, which is another ε convention. The one graded "
                      "here (and PyTorch's) adds ε to √v̂, as the stub's derivation writes it.")
ADAM_EPS_INSIDE = "your updates match eps added inside the square root: see where eps goes."

# -- the gradcheck step ----------------------------------------------------------
ONE_SIDED = ("matches a one-sided difference (f(x + h) − f(x)) / h: its error is O(h), far "
             "above the project's 1e-6; the central difference's is O(h²).")
HALF_STEP = "is twice the true gradient: a central difference spans 2h, not h."
NOT_REACHED = ("is 0 everywhere for an x that is not one C-ordered block of memory (a view: "
               "a wider array's first columns, or a transposed array): whatever you nudged "
               "never reached f(x). A reshape of such an x is a copy, not a view; nudge the "
               "entries of x itself.")
NOT_RESTORED = ("x is not the same after your call: restore every entry you perturb, or the "
                "next entry (and the caller) sees a shifted x.")
