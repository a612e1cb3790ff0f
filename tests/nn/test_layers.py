"""Dense, BatchNorm2d, ELU, Softplus, Sigmoid, Flatten, Reshape: gradients, numerics, errors."""

import warnings

import numpy as np
import pytest

from numpyvae.nn import (
    ELU,
    BatchNorm2d,
    Dense,
    Flatten,
    Layer,
    Reshape,
    Sequential,
    Sigmoid,
    Softplus,
)
from numpyvae.nn.gradcheck import gradcheck_layer

F64 = np.float64


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def away_from_zero(shape, low=0.05, high=2.0, seed=0):
    """Values of both signs with |x| in [low, high]: straddles ELU's kink, never sits on it."""
    r = rng(seed)
    return r.choice([-1.0, 1.0], size=shape) * r.uniform(low, high, size=shape)


def assert_gradcheck_passes(layer: Layer, x: np.ndarray, seed: int = 0) -> None:
    results = gradcheck_layer(layer, x, seed=seed)
    assert results, "gradcheck returned nothing"
    for r in results:
        assert r.checked > 0, r
        assert r.max_error <= 1e-6, f"{layer!r} {r.name}: max error {r.max_error:.2e}"
        assert r.passed


def bn_with_running_stats(c: int = 3, dtype=F64) -> BatchNorm2d:
    """A BatchNorm2d whose running statistics and affine params are not the trivial 0/1."""
    bn = BatchNorm2d(c, dtype=dtype)
    r = rng(7)
    bn.buffers["running_mean"][...] = r.normal(size=c)
    bn.buffers["running_var"][...] = r.uniform(0.5, 2.0, size=c)
    bn.params["weight"][...] = r.uniform(0.5, 1.5, size=c)
    bn.params["bias"][...] = r.normal(size=c)
    return bn


# -- gradient checks (float64) --------------------------------------------------

GRADCHECK_CASES = {
    "dense": lambda: (Dense(5, 4, dtype=F64, rng=rng(1)), rng(2).standard_normal((3, 5))),
    "dense_no_bias": lambda: (
        Dense(4, 6, bias=False, dtype=F64, rng=rng(1)),
        rng(2).standard_normal((2, 4)),
    ),
    "dense_batch_1": lambda: (Dense(3, 2, dtype=F64, rng=rng(1)), rng(2).standard_normal((1, 3))),
    "batchnorm_train": lambda: (
        bn_with_running_stats(3).train(),
        rng(3).normal(1.0, 2.0, (4, 3, 3, 2)),
    ),
    "batchnorm_train_1x1": lambda: (bn_with_running_stats(2).train(),
                                    rng(3).standard_normal((5, 2, 1, 1))),
    "batchnorm_eval": lambda: (bn_with_running_stats(3).eval(),
                               rng(3).normal(1.0, 2.0, (4, 3, 3, 2))),
    "elu": lambda: (ELU(), away_from_zero((4, 6))),
    "elu_alpha_0.5": lambda: (ELU(alpha=0.5), away_from_zero((3, 2, 2, 2), seed=1)),
    "softplus": lambda: (Softplus(), rng(4).normal(0, 4, (4, 6))),
    "sigmoid": lambda: (Sigmoid(), rng(5).normal(0, 4, (4, 6))),
    "flatten": lambda: (Flatten(), rng(6).standard_normal((2, 3, 2, 2))),
    "reshape": lambda: (Reshape(3, 2, 2), rng(6).standard_normal((2, 12))),
    "mlp": lambda: (
        Sequential(Dense(6, 5, dtype=F64, rng=rng(1)), ELU(), Dense(5, 3, dtype=F64, rng=rng(2)),
                   Softplus()),
        away_from_zero((4, 6), seed=3),
    ),
    "dense_bn_elu_flatten": lambda: (
        Sequential(Dense(5, 6, dtype=F64, rng=rng(1)), Reshape(3, 1, 2), BatchNorm2d(3, dtype=F64),
                   ELU(), Flatten(), Dense(6, 2, dtype=F64, rng=rng(2)), Sigmoid()),
        rng(4).standard_normal((4, 5)),
    ),
}


