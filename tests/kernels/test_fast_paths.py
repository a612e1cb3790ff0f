"""The fused numba paths (BatchNorm2d, ELU, Sigmoid, Adam) against the layers' NumPy reference.

Every comparison runs in float32 and float64, at 1 thread and at 2 (it fails if numba's pool
cannot give 2), on shapes whose batch and channel counts do not divide evenly among threads,
and on arrays big enough to take the parallel path. The layer tests run with the kernels
switched on and off (``use_kernels``), so the NumPy reference path is tested as a layer too.
Tolerances are a few float32 ulps (or bitwise, where
the kernel does the reference's operations in the same order): a 1% error fails them, and
so does a race. The kernels never depend on the thread count, so results must also be
bitwise the same at 1 thread and at 2: those comparisons run in a subprocess whose numba
pool is forced to 2 threads (``two_threads.py``).
"""

import numba
import numpy as np
import pytest

from numpyvae import kernels
from numpyvae.kernels import adam as kernel_adam
from numpyvae.kernels import batchnorm, elementwise
from numpyvae.models.likelihoods import Gaussian
from numpyvae.nn import ELU, BatchNorm2d, Dense, Sigmoid
from numpyvae.nn.adam import Adam
from numpyvae.nn.batchnorm2d import batchnorm_backward_numpy, batchnorm_backward_staged
from numpyvae.nn.gradcheck import gradcheck_layer
from tests.kernels.two_threads import run_with_two_threads

DTYPES = [np.float32, np.float64]
THREADS = [1, 2]  # numba.set_num_threads(2) raises, failing the test, if the pool is smaller
SWITCH = pytest.mark.parametrize("use_kernels", [True, False], ids=["kernels", "numpy"])
# Batch and channel counts that do not divide evenly among 2 (or 4) threads; the second
# shape is above the kernels' serial threshold, so it takes the parallel path.
SMALL = (5, 3, 7, 9)
LARGE = (37, 7, 33, 35)
# rtol for outputs of a few roundings in float32 (a 1% error is 1e4 times larger)
RTOL = {np.float32: 2e-6, np.float64: 1e-14}


@pytest.fixture(params=THREADS, ids=lambda n: f"{n}thread")
def threads(request):
    before = numba.get_num_threads()
    numba.set_num_threads(request.param)
    yield request.param
    numba.set_num_threads(before)


def rng(seed=0):
    return np.random.default_rng(seed)


def assert_close(fast, ref, dtype, scale=None, rtol=None, floor=1e-3, what=""):
    """|fast − ref| ≤ rtol·(|ref| + floor·scale), scale = max|ref| unless given: relative,
    with a floor for entries near 0 (floor = 1 where the errors scale with the data's size)."""
    assert fast.dtype == np.dtype(dtype), f"{what}: dtype {fast.dtype}"
    assert fast.shape == ref.shape
    rtol = RTOL[dtype] if rtol is None else rtol
    scale = np.abs(ref).max() if scale is None else scale
    err = np.abs(fast.astype(np.float64) - ref.astype(np.float64))
    bound = rtol * (np.abs(ref.astype(np.float64)) + floor * scale)
    worst = np.argmax(err / bound)
    assert (err <= bound).all(), (
        f"{what}: max error {err.flat[worst]:.3g} at {worst} "
        f"(fast {fast.flat[worst]!r}, ref {ref.flat[worst]!r})")


def elu_inputs(shape, dtype, seed=0):
    """Both signs, |x| from 1e-6 to 30, and the exact kink 0."""
    r = rng(seed)
    x = r.choice([-1.0, 1.0], size=shape) * np.exp(r.uniform(np.log(1e-6), np.log(30), shape))
    x.flat[:: 97] = 0.0
    return x.astype(dtype)


