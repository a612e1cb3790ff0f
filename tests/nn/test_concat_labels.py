"""ConcatLabels: the one-hot columns, the gradient that skips them, and its errors."""

import numpy as np
import pytest

from numpyvae.nn import ConcatLabels


def test_appends_the_one_hot_label_and_passes_x_through():
    layer = ConcatLabels(4)
    layer.set_labels(np.array([2, 0, 3]))
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    y = layer.forward(x)
    assert y.dtype == np.float32 and y.shape == (3, 6)
    np.testing.assert_array_equal(y[:, :2], x)
    np.testing.assert_array_equal(y[:, 2:], np.eye(4, dtype=np.float32)[[2, 0, 3]])
    dout = np.arange(18, dtype=np.float32).reshape(3, 6)
    np.testing.assert_array_equal(layer.backward(dout), dout[:, :2])


@pytest.mark.parametrize("labels, message", [
    (np.array([0.0, 1.0]), "expected integer labels of shape"),
    (np.array([[0, 1]]), r"of shape \(N,\), got int64 of shape \(1, 2\)"),
    (np.array([0, 3]), r"labels must be in \[0, 3\), got values from 0 to 3"),
    (np.array([-1, 0]), r"labels must be in \[0, 3\)"),
])
def test_bad_labels_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        ConcatLabels(3).set_labels(labels)


def test_forward_needs_one_label_per_row():
    layer = ConcatLabels(3)
    with pytest.raises(ValueError, match="no labels set"):
        layer.forward(np.zeros((2, 4)))
    layer.set_labels(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="3 labels for a batch of 2 rows"):
        layer.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        ConcatLabels(1)
