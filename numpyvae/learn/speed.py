"""Speed, for information only: the learner's forward and backward beside the package's
NumPy form and its numba kernels. Nothing is asserted on it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import nn
from ..nn import Adam as ReferenceAdam
from ..nn import conv2d as c2
from ..nn import conv_transpose2d as ct
from .steps import Step

SLOW = 2.0  # seconds: a learner's layer this slow is timed once, not best of three


def _best(fn: Callable[[], Any], repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if best > SLOW:
            break
    return best


def _fmt(t: float) -> str:
    return f"{t * 1e3:8.2f} ms" if t < 1 else f"{t:8.2f} s "


def _time_layer(layer: Any, x: np.ndarray) -> tuple[float, float]:
    y = layer.forward(x)  # warm-up (and numba's compile, if any)
    dy = np.ones_like(y)
    layer.backward(dy)
    fwd = _best(lambda: layer.forward(x))
    bwd = _best(lambda: layer.backward(dy))
    return fwd, bwd


# -- the package's NumPy form of Dense: y = x W + b with plain NumPy products -----
class _NumpyDense:
    def __init__(self, w: np.ndarray, b: np.ndarray) -> None:
        self.w, self.b = w, b

    def forward(self, x):
        self.x = x
        return x @ self.w + self.b

    def backward(self, dy):
        dw, db = self.x.T @ dy, dy.sum(0)
        return dy @ self.w.T, dw, db


class _ConvForm:
    """One of nn/conv2d.py's forms of the convolution, timed like a layer."""

    def __init__(self, forward: Callable, backward: Callable, layer: Any) -> None:
        self.f, self.b, self.w = forward, backward, layer.params["weight"]
        self.bias, self.s, self.p = layer.params["bias"], layer.stride, layer.padding

    def forward(self, x):
        self.x = x
        return self.f(x, self.w, self.bias, self.s, self.p)

    def backward(self, dy):
        return self.b(dy, self.x, self.w, self.s, self.p)


def _conv_forms(layer: Any) -> list[tuple[str, Any]]:
    """The definition, the sum by offsets and im2col; the numba kernel is the package's row."""
    def by_offsets_backward(dy, x, w, s, p):
        return (c2.conv2d_grad_input_by_offsets(dy, w, x.shape[2:], s, p),
                c2.conv2d_grad_weight_by_offsets(dy, x, w.shape[2], s, p))

    return [("1. definition (loops)", _ConvForm(c2.conv2d_naive, c2.conv2d_naive_backward, layer)),
            ("2. sum by offsets", _ConvForm(c2.conv2d_by_offsets, by_offsets_backward, layer)),
            ("3. im2col", _ConvForm(c2.conv2d_im2col, c2.conv2d_im2col_backward, layer))]


class _ConvTransposeDefinition:
    """nn/conv_transpose2d.py's definition (the stamping loops), timed like a layer."""

    def __init__(self, layer: Any) -> None:
        self.w, self.bias = layer.params["weight"], layer.params["bias"]
        self.s, self.p, self.op = layer.stride, layer.padding, layer.output_padding

    def forward(self, x):
        self.x = x
        return ct.conv_transpose2d_naive(x, self.w, self.bias, self.s, self.p, self.op)

    def backward(self, dy):
        return ct.conv_transpose2d_naive_backward(dy, self.x, self.w, self.s, self.p)


def _numpy_form(layer: Any) -> Any:
    """The package's layer on its readable NumPy path (``use_kernels = False``)."""
    layer.use_kernels = False
    return layer


def _conv_transpose_forms(layer: Any) -> list[tuple[str, Any]]:
    """The definition and the sum by offsets (Conv2d's input gradient run as a layer, the
    layer's NumPy path); the numba kernel is the package's row."""
    numpy_form = _numpy_form(nn.ConvTranspose2d(
        layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
        padding=layer.padding, output_padding=layer.output_padding,
        dtype=layer.params["weight"].dtype))
    for k, v in layer.params.items():
        numpy_form.params[k][...] = v
    return [("1. definition (loops)", _ConvTransposeDefinition(layer)),
            ("2. sum by offsets", numpy_form)]


