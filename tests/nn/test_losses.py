"""Softmax cross-entropy: values against a direct computation, gradient check, stability."""

import numpy as np
import pytest

from numpyvae.nn.gradcheck import TOLERANCE, check_gradients
from numpyvae.nn.losses import log_softmax, softmax, softmax_cross_entropy


def _direct(logits: np.ndarray, labels: np.ndarray) -> float:
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(labels)), labels])))


def test_value_and_gradient_formula():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((7, 5))
    labels = rng.integers(0, 5, 7)
    loss, d = softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(_direct(logits, labels), rel=1e-12)
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(d, (softmax(logits) - onehot) / 7, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(softmax(logits).sum(axis=1), 1.0, rtol=1e-12)


def _gradcheck(grad_fn) -> float:
    rng = np.random.default_rng(1)
    logits = 3 * rng.standard_normal((6, 10))
    labels = rng.integers(0, 10, 6)
    _, d = grad_fn(logits, labels)
    results = check_gradients(lambda: softmax_cross_entropy(logits, labels)[0],
                              {"logits": (logits, d)})
    return results[0].max_error


def test_gradcheck_float64():
    assert _gradcheck(softmax_cross_entropy) <= TOLERANCE


@pytest.mark.parametrize("mistake", ["no 1/N", "one percent", "forgot onehot"])
def test_gradcheck_negative_controls(mistake):
    def wrong(logits, labels):
        loss, d = softmax_cross_entropy(logits, labels)
        if mistake == "no 1/N":
            return loss, d * len(labels)
        if mistake == "one percent":
            return loss, d * 1.01
        return loss, softmax(logits) / len(labels)

    assert _gradcheck(wrong) > 1e-3


def test_stable_for_huge_logits_and_float32_stays_float32():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4 + 1, -1e4]], dtype=np.float32)
    loss, d = softmax_cross_entropy(logits, np.array([0, 1]))
    assert d.dtype == np.float32 and np.isfinite(d).all()
    # row 1: log softmax of (0, 1, 0) at class 1 is 1 − log(e⁰ + e¹ + e⁰)
    assert loss == pytest.approx(-(0.0 + (1 - np.log(2 + np.e))) / 2, rel=1e-5)
    assert log_softmax(logits).dtype == np.float32


@pytest.mark.parametrize("logits, labels, message", [
    (np.zeros(3), np.array([0]), r"logits of shape \(N, K\)"),
    (np.zeros((2, 3), np.int64), np.array([0, 1]), "float32 or float64"),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), "integer labels"),
    (np.zeros((2, 3)), np.array([0]), r"shape \(2,\)"),
    (np.zeros((2, 3)), np.array([0, 3]), r"0\.\.2"),
])
def test_bad_input(logits, labels, message):
    with pytest.raises(ValueError, match=message):
        softmax_cross_entropy(logits, labels)