# -- ELU ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [SMALL, LARGE, (3, 10)], ids=str)
@pytest.mark.parametrize("alpha", [1.0, 0.5])
@SWITCH
def test_elu_kernels_match_numpy(threads, dtype, shape, alpha, use_kernels):
    layer = ELU(alpha=alpha)
    layer.use_kernels = use_kernels
    x = elu_inputs(shape, dtype)
    dy = rng(1).standard_normal(shape).astype(dtype)
    y = layer.forward(x)
    dx = layer.backward(dy)
    assert_close(y, layer._forward_numpy(x), dtype, what="ELU forward")
    assert_close(dx, layer._backward_numpy(dy, x), dtype, what="ELU backward")


def test_elu_float32_exponential_accuracy():
    """Our float32 e^x − 1 and e^x, within 1 ulp of float64 over the whole negative range
    (0.70 and 0.69 ulp measured: a coefficient of q off by 4e-7 fails here, not at 3 ulp)."""
    x = np.concatenate([np.linspace(-90, 0, 400_001), -np.logspace(-30, 2, 20_001)])
    x32 = x.astype(np.float32)
    truth = x32.astype(np.float64)
    y = elementwise.elu_forward(x32, 1.0)
    dx = elementwise.elu_backward(x32, np.ones_like(x32), 1.0)
    ulp = np.finfo(np.float32).eps
    expm1, exp = np.expm1(truth), np.exp(truth)
    assert (np.abs(y - expm1) <= ulp * np.abs(expm1)).all()
    normal = truth >= -87  # below, e^x is taken as 0 (true value < 1.7e-38)
    assert (np.abs(dx[normal] - exp[normal]) <= ulp * exp[normal]).all()
    assert (dx[~normal] < 1.7e-38).all()


@pytest.mark.parametrize("dtype", DTYPES)
@SWITCH
def test_elu_extremes_and_nan(dtype, use_kernels):
    x = np.array([-1e4, -200.0, -88.0, -87.0, -1e-30, -0.0, 0.0, 1e-30, 1e4, np.inf, -np.inf],
                 dtype=dtype)
    layer = ELU()
    layer.use_kernels = use_kernels
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(x))
    assert y[0] == -1.0 and y[-3] == 1e4 and y[-2] == np.inf and y[-1] == -1.0
    assert dx[0] == 0.0 and dx[-1] == 0.0 and dx[-3] == 1.0
    assert dx[5] == 1.0 and dx[6] == 1.0  # x = 0: the left branch, α·e⁰
    finite = np.isfinite(x)
    assert_close(y[finite], layer._forward_numpy(x)[finite], dtype, scale=1.0,
                 what="ELU extremes")
    assert_close(dx, layer._backward_numpy(np.ones_like(x), x), dtype, scale=1.0,
                 what="ELU backward extremes")
    assert np.isnan(layer.forward(np.array([np.nan, -1.0], dtype=dtype))[0])


# -- Sigmoid ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [SMALL, LARGE], ids=str)
@SWITCH
def test_sigmoid_kernel_matches_numpy(threads, dtype, shape, use_kernels):
    from numpyvae.nn.activations import sigmoid

    x = rng(2).normal(0, 6, shape).astype(dtype)
    x.flat[:5] = [-1e4, -90, 0, 90, 1e4]
    layer = Sigmoid()
    layer.use_kernels = use_kernels
    y = layer.forward(x)
    assert_close(y, sigmoid(x), dtype, rtol=4 * RTOL[dtype], what="sigmoid")
    assert y.flat[0] == 0.0 and y.flat[2] == 0.5 and y.flat[4] == 1.0
    dy = rng(3).standard_normal(shape).astype(dtype)
    dx = layer.backward(dy)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, dy * y * (1 - y))  # the same operations, in order


# -- BatchNorm2d ---------------------------------------------------------------------------


