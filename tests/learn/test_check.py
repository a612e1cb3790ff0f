"""learn check: the package's own layers pass every step; each planted mistake fails with its
hint; errors are clear (unfilled stub, a learner's exception, a missing file)."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from numpyvae import nn
from numpyvae.cli.main import main
from numpyvae.learn import check, hints
from numpyvae.learn.command import stub_text
from numpyvae.learn.grader import run_check
from numpyvae.learn.steps import STEPS
from numpyvae.nn import Reparameterize
from numpyvae.nn.adam import Adam

from . import alternatives, planted

REFERENCE = {
    "gradcheck": planted.central_differences,
    "dense": nn.Dense,
    "activations": {"ELU": nn.ELU, "Softplus": nn.Softplus, "Sigmoid": nn.Sigmoid},
    "conv2d": nn.Conv2d,
    "conv_transpose2d": nn.ConvTranspose2d,
    "batchnorm2d": nn.BatchNorm2d,
    "vae": Reparameterize,
    "adam": Adam,
}
# what a DIR/STEP.py holding the package's own code says
REFERENCE_FILES = {
    "gradcheck": "from tests.learn.planted import central_differences as numerical_gradient\n",
    "dense": "from numpyvae.nn import Dense\n",
    "activations": "from numpyvae.nn import ELU, Sigmoid, Softplus\n",
    "conv2d": "from numpyvae.nn import Conv2d\n",
    "conv_transpose2d": "from numpyvae.nn import ConvTranspose2d\n",
    "batchnorm2d": "from numpyvae.nn import BatchNorm2d\n",
    "vae": "from numpyvae.nn import Reparameterize\n",
    "adam": "from numpyvae.nn.adam import Adam\n",
}
REPO = Path(__file__).resolve().parents[2]


def _check(step, obj):
    return check(step, obj, echo=False, speed=False, seed=0)


def _learn(*args, cwd=None):
    """``python -m numpyvae learn ARGS`` in this process (numba stays warm); the one test
    that needs a real process is test_reference_files_pass_from_the_command_line."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["learn", *args])
    return types.SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())


