"""learn train: the replay passes with the package's layers in DIR and fails with a planted
mistake; the training run goes through the package's loop and leaves it as it was."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from numpyvae.learn.grader import record_status, run_check
from numpyvae.learn.steps import BY_NAME
from numpyvae.learn.train import learner_kit, replay

from .test_check import REFERENCE_FILES, REPO

MLP_STEPS = ("dense", "activations", "vae", "adam")


def _reference_dir(path):
    """DIR with the package's own layers in the learner's place, each checked (so "done")."""
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