def bn_pair(c, dtype, training, seed=7):
    """Two identical BatchNorm2d with non-trivial γ, β and running statistics:
    the first runs the kernels, the second the NumPy reference."""
    r = rng(seed)
    weight, bias = r.uniform(0.5, 1.5, c), r.normal(size=c)
    mean, var = r.normal(size=c), r.uniform(0.5, 2.0, c)
    pair = []
    for use_kernels in (True, False):
        bn = BatchNorm2d(c, dtype=dtype)
        bn.use_kernels = use_kernels
        bn.params["weight"][...] = weight
        bn.params["bias"][...] = bias
        bn.buffers["running_mean"][...] = mean
        bn.buffers["running_var"][...] = var
        bn.train() if training else bn.eval()
        pair.append(bn)
    return pair


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [SMALL, LARGE, (3, 2, 1, 1), (2, 5, 4, 4)], ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm_kernels_match_numpy(threads, dtype, shape, training):
    fast, ref = bn_pair(shape[1], dtype, training)
    x = rng(3).normal(2.0, 3.0, shape).astype(dtype)
    dy = rng(4).standard_normal(shape).astype(dtype)
    for step in range(2):  # twice: the running statistics must keep matching
        y_fast, y_ref = fast.forward(x + step), ref.forward(x + step)
        # y = γ·x̂ + β: rounding errors scale with |γ·x̂| + |β|, not with |y|, hence floor=1
        assert_close(y_fast, y_ref, dtype, rtol=4 * RTOL[dtype], floor=1, what="BN forward")
        dx_fast, dx_ref = fast.backward(dy), ref.backward(dy)
        # dx is a difference of terms of size |dy|·γ/σ: measure it against that scale
        scale = np.abs(dy).max() * np.abs(fast.params["weight"]).max()
        assert_close(dx_fast, dx_ref, dtype, scale=scale, rtol=20 * RTOL[dtype], floor=1,
                     what="BN backward")
        for k in ("weight", "bias"):
            # a sum of M terms of size |dy|·|x̂|: compare against √M of them
            g_scale = np.abs(dy).max() * 3 * np.sqrt(dy.size / shape[1])
            assert_close(fast.grads[k], ref.grads[k], dtype, scale=g_scale,
                         rtol=20 * RTOL[dtype], floor=1, what=f"BN grad {k}")
        for k in ("running_mean", "running_var"):
            assert fast.buffers[k].dtype == np.dtype(dtype)
            assert_close(fast.buffers[k], ref.buffers[k], dtype, rtol=8 * RTOL[dtype],
                         floor=1, what=f"BN {k}")


