"""The grader tried once more with code written differently from the package's: right ones
pass the check (float64, float32, two layers at once) and the replay; wrong ones fail with a
hint that names their mistake, not another."""

from __future__ import annotations

import numpy as np
import pytest

from numpyvae import nn
from numpyvae.learn import check, hints
from numpyvae.learn.train import PACKAGE_KIT, replay

from . import differently


def _activations(elu):
    return {"ELU": elu, "Softplus": nn.Softplus, "Sigmoid": nn.Sigmoid}


# (step, what the learner hands over, the kit entry it replaces, the model it replays in)
RIGHT = {
    "Dense written with einsum": ("dense", differently.EinsumDense, "Dense", "mlp"),
    "Dense whose backward returns a buffer it overwrites on its next call": (
        "dense", differently.BufferDense, "Dense", "mlp"),
    "ELU writing dx into the dout it was given": (
        "activations", _activations(differently.DoutInPlaceELU), "ELU", "cnn"),
    "Conv2d on sliding_window_view and einsum": ("conv2d", differently.WindowConv2d, "Conv2d",
                                                 "cnn"),
    "ConvTranspose2d by zero-stuffing and a stride-1 conv": (
        "conv_transpose2d", differently.ZeroStuffConvTranspose2d, "ConvTranspose2d", "cnn"),
}


@pytest.mark.parametrize("style", list(RIGHT))
def test_right_layers_written_differently_pass_and_replay(style):
    step, obj, name, arch = RIGHT[style]
    result = check(step, obj, echo=False, speed=False, seed=0)
    assert result.passed, result.text
    assert any("two layers at once" in x.label for x in result.lines), result.text
    cls = obj[name] if isinstance(obj, dict) else obj
    images = np.random.default_rng(0).uniform(0, 1, (32, 1, 28, 28)).astype(np.float32)
    lines: list[str] = []
    assert replay(dict(PACKAGE_KIT, **{name: cls}), arch, images, steps=2, batch_size=8,
                  lr=2.5e-3, echo=lines.append), lines


# (step, the wrong layer, the label of the first failing line, what its hint must say)
WRONG = {
    "cache on the class": ("dense", differently.ClassCacheDense, "two layers at once",
                           "never on the class"),
    "np.where evaluating exp(1000)": ("activations", _activations(differently.WhereELU),
                                      "x = ±1000", "forward: overflow encountered in exp"),
    "all arithmetic in float32": ("batchnorm2d", differently.Float32BatchNorm2d, "forward",
                                  "computes in float32 somewhere"),
    "running statistics made float32": (
        "batchnorm2d", differently.Float32BuffersBatchNorm2d, "buffers['running_mean'] dtype",
        "buffers['running_mean'] is float32 in a layer built with dtype=float64"),
    "grads added to, not overwritten": ("dense", differently.AccumulatingDense,
                                        "grads['weight'] overwritten, not added to",
                                        "gave 2 times the first result"),
    "state carried across calls": ("dense", differently.DriftingDense, "dx",
                                    "gives another result when called again"),
    "a float32 branch leaving out a path": (
        "batchnorm2d", differently.Float32BranchBatchNorm2d, "float32: forward",
        "your code may take another path for float32"),
}


@pytest.mark.parametrize("mistake", list(WRONG))
def test_wrong_layers_written_differently_fail_naming_the_mistake(mistake):
    step, obj, label, hint = WRONG[mistake]
    result = check(step, obj, echo=False, speed=False, seed=0)
    assert not result.passed and result.problem is None, result.text
    first = result.failures[0]
    assert label in first.label and hint in (first.hint or ""), result.text


def test_the_float32_hint_needs_float32_values():
    """A float64 forward that is merely off by 1e-7 gets no float32 hint."""
    class Off(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) * (1 + 1e-7)

    result = check("batchnorm2d", Off, echo=False, speed=False, seed=0)
    assert not result.passed
    assert all("float32" not in (x.hint or "") for x in result.failures), result.text
    assert hints.FLOAT32_INSIDE.split("{")[0] not in result.text


class _NoLayerDense:
    """A Dense written without the Layer base: params and grads, forward and backward."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        self.params = {"weight": np.zeros((in_features, out_features), dtype)}
        self.grads = {"weight": np.zeros((in_features, out_features), dtype)}

    def forward(self, x):
        self.x = x
        return x @ self.params["weight"]

    def backward(self, dout):
        self.grads["weight"][...] = self.x.T @ dout
        return dout @ self.params["weight"].T


class _RenamedAlphaELU(nn.ELU):
    def __init__(self, a=1.0):  # the stub's alpha= renamed
        super().__init__(alpha=a)


@pytest.mark.parametrize("step, obj, said", [
    ("dense", _NoLayerDense, "Dense should subclass Layer"),
    ("activations", _activations(_RenamedAlphaELU),
     "_RenamedAlphaELU(alpha=0.5) failed: _RenamedAlphaELU.__init__() got an unexpected "
     "keyword argument 'alpha'. Keep the stub's constructor")])
def test_a_class_off_the_stubs_interface_is_a_fail_not_a_crash(step, obj, said):
    """Both crashed the check with the grader's own traceback (AttributeError: no train;
    TypeError at the grader's call); from the command line, a child that wrote no verdict."""
    result = check(step, obj, echo=False, speed=False, seed=0)
    assert not result.passed and said in (result.problem or ""), result.text
