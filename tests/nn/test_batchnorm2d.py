"""BatchNorm2d: train-mode normalisation, running statistics, eval mode, repr.
Its gradient checks are cases in numpyvae/nn/gradcheck_cases.py."""

import numpy as np
import pytest

from numpyvae.nn import BatchNorm2d
from tests.nn.layer_helpers import F64, bn_with_running_stats, rng


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