def test_batchnorm_float32_statistics_against_float64_truth():
    """A large offset is where a one-pass Σx² formula would fail; ours combines per-plane means."""
    x = rng(5).normal(1e3, 1.0, (64, 3, 13, 11)).astype(np.float32)
    mean, var = kernels.batch_moments(x.reshape(64, 3, -1))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(var, x64.var(axis=(0, 2, 3)), rtol=1e-4)
    assert mean.dtype == var.dtype == np.float32


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_per_channel_combines_are_bitwise_their_numpy_forms(dtype):
    """The compiled per-channel steps hold to the NumPy they replaced, bit for bit: Chan's mean
    and variance from the planes' sums, and the backward's (a, b, d), Σ dy·x̂ and Σ dy."""
    r, (N, C, L) = rng(11), (37, 5, 49)
    sums = (r.normal(3.0, 2.0, (N, C)) * L).astype(dtype)
    sq_devs = (r.uniform(0.5, 2.0, (N, C)) * L).astype(dtype)
    mean = sums.sum(axis=0) * (1.0 / (N * L))
    between = sums * (1.0 / L) - mean
    var = (sq_devs.sum(axis=0) + L * (between * between).sum(axis=0)) * (1.0 / (N * L))
    T = np.dtype(dtype).type
    combined = batchnorm._combine_moments(sums, sq_devs, T(L), T(1.0 / L), T(1.0 / (N * L)))
    for got, want in zip(combined, (mean, var), strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    inv_std, gamma = r.uniform(0.5, 2, C).astype(dtype), r.uniform(0.5, 1.5, C).astype(dtype)
    for training in (True, False):
        sum_dy, sum_dy_xhat = sums.sum(axis=0), sq_devs.sum(axis=0) * inv_std
        a = gamma * inv_std
        b = a * inv_std * sum_dy_xhat * (-1.0 / (N * L)) if training else np.zeros_like(a)
        d = a * sum_dy * (-1.0 / (N * L)) if training else np.zeros_like(a)
        got = batchnorm._grad_coefficients(sums, sq_devs, inv_std, gamma, training,
                                           T(-1.0 / (N * L)))
        for g, w in zip(got, (a, b, d, sum_dy_xhat, sum_dy), strict=True):
            assert g.dtype == w.dtype and np.array_equal(g, w), training


@pytest.mark.parametrize("dtype", DTYPES)
@SWITCH
def test_batchnorm_kernels_stable_at_1e4(dtype, use_kernels):
    x = rng(6).choice([-1e4, 1e4], size=(4, 3, 5, 5)).astype(dtype)
    for training in (True, False):
        fast, ref = bn_pair(3, dtype, training)
        fast.use_kernels = use_kernels
        y = fast.forward(x)
        dx = fast.backward(np.ones_like(y))
        assert np.isfinite(y).all() and np.isfinite(dx).all() and y.dtype == dtype
        assert_close(y, ref.forward(x), dtype, rtol=8 * RTOL[dtype], floor=1, what="BN at 1e4")
        assert_close(dx, ref.backward(np.ones_like(y)), dtype, scale=1.0, rtol=8 * RTOL[dtype],
                     floor=1, what="BN backward at 1e4")


def test_batchnorm_switch_between_forward_and_backward():
    """Both paths keep the same cache ((x, μ), 1/σ, mode), so either backward follows either
    forward."""
    x = rng(8).standard_normal((4, 3, 2, 2))
    a, b = bn_pair(3, np.float64, training=True)
    a.forward(x)
    b.forward(x)
    a.use_kernels, b.use_kernels = False, True  # switched between forward and backward
    dy = rng(9).standard_normal(x.shape)
    np.testing.assert_allclose(a.backward(dy), b.backward(dy), rtol=1e-12, atol=1e-14)


@SWITCH
def test_batchnorm_backward_rejects_wrong_dout(use_kernels):
    bn = BatchNorm2d(3)
    bn.use_kernels = use_kernels
    bn.forward(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d.backward: expected dout of shape"):
        bn.backward(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"dtype float32, got shape \(2, 3, 4, 4\) dtype float64"):
        bn.backward(np.zeros((2, 3, 4, 4), np.float64))


@pytest.mark.parametrize("shape", [(5, 3, 4, 3), (6, 2, 7), (3, 2, 1, 1)], ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm_backward_staged_compact_and_kernel_agree(shape, training):
    """The staged derivation, the compact formula and the kernel: one function, three ways,
    for (N, C, H, W) and (N, C, L) inputs, in float64."""
    r = rng(20)
    c = shape[1]
    x = r.normal(1.0, 2.0, shape)
    dy = r.standard_normal(shape)
    axes = (0,) + tuple(range(2, len(shape)))
    if training:
        mean = x.mean(axis=axes)
        inv_std = 1.0 / np.sqrt(x.var(axis=axes) + 1e-5)
    else:
        mean, inv_std = r.normal(size=c), r.uniform(0.5, 2.0, c)
    gamma = r.uniform(0.5, 1.5, c)
    _assert_three_forms_agree(batchnorm_backward_staged, x, dy, mean, inv_std, gamma, training)
    if not training:
        per_channel = (gamma * inv_std).reshape((1, c) + (1,) * (len(shape) - 2))
        np.testing.assert_allclose(batchnorm_backward_staged(x, dy, mean, inv_std, gamma,
                                                             training)[0],
                                   per_channel * dy, rtol=1e-14)


def _assert_three_forms_agree(staged_form, x, dy, mean, inv_std, gamma, training):
    staged = staged_form(x, dy, mean, inv_std, gamma, training)
    compact = batchnorm_backward_numpy(x, dy, mean, inv_std, gamma, training)
    fused = kernels.batchnorm_backward(x, dy, mean, inv_std, gamma, training)
    for name, s_, c_, f_ in zip(("dx", "dgamma", "dbeta"), staged, compact, fused, strict=True):
        assert s_.shape == c_.shape == f_.shape
        np.testing.assert_allclose(c_, s_, rtol=1e-10, atol=1e-12, err_msg=f"compact {name}")
        np.testing.assert_allclose(f_, s_, rtol=1e-10, atol=1e-12, err_msg=f"kernel {name}")


def test_batchnorm_three_forms_catch_a_dropped_term():
    """Negative control: a staged form that forgets dx's dmean/M term fails the agreement."""

    def without_dmean(x, dy, mean, inv_std, gamma, training):
        dx, dgamma, dbeta = batchnorm_backward_staged(x, dy, mean, inv_std, gamma, training)
        m = x.size // x.shape[1]
        dmean = -(dy * gamma[None, :, None, None]).sum(axis=(0, 2, 3)) * inv_std
        return dx - dmean[None, :, None, None] / m, dgamma, dbeta

    x = rng(21).normal(1.0, 2.0, (5, 3, 4, 3))
    dy = rng(22).standard_normal(x.shape) + 0.5  # Σdy ≠ 0, so dmean matters
    mean, inv_std = x.mean(axis=(0, 2, 3)), 1.0 / np.sqrt(x.var(axis=(0, 2, 3)) + 1e-5)
    gamma = rng(23).uniform(0.5, 1.5, 3)
    _assert_three_forms_agree(batchnorm_backward_staged, x, dy, mean, inv_std, gamma, True)
    with pytest.raises(AssertionError):
        _assert_three_forms_agree(without_dmean, x, dy, mean, inv_std, gamma, True)


# -- Adam ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_kernel_is_bitwise_the_numpy_update(threads, dtype):
    shapes = [(3,), (300, 1000), (7, 5)]  # the middle one takes the parallel path
    r = rng(10)
    params = [r.standard_normal(s).astype(dtype) for s in shapes]
    grads = [np.zeros_like(p) for p in params]
    twins = [p.copy() for p in params]
    twin_grads = [np.zeros_like(p) for p in params]
    fast = Adam(list(zip(params, grads, strict=True)), lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    ref = Adam(list(zip(twins, twin_grads, strict=True)), lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    ref.use_kernels = False
    for _ in range(4):
        for g, tg in zip(grads, twin_grads, strict=True):
            g[...] = r.standard_normal(g.shape) * r.choice([1e-4, 1.0, 1e3])
            tg[...] = g
        fast.step()
        ref.step()
        for a, b in zip(params + fast.m + fast.v, twins + ref.m + ref.v, strict=True):
            assert a.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(a, b)


@SWITCH
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_follows_algorithm_1(use_kernels, dtype):
    """Three steps against Kingma & Ba's Algorithm 1 in float64, on either path."""
    r = rng(23)
    p = r.standard_normal(50).astype(dtype)
    g = np.zeros_like(p)
    opt = Adam([(p, g)], lr=0.05, betas=(0.8, 0.95), eps=1e-6)
    opt.use_kernels = use_kernels
    theta, m, v = p.astype(np.float64), np.zeros(50), np.zeros(50)
    for t in range(1, 4):
        g[...] = r.standard_normal(50)
        opt.step()
        m = 0.8 * m + 0.2 * g
        v = 0.95 * v + 0.05 * g.astype(np.float64) ** 2
        theta = theta - 0.05 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.95**t)) + 1e-6)
    assert p.dtype == np.dtype(dtype)
    np.testing.assert_allclose(p, theta, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)


def test_adam_non_contiguous_param_takes_the_numpy_path():
    base = rng(11).standard_normal((6, 4))
    p = base[:, ::2]  # a view that is not contiguous: the kernel's flat view would be a copy
    g = np.ones_like(p)
    before = p.copy()
    Adam([(p, g)], lr=0.1).step()
    np.testing.assert_allclose(base[:, ::2], before - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)


# -- the same bits at every thread count, and no recompilation ------------------------------


def run_everything(dtype):
    """One pass through every kernel on LARGE-shaped data; returns every output."""
    x = rng(12).normal(1.0, 2.0, LARGE).astype(dtype)
    dy = rng(13).standard_normal(LARGE).astype(dtype)
    bn, _ = bn_pair(LARGE[1], dtype, training=True)
    elu = ELU()
    y = elu.forward(bn.forward(x))
    dx = bn.backward(elu.backward(dy))
    p, g = x.reshape(-1).copy(), dy.reshape(-1).copy()
    Adam([(p, g)], lr=1e-3).step()
    sig = Sigmoid()
    s = sig.forward(x)
    lik = Gaussian()  # its kernel: σ, Σ (x̂ − x)² per image, the gradient
    nll = lik.nll(np.abs(dy) / (1 + np.abs(dy)), x)
    return [y, dx, p, s, sig.backward(dy), *bn.grads.values(), *bn.buffers.values(), nll,
            lik.backward(0.5)]


_BITWISE_AT_1_AND_2 = """
from tests.kernels.test_fast_paths import run_everything
for dtype in (np.float32, np.float64):
    runs = []
    for n in (2, 1, 2):
        numba.set_num_threads(n)
        runs.append(run_everything(dtype))
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            assert np.array_equal(a, b), dtype
print("ok")
"""


def test_bitwise_same_at_one_and_two_threads():
    """In a process with a pool of exactly 2 (it fails if 2 threads cannot run)."""
    assert run_with_two_threads(_BITWISE_AT_1_AND_2).strip().endswith("ok")


def test_no_recompilation_for_other_batch_sizes():
    jitted = [elementwise._elu_forward_par, elementwise._elu_backward_par,
              batchnorm._plane_moments, batchnorm._bn_normalize,
              batchnorm._bn_plane_grad_sums, batchnorm._bn_grad_input,
              batchnorm._combine_moments, batchnorm._grad_coefficients]
    run_everything(np.float32)
    compiled = [len(k.signatures) for k in jitted]
    for n in (2, 64):
        x = rng(n).standard_normal((n, 7, 40, 40)).astype(np.float32)
        bn, elu = BatchNorm2d(7), ELU()
        bn.backward(elu.backward(elu.forward(bn.forward(x))))
    assert [len(k.signatures) for k in jitted] == compiled


# -- Dense: kernels.matmul ------------------------------------------------------------------


@SWITCH
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(37, 512, 4), (37, 2, 512), (300, 784, 300)], ids=str)
def test_dense_small_and_large_products_match_numpy(threads, dtype, sizes, use_kernels):
    """The CNN's Dense layers (512 → 4, 2 → 512) are one block on the calling thread;
    784 → 300 at batch 300 is cut into row blocks shared among threads."""
    n, d_in, d_out = sizes
    layer = Dense(d_in, d_out, dtype=dtype, rng=rng(14))
    layer.use_kernels = use_kernels
    x = rng(15).standard_normal((n, d_in)).astype(dtype)
    dy = rng(16).standard_normal((n, d_out)).astype(dtype)
    W, b = layer.params["weight"], layer.params["bias"]
    y = layer.forward(x)
    dx = layer.backward(dy)
    assert y.dtype == dx.dtype == layer.grads["weight"].dtype == np.dtype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    scale = np.sqrt(d_in)  # a dot product of d_in terms
    assert_close(y, x @ W + b, dtype, scale=scale, rtol=rtol, floor=1, what="Dense forward")
    assert_close(dx, dy @ W.T, dtype, scale=np.sqrt(d_out), rtol=rtol, floor=1,
                 what="Dense dX")
    assert_close(layer.grads["weight"], x.T @ dy, dtype, scale=np.sqrt(n), rtol=rtol, floor=1,
                 what="Dense dW")


