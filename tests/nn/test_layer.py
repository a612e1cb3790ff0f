"""The Layer contract, for every layer: dtypes kept, bad input named, backward before
forward, a wrong dout refused, bad constructor arguments, and infer keeping nothing."""

import numpy as np
import pytest

from numpyvae.nn import (
    ELU,
    BatchNorm2d,
    ConcatLabels,
    Dense,
    Flatten,
    Reshape,
    Sigmoid,
    Softplus,
)
from tests.nn.layer_helpers import rng


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


@pytest.mark.parametrize(
    "layer, shape, dout_shape",
    [(ELU(), (2, 3), (2, 4)), (Softplus(), (2, 3), (3, 3)), (Sigmoid(), (2, 3), (2, 3, 1)),
     (Flatten(), (2, 3, 2), (2, 5)), (Reshape(3, 2), (2, 6), (2, 6))],
)
def test_backward_refuses_a_dout_of_the_wrong_shape(layer, shape, dout_shape):
    layer.forward(np.zeros(shape, np.float32))
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name}.backward: expected dout of shape"):
        layer.backward(np.zeros(dout_shape, np.float32))
    with pytest.raises(ValueError, match=r"and dtype float32, got .* dtype float64"):
        layer.backward(np.zeros(layer.forward(np.zeros(shape, np.float32)).shape))


def test_concat_labels_backward_refuses_a_wrong_dout():
    layer = ConcatLabels(3)
    layer.set_labels(np.array([0, 2]))
    layer.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"ConcatLabels.backward: expected dout of shape \(2, 7\)"):
        layer.backward(np.zeros((2, 4), np.float32))


def infer_cases():
    return [
        (Dense(4, 3, rng=rng(0)), (5, 4)),
        (BatchNorm2d(3), (4, 3, 2, 2)),
        (ELU(), (3, 4)),
        (Sigmoid(), (3, 4)),
        (Flatten(), (2, 3, 2)),
    ]


@pytest.mark.parametrize("index", range(len(infer_cases())))
def test_infer_keeps_no_cache_and_moves_no_buffer(index):
    """infer between forward and backward: the same y as forward in this mode, and the
    backward that follows sees the forward's input, not infer's."""
    layer, shape = infer_cases()[index]
    x = rng(1).standard_normal(shape).astype(np.float32)
    other = rng(2).standard_normal((shape[0] + 1, *shape[1:])).astype(np.float32)
    twin = infer_cases()[index][0]
    twin.forward(x)
    expected_y = twin.forward(other)  # forward in the same mode and state
    y = layer.forward(x)
    dy = rng(3).standard_normal(y.shape).astype(np.float32)
    buffers = {k: v.copy() for k, v in layer.buffers.items()}
    np.testing.assert_array_equal(layer.infer(other), expected_y)
    for k, v in buffers.items():
        np.testing.assert_array_equal(layer.buffers[k], v, err_msg=k)
    twin = infer_cases()[index][0]
    twin.forward(x)
    expected_dx = twin.backward(dy)
    np.testing.assert_array_equal(layer.backward(dy), expected_dx)


def test_pending_backward_kept_restores_even_when_the_forward_raises():
    """The one mechanism behind every infer and log_prob: cache and buffers come back
    as they were, also when what ran inside failed half-way."""
    from numpyvae.nn.layer import pending_backward_kept

    bn = BatchNorm2d(2)
    x = rng(5).standard_normal((3, 2, 2, 2)).astype(np.float32)
    bn.forward(x)
    cache, running = bn.cache, bn.buffers["running_mean"].copy()
    with pytest.raises(RuntimeError, match="half-way"), pending_backward_kept(bn):
        bn.forward(2 * x + 1)
        raise RuntimeError("failed half-way")
    assert bn.cache is cache
    np.testing.assert_array_equal(bn.buffers["running_mean"], running)