@pytest.mark.parametrize("case", sorted(GRADCHECK_CASES))
def test_gradcheck(case):
    layer, x = GRADCHECK_CASES[case]()
    assert_gradcheck_passes(layer, x)


def test_elu_gradcheck_inputs_straddle_zero():
    x = away_from_zero((4, 6))
    assert (x > 0).any() and (x < 0).any() and np.abs(x).min() >= 0.05


def test_bias_before_batchnorm_exact_zero_gradient_passes():
    """In training mode BatchNorm subtracts the batch mean, so a per-channel bias right before
    it cannot change the output: its true gradient is 0 and the finite difference is rounding
    noise. The error floor (1e-3·S) must let that pass, while the bias really is ~0."""
    model = Sequential(Dense(5, 3, dtype=F64, rng=rng(1)), Reshape(3, 1, 1),
                       BatchNorm2d(3, dtype=F64)).train()
    x = rng(2).standard_normal((6, 5))
    results = {r.name: r for r in gradcheck_layer(model, x)}
    assert all(r.passed for r in results.values()), results
    weight_grad, bias_grad = model[0].grads["weight"], model[0].grads["bias"]
    assert np.abs(bias_grad).max() <= 1e-12 * np.abs(weight_grad).max()


def test_gradcheck_leaves_batchnorm_buffers_unchanged():
    bn = bn_with_running_stats(3).train()
    before = {k: v.copy() for k, v in bn.buffers.items()}
    gradcheck_layer(bn, rng(3).standard_normal((4, 3, 2, 2)))
    for k in before:
        np.testing.assert_array_equal(bn.buffers[k], before[k])


# -- Dense ----------------------------------------------------------------------


def test_dense_forward_matches_formula():
    layer = Dense(4, 3, dtype=F64, rng=rng(0))
    x = rng(1).standard_normal((5, 4))
    W, b = layer.params["weight"], layer.params["bias"]
    expected = np.array([[sum(x[n, i] * W[i, j] for i in range(4)) + b[j] for j in range(3)]
                         for n in range(5)])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)


def test_dense_pytorch_default_init_bounds():
    fan_in = 400
    layer = Dense(fan_in, 300, rng=rng(0))
    bound = 1 / np.sqrt(fan_in)
    W, b = layer.params["weight"], layer.params["bias"]
    assert W.shape == (400, 300) and b.shape == (300,)
    assert np.abs(W).max() <= bound and np.abs(b).max() <= bound
    # uniform on (−bound, bound): reaches close to both ends, std = bound/√3
    assert W.max() > 0.99 * bound and W.min() < -0.99 * bound
    assert abs(W.std() - bound / np.sqrt(3)) < 0.01 * bound
    assert abs(W.mean()) < 0.01 * bound
    assert np.abs(b).max() > 0.9 * bound  # bias uses the same fan-in bound, not zeros


def test_dense_seeded_rng_reproducible():
    a = Dense(6, 4, rng=rng(42))
    b = Dense(6, 4, rng=rng(42))
    c = Dense(6, 4, rng=rng(43))
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])
    assert not np.array_equal(a.params["weight"], c.params["weight"])


def test_dense_backward_overwrites_grads_in_place():
    layer = Dense(3, 2, dtype=F64, rng=rng(0))
    grads = {k: g for k, g in layer.grads.items()}
    x = rng(1).standard_normal((4, 3))
    dy = rng(2).standard_normal((4, 2))
    layer.forward(x)
    layer.backward(dy)
    first = {k: g.copy() for k, g in layer.grads.items()}
    layer.forward(x)
    layer.backward(dy)
    for k in grads:
        assert layer.grads[k] is grads[k], "backward rebound a grad array"
        np.testing.assert_array_equal(layer.grads[k], first[k])  # overwritten, not doubled
    np.testing.assert_allclose(layer.grads["weight"], x.T @ dy)
    np.testing.assert_allclose(layer.grads["bias"], dy.sum(axis=0))