def test_dense_backward_rejects_wrong_dout():
    layer = Dense(4, 3)
    layer.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Dense.backward: expected dout of shape \(2, 3\)"):
        layer.backward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="dtype float32"):
        layer.backward(np.zeros((2, 3), np.float64))


def test_matmul_handles_transposed_and_strided_operands():
    a = rng(17).standard_normal((64, 40)).astype(np.float32)
    b = rng(18).standard_normal((64, 8)).astype(np.float32)
    np.testing.assert_allclose(kernels.matmul(a.T, b), a.T @ b, rtol=1e-5, atol=1e-5)
    out = np.empty((8, 40), np.float32)
    assert kernels.matmul(b.T, a, out) is out
    np.testing.assert_allclose(out, b.T @ a, rtol=1e-5, atol=1e-5)
    big = rng(19).standard_normal((700, 300))
    np.testing.assert_allclose(kernels.matmul(big[::2], big[:300:1, ::2].T.T),
                               big[::2] @ big[:300, ::2], rtol=1e-12, atol=1e-10)


def test_matmul_rejects_bad_input():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"expected \(M, K\) @ \(K, N\)"):
        kernels.matmul(a, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="one dtype"):
        kernels.matmul(a, np.zeros((4, 2), np.float64))
    with pytest.raises(ValueError, match="C-contiguous out of shape"):
        kernels.matmul(a, np.zeros((4, 2), np.float32), out=np.zeros((2, 3), np.float32))