def _learn_process(*args, cwd):
    return subprocess.run([sys.executable, "-m", "numpyvae", "learn", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("step", [s.name for s in STEPS])
def test_reference_passes_every_step(step):
    result = _check(step, REFERENCE[step])
    assert result.passed, result.text
    assert result.lines and not result.hints


def test_reference_files_pass_from_the_command_line(tmp_path):
    """Through the CLI, with DIR/STEP.py files, exit 0; the listing then says done."""
    for step in ("dense", "vae"):
        (tmp_path / f"{step}.py").write_text(REFERENCE_FILES[step])
        r = _learn_process("check", step, "--dir", str(tmp_path), cwd=REPO)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "PASS: all" in r.stdout and "speed, for information" in r.stdout
    r = _learn("--dir", str(tmp_path), cwd=REPO)
    assert r.returncode == 0
    lines = {line.split()[1]: line for line in r.stdout.splitlines() if line[:4].strip()
             .rstrip(".").isdigit()}
    assert "[done]" in lines["dense"] and "[not started]" in lines["adam"], r.stdout


def test_fresh_stubs_fail_every_step_without_traceback(tmp_path):
    """Through the command line (a child process each) for two steps, the rest in process."""
    for step in STEPS:
        r = _learn("start", step.name, "--dir", str(tmp_path), cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        if step.name in ("dense", "vae"):
            r = _learn("check", step.name, "--dir", str(tmp_path), cwd=tmp_path)
            assert r.returncode == 1
            text = r.stdout + r.stderr
        else:
            result = run_check(step.name, tmp_path, echo=None)
            assert not result.passed
            text = result.text
        assert f"not implemented yet: write {step.todo} in {tmp_path / step.name}.py" in text
        assert "Traceback" not in text


def test_stubs_hold_no_answer():
    """The stubs raise NotImplementedError in every body the learner writes."""
    for step in STEPS:
        text = stub_text(step.name)
        assert text.count("raise NotImplementedError") >= max(1, 2 * len(step.defines) - (
            1 if step.name in ("gradcheck", "adam") else 0)), step.name


def test_start_refuses_to_overwrite(tmp_path):
    (tmp_path / "dense.py").write_text("# mine\n")
    r = _learn("start", "dense", "--dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1
    assert "nothing was overwritten" in r.stderr
    assert (tmp_path / "dense.py").read_text() == "# mine\n"


@pytest.mark.parametrize("fault", [errno.ENOSPC, errno.EROFS])
def test_start_on_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch, fault):
    """Once it left DIR/.dense.py.tmp behind (issue 23)."""
    from pathlib import Path

    real = Path.write_text

    def half_written(self, text, *a, **kw):
        real(self, text[:10], *a, **kw)
        raise OSError(fault, os.strerror(fault))

    monkeypatch.setattr(Path, "write_text", half_written)
    r = _learn("start", "dense", "--dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and os.strerror(fault) in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_file_names_the_start_command(tmp_path):
    r = _learn("check", "conv2d", "--dir", str(tmp_path / "mine"), cwd=tmp_path)
    assert r.returncode == 1
    assert f"python -m numpyvae learn start conv2d --dir {tmp_path / 'mine'}" in r.stdout


def test_exception_in_backward_shows_the_learners_line():
    result = _check("dense", planted.RaisingDense)
    assert not result.passed
    assert "planted.py" in result.problem and "THE LEARNER'S LINE" in result.problem
    assert "grader.py" not in result.problem and "gradcheck.py" not in result.problem


def test_exception_in_a_file_shows_its_line(tmp_path):
    (tmp_path / "dense.py").write_text(
        "from numpyvae.nn import Dense as _D\n\n\nclass Dense(_D):\n"
        "    def backward(self, dout):\n        return 1 / 0  # oops\n")
    r = _learn("check", "dense", "--dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1
    assert f'File "{tmp_path / "dense.py"}", line 6, in backward' in r.stdout
    assert "ZeroDivisionError" in r.stdout and "grader.py" not in r.stdout


def _hint_of(result):
    assert not result.passed, result.text
    return "\n".join(result.hints)


def test_gradcheck_flags_a_planted_dense():
    """The grader's own negative control: a 1% Dense backward fails gradcheck_layer."""
    layer = planted.OnePercentDense(4, 3, dtype="float64")
    import numpy as np

    from numpyvae.nn.gradcheck import gradcheck_layer

    res = gradcheck_layer(layer, np.random.default_rng(0).standard_normal((2, 4)))
    assert not all(r.passed for r in res)


def test_hint_one_sided_difference():
    assert hints.ONE_SIDED in _hint_of(_check("gradcheck", planted.one_sided))


def test_hint_x_not_restored():
    assert hints.NOT_RESTORED in _hint_of(_check("gradcheck", planted.not_restored))


def test_hint_transposed_weight_gradient():
    result = _check("dense", planted.TransposedDense)
    assert "looks transposed" in _hint_of(result)
    assert "planted: the factors in the wrong order" in result.problem  # then their line


def test_hint_bias_averaged():
    hint = _hint_of(_check("dense", planted.AveragedBiasDense))
    assert "dbias is the reference's divided by" in hint and "averaged" in hint


def test_hint_batchnorm_eval_form_in_training():
    result = _check("batchnorm2d", planted.EvalFormBatchNorm)
    assert "right in eval mode but wrong in training" in _hint_of(result)
    assert all(x.passed for x in result.lines if "eval" in x.label)


def test_hint_border():
    assert "wrong within 2 pixel(s) of the border" in _hint_of(_check("conv2d",
                                                                      planted.BorderConv2d))


def test_hint_stride_in_forward_not_backward():
    assert "right with stride 1 but wrong with stride 2" in _hint_of(
        _check("conv2d", planted.StrideForgottenConv2d))


def test_hint_output_padding():
    assert "right with output_padding=0 but wrong with output_padding=1" in _hint_of(
        _check("conv_transpose2d", planted.OutputPaddingConvTranspose2d))


def test_hint_kl_half_in_backward_and_forward():
    assert "the ½ in front of KL" in _hint_of(_check("vae", planted.NoHalfKL))
    assert "the ½ in front of KL" in _hint_of(_check("vae", planted.NoHalfKLForward))


def test_hint_sqrt_derivative():
    assert "1/(2√v)" in _hint_of(_check("vae", planted.SqrtDerivative))


def test_hint_adam_without_bias_correction():
    assert hints.ADAM_NO_CORRECTION in _hint_of(_check("adam", planted.NoBiasCorrectionAdam))


def test_hints_never_give_the_answer():
    """No hint carries a formula for the gradient it is about."""
    texts = [getattr(hints, k) for k in dir(hints) if k.isupper() and isinstance(
        getattr(hints, k), str)]
    for bad in ("Xᵀ", "x.T", "dout.sum", "@", "np."):
        assert not any(bad in t for t in texts), bad


def test_a_later_step_imports_an_earlier_one(tmp_path):
    """DIR is on sys.path while a step loads: conv_transpose2d.py may use the learner's conv2d."""
    (tmp_path / "conv2d.py").write_text("from numpyvae.nn import Conv2d\nMINE = True\n")
    (tmp_path / "conv_transpose2d.py").write_text(
        "import conv2d\n\nfrom numpyvae.nn import ConvTranspose2d\n\nassert conv2d.MINE\n")
    from numpyvae.learn.loading import load_module
    from numpyvae.learn.steps import BY_NAME

    module = load_module(BY_NAME["conv_transpose2d"], tmp_path)
    assert module.ConvTranspose2d is nn.ConvTranspose2d
    assert str(tmp_path) not in sys.path


def test_a_forward_a_ten_thousandth_off_fails():
    """The forward tolerance sits far below any real mistake: 1e-4 of the output fails."""
    class Off(nn.Dense):
        def forward(self, x):
            return super().forward(x) * (1 + 1e-4)

    result = _check("dense", Off)
    assert not result.passed
    assert any(not x.passed and "forward" in x.label for x in result.lines), result.text


# -- no exit of the learner's is a verdict ----------------------------------------------------
@pytest.mark.parametrize("how, where", [("sys.exit(0)", "at import"), ("sys.exit(0)", "in forward"),
                                        ("os._exit(0)", "at import"), ("os._exit(0)", "in forward"),
                                        ("os.kill(os.getpid(), 9)", "in forward")])
def test_an_exit_in_the_learners_code_is_a_fail(tmp_path, how, where):
    body = "import os\nimport sys\n\nfrom numpyvae.nn import Dense as _D\n\n"
    body += (f"{how}\n" if where == "at import" else
             f"\nclass Dense(_D):\n    def forward(self, x):\n        {how}\n")
    (tmp_path / "dense.py").write_text(body)
    r = _learn("check", "dense", "--dir", str(tmp_path), "--no-speed", cwd=REPO)
    assert r.returncode == 1, r.stdout
    assert "PASS" not in r.stdout and "FAIL: dense" in r.stdout, r.stdout
    said = ("called sys.exit(0)" if how.startswith("sys") else "was killed by SIGKILL"
            if "kill" in how else "exited with code 0 before the check finished")
    assert said in r.stdout, r.stdout
    assert "[failing]" in _learn("--dir", str(tmp_path)).stdout


def test_sys_exit_through_the_python_api_is_a_fail():
    result = _check("dense", planted.ExitingDense)
    assert not result.passed and "called sys.exit(0)" in result.problem
    assert "planted: the learner's code ends the process" in result.problem


# -- wrong code that passed: dtype slips and overflow in backward ------------------------------
def test_a_conv2d_that_returns_float64_fails_naming_the_dtype():
    hint = _hint_of(_check("conv2d", planted.Float64Conv2d))
    assert "forward returned float64 for a float32 input" in hint


def test_a_dense_whose_dx_is_float32_fails_naming_the_dtype():
    hint = _hint_of(_check("dense", planted.Float32DxDense))
    assert "backward returned float32 for a float64 input" in hint


def test_a_numerical_gradient_in_float32_fails_naming_the_dtype():
    hint = _hint_of(_check("gradcheck", planted.float32_gradient))
    assert "numerical_gradient returned float32 for a float64 input" in hint


def test_overflow_in_softplus_backward_fails():
    result = _check("activations", {"ELU": nn.ELU, "Softplus": planted.OverflowingSoftplus,
                                    "Sigmoid": nn.Sigmoid})
    assert "backward: overflow encountered in exp" in _hint_of(result)
    assert [x.label for x in result.failures] == ["Softplus(), x = ±1000, ±30  forward and "
                                                  "backward"]


def test_a_naive_softplus_in_the_vae_step_fails():
    assert "overflow encountered in exp" in _hint_of(_check("vae",
                                                            planted.NaiveSoftplusReparameterize))


@pytest.mark.parametrize("step,cls", [("conv2d", alternatives.LoopConv2d),
                                      ("conv2d", alternatives.Im2colConv2d),
                                      ("conv_transpose2d", alternatives.ConvTransposeOnConv2d),
                                      ("batchnorm2d", alternatives.StagedBatchNorm2d),
                                      ("adam", planted.PlainAdam)])
def test_correct_layers_written_differently_pass_in_float64_and_float32(step, cls):
    result = _check(step, cls)
    assert result.passed, result.text
    assert any("float32" in x.label for x in result.lines)


# -- hints that pointed the wrong way, and the map of where -----------------------------------
def _failed(result, tensor):
    return [x for x in result.failures if x.label.endswith(f"  {tensor}")]


def test_elu_without_alpha_is_wrong_only_where_x_is_negative():
    result = _check("activations", {"ELU": planted.ELUWithoutAlpha, "Softplus": nn.Softplus,
                                    "Sigmoid": nn.Sigmoid})
    hint = _hint_of(result)
    assert "dx is right where x > 0 but wrong where x < 0" in hint and "all over" not in hint
    line = _failed(result, "dx")[0]
    assert "x > 0: 0 of" in line.where, line.where


def test_an_elu_writing_into_x_is_named():
    result = _check("activations", {"ELU": planted.ELUInPlace, "Softplus": nn.Softplus,
                                    "Sigmoid": nn.Sigmoid})
    assert hints.MUTATED_X in _hint_of(result) and "all over" not in _hint_of(result)


def test_batchnorm_without_the_variance_path_says_so():
    result = _check("batchnorm2d", planted.NoVariancePathBatchNorm)
    hint = _hint_of(result)
    assert "not through the variance" in hint and "treats the batch mean" not in hint
    assert "_backward_numpy" not in hint
    assert all(x.passed for x in result.lines if ", eval," in x.label)


def test_dense_dx_transposed_names_the_weights_shape():
    hint = _hint_of(_check("dense", planted.TransposedDxDense))
    assert "which axis of the weight (shape (5, 3))" in hint, hint
    assert "(shape (4, 5))" not in hint


def test_a_flipped_kernel_is_named():
    assert "forward matches a true convolution" in _hint_of(
        _check("conv2d", planted.FlippedKernelConv2d))


def test_adam_in_the_papers_efficient_form_names_the_eps_convention():
    assert hints.ADAM_EFFICIENT_EPS in _hint_of(_check("adam", planted.EfficientFormAdam))


def test_the_summary_after_a_traceback_says_the_check_stopped():
    result = _check("dense", planted.RaisingDense)
    last = result.text.splitlines()[-1]
    assert last.startswith("FAIL: dense: the check stopped") and "0 of" not in last, last


def test_an_instance_for_a_class_gets_a_message():
    result = _check("dense", nn.Dense(3, 4))
    assert not result.passed
    assert "Dense should be the class, got an instance of Dense" in result.problem


def test_hints_name_no_package_file_but_the_contract():
    """A hint points to the derivation (the stub, the README), never to the package's answer;
    the package's file is named after a PASS."""
    import re

    texts = [getattr(hints, k) for k in dir(hints) if k.isupper() and isinstance(
        getattr(hints, k), str)] + [s.reading for s in STEPS]
    for t in texts:
        assert not re.search(r"numpyvae/nn/(?!layer\.py)", t), t
    assert "now compare yours with the package's, numpyvae/nn/dense.py" in _check(
        "dense", nn.Dense).text


def test_map_conv_border_is_a_picture():
    result = _check("conv2d", planted.BorderConv2d)
    where = _failed(result, "dx")[0].where
    assert where.splitlines()[1:] == ["    ######", "    ######", "    ##..##", "    ######",
                                      "    ######"], where
    assert "within 2 pixel(s) of the border" in _hint_of(result)


def test_map_conv_stride_shows_every_pixel_and_bias_by_channel():
    where = _failed(_check("conv2d", planted.StrideForgottenConv2d), "dx")[0].where
    assert "7 × 7 pixels" in where and "#######" in where
    result = _check("conv2d", planted.WrongBiasChannelConv2d)
    line = _failed(result, "dbias")[0]
    assert line.where.endswith("# . .") and "1 of 3 channels" in line.hint, line


def test_map_output_padding_rows():
    from numpyvae.learn.maps import gradient_map

    g = np.zeros((2, 3, 5, 5))
    r = np.zeros((2, 3, 5, 5))
    r[0, 1, -1, :] = 1.0  # the last row and column, where output_padding adds pixels
    r[1, 2, :, -1] = 1.0
    where = gradient_map("conv", "dx", g, r)
    assert where.lines[1:] == ["    ....#"] * 4 + ["    #####"], where.lines


def test_map_batchnorm_by_channel_and_mode():
    result = _check("batchnorm2d", planted.WrongChannelBatchNorm)
    lines = _failed(result, "dx")
    assert lines and all(". # ." in x.where and "in training mode" in x.where for x in lines[:1])
    assert "1 of 3 channels in training mode" in lines[0].hint


def test_map_dense_by_row_and_column():
    result = _check("dense", planted.WrongRowDense)
    line = _failed(result, "dweight")[0]
    assert line.where.splitlines()[1:] == ["    ....", "    ####", "    ....", "    ...."]
    assert "rows 1 only" in line.hint


def test_map_elementwise_by_sign():
    from numpyvae.learn.maps import gradient_map

    x = np.array([[-1.0, 2.0, -3.0, 4.0]])
    where = gradient_map("elementwise", "dx", np.array([[0.0, 2.0, 0.0, 4.0]]),
                         np.array([[1.0, 2.0, 1.0, 4.0]]), x)
    assert where.summary == "only where x < 0"
    assert "x < 0: 2 of 2 entries;  x > 0: 0 of 2 entries" in where.lines[0]


def test_random_configurations_come_from_the_printed_seed():
    a = check("conv2d", nn.Conv2d, echo=False, speed=False, seed=123)
    b = check("conv2d", nn.Conv2d, echo=False, speed=False, seed=123)
    assert "random configurations from seed 123" in a.text
    labels = [x.label for x in a.lines if x.label.startswith("random:")]
    assert labels and labels == [x.label for x in b.lines if x.label.startswith("random:")]


def test_map_output_padding_rows_of_forward():
    result = _check("conv_transpose2d", planted.OutputPaddingForwardConvTranspose2d)
    line = [x for x in result.failures if x.label.endswith("  forward")][0]
    rows = line.where.splitlines()[1:]
    assert rows[-1].strip() == "#" * len(rows[-1].strip()) and "#" not in "".join(rows[:-1])
    assert "only in the last output_padding rows" in line.hint


def test_readmes_failing_printout_is_what_learn_check_prints(tmp_path):
    """README's `learn check conv2d --seed 1 --no-speed` block, for a learn/conv2d.py whose
    backward drops the windows that overlap the padding, line for line up to its "…" (the
    errors' digits aside: they depend on the machine's arithmetic)."""
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("```\nlearn check conv2d (learn/conv2d.py)") + 4
    block = readme[start:readme.index("```", start)].rstrip("\n").splitlines()
    (tmp_path / "learn").mkdir()
    (tmp_path / "learn" / "conv2d.py").write_text(
        "from tests.learn.planted import BorderConv2d as Conv2d\n")
    out = run_check("conv2d", tmp_path / "learn", echo=None, speed=False, seed=1).text
    out = out.replace(str(tmp_path / "learn"), "learn").splitlines()

    def digits_aside(lines):
        return [re.sub(r"error \S+", "error …", line) for line in lines]

    cut = block.index("  …")
    assert digits_aside(out[:cut]) == digits_aside(block[:cut])
    assert out[-1] == block[-1]
