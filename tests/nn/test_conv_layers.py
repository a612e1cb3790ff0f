"""Conv2d and ConvTranspose2d, on the kernels and on their NumPy forms (use_kernels False):
the definitions over the kernels' configuration grid, adjointness, gradient checks with
negative controls, init, shapes, dtypes and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from numpyvae.kernels import conv as conv_kernels
from numpyvae.nn import conv2d as conv2d_module
from numpyvae.nn import conv_transpose2d as conv_transpose2d_module
from numpyvae.nn.conv2d import Conv2d
from numpyvae.nn.conv_transpose2d import ConvTranspose2d
from numpyvae.nn.gradcheck import TOLERANCE, gradcheck_layer
from tests.kernels.test_conv_kernels import CONV_CONFIGS, TRANSPOSE_CONFIGS, assert_close
from tests.nn.conv_reference import (
    conv2d_definition,
    conv2d_grad_definition,
    conv_transpose2d_definition,
)

F64 = np.float64
PATHS = pytest.mark.parametrize("use_kernels", [True, False], ids=["kernels", "numpy"])


def _on(layer, use_kernels: bool):
    layer.use_kernels = use_kernels  # on the instance: the class default stays True
    return layer


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


@PATHS
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_gradcheck(case, use_kernels):
    C, F, K, s, p, bias, shape = case
    rng = np.random.default_rng(10)
    layer = _on(Conv2d(C, F, K, stride=s, padding=p, bias=bias, dtype=F64, rng=rng), use_kernels)
    results = gradcheck_layer(layer, rng.standard_normal(shape), seed=3)
    assert {r.name for r in results} == {"input", "weight"} | ({"bias"} if bias else set())
    _assert_passes(results)


@PATHS
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv_transpose2d_gradcheck(case, use_kernels):
    C_in, C_out, K, s, p, op, bias, shape = case
    rng = np.random.default_rng(11)
    layer = _on(ConvTranspose2d(C_in, C_out, K, stride=s, padding=p, output_padding=op,
                                bias=bias, dtype=F64, rng=rng), use_kernels)
    results = gradcheck_layer(layer, rng.standard_normal(shape), seed=4)
    assert {r.name for r in results} == {"input", "weight"} | ({"bias"} if bias else set())
    _assert_passes(results)


@pytest.mark.parametrize("use_kernels", [True, False], ids=["kernels", "numpy"])
@pytest.mark.parametrize("cls, make", [
    (Conv2d, lambda cls, rng: cls(2, 3, 3, stride=2, padding=1, dtype=F64, rng=rng)),
    (ConvTranspose2d, lambda cls, rng: cls(2, 3, 3, stride=2, padding=1, output_padding=1,
                                           dtype=F64, rng=rng)),
], ids=["Conv2d", "ConvTranspose2d"])
def test_gradcheck_catches_a_planted_bug(cls, make, use_kernels):
    """Negative control: a weight gradient 0.1% off must fail the check.

    The bug is planted in the method the path runs (``_backward_numpy`` for the NumPy
    form), so this also shows that use_kernels = False really runs that method.
    """
    method = "backward" if use_kernels else "_backward_numpy"

    def off(self, *args):
        dx = getattr(super(Off, self), method)(*args)
        self.grads["weight"][...] *= 1.001
        return dx

    Off = type(f"Off{cls.__name__}", (cls,), {method: off})
    rng = np.random.default_rng(12)
    layer = _on(make(Off, rng), use_kernels)
    results = {r.name: r for r in gradcheck_layer(layer, rng.standard_normal((2, 2, 5, 5)))}
    assert not results["weight"].passed
    assert results["weight"].max_error > 1e-4  # 0.1% off gives about 5e-4
    assert results["input"].passed and results["bias"].passed


# ----------------------------------------------------------------------------
# Layers vs the definitions, over the kernels' configuration grid
# ----------------------------------------------------------------------------
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


@PATHS
@DTYPES
def test_conv2d_matches_definition_over_the_grid(dtype, use_kernels):
    """y, dx, dW and db over odd/non-square sizes, K 1/3/5, stride 1–3, padding 0–2, N 1/7."""
    for i, cfg in enumerate(CONV_CONFIGS):
        N, C, F, H, W, K, s, p = cfg
        rng = np.random.default_rng(list(cfg))
        layer = _on(Conv2d(C, F, K, stride=s, padding=p, bias=i % 3 != 0, dtype=dtype, rng=rng),
                    use_kernels)
        w, b = layer.params["weight"], layer.params.get("bias")
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        y = layer.forward(x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = layer.backward(dy)
        dx_ref, dw_ref, db_ref = conv2d_grad_definition(dy, x, w, s, p)
        tag = f"{cfg} {np.dtype(dtype)}"
        assert_close(y, conv2d_definition(x, w, b, s, p), dtype, f"forward {tag}")
        assert_close(dx, dx_ref, dtype, f"dx {tag}")
        assert_close(layer.grads["weight"], dw_ref, dtype, f"dW {tag}")
        if b is not None:
            assert_close(layer.grads["bias"], db_ref, dtype, f"db {tag}")


@PATHS
@DTYPES
def test_conv_transpose2d_matches_definition_over_the_grid(dtype, use_kernels):
    """As above, with every legal output_padding; the forward against the transposed conv's
    own definition, the backward against the conv (the adjoint of the adjoint)."""
    for i, cfg in enumerate(TRANSPOSE_CONFIGS):
        N, C_in, C_out, H, W, K, s, p, op = cfg
        rng = np.random.default_rng(list(cfg))
        layer = _on(ConvTranspose2d(C_in, C_out, K, stride=s, padding=p, output_padding=op,
                                    bias=i % 3 != 0, dtype=dtype, rng=rng), use_kernels)
        w, b = layer.params["weight"], layer.params.get("bias")
        x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
        y = layer.forward(x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = layer.backward(dy)
        tag = f"{cfg} {np.dtype(dtype)}"
        assert_close(y, conv_transpose2d_definition(x, w, b, s, p, op), dtype, f"forward {tag}")
        assert_close(dx, conv2d_definition(dy, w, None, s, p), dtype, f"dx {tag}")
        _, dw_ref, db_ref = conv2d_grad_definition(x, dy, w, s, p)  # x and dY swapped
        assert_close(layer.grads["weight"], dw_ref, dtype, f"dW {tag}")
        if b is not None:
            assert_close(layer.grads["bias"], dy.astype(F64).sum(axis=(0, 2, 3)), dtype,
                         f"db {tag}")


# (N, C, F, H, W, K, s, p); (H + 2p − K) mod s is the same for W: 0, 0, 1, 1, 2
ADJOINT_CASES = [(2, 2, 3, 5, 7, 3, 2, 1), (1, 3, 1, 6, 5, 5, 1, 2), (1, 1, 2, 4, 7, 1, 3, 2),
                 (2, 3, 2, 6, 8, 3, 2, 0), (3, 2, 4, 9, 6, 3, 3, 1)]


@PATHS
@DTYPES
@pytest.mark.parametrize("cfg", ADJOINT_CASES, ids=str)
def test_conv_transpose2d_is_the_adjoint_of_conv2d(cfg, dtype, use_kernels):
    """<Conv2d(x), y> = <x, ConvTranspose2d(y)> with the same weight, bias off and
    output_padding = (H + 2p − K) mod s, so the transposed conv returns x's size."""
    N, C, F, H, W, K, s, p = cfg
    op = (H + 2 * p - K) % s
    rng = np.random.default_rng(17)
    conv = _on(Conv2d(C, F, K, stride=s, padding=p, bias=False, dtype=dtype, rng=rng),
               use_kernels)
    convt = _on(ConvTranspose2d(F, C, K, stride=s, padding=p, output_padding=op, bias=False,
                                dtype=dtype, rng=rng), use_kernels)
    convt.params["weight"][...] = conv.params["weight"]
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    y = rng.standard_normal((N, F, *conv.output_size(H, W))).astype(dtype)
    cx, ty = conv.forward(x), convt.forward(y)
    assert cx.shape == y.shape and ty.shape == x.shape
    lhs = np.sum(cx.astype(F64) * y)
    rhs = np.sum(x.astype(F64) * ty)
    scale = np.sum(np.abs(cx.astype(F64) * y))
    assert abs(lhs - rhs) <= (1e-5 if dtype == np.float32 else 1e-12) * scale, (lhs, rhs)


