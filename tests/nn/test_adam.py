"""Adam against Kingma & Ba's Algorithm 1 worked out by hand (its checkpoint state:
tests/training/test_optimizer_state.py)."""

import math

import numpy as np
import pytest

from numpyvae.nn import Dense
from numpyvae.nn.adam import Adam


def test_three_steps_on_half_theta_squared_by_hand():
    """f(θ) = ½θ², so g = θ. From θ = 1 with lr = 0.1, β = (0.9, 0.999), eps = 1e-8:

    t=1: m = 0.1·1 = 0.1,  v = 0.001·1 = 0.001,  m̂ = 0.1/0.1 = 1,  v̂ = 0.001/0.001 = 1
         θ = 1 − 0.1·1/(1 + 1e-8) = 0.900000001
    t=2: g = 0.900000001;  m = 0.09 + 0.1g = 0.1800000001,  v = 0.000999 + 0.001g² = 0.001809000002
         m̂ = m/(1 − 0.81) = 0.94736842158,  v̂ = v/(1 − 0.998001) = 0.90495247714
         θ = 0.900000001 − 0.1·m̂/(√v̂ + 1e-8) = 0.80041222971
    t=3: θ = 0.70158627450 (same recipe)
    """
    theta = np.array([1.0])
    grad = np.zeros(1)
    opt = Adam([(theta, grad)], lr=0.1)
    expected = [0.900000001, 0.80041222971234, 0.70158627450442]
    for t, want in enumerate(expected, start=1):
        grad[...] = theta  # what a backward pass would write, in place
        opt.step()
        assert opt.t == t
        assert theta[0] == pytest.approx(want, rel=1e-12, abs=0)


def adam_by_hand(theta, grads_fn, lr, b1, b2, eps, steps):
    """Algorithm 1 of Kingma & Ba, one scalar at a time in plain Python floats."""
    theta = [float(v) for v in theta]
    m = [0.0] * len(theta)
    v = [0.0] * len(theta)
    history = []
    for t in range(1, steps + 1):
        g = grads_fn(theta)
        for i in range(len(theta)):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            theta[i] = theta[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
        history.append(list(theta))
    return history


def test_several_steps_match_hand_computation_on_quadratic():
    """f(θ) = ½ Σ a_i (θ_i − c_i)², gradients of different sizes and signs, two param arrays."""
    a = [1.0, 10.0, 0.1, 3.0, 0.5]
    c = [0.5, -1.0, 2.0, 0.0, 4.0]
    theta0 = [1.0, 2.0, -3.0, 0.25, 1e-3]
    lr, b1, b2, eps = 0.05, 0.8, 0.99, 1e-6

    def grads_fn(th):
        return [a[i] * (th[i] - c[i]) for i in range(len(th))]

    expected = adam_by_hand(theta0, grads_fn, lr, b1, b2, eps, steps=6)

    w = np.array(theta0[:3])  # two separate arrays, as a layer's weight and bias would be
    b = np.array(theta0[3:])
    gw, gb = np.zeros(3), np.zeros(2)
    opt = Adam([(w, gw), (b, gb)], lr=lr, betas=(b1, b2), eps=eps)
    for want in expected:
        g = grads_fn(list(w) + list(b))
        gw[...] = g[:3]
        gb[...] = g[3:]
        opt.step()
        np.testing.assert_allclose(np.concatenate([w, b]), want, rtol=1e-13, atol=1e-15)


def test_first_step_moves_each_param_by_lr():
    """At t=1, m̂ = g and v̂ = g², so each entry moves by lr·g/(|g|+eps) ≈ lr·sign(g)."""
    p = np.array([3.0, -2.0, 1e-3])
    g = np.array([100.0, -0.01, 1e-2])
    start = p.copy()
    Adam([(p, g)], lr=0.01).step()
    # atol: start − p loses a few ulps of |start| ≈ 3 (≈ 4e-16 each) to cancellation
    np.testing.assert_allclose(start - p, 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-14, atol=2e-15)


def test_updates_in_place_and_sees_layer_grads():
    layer = Dense(3, 2, dtype=np.float64, rng=np.random.default_rng(0))
    weight = layer.params["weight"]
    before = weight.copy()
    opt = Adam(layer.parameters(), lr=0.01)
    layer.forward(np.ones((4, 3)))
    layer.backward(np.ones((4, 2)))  # writes the grads the optimizer already holds
    opt.step()
    assert layer.params["weight"] is weight
    assert not np.allclose(weight, before)


def test_float32_params_stay_float32():
    p = np.array([1.0, -1.0], np.float32)
    g = np.array([0.3, -0.7], np.float32)
    opt = Adam([(p, g)], lr=1e-3)
    for _ in range(3):
        opt.step()
    assert p.dtype == np.float32
    assert all(a.dtype == np.float32 for a in opt.m + opt.v)
    ref = adam_by_hand([1.0, -1.0], lambda th: [0.3, -0.7], 1e-3, 0.9, 0.999, 1e-8, 3)[-1]
    np.testing.assert_allclose(p, ref, rtol=1e-6)


def test_lr_can_be_changed_between_steps():
    p1, p2 = np.array([1.0]), np.array([1.0])
    g = np.array([1.0])
    opt1, opt2 = Adam([(p1, g)], lr=0.1), Adam([(p2, g)], lr=0.1)
    opt1.step()
    opt2.step()
    opt2.lr = 0.01
    a, b = p1.copy(), p2.copy()
    opt1.step()
    opt2.step()
    # same m̂, v̂ in both: the second step is exactly 10× smaller
    np.testing.assert_allclose(a - p1, 10 * (b - p2), rtol=1e-12)


def test_bad_arguments():
    p = np.ones(2)
    with pytest.raises(ValueError, match="Adam: lr must be positive"):
        Adam([(p, p.copy())], lr=0)
    with pytest.raises(ValueError, match="Adam: betas"):
        Adam([(p, p.copy())], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"Adam: pair 0 has param shape \(2,\) but grad shape"):
        Adam([(p, np.ones(3))])
    with pytest.raises(ValueError, match="Adam: expected a non-empty list"):
        Adam([])