def test_dense_repr():
    assert repr(Dense(784, 300)) == "Dense(784, 300)  # 235,500 params"
    assert Dense(3, 2, bias=False).extra_repr() == "3, 2, bias=False"
    assert "bias" not in Dense(3, 2, bias=False).params


# -- BatchNorm2d -----------------------------------------------------------------


def test_batchnorm_train_normalises_with_biased_variance():
    bn = BatchNorm2d(2, eps=1e-5, dtype=F64)
    bn.params["weight"][...] = [2.0, 0.5]
    bn.params["bias"][...] = [1.0, -1.0]
    x = rng(0).normal(3.0, 2.0, (4, 2, 3, 3))
    y = bn.forward(x)
    for c in range(2):
        v = x[:, c].ravel()
        mu = sum(v) / v.size
        biased_var = sum((v - mu) ** 2) / v.size
        x_hat = (x[:, c] - mu) / np.sqrt(biased_var + 1e-5)
        expected = bn.params["weight"][c] * x_hat + bn.params["bias"][c]
        np.testing.assert_allclose(y[:, c], expected, rtol=1e-12, atol=1e-12)


def test_batchnorm_running_stats_hand_computation():
    """running ← (1 − momentum)·running + momentum·batch stat, with the UNBIASED variance."""
    momentum = 0.1
    bn = BatchNorm2d(2, momentum=momentum, dtype=F64)
    batches = [rng(s).normal(s, 1.0 + s, (3, 2, 2, 2)) for s in (1, 2)]
    mean_expected = [0.0, 0.0]
    var_expected = [1.0, 1.0]
    for x in batches:
        bn.forward(x)
        for c in range(2):
            v = list(x[:, c].ravel())
            m = len(v)  # N·H·W = 12
            mu = sum(v) / m
            unbiased = sum((vi - mu) ** 2 for vi in v) / (m - 1)
            mean_expected[c] = (1 - momentum) * mean_expected[c] + momentum * mu
            var_expected[c] = (1 - momentum) * var_expected[c] + momentum * unbiased
    np.testing.assert_allclose(bn.buffers["running_mean"], mean_expected, rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], var_expected, rtol=1e-12)


def test_batchnorm_buffers_updated_in_place_and_frozen_in_eval():
    bn = BatchNorm2d(3, dtype=F64)
    running_mean, running_var = bn.buffers["running_mean"], bn.buffers["running_var"]
    bn.forward(rng(0).normal(2.0, 3.0, (4, 3, 2, 2)))
    assert bn.buffers["running_mean"] is running_mean and bn.buffers["running_var"] is running_var
    assert not np.allclose(running_mean, 0)
    snapshot = (running_mean.copy(), running_var.copy())
    bn.eval()
    bn.forward(rng(1).normal(5.0, 3.0, (4, 3, 2, 2)))
    np.testing.assert_array_equal(running_mean, snapshot[0])
    np.testing.assert_array_equal(running_var, snapshot[1])


def test_batchnorm_eval_is_fixed_affine_map():
    bn = bn_with_running_stats(3).eval()
    x = rng(0).standard_normal((2, 3, 2, 2))
    y = bn.forward(x)
    scale = bn.params["weight"] / np.sqrt(bn.buffers["running_var"] + bn.eps)
    shift = bn.params["bias"] - bn.buffers["running_mean"] * scale
    np.testing.assert_allclose(y, x * scale[None, :, None, None] + shift[None, :, None, None],
                               rtol=1e-12, atol=1e-12)
    dy = rng(1).standard_normal(y.shape)
    np.testing.assert_allclose(bn.backward(dy), dy * scale[None, :, None, None], rtol=1e-12)


def test_batchnorm_train_mode_needs_two_values_per_channel():
    with pytest.raises(ValueError, match="BatchNorm2d.*more than 1 value"):
        BatchNorm2d(3).forward(np.zeros((1, 3, 1, 1), np.float32))
    BatchNorm2d(3).eval().forward(np.zeros((1, 3, 1, 1), np.float32))  # eval: fine