# Small products (the CNN's Dense layers) run on the calling thread, one BLAS call: the same
# bits at any thread count. Large ones (the MLP's) use NumPy's multi-threaded BLAS, whose sums
# depend on the thread count: they must only agree to rounding (and training records the count).
_MATMUL_AT_1_AND_2 = """
from numpyvae import kernels
from numpyvae.kernels.products import SERIAL_BELOW
r = np.random.default_rng(0)
small = [(37, 512, 4), (37, 2, 512), (256, 100, 10), (5, 3, 7)]
large = [(256, 784, 300), (256, 300, 100)]
for dtype in (np.float32, np.float64):
    for n, d_in, d_out in small + large:
        x = r.standard_normal((n, d_in)).astype(dtype)
        W = r.standard_normal((d_in, d_out)).astype(dtype)
        dy = r.standard_normal((n, d_out)).astype(dtype)
        products = {"xW": (x, W), "xT dY": (x.T, dy), "dY WT": (dy, W.T)}
        for name, (a, b) in products.items():
            kernels.set_threads(1)  # numba's pool and every BLAS, as --threads does
            one = kernels.matmul(a, b)
            kernels.set_threads(2)
            two = kernels.matmul(a, b)
            is_small = a.shape[0] * a.shape[1] * b.shape[1] < SERIAL_BELOW
            assert is_small == ((n, d_in, d_out) in small), (n, d_in, d_out, name)
            if is_small:
                assert np.array_equal(one, two), (dtype, n, d_in, d_out, name)
            exact = a.astype(np.float64) @ b
            np.testing.assert_allclose(one, exact, rtol=1e-3, atol=1e-3)
            np.testing.assert_allclose(two, exact, rtol=1e-3, atol=1e-3)
print("ok")
"""


