"""Flatten and Reshape: shapes there and back, and their errors."""

import numpy as np
import pytest

from numpyvae.nn import Flatten, Reshape
from tests.nn.layer_helpers import rng


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