def test_batchnorm_repr_and_init():
    bn = BatchNorm2d(32)
    assert repr(bn) == "BatchNorm2d(32, eps=1e-05, momentum=0.1)  # 64 params"
    np.testing.assert_array_equal(bn.params["weight"], 1)
    np.testing.assert_array_equal(bn.params["bias"], 0)
    np.testing.assert_array_equal(bn.buffers["running_mean"], 0)
    np.testing.assert_array_equal(bn.buffers["running_var"], 1)


# -- activations ----------------------------------------------------------------


def test_activation_values():
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(ELU(alpha=0.7).forward(x),
                               [0.7 * (np.exp(-3) - 1), 0.7 * (np.exp(-0.5) - 1), 0, 0.5, 3],
                               rtol=1e-14)
    np.testing.assert_allclose(Softplus().forward(x), np.log(1 + np.exp(x)), rtol=1e-14)
    np.testing.assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-14)


def test_elu_gradient_at_zero_is_alpha():
    """As PyTorch: at x = 0 the derivative is taken from the left branch, α·e⁰ = α."""
    layer = ELU(alpha=0.5)
    layer.forward(np.zeros(3))
    np.testing.assert_array_equal(layer.backward(np.ones(3)), 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_stable_at_1e4(dtype):
    x = np.array([-1e4, -30.0, 0.0, 30.0, 1e4], dtype=dtype)
    dy = np.ones_like(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            outputs = {}
            for layer in (ELU(), Softplus(), Sigmoid()):
                y = layer.forward(x)
                dx = layer.backward(dy)
                assert y.dtype == dtype and dx.dtype == dtype
                assert np.isfinite(y).all() and np.isfinite(dx).all()
                outputs[type(layer).__name__] = (y, dx)
    y, dx = outputs["ELU"]
    assert y[0] == -1.0 and y[-1] == 1e4 and dx[0] == 0.0 and dx[-1] == 1.0
    y, dx = outputs["Softplus"]
    assert y[0] == 0.0 and y[-1] == 1e4 and dx[0] == 0.0 and dx[-1] == 1.0
    assert y[2] == pytest.approx(np.log(2.0), rel=1e-6)
    y, dx = outputs["Sigmoid"]
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5 and dx[0] == 0.0 and dx[-1] == 0.0


def test_softplus_backward_is_sigmoid():
    x = rng(0).normal(0, 5, 50)
    sp = Softplus()
    sp.forward(x)
    np.testing.assert_allclose(sp.backward(np.ones_like(x)), Sigmoid().forward(x), rtol=1e-15)


def test_activation_reprs():
    assert repr(ELU()) == "ELU(alpha=1.0)"
    assert repr(ELU(alpha=0.5)) == "ELU(alpha=0.5)"
    assert repr(Softplus()) == "Softplus()"
    assert repr(Sigmoid()) == "Sigmoid()"


# -- Flatten / Reshape -------------------------------------------------------------


def test_flatten_and_reshape_shapes():
    x = rng(0).standard_normal((2, 32, 4, 4))
    flat = Flatten()
    y = flat.forward(x)
    assert y.shape == (2, 512)
    np.testing.assert_array_equal(y[1], x[1].ravel())
    assert flat.backward(y).shape == x.shape
    back = Reshape(32, 4, 4)
    z = back.forward(y)
    np.testing.assert_array_equal(z, x)
    assert back.backward(z).shape == (2, 512)
    assert Reshape((3, 2)).shape == (3, 2)
    assert repr(back) == "Reshape(32, 4, 4)" and repr(flat) == "Flatten()"


def test_reshape_rejects_wrong_size():
    with pytest.raises(ValueError, match=r"Reshape: expected .*\(N, 12\).*got shape \(2, 10\)"):
        Reshape(3, 2, 2).forward(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="Reshape: expected positive integer sizes"):
        Reshape(3, 0)
    with pytest.raises(ValueError, match="Flatten: .*at least 2 dims.*got shape \\(5,\\)"):
        Flatten().forward(np.zeros(5))


# -- dtypes ------------------------------------------------------------------------


def float32_layers():
    return [
        (Dense(6, 4, rng=rng(0)), (3, 6)),
        (BatchNorm2d(3), (4, 3, 2, 2)),
        (BatchNorm2d(3).eval(), (4, 3, 2, 2)),
        (ELU(), (3, 5)),
        (Softplus(), (3, 5)),
        (Sigmoid(), (3, 5)),
        (Flatten(), (2, 3, 2, 2)),
        (Reshape(3, 2), (2, 6)),
    ]


@pytest.mark.parametrize("index", range(len(float32_layers())))
def test_float32_stays_float32(index):
    layer, shape = float32_layers()[index]
    x = rng(1).standard_normal(shape).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32, f"{layer!r} forward upcast to {y.dtype}"
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32, f"{layer!r} backward upcast to {dx.dtype}"
    for name, arr in {**layer.params, **layer.grads, **layer.buffers}.items():
        assert arr.dtype == np.float32, f"{layer!r} {name} is {arr.dtype}"


@pytest.mark.parametrize("layer_cls", [ELU, Softplus, Sigmoid, Flatten])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parameterless_layers_follow_input_dtype(layer_cls, dtype):
    layer = layer_cls()
    x = np.linspace(-2, 2, 12, dtype=dtype).reshape(3, 4)
    y = layer.forward(x)
    assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype


# -- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, x, pattern",
    [
        (Dense(4, 3), np.zeros((2, 4, 1), np.float32),
         r"Dense: expected .*\(N, 4\).*got .*\(2, 4, 1\)"),
        (Dense(4, 3), np.zeros((2, 5), np.float32), r"Dense: expected .*\(N, 4\).*got .*\(2, 5\)"),
        (Dense(4, 3), np.zeros((2, 4), np.int64), r"Dense: expected a float32 or float64.*int64"),
        (Dense(4, 3), np.zeros((2, 4), np.float64), r"Dense: input dtype float64 .*float32"),
        (BatchNorm2d(3), np.zeros((2, 3, 4), np.float32),
         r"BatchNorm2d: expected .*\(N, 3, H, W\).*got .*\(2, 3, 4\)"),
        (BatchNorm2d(3), np.zeros((2, 4, 2, 2), np.float32),
         r"BatchNorm2d: expected .*\(N, 3, H, W\).*got .*\(2, 4, 2, 2\)"),
        (BatchNorm2d(3), np.zeros((2, 3, 2, 2), np.int32), r"BatchNorm2d: .*float.*int32"),
        (ELU(), np.zeros((2, 3), np.int64), r"ELU: expected a float32 or float64.*int64"),
        (Softplus(), np.zeros(3, np.float16), r"Softplus: .*float.*float16"),
        (Sigmoid(), [0.0, 1.0], r"Sigmoid: expected a NumPy array.*list"),
        (Flatten(), np.zeros((2, 3), bool), r"Flatten: .*float.*bool"),
    ],
)
def test_bad_input_raises_value_error(layer, x, pattern):
    with pytest.raises(ValueError, match=pattern):
        layer.forward(x)


@pytest.mark.parametrize(
    "layer, shape",
    [(Dense(2, 2), (1, 2)), (BatchNorm2d(2), (2, 2, 1, 1)), (ELU(), (2,)), (Softplus(), (2,)),
     (Sigmoid(), (2,)), (Flatten(), (2, 2)), (Reshape(2), (1, 2))],
)
def test_backward_before_forward_raises(layer, shape):
    name = type(layer).__name__
    with pytest.raises(RuntimeError, match=f"{name}.backward called before forward"):
        layer.backward(np.zeros(shape, np.float32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="Dense"):
        Dense(0, 3)
    with pytest.raises(ValueError, match="BatchNorm2d: momentum"):
        BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match="dtype"):
        Dense(2, 2, dtype=np.int32)
