"""Sequential's fused BatchNorm2d + ELU path: when it runs, what it leaves in the caches.

It must give what the two layers give one by one (kernels on, and NumPy), leave the layers'
indices and arrays alone, take the unfused path when either layer has ``use_kernels`` off
(even between forward and backward), and survive inference between forward and backward.
"""

import numpy as np
import pytest

from numpyvae.nn import ELU, BatchNorm2d, Conv2d, Sequential, batchnorm_elu
from numpyvae.nn.gradcheck import gradcheck_layer

SHAPE = (6, 3, 5, 7)


def net(dtype=np.float64, fused=True, numpy=False, seed=0):
    """Conv2d → BatchNorm2d → ELU → Conv2d, with non-trivial γ, β and running statistics."""
    r = np.random.default_rng(seed)
    seq = Sequential(Conv2d(2, 3, 3, padding=1, dtype=dtype, rng=r), BatchNorm2d(3, dtype=dtype),
                     ELU(alpha=0.7), Conv2d(3, 2, 3, padding=1, dtype=dtype, rng=r))
    bn = seq[1]
    bn.params["weight"][...] = [0.6, 1.4, 1.0]
    bn.params["bias"][...] = [0.2, -0.5, 0.1]
    bn.buffers["running_mean"][...] = [0.1, -0.2, 0.3]
    bn.buffers["running_var"][...] = [0.8, 1.5, 1.1]
    seq[2].use_kernels = fused
    for layer in seq.layers if numpy else ():
        layer.use_kernels = False
    return seq


def data(dtype=np.float64, seed=1):
    r = np.random.default_rng(seed)
    return (r.normal(0.3, 1.5, (SHAPE[0], 2, *SHAPE[2:])).astype(dtype),
            r.standard_normal((SHAPE[0], 2, *SHAPE[2:])).astype(dtype))


def step(seq, x, dy):
    y = seq.forward(x)
    dx = seq.backward(dy)
    return [y, dx, *(g.copy() for _, _, g in seq.named_parameters()),
            *(a.copy() for a in seq.named_arrays().values())]


def assert_same(a, b, rtol):
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_pair_gives_what_the_layers_give_one_by_one(dtype, training):
    x, dy = data(dtype)
    runs = []
    for kwargs in ({"fused": True}, {"fused": False}, {"numpy": True}):
        seq = net(dtype, **kwargs)
        seq.train() if training else seq.eval()
        runs.append(step(seq, x, dy) + step(seq, x + 1, dy))  # twice: running stats move
    rtol = 2e-5 if dtype == np.float32 else 1e-11
    assert_same(runs[0], runs[1], rtol)
    assert_same(runs[0], runs[2], rtol)


def test_fused_path_runs_only_when_both_layers_use_kernels(monkeypatch):
    calls = []
    real = batchnorm_elu.forward
    monkeypatch.setattr(batchnorm_elu, "forward", lambda *a: calls.append(1) or real(*a))
    x, dy = data()
    for bn_on, elu_on, expected in ((True, True, 1), (False, True, 0), (True, False, 0)):
        calls.clear()
        seq = net()
        seq[1].use_kernels, seq[2].use_kernels = bn_on, elu_on
        seq.forward(x)
        assert len(calls) == expected
        assert isinstance(seq[2].cache, batchnorm_elu.NormalizedInput) == bool(expected)
        assert batchnorm_elu.pending(seq[1], seq[2]) == bool(expected)


def test_layers_keep_their_indices_and_arrays():
    seq = net()
    names = list(seq.named_arrays())
    assert names[:6] == ["0.param.weight", "0.param.bias", "1.param.weight", "1.param.bias",
                         "1.buffer.running_mean", "1.buffer.running_var"]
    assert isinstance(seq[1], BatchNorm2d) and isinstance(seq[2], ELU) and len(seq) == 4


@pytest.mark.parametrize("switch_off", ["bn", "elu"])
def test_use_kernels_off_between_forward_and_backward(switch_off):
    """The unfused backward then runs: ELU reads z from its recipe, BN its own cache."""
    x, dy = data()
    ref = step(net(), x, dy)
    seq = net()
    y = seq.forward(x)
    (seq[1] if switch_off == "bn" else seq[2]).use_kernels = False
    assert not batchnorm_elu.pending(seq[1], seq[2])
    got = [y, seq.backward(dy), *(g.copy() for _, _, g in seq.named_parameters()),
           *(a.copy() for a in seq.named_arrays().values())]
    assert_same(got, ref, 1e-11)


def test_inference_between_forward_and_backward_changes_nothing():
    x, dy = data()
    ref = step(net(), x, dy)
    seq = net()
    y = seq.forward(x)
    stats = {k: v.copy() for k, v in seq.named_arrays().items()}
    seq.infer(x[:2] * 3.0)  # another batch, through the layers' own infer
    for k, v in seq.named_arrays().items():
        np.testing.assert_array_equal(v, stats[k])
    got = [y, seq.backward(dy), *(g.copy() for _, _, g in seq.named_parameters()),
           *(a.copy() for a in seq.named_arrays().values())]
    assert_same(got, ref, 1e-12)


def test_batchnorm_run_alone_in_between_takes_the_unfused_backward():
    """After bn.forward runs again, ELU's z belongs to an older BN cache: no fused backward."""
    x, dy = data()
    seq = net()
    seq.forward(x)
    seq[1].forward(np.ones((2, 3, 5, 7)))
    assert not batchnorm_elu.pending(seq[1], seq[2])


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradcheck_through_the_fused_pair(training):
    seq = net()
    seq.train() if training else seq.eval()
    results = gradcheck_layer(seq, data(seed=4)[0][:3])
    assert results and all(r.checked > 0 and r.max_error <= 1e-6 and r.passed for r in results)