def _setups(step: str, ns: dict) -> tuple[str, Any, Any, Any, np.ndarray] | None:
    """(what, learner's layer, package NumPy form (or [(label, form)]), package kernel layer, x)."""
    f32 = np.float32
    rng = np.random.default_rng(0)
    if step == "dense":
        x = rng.standard_normal((256, 784)).astype(f32)
        ref = nn.Dense(784, 300, dtype=f32, rng=rng)
        return ("Dense(784, 300), x (256, 784) float32", ns["Dense"](784, 300, dtype=f32, rng=rng),
                _NumpyDense(ref.params["weight"], ref.params["bias"]), ref, x)
    if step == "activations":
        x = rng.standard_normal((256, 300)).astype(f32)
        slow = nn.ELU()
        slow.use_kernels = False
        return "ELU(), x (256, 300) float32", ns["ELU"](), slow, nn.ELU(), x
    if step == "conv2d":
        x = rng.standard_normal((8, 8, 14, 14)).astype(f32)
        ref = nn.Conv2d(8, 16, 3, stride=2, padding=1, dtype=f32, rng=rng)
        return ("Conv2d(8, 16, 3, stride=2, padding=1), x (8, 8, 14, 14) float32",
                ns["Conv2d"](8, 16, 3, stride=2, padding=1, dtype=f32, rng=rng),
                _conv_forms(ref), ref, x)
    if step == "conv_transpose2d":
        x = rng.standard_normal((8, 16, 7, 7)).astype(f32)
        ref = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1, dtype=f32,
                                 rng=rng)
        return ("ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1), "
                "x (8, 16, 7, 7) float32",
                ns["ConvTranspose2d"](16, 8, 3, stride=2, padding=1, output_padding=1,
                                      dtype=f32, rng=rng),
                _conv_transpose_forms(ref), ref, x)
    if step == "batchnorm2d":
        x = rng.standard_normal((64, 32, 14, 14)).astype(f32)
        slow = nn.BatchNorm2d(32, dtype=f32)
        slow.use_kernels = False
        return ("BatchNorm2d(32), training, x (64, 32, 14, 14) float32",
                ns["BatchNorm2d"](32, dtype=f32), slow, nn.BatchNorm2d(32, dtype=f32), x)
    return None


def report_speed(step: Step, ns: dict, report: Any) -> None:
    """Print the timings; a failure here is the learner's to see, but it is no verdict."""
    if step.name == "adam":
        _adam_speed(ns, report)
        return
    if step.name == "vae":
        _vae_speed(ns, report)
        return
    setup = _setups(step.name, ns)
    if setup is None:
        return
    what, mine, numpy_form, kernels, x = setup
    report.say(f"speed, for information (best of 3): {what}")
    forms = numpy_form if isinstance(numpy_form, list) else [("package, NumPy form", numpy_form)]
    last = {"dense": "package (BLAS)", "conv2d": "4. numba kernel (gemm)",
            "conv_transpose2d": "3. numba kernel (phases)"}
    rows = [("yours", mine), *forms, (last.get(step.name, "package, numba kernels"), kernels)]
    for name, layer in rows:
        fwd, bwd = _time_layer(layer, x)
        report.say(f"    {name:<24} forward {_fmt(fwd)}   backward {_fmt(bwd)}")


def _vae_speed(ns: dict, report: Any) -> None:
    rng = np.random.default_rng(0)
    x, e = rng.standard_normal((256, 4)), rng.standard_normal((256, 2))
    report.say("speed, for information (best of 3): Reparameterize, (256, 2) float64")
    for name, layer in (("yours", ns["Reparameterize"]()),
                        ("package, NumPy", nn.Reparameterize())):
        layer.set_noise(e)
        fwd = _best(lambda layer=layer: layer.forward(x))
        bwd = _best(lambda layer=layer: layer.backward(x))
        report.say(f"    {name:<24} forward {_fmt(fwd)}   backward {_fmt(bwd)}")


def _adam_speed(ns: dict, report: Any) -> None:
    rng = np.random.default_rng(0)
    shapes = [(784, 300), (300,), (300, 100), (100,)]
    report.say("speed, for information (best of 3): Adam.step() on the MLP's first layers, "
               "float32")
    for name, make, kernels in (("yours", ns["Adam"], None),
                                ("package, NumPy form", ReferenceAdam, False),
                                ("package, numba kernel", ReferenceAdam, True)):
        pairs = [(rng.standard_normal(s).astype(np.float32),
                  rng.standard_normal(s).astype(np.float32)) for s in shapes]
        opt = make(pairs, lr=1e-3)
        if kernels is not None:
            opt.use_kernels = kernels
        opt.step()
        report.say(f"    {name:<24} step    {_fmt(_best(opt.step))}")