def test_small_matmuls_are_bitwise_the_same_at_one_and_two_threads():
    """The CNN's Dense products: one single-threaded BLAS call, so --threads does not change
    them. In a process with a pool of exactly 2."""
    assert run_with_two_threads(_MATMUL_AT_1_AND_2).strip().endswith("ok")


# -- gradient checks with the kernels on and off ------------------------------------------


def _gradcheck_cases():
    def bn(training):
        layer = bn_pair(3, np.float64, training)[0]
        return layer, rng(24).normal(1.0, 2.0, (4, 3, 3, 2))

    return {
        "elu": lambda: (ELU(), rng(25).choice([-1.0, 1.0], (4, 6)) * rng(26).uniform(0.05, 2,
                                                                                   (4, 6))),
        "elu_alpha_0.5": lambda: (ELU(alpha=0.5),
                                  rng(27).choice([-1.0, 1.0], (3, 2, 2)) * rng(28).uniform(
                                      0.05, 2, (3, 2, 2))),
        "sigmoid": lambda: (Sigmoid(), rng(29).normal(0, 4, (4, 6))),
        "dense": lambda: (Dense(5, 4, dtype=np.float64, rng=rng(30)), rng(31).normal(0, 1, (3, 5))),
        "batchnorm_train": lambda: bn(True),
        "batchnorm_eval": lambda: bn(False),
    }