def test_the_adjoint_check_catches_a_flipped_kernel():
    """Negative control: the adjoint identity fails for a kernel turned 180°."""
    rng = np.random.default_rng(18)
    conv = _on(Conv2d(2, 3, 3, stride=2, padding=1, bias=False, dtype=F64, rng=rng), False)
    convt = _on(ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=0, bias=False,
                                dtype=F64, rng=rng), False)
    convt.params["weight"][...] = conv.params["weight"][:, :, ::-1, ::-1]
    x = rng.standard_normal((2, 2, 5, 5))
    y = rng.standard_normal((2, 3, 3, 3))
    lhs, rhs = np.sum(conv.forward(x) * y), np.sum(x * convt.forward(y))
    assert abs(lhs - rhs) > 1e-3 * np.sum(np.abs(conv.forward(x) * y))


# ----------------------------------------------------------------------------
# use_kernels: which code runs, and needs_input_grad
# ----------------------------------------------------------------------------
# what the layers call: the kernels' unchecked entry points (x and dout were checked once, at
# the layer's boundary)
KERNEL_FUNCTIONS = ("conv2d_forward_unchecked", "conv2d_grad_input_unchecked",
                    "conv2d_grad_weight_unchecked", "conv2d_forward_and_grad_weight_unchecked",
                    "channel_sum_unchecked")


