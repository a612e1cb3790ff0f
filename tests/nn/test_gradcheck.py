"""The gradient check itself: planted bugs fail it loudly, and the report's exit code is honest."""

import subprocess
import sys

import numpy as np
import pytest

from numpyvae.cli.gradcheck_report import run_report
from numpyvae.nn import ELU, BatchNorm2d, Dense, Reshape, Sequential
from numpyvae.nn.gradcheck import gradcheck_layer
from numpyvae.nn.gradcheck_cases import signed_away_from_zero
from tests.nn.layer_helpers import bn_with_running_stats, rng

F64 = np.float64


# -- negative controls: a backward 1% off must fail far above the 1e-6 tolerance -------------


class DenseOffInWeight(Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["weight"][...] *= 1.01
        return dx


class DenseOffInInput(Dense):
    def backward(self, dout):
        return 1.01 * super().backward(dout)


class DenseOffInOneBias(Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["bias"][0] *= 1.01
        return dx


class BatchNormWithoutMeanTerm(BatchNorm2d):
    """The classic mistake: forget that μ depends on x (drop the −Σdy term)."""

    def backward(self, dout):
        x_hat, inv_std, _ = self._saved()
        dx = super().backward(dout)
        gamma = self.params["weight"].reshape(1, -1, 1, 1)
        m = dout.shape[0] * dout.shape[2] * dout.shape[3]
        return dx + (gamma * inv_std.reshape(1, -1, 1, 1) / m) * dout.sum(axis=(0, 2, 3),
                                                                          keepdims=True)


@pytest.mark.parametrize(
    "broken, bad_tensor",
    [
        (lambda: DenseOffInWeight(5, 4, dtype=F64, rng=np.random.default_rng(0)), "weight"),
        (lambda: DenseOffInInput(5, 4, dtype=F64, rng=np.random.default_rng(0)), "input"),
        (lambda: DenseOffInOneBias(5, 4, dtype=F64, rng=np.random.default_rng(0)), "bias"),
    ],
)
def test_negative_control_dense_one_percent_off_fails_loudly(broken, bad_tensor):
    x = np.random.default_rng(1).standard_normal((3, 5))
    results = {r.name: r for r in gradcheck_layer(broken(), x)}
    assert not results[bad_tensor].passed
    assert results[bad_tensor].max_error > 1e-3, results[bad_tensor]
    for name, r in results.items():  # the untouched gradients still pass: the check is specific
        if name != bad_tensor:
            assert r.passed, r


def test_negative_control_batchnorm_missing_mean_term_fails():
    bn = BatchNormWithoutMeanTerm(3, dtype=F64)
    x = np.random.default_rng(2).normal(0.5, 2.0, (4, 3, 2, 2))
    results = {r.name: r for r in gradcheck_layer(bn, x)}
    assert results["input"].max_error > 1e-3, results["input"]


def test_negative_control_inside_sequential_fails():
    rng = np.random.default_rng(0)
    model = Sequential(Dense(4, 5, dtype=F64, rng=rng), ELU(),
                       DenseOffInWeight(5, 2, dtype=F64, rng=rng))
    x = np.random.default_rng(1).standard_normal((3, 4))
    results = {r.name: r for r in gradcheck_layer(model, x)}
    assert results["2.weight"].max_error > 1e-3
    assert results["0.weight"].passed and results["input"].passed


def test_correct_dense_passes_at_same_inputs():
    """The positive twin of the negative controls: same layer, same inputs, correct backward."""
    x = np.random.default_rng(1).standard_normal((3, 5))
    results = gradcheck_layer(Dense(5, 4, dtype=F64, rng=np.random.default_rng(0)), x)
    assert all(r.max_error <= 1e-6 for r in results), results


# -- the report ------------------------------------------------------------------------------


def test_report_all_layers_pass(capsys):
    code = run_report([])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in ("Dense", "BatchNorm2d", "ELU", "Softplus", "Sigmoid", "Flatten", "Reshape",
                 "Conv2d", "ConvTranspose2d", "Sequential", "Reparameterize", "VAE",
                 "Autoencoder"):
        assert f"\n{name} " in out, f"{name} missing from the table"
    for config in ("train,", "eval (running stats)", "k3 s2 p1", "op1"):
        assert config in out
    assert "FAIL" not in out and "ERROR" not in out
    assert out.rstrip().splitlines()[-1].startswith("PASS: all ")


def test_report_fails_on_planted_bug(capsys, monkeypatch):
    correct = ELU.backward
    monkeypatch.setattr(ELU, "backward", lambda self, dout: 1.01 * correct(self, dout))
    code = run_report(["--layer", "elu"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "FAIL" in out and "FAILED: 2 of 2 checks" in out


def test_report_counts_a_crashing_layer_as_failure(capsys, monkeypatch):
    def broken(self, dout):
        raise ArithmeticError("planted")

    monkeypatch.setattr(BatchNorm2d, "backward", broken)
    code = run_report(["--layer", "BatchNorm2d", "--layer", "Dense"])
    out = capsys.readouterr().out
    assert code == 1
    assert "ERROR" in out and "ArithmeticError: planted" in out
    assert "Dense" in out and "PASS" in out  # the other layer still ran


def test_report_rejects_unknown_layer(capsys):
    assert run_report(["--layer", "Conv3d"]) == 2
    assert "unknown layer conv3d" in capsys.readouterr().err


def test_report_help(capsys):
    with pytest.raises(SystemExit) as e:
        run_report(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--layer" in out and "--seed" in out and "Exit status" in out


def test_python_m_numpyvae_gradcheck_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "numpyvae.gradcheck", "--layer", "Dense", "--layer", "Softplus"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "max error" in proc.stdout and "PASS: all 9 gradients" in proc.stdout


# -- the error floor ---------------------------------------------------------------------------


def test_conv_bias_before_batchnorm_exact_zero_gradient_passes():
    """A conv bias adds the same constant to a whole channel; training-mode BatchNorm subtracts
    the channel mean, so the bias cannot change the output. Its analytic gradient is ~0 and its
    finite difference is rounding noise; the 1e-3·S floor must turn that into a pass."""
    from numpyvae.nn import Conv2d

    rng = np.random.default_rng(0)
    model = Sequential(Conv2d(2, 3, 3, padding=1, dtype=F64, rng=rng),
                       BatchNorm2d(3, dtype=F64)).train()
    x = rng.standard_normal((2, 2, 4, 4))
    results = {r.name: r for r in gradcheck_layer(model, x)}
    assert all(r.passed for r in results.values()), results
    weight_grad, bias_grad = model[0].grads["weight"], model[0].grads["bias"]
    assert np.abs(bias_grad).max() <= 1e-12 * np.abs(weight_grad).max()


# -- the checker on layers: exact-zero gradients, buffers left as they were ----------------


def test_elu_gradcheck_inputs_straddle_zero():
    x = signed_away_from_zero(np.random.default_rng(0), (4, 6))
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
