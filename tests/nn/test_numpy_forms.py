"""The NumPy form of each layer with a fast kernel beside it (use_kernels False): ELU,
Sigmoid and BatchNorm2d gradient-checked in float64, Adam's update held to Algorithm 1
written out by hand, each with a negative control planted in the NumPy form itself.

Where a learner reading nn/ looks (issue 23: these forms were tested only through
tests/kernels/test_fast_paths.py, so a bug in one passed every test of tests/nn).
"""

import math

import numpy as np
import pytest

from numpyvae.nn import ELU, BatchNorm2d, Sigmoid
from numpyvae.nn import adam as adam_module
from numpyvae.nn import batchnorm2d as bn_module
from numpyvae.nn.adam import Adam
from numpyvae.nn.gradcheck import gradcheck_layer

F64 = np.float64
TOLERANCE = 1e-6


def _numpy_form(layer):
    layer.use_kernels = False  # on the instance: the class default stays True
    return layer


def _max_errors(layer, x, seed=3) -> dict[str, float]:
    results = gradcheck_layer(layer, x, seed=seed)
    assert results and all(r.checked > 0 for r in results)
    return {r.name: r.max_error for r in results}


def _x(shape, seed=0, spread=2.0):
    """Inputs on both sides of 0 and away from it (ELU's kink), float64."""
    x = np.random.default_rng(seed).uniform(-spread, spread, shape)
    x[np.abs(x) < 1e-3] = 0.5
    return x


LAYERS = {
    "ELU": (lambda: ELU(alpha=1.3), (4, 7)),
    "Sigmoid": (Sigmoid, (4, 7)),
    "BatchNorm2d": (lambda: BatchNorm2d(3, dtype=F64), (4, 3, 2, 3)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_the_numpy_form_passes_the_gradient_check(name):
    make, shape = LAYERS[name]
    layer = _numpy_form(make())
    if isinstance(layer, BatchNorm2d):  # non-trivial γ, β: every term of the backward counts
        layer.params["weight"][...] = [0.7, 1.3, -0.9]
        layer.params["bias"][...] = [0.1, -0.2, 0.3]
    errors = _max_errors(layer, _x(shape))
    assert max(errors.values()) <= TOLERANCE, errors


def test_the_numpy_form_really_runs(monkeypatch):
    """use_kernels False reaches no kernel: each kernel entry point raises if called."""
    from numpyvae.nn import activations

    def no_kernel(*a, **k):
        raise AssertionError("a kernel ran on the NumPy path")

    for name in ("elu_forward", "elu_backward", "sigmoid_backward"):
        monkeypatch.setattr(activations.elementwise, name, no_kernel)
    monkeypatch.setattr(activations, "sigmoid_fast", no_kernel)
    monkeypatch.setattr(bn_module, "kernels", None)  # any use of the kernel module fails
    for name in LAYERS:
        make, shape = LAYERS[name]
        layer = _numpy_form(make())
        layer.backward(np.ones_like(layer.forward(_x(shape))))


# -- negative controls: a bug planted in the NumPy form fails the check -------------------
def test_a_planted_elu_backward_fails():
    class Off(ELU):
        def _backward_numpy(self, dout, x):
            return super()._backward_numpy(dout, x) * np.where(x > 0, 1.0, 1.001)

    errors = _max_errors(_numpy_form(Off(alpha=1.3)), _x((4, 7)))
    assert errors["input"] > 1e-4


def test_a_planted_sigmoid_backward_fails(monkeypatch):
    class Off(Sigmoid):
        def backward(self, dout):
            return super().backward(dout) * 1.001

    errors = _max_errors(_numpy_form(Off()), _x((4, 7)))
    assert errors["input"] > 1e-4


@pytest.mark.parametrize("where", ["dx", "dgamma"])
def test_a_planted_batchnorm_backward_fails(monkeypatch, where):
    real = bn_module.batchnorm_backward_numpy

    def off(*args, **kw):
        dx, dgamma, dbeta = real(*args, **kw)
        if where == "dx":
            return dx * 1.001, dgamma, dbeta
        return dx, dgamma * 1.001, dbeta

    monkeypatch.setattr(bn_module, "batchnorm_backward_numpy", off)
    layer = _numpy_form(BatchNorm2d(3, dtype=F64))
    layer.params["weight"][...] = [0.7, 1.3, -0.9]
    errors = _max_errors(layer, _x((4, 3, 2, 3)))
    assert errors["input" if where == "dx" else "weight"] > 1e-4


# -- Adam's NumPy form against Algorithm 1 written out by hand ---------------------------
def _algorithm_1(theta, grads, lr, b1, b2, eps):
    """Kingma & Ba's Algorithm 1, one scalar at a time in Python floats."""
    out = []
    for th, gs in zip(theta, grads, strict=True):
        m = v = 0.0
        for t, g in enumerate(gs, start=1):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            th = th - lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        out.append(th)
    return np.array(out)


def _run_numpy_adam(theta0, grads, **kw) -> np.ndarray:
    p = np.array(theta0, dtype=F64)
    g = np.zeros_like(p)
    opt = Adam([(p, g)], **kw)
    opt.use_kernels = False
    for step in range(grads.shape[1]):
        g[...] = grads[:, step]
        opt.step()
    return p


def test_adams_numpy_form_is_algorithm_1():
    rng = np.random.default_rng(4)
    theta0, grads = rng.normal(size=6), rng.normal(scale=3.0, size=(6, 5))
    kw = {"lr": 0.03, "betas": (0.8, 0.95), "eps": 1e-6}
    expected = _algorithm_1(theta0, grads, kw["lr"], *kw["betas"], kw["eps"])
    np.testing.assert_allclose(_run_numpy_adam(theta0, grads, **kw), expected, rtol=1e-13)


def test_a_planted_adam_update_fails(monkeypatch):
    """Negative control: the bias correction of v dropped, in the NumPy form only."""
    def off(p, g, m, v, t, lr, beta1, beta2, eps):
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * (g * g)
        p -= lr * (m / (1.0 - beta1**t)) / (np.sqrt(v) + eps)

    monkeypatch.setattr(adam_module, "adam_update", off)
    rng = np.random.default_rng(4)
    theta0, grads = rng.normal(size=6), rng.normal(scale=3.0, size=(6, 5))
    expected = _algorithm_1(theta0, grads, 0.03, 0.8, 0.95, 1e-6)
    got = _run_numpy_adam(theta0, grads, lr=0.03, betas=(0.8, 0.95), eps=1e-6)
    assert not np.allclose(got, expected, rtol=1e-13)
