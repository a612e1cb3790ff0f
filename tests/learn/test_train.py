"""learn train: the replay passes with the package's layers in DIR and fails with a planted
mistake; the training run goes through the package's loop and leaves it as it was."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from numpyvae import nn
from numpyvae.cli.main import main
from numpyvae.learn.grader import record_status, run_check
from numpyvae.learn.steps import BY_NAME
from numpyvae.learn.train import PACKAGE_KIT, learner_kit, replay

from . import alternatives, differently
from .test_check import REFERENCE_FILES, REPO, _learn

MLP_STEPS = ("dense", "activations", "vae", "adam")


def _reference_dir(path):
    """DIR with the package's own layers in the learner's place, each checked (so "done")."""
    path.mkdir(exist_ok=True)
    for step in MLP_STEPS:
        (path / f"{step}.py").write_text(REFERENCE_FILES[step])
        assert run_check(step, path, echo=None, speed=False).passed
    return path


def _images(n=64):
    return np.random.default_rng(0).uniform(0, 1, (n, 1, 28, 28)).astype(np.float32)


def test_replay_passes_with_reference_layers(tmp_path):
    kit, owner = learner_kit(_reference_dir(tmp_path), "mlp")
    assert all(owner[k].startswith("yours") for k in ("Dense", "ELU", "Reparameterize", "Adam"))
    lines = []
    assert replay(kit, "mlp", _images(), steps=3, batch_size=32, lr=2.5e-3, echo=lines.append)
    assert "PASS" in lines[-1]


def test_replay_fails_with_a_planted_mistake(tmp_path):
    _reference_dir(tmp_path)
    (tmp_path / "dense.py").write_text("from tests.learn.planted import OnePercentDense as Dense\n")
    record_status(BY_NAME["dense"], tmp_path, "done")  # as if its check had been fooled
    kit, _ = learner_kit(tmp_path, "mlp")
    lines = []
    assert not replay(kit, "mlp", _images(), steps=3, batch_size=32, lr=2.5e-3,
                      echo=lines.append)
    assert "FAIL: first off at step 1" in lines[-1]


def test_only_done_steps_are_used(tmp_path):
    (tmp_path / "dense.py").write_text(REFERENCE_FILES["dense"])  # never checked
    _, owner = learner_kit(tmp_path, "mlp")
    assert owner["Dense"] == "package"


def test_train_command_runs_the_package_loop(tmp_path, shared_datasets):
    """Replay, then one short epoch through numpyvae.training.train with the learner's Adam
    (which has no checkpoint methods of its own)."""
    _reference_dir(tmp_path)
    (tmp_path / "adam.py").write_text("from tests.learn.planted import PlainAdam as Adam\n")
    assert run_check("adam", tmp_path, echo=None, speed=False).passed
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "numpyvae", "learn", "train", "--dir",
                        str(tmp_path), "--epochs", "1", "--train-subset", "512",
                        "--replay-steps", "2", "--out", str(out),
                        "--data-dir", str(shared_datasets)],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Adam             yours" in r.stdout and "PASS: your model trains" in r.stdout
    final = json.loads((out / "final.json").read_text())
    assert np.isfinite(final["test"]["loss"])
    assert (out / "samples.png").is_file() and (out / "latent_health.png").is_file()
    # the package's run on the same seed, for information: its loss printed beside yours
    assert "the package's" in r.stdout and (tmp_path / "run-package" / "final.json").is_file()


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_builder_matches_the_package_architecture(arch):
    """The learner's model has the package's arrays, name for name and shape for shape."""
    from numpyvae.learn.train import PACKAGE_KIT, build
    from numpyvae.training.train import TrainConfig, build_model

    ours = build(PACKAGE_KIT, arch).named_arrays()
    theirs = build_model(TrainConfig(arch=arch)).named_arrays()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


# -- the CNN capstone: correct layers written differently pass, a 1% mistake fails -----------
def _numpy_form(cls):
    return type(cls.__name__, (cls,), {"use_kernels": False})


NUMPY_KIT = {k: _numpy_form(v) if hasattr(v, "use_kernels") else v
             for k, v in PACKAGE_KIT.items()}
ALTERNATIVES = {"four-loop Conv2d": ("Conv2d", alternatives.LoopConv2d),
                "im2col Conv2d": ("Conv2d", alternatives.Im2colConv2d),
                "ConvTranspose2d on a Conv2d": ("ConvTranspose2d",
                                                alternatives.ConvTransposeOnConv2d),
                "staged BatchNorm2d": ("BatchNorm2d", alternatives.StagedBatchNorm2d),
                "ConvTranspose2d by zero-stuffing": ("ConvTranspose2d",
                                                     differently.ZeroStuffConvTranspose2d)}


def _replay(kit, arch, steps=2, batch_size=8):
    lines = []
    ok = replay(kit, arch, _images(), steps=steps, batch_size=batch_size, lr=2.5e-3,
                echo=lines.append)
    return ok, "\n".join(lines)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_replay_passes_with_the_package_numpy_forms(arch):
    """use_kernels = False on every layer: other sums in another order, the same maths. The
    CNN's conv biases feed BatchNorm, so their true gradient is 0 and both sides hold noise."""
    ok, text = _replay(NUMPY_KIT, arch)
    assert ok and "PASS" in text, text