@SWITCH
@pytest.mark.parametrize("case", sorted(_gradcheck_cases()))
def test_gradcheck_with_kernels_on_and_off(case, use_kernels):
    layer, x = _gradcheck_cases()[case]()
    layer.use_kernels = use_kernels
    results = gradcheck_layer(layer, x)
    assert results
    for r in results:
        assert r.checked > 0 and r.max_error <= 1e-6 and r.passed, (case, r)


def test_float32_kernels_hold_no_float64_values():
    """numba types float32 · (python float) as float64: every constant must be cast. Compile an
    uncached copy of each kernel for float32 and look for float64 values in its typed IR
    (the float literals handed to np.float32(...) at compile time are the only ones allowed)."""
    import io

    E = elementwise
    f32 = np.float32
    v = np.ones(10, f32)
    v2 = v.reshape(2, 5)
    x3, planes, c, a = np.ones((2, 3, 4), f32), np.ones((2, 3), f32), np.ones(3, f32), f32(1)
    B = batchnorm
    cases = [
        (E._elu_forward_chunk, (v, a, v.copy())),
        (E._elu_backward_chunk, (v, v, a, v.copy())),
        (E._sigmoid_chunk, (v, v.copy())),
        (E._sigmoid_backward_chunk, (v, v, v.copy())),
        (E._sigmoid_squared_error_rows, (v2, v2, v2.copy(), v[:2].copy(), 0, 2)),
        (E._sigmoid_squared_error_grad_rows, (v2, v2, v[:2], v2.copy(), 0, 2)),
        (E._exp32, (a,)),
        (E._expm1_32, (a,)),
        (E._exp_parts32, (a,)),
        (B._plane_moments, (x3, planes, planes.copy())),
        (B._bn_normalize, (x3, c, c, c, x3.copy())),
        (B._bn_plane_grad_sums, (x3, x3, c, planes, planes.copy())),
        (B._bn_grad_input, (x3, x3, c, c, c, c, x3.copy())),
        (B._bn_grad_input_inplace, (x3, c, c, c, c, x3.copy())),
        (B._column_sums, (planes,)),
        (B._combine_moments, (planes, planes.copy(), a, a, a)),
        (B._grad_coefficients, (planes, planes.copy(), c, c, True, a)),
        (B._bn_elu_forward, (planes, c, c, c, a, planes.copy())),
        (B._bn_elu_forward_planes, (x3, c, c, c, a, x3.copy())),
        (B._bn_elu_grad_sums_planes, (x3, x3, c, c, c, a, x3.copy(), planes, planes.copy())),
        (B._elu_grad_of_normalized, (v, v, v, v, v, a, v.copy())),
        (B._bn_elu_grad_sums, (x3, x3, v[:12], v[:12], v[:12], a, x3.copy(), planes,
                               planes.copy())),
        (kernel_adam._adam_chunk, (v, v.copy(), v.copy(), v.copy(), *[a] * 8)),
    ]
    for kernel, args in cases:
        options = {k: w for k, w in kernel.targetoptions.items() if k not in ("cache", "nopython")}
        fresh = numba.njit(**options)(kernel.py_func)
        fresh(*args)
        typed = io.StringIO()
        fresh.inspect_types(file=typed)
        wide = [line.strip() for line in typed.getvalue().splitlines()
                if ":: float64" in line and "= const(float," not in line]
        assert not wide, f"{kernel.py_func.__name__}: {wide[:3]}"