def _make_both(rng, dtype=F64):
    return (Conv2d(2, 3, 3, stride=2, padding=1, dtype=dtype, rng=rng),
            ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, dtype=dtype, rng=rng))


@pytest.mark.parametrize("on_class", [False, True], ids=["instance", "class"])
def test_use_kernels_false_never_calls_a_kernel(on_class, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a kernel ran with use_kernels = False")

    for name in KERNEL_FUNCTIONS:
        monkeypatch.setattr(conv_kernels, name, boom)
    rng = np.random.default_rng(19)
    for layer in _make_both(rng):
        if on_class:
            monkeypatch.setattr(type(layer), "use_kernels", False)
        else:
            layer.use_kernels = False
        y = layer.forward(rng.standard_normal((2, 2, 5, 5)))
        assert layer.backward(np.ones_like(y)).shape == (2, 2, 5, 5)
    assert Conv2d.use_kernels is not on_class and ConvTranspose2d.use_kernels is not on_class


def test_use_kernels_is_the_default_and_runs_the_kernels(monkeypatch):
    calls = []
    for name in KERNEL_FUNCTIONS:
        real = getattr(conv_kernels, name)
        monkeypatch.setattr(conv_kernels, name,
                            lambda *a, _real=real, _name=name, **k: calls.append(_name)
                            or _real(*a, **k))
    rng = np.random.default_rng(20)
    expected = ({"conv2d_forward_unchecked", "conv2d_grad_weight_unchecked",
                 "conv2d_grad_input_unchecked"},
                {"conv2d_grad_input_unchecked", "conv2d_forward_and_grad_weight_unchecked"})
    for layer, want in zip(_make_both(rng), expected, strict=True):
        assert layer.use_kernels is True
        calls.clear()
        layer.backward(np.ones_like(layer.forward(rng.standard_normal((2, 2, 5, 5)))))
        assert want <= set(calls), (type(layer).__name__, calls)


# the function that computes dx on each path: it must not run when nobody wants dx
DX_FUNCTIONS = {
    ("Conv2d", True): (conv_kernels, "conv2d_grad_input_unchecked"),
    ("Conv2d", False): (conv2d_module, "conv2d_grad_input_by_offsets"),
    ("ConvTranspose2d", True): (conv_kernels, "conv2d_forward_and_grad_weight_unchecked"),
    ("ConvTranspose2d", False): (conv_transpose2d_module, "conv2d_by_offsets"),
}


@PATHS
def test_needs_input_grad_false_skips_dx_and_keeps_the_parameter_grads(use_kernels,
                                                                       monkeypatch):
    rng = np.random.default_rng(21)
    for layer in _make_both(rng):
        _on(layer, use_kernels)
        x = rng.standard_normal((2, 2, 5, 5))
        dy = rng.standard_normal(layer.forward(x).shape)
        assert layer.backward(dy).shape == x.shape
        full = {k: v.copy() for k, v in layer.grads.items()}
        layer.zero_grad()
        layer.needs_input_grad = False
        module, name = DX_FUNCTIONS[type(layer).__name__, use_kernels]
        with monkeypatch.context() as m:
            m.setattr(module, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} computed dx"))
            layer.forward(x)
            assert layer.backward(dy) is None
        for k, g in full.items():
            np.testing.assert_allclose(layer.grads[k], g, rtol=1e-12, atol=1e-12)


@PATHS
def test_backward_overwrites_grads_in_place(use_kernels):
    rng = np.random.default_rng(14)
    for layer in (Conv2d(2, 3, 3, padding=1, dtype=F64, rng=rng),
                  ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, dtype=F64,
                                  rng=rng)):
        _on(layer, use_kernels)
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


@PATHS
@pytest.mark.parametrize("make, in_shape, out_shape, text", REPORT_LAYERS)
def test_report_layers_shapes_and_float32(make, in_shape, out_shape, text, use_kernels):
    layer = _on(make(), use_kernels)
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


@PATHS
def test_spatial_size_too_small(use_kernels):
    with pytest.raises(ValueError, match=r"Conv2d: .*at least 5x5.*got 4x6"):
        _on(Conv2d(1, 1, 5), use_kernels).forward(np.zeros((1, 1, 4, 6), np.float32))
    # 3 + 2 ≥ 5: fine
    _on(Conv2d(1, 1, 5, padding=1), use_kernels).forward(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"ConvTranspose2d: .*too small.*got|output would be"):
        _on(ConvTranspose2d(1, 1, 1, padding=1), use_kernels).forward(
            np.zeros((1, 1, 2, 2), np.float32))


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


@PATHS
@pytest.mark.parametrize("cls", [Conv2d, ConvTranspose2d])
def test_backward_before_forward_and_bad_dout(cls, use_kernels):
    layer = _on(cls(2, 3, 3, padding=1), use_kernels)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 3, 4, 4), np.float32))
    y = layer.forward(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=f"{cls.__name__}.backward: expected dout"):
        layer.backward(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        layer.backward(np.zeros(y.shape, np.float64))