@pytest.mark.parametrize("style", list(ALTERNATIVES))
def test_cnn_replay_passes_with_correct_alternatives(style):
    name, cls = ALTERNATIVES[style]
    batch = 4 if "loop" in style else 8  # the loops are slow: a smaller batch
    ok, text = _replay(dict(PACKAGE_KIT, **{name: cls}), "cnn", batch_size=batch)
    assert ok and "PASS" in text, text


@pytest.mark.parametrize("where", ["dx", "dW"])
@pytest.mark.parametrize("style", list(ALTERNATIVES))
def test_cnn_replay_fails_with_a_one_percent_mistake(style, where):
    name, cls = ALTERNATIVES[style]
    batch = 4 if "loop" in style else 8
    ok, text = _replay(dict(PACKAGE_KIT, **{name: alternatives.planted(cls, where)}), "cnn",
                       steps=1, batch_size=batch)
    assert not ok and "FAIL: first off at step 1" in text, text


@pytest.mark.parametrize("where", ["dx", "dW"])
def test_replay_fails_with_a_tenth_of_a_percent_mistake(where):
    """A Dense 0.1% off shows at 1e-3 of its layer's gradients, far above the tolerance."""
    kit = dict(PACKAGE_KIT, Dense=alternatives.planted(nn.Dense, where, 1.001))
    ok, text = _replay(kit, "mlp", steps=1, batch_size=32)
    assert not ok and "FAIL: first off at step 1" in text, text


def test_cnn_capstone_from_the_command_line(tmp_path, shared_datasets):
    """DIR holds an im2col Conv2d, a ConvTranspose2d on a Conv2d and a staged BatchNorm2d,
    each checked: `learn train --arch cnn --replay-only` passes at its default replay."""
    files = {"conv2d": "Im2colConv2d as Conv2d", "conv_transpose2d":
             "ConvTransposeOnConv2d as ConvTranspose2d", "batchnorm2d":
             "StagedBatchNorm2d as BatchNorm2d"}
    for step, what in files.items():
        (tmp_path / f"{step}.py").write_text(f"from tests.learn.alternatives import {what}\n")
        assert run_check(step, tmp_path, echo=None, speed=False).passed
    r = _learn("train", "--dir", str(tmp_path), "--arch", "cnn", "--replay-only",
               "--data-dir", str(shared_datasets))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "replay: 5 steps of batch 16" in r.stdout and "PASS: your model trains" in r.stdout
    assert "Conv2d           yours" in r.stdout and "BatchNorm2d      yours" in r.stdout


@pytest.mark.parametrize("option", [("--replay-steps", "0"), ("--replay-steps", "-1"),
                                    ("--epochs", "0"), ("--train-subset", "0")])
def test_train_refuses_counts_below_one(tmp_path, option, capsys):
    with pytest.raises(SystemExit) as e:
        main(["learn", "train", "--dir", str(tmp_path), *option])
    assert e.value.code == 2
    assert f"argument {option[0]}: must be >= 1, got {option[1]}" in capsys.readouterr().err


def test_nothing_of_yours_to_replay(tmp_path, shared_datasets):
    (tmp_path / "dense.py").write_text(REFERENCE_FILES["dense"])  # never checked: not done
    r = _learn("train", "--dir", str(tmp_path), "--replay-only",
               "--data-dir", str(shared_datasets))
    assert r.returncode == 1
    assert "nothing of yours to replay" in r.stdout and "PASS" not in r.stdout, r.stdout


class _ExitingDense(nn.Dense):
    """A learner's Dense that ends the process from backward, as if to say "done": in the
    float64 replay, or only in the float32 training that follows a passed replay."""

    exit_in = (np.float64, np.float32)

    def backward(self, dy):
        if dy.dtype in self.exit_in:
            sys.exit(0)
        return super().backward(dy)


class _ExitingInTrainingDense(_ExitingDense):
    exit_in = (np.float32,)


@pytest.mark.parametrize("layer, during", [("_ExitingDense", "the replay"),
                                           ("_ExitingInTrainingDense", "training")])
def test_a_sys_exit_in_the_learners_code_is_a_fail_not_exit_0(tmp_path, shared_datasets,
                                                               capsys, layer, during):
    """learn train runs their layers in its own process: sys.exit(0) inside their backward
    ended it with exit 0 and no verdict. It is a FAIL (exit 1) naming the exit."""
    _reference_dir(tmp_path)
    (tmp_path / "dense.py").write_text(f"from tests.learn.test_train import {layer} as Dense\n")
    record_status(BY_NAME["dense"], tmp_path, "done")  # as if its check had been fooled
    assert main(["learn", "train", "--dir", str(tmp_path), "--epochs", "1", "--train-subset",
                 "256", "--replay-steps", "1", "--data-dir", str(shared_datasets),
                 "--out", str(tmp_path / "run"), "--no-compare"]) == 1
    assert f"FAIL: your code called sys.exit(0) during {during}" in capsys.readouterr().err
