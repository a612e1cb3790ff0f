"""Sequential: the chain forwards and backwards, infer through the children, names, errors."""

import numpy as np
import pytest

from numpyvae.nn import ELU, BatchNorm2d, Dense, Flatten, Reshape, Sequential
from tests.nn.layer_helpers import F64, rng


def test_forward_and_backward_are_the_chain():
    a, b = Dense(3, 4, dtype=F64, rng=rng(0)), Dense(4, 2, dtype=F64, rng=rng(1))
    seq = Sequential(a, ELU(), b)
    x = rng(2).standard_normal((5, 3))
    y = seq.forward(x)
    elu = ELU()
    np.testing.assert_array_equal(y, b.forward(elu.forward(a.forward(x))))
    dy = rng(3).standard_normal(y.shape)
    np.testing.assert_array_equal(seq.backward(dy), a.backward(elu.backward(b.backward(dy))))


def test_backward_stops_below_a_layer_that_needs_no_input_gradient():
    seq = Sequential(Flatten(), Dense(4, 2, dtype=F64, rng=rng(0)))
    seq[1].needs_input_grad = False
    y = seq.forward(rng(1).standard_normal((3, 2, 2)))
    assert seq.backward(np.ones_like(y)) is None
    assert seq[1].grads["weight"].any()


def test_infer_runs_each_childs_infer():
    """BatchNorm in train mode inside: infer must neither move its running statistics nor
    replace the cache the pending backward needs."""
    seq = Sequential(Dense(3, 8, dtype=F64, rng=rng(0)), Reshape(2, 2, 2),
                     BatchNorm2d(2, dtype=F64), ELU(), Flatten())
    x = rng(1).standard_normal((4, 3))
    y = seq.forward(x)
    dy = rng(2).standard_normal(y.shape)
    stats = {k: v.copy() for k, v in seq.named_arrays().items() if "buffer" in k}
    seq.infer(rng(3).standard_normal((6, 3)))
    for k, v in stats.items():
        np.testing.assert_array_equal(seq.named_arrays()[k], v, err_msg=k)
    dx = seq.backward(dy)
    twin = Sequential(Dense(3, 8, dtype=F64, rng=rng(0)), Reshape(2, 2, 2),
                      BatchNorm2d(2, dtype=F64), ELU(), Flatten())
    twin.forward(x)
    np.testing.assert_array_equal(dx, twin.backward(dy))


def test_names_and_counts():
    seq = Sequential(Dense(3, 2, rng=rng(0)), ELU(), Dense(2, 1, rng=rng(1)))
    assert [n for n, _, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                         "2.bias"]
    assert seq.num_params() == 3 * 2 + 2 + 2 + 1 and len(seq) == 3
    assert "(1): ELU(alpha=1.0)" in repr(seq)


def test_only_layers_are_accepted():
    with pytest.raises(ValueError, match="Sequential: item 1 is a function, not a Layer"):
        Sequential(ELU(), lambda x: x)
