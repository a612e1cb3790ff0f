"""Conv2d and ConvTranspose2d: gradient checks, init, shapes, dtypes and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from numpyvae.nn.conv2d import Conv2d
from numpyvae.nn.conv_transpose2d import ConvTranspose2d
from numpyvae.nn.gradcheck import TOLERANCE, gradcheck_layer
from tests.nn.conv_reference import (
    conv2d_grad_weight_reference,
    conv2d_reference,
    conv_transpose2d_reference,
)

F64 = np.float64


# ----------------------------------------------------------------------------
# Gradient checks (float64, finite differences)
# ----------------------------------------------------------------------------
CONV_CASES = [
    # (C, F, K, stride, padding, bias, x shape)
    (3, 4, 3, 1, 1, True, (2, 3, 5, 5)),
    (3, 2, 3, 2, 1, True, (2, 3, 6, 5)),
    (2, 3, 5, 3, 2, False, (1, 2, 7, 8)),
    (1, 4, 3, 2, 1, True, (3, 1, 6, 6)),  # thin input: direct kernels
    (4, 1, 3, 1, 1, True, (2, 4, 5, 4)),  # thin output: direct kernels
    (2, 3, 1, 2, 0, True, (2, 2, 5, 5)),
]

TRANSPOSE_CASES = [
    # (C_in, C_out, K, stride, padding, output_padding, bias, x shape)
    (3, 2, 3, 1, 1, 0, True, (2, 3, 4, 4)),
    (3, 2, 3, 2, 1, 0, True, (2, 3, 3, 4)),
    (3, 2, 3, 2, 1, 1, True, (2, 3, 3, 3)),
    (2, 3, 5, 3, 2, 2, False, (1, 2, 2, 3)),
    (1, 3, 3, 2, 1, 1, True, (2, 1, 3, 3)),  # thin: direct kernels
    (3, 1, 3, 2, 0, 1, True, (2, 3, 3, 2)),
]


def _assert_passes(results):
    assert results, "nothing was checked"
    for r in results:
        assert r.checked > 0
        assert r.max_error <= TOLERANCE, f"{r.name}: max error {r.max_error:.3g}"


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_gradcheck(case):
    C, F, K, s, p, bias, shape = case
    rng = np.random.default_rng(10)
    layer = Conv2d(C, F, K, stride=s, padding=p, bias=bias, dtype=F64, rng=rng)
    results = gradcheck_layer(layer, rng.standard_normal(shape), seed=3)
    assert {r.name for r in results} == {"input", "weight"} | ({"bias"} if bias else set())
    _assert_passes(results)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv_transpose2d_gradcheck(case):
    C_in, C_out, K, s, p, op, bias, shape = case
    rng = np.random.default_rng(11)
    layer = ConvTranspose2d(C_in, C_out, K, stride=s, padding=p, output_padding=op, bias=bias,
                            dtype=F64, rng=rng)
    results = gradcheck_layer(layer, rng.standard_normal(shape), seed=4)
    _assert_passes(results)


def test_gradcheck_catches_a_planted_bug():
    """Negative control: a weight gradient 1% off must fail the check loudly."""

    class Off(Conv2d):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["weight"][...] *= 1.01
            return dx

    rng = np.random.default_rng(12)
    layer = Off(2, 3, 3, stride=2, padding=1, dtype=F64, rng=rng)
    results = {r.name: r for r in gradcheck_layer(layer, rng.standard_normal((2, 2, 5, 5)))}
    assert results["weight"].max_error > 1e-3
    assert results["input"].passed and results["bias"].passed


# ----------------------------------------------------------------------------
# Layers vs the NumPy reference
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_match_reference(dtype):
    rng = np.random.default_rng(13)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    conv = Conv2d(3, 5, 3, stride=2, padding=1, dtype=dtype, rng=rng)
    x = rng.standard_normal((4, 3, 9, 8)).astype(dtype)
    y = conv.forward(x)
    ref = conv2d_reference(x, conv.params["weight"], conv.params["bias"], 2, 1)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref, atol=tol * np.abs(ref).max(), rtol=0)
    dy = rng.standard_normal(y.shape).astype(dtype)
    conv.backward(dy)
    dw_ref, db_ref = conv2d_grad_weight_reference(dy, x, 3, 2, 1)
    np.testing.assert_allclose(conv.grads["weight"], dw_ref, atol=tol * np.abs(dw_ref).max())
    np.testing.assert_allclose(conv.grads["bias"], db_ref, atol=tol * np.abs(db_ref).max())

    convt = ConvTranspose2d(3, 5, 3, stride=2, padding=1, output_padding=1, dtype=dtype, rng=rng)
    y = convt.forward(x)
    ref = conv_transpose2d_reference(x, convt.params["weight"], convt.params["bias"], 2, 1, 1)
    assert y.shape == (4, 5, 18, 16) and y.dtype == dtype
    np.testing.assert_allclose(y, ref, atol=tol * np.abs(ref).max(), rtol=0)


def test_backward_overwrites_grads_in_place():
    rng = np.random.default_rng(14)
    for layer in (Conv2d(2, 3, 3, padding=1, dtype=F64, rng=rng),
                  ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, dtype=F64,
                                  rng=rng)):
        grads = {k: v for k, v in layer.grads.items()}
        x = rng.standard_normal((2, 2, 4, 4))
        dy = rng.standard_normal(layer.forward(x).shape)
        layer.backward(dy)
        first = {k: v.copy() for k, v in layer.grads.items()}
        layer.forward(x)
        layer.backward(dy)
        for k in grads:
            assert layer.grads[k] is grads[k], f"{k} was rebound"
            np.testing.assert_array_equal(layer.grads[k], first[k])  # overwritten, not summed


# ----------------------------------------------------------------------------
# Initialisation (PyTorch's defaults)
# ----------------------------------------------------------------------------
def test_init_bounds_follow_pytorch():
    rng = np.random.default_rng(15)
    conv = Conv2d(32, 64, 3, stride=2, padding=1, rng=rng)
    bound = 1 / np.sqrt(32 * 9)  # fan_in = in_channels·K²
    convt = ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1, rng=rng)
    bound_t = 1 / np.sqrt(32 * 9)  # fan_in from the weight's second axis: out_channels·K²
    thin_t = ConvTranspose2d(2, 50, 3, rng=rng)
    bound_thin = 1 / np.sqrt(50 * 9)
    for layer, b in ((conv, bound), (convt, bound_t), (thin_t, bound_thin)):
        for name in ("weight", "bias"):
            p = layer.params[name]
            assert p.dtype == np.float32
            assert np.abs(p).max() <= b
            if p.size > 30:  # spread over most of the interval, not a narrower one
                assert np.abs(p).max() > 0.9 * b
    assert conv.params["weight"].shape == (64, 32, 3, 3)
    assert convt.params["weight"].shape == (64, 32, 3, 3)
    assert thin_t.params["weight"].shape == (2, 50, 3, 3)
    # with fan_in = in_channels·K² the thin transposed layer's bound would be 1/√18
    assert np.abs(thin_t.params["weight"]).max() < 1 / np.sqrt(18) * 0.5


def test_seeded_init_is_reproducible():
    a = Conv2d(3, 4, 3, rng=np.random.default_rng(7))
    b = Conv2d(3, 4, 3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])


# ----------------------------------------------------------------------------
# The report's CNN: shapes, printout, float32 throughout
# ----------------------------------------------------------------------------
REPORT_LAYERS = [
    (lambda: Conv2d(1, 32, 3, stride=2, padding=1), (1, 28, 28), (32, 14, 14),
     "Conv2d(1, 32, kernel_size=3, stride=2, padding=1)  # 320 params"),
    (lambda: Conv2d(32, 64, 3, stride=2, padding=1), (32, 14, 14), (64, 7, 7),
     "Conv2d(32, 64, kernel_size=3, stride=2, padding=1)  # 18,496 params"),
    (lambda: Conv2d(64, 32, 3, stride=2, padding=1), (64, 7, 7), (32, 4, 4),
     "Conv2d(64, 32, kernel_size=3, stride=2, padding=1)  # 18,464 params"),
    (lambda: ConvTranspose2d(32, 64, 3, stride=2, padding=1), (32, 4, 4), (64, 7, 7),
     "ConvTranspose2d(32, 64, kernel_size=3, stride=2, padding=1)  # 18,496 params"),
    (lambda: ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), (64, 7, 7),
     (32, 14, 14),
     "ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=1, output_padding=1)"
     "  # 18,464 params"),
    (lambda: ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1), (32, 14, 14),
     (32, 28, 28),
     "ConvTranspose2d(32, 32, kernel_size=3, stride=2, padding=1, output_padding=1)"
     "  # 9,248 params"),
    (lambda: Conv2d(32, 1, 3, stride=1, padding=1), (32, 28, 28), (1, 28, 28),
     "Conv2d(32, 1, kernel_size=3, stride=1, padding=1)  # 289 params"),
]


@pytest.mark.parametrize("make, in_shape, out_shape, text", REPORT_LAYERS)
def test_report_layers_shapes_and_float32(make, in_shape, out_shape, text):
    layer = make()
    assert repr(layer) == text
    x = np.random.default_rng(16).standard_normal((3, *in_shape)).astype(np.float32)
    y = layer.forward(x)
    assert y.shape == (3, *out_shape) and y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads.values())


def test_extra_repr_defaults():
    assert repr(Conv2d(3, 4, 5)) == "Conv2d(3, 4, kernel_size=5, stride=1)  # 304 params"
    assert repr(ConvTranspose2d(3, 4, 1, bias=False)) == (
        "ConvTranspose2d(3, 4, kernel_size=1, stride=1, bias=False)  # 12 params")


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
def test_bad_input_raises_value_error_naming_the_layer(cls):
    layer = cls(3, 4, 3, stride=2, padding=1)
    name = cls.__name__
    cases = [
        (np.zeros((3, 5, 5), np.float32), "3 dims|shape"),           # wrong ndim
        (np.zeros((2, 2, 5, 5), np.float32), "2 channels"),          # wrong channel count
        (np.zeros((2, 3, 5, 5), np.int64), "float"),                 # non-float dtype
        (np.zeros((2, 3, 5, 5), np.float64), "does not match"),      # dtype mismatch
    ]
    for x, what in cases:
        with pytest.raises(ValueError, match=name) as info:
            layer.forward(x)
        assert any(w in str(info.value) for w in what.split("|")), str(info.value)


def test_spatial_size_too_small():
    with pytest.raises(ValueError, match=r"Conv2d: .*at least 5x5.*got 4x6"):
        Conv2d(1, 1, 5).forward(np.zeros((1, 1, 4, 6), np.float32))
    Conv2d(1, 1, 5, padding=1).forward(np.zeros((1, 1, 3, 3), np.float32))  # 3 + 2 ≥ 5: fine
    with pytest.raises(ValueError, match=r"ConvTranspose2d: .*too small.*got|output would be"):
        ConvTranspose2d(1, 1, 1, padding=1).forward(np.zeros((1, 1, 2, 2), np.float32))


def test_bad_construction():
    with pytest.raises(ValueError, match=r"ConvTranspose2d: .*output_padding.*\[0, 2\).*got 2"):
        ConvTranspose2d(3, 4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="ConvTranspose2d: .*output_padding"):
        ConvTranspose2d(3, 4, 3, stride=1, output_padding=1)
    ConvTranspose2d(3, 4, 3, stride=3, output_padding=2)  # legal: output_padding < stride
    with pytest.raises(ValueError, match="Conv2d: expected stride"):
        Conv2d(3, 4, 3, stride=0)
    with pytest.raises(ValueError, match="Conv2d: expected in_channels"):
        Conv2d(0, 4, 3)
    with pytest.raises(ValueError, match="Conv2d: expected padding"):
        Conv2d(3, 4, 3, padding=-1)
    with pytest.raises(ValueError, match="dtype"):
        Conv2d(3, 4, 3, dtype=np.int32)


@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
def test_backward_before_forward_and_bad_dout(cls):
    layer = cls(2, 3, 3, padding=1)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 3, 4, 4), np.float32))
    y = layer.forward(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=f"{cls.__name__}.backward: expected dout"):
        layer.backward(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        layer.backward(np.zeros(y.shape, np.float64))
