"""Every script in examples/ runs, in a shortened form, so the README's pointers stay true."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(args: list[str], env: dict | None = None, cwd: Path | None = None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=900, env=env, cwd=cwd)


def test_every_example_is_covered():
    assert {p.name for p in EXAMPLES.glob("*.py")} == {
        "train_mlp_mnist.py", "train_cnn_fashion.py", "gradcheck_your_layer.py",
        "conditional_mnist.py", "train_loop_by_hand.py"}


@pytest.mark.parametrize("script", ["train_mlp_mnist.py", "train_cnn_fashion.py"])
def test_training_example(script, shared_datasets, tmp_path):
    env = {**os.environ, "NUMPYVAE_DATA": str(shared_datasets)}
    out = tmp_path / "run"
    result = _run([str(EXAMPLES / script), "--epochs", "1", "--train-subset", "512",
                   "--out", str(out)], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "report:" in result.stdout
    assert (out / "final.json").is_file() and (out / "samples.png").is_file()


def test_gradcheck_your_layer_example():
    result = _run([str(EXAMPLES / "gradcheck_your_layer.py")])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("LeakyReLU") and line.endswith("PASS") for line in lines)
    assert any(line.startswith("BuggyTanh") and line.endswith("FAIL") for line in lines)
    assert "BuggyTanh should fail, and did." in result.stdout


def test_conditional_example(shared_datasets, tmp_path):
    env = {**os.environ, "NUMPYVAE_DATA": str(shared_datasets)}
    out = tmp_path / "run"
    result = _run([str(EXAMPLES / "conditional_mnist.py"), "--epochs", "1", "--train-subset",
                   "512", "--out", str(out)], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "class_grid.png").is_file() and "eight 7s" in result.stdout
    assert "log p(x | y) on 200 test images" in result.stdout


def test_train_loop_by_hand_is_the_package_vae(shared_datasets):
    """Four steps of the by-hand loop print the losses of the package's VAE (same init, same
    batches, same ε, same Adam): the script's forward and backward are the model's."""
    import numpy as np

    from numpyvae import data
    from numpyvae.models.architectures import build_mlp_vae
    from numpyvae.nn import Adam

    env = {**os.environ, "NUMPYVAE_DATA": str(shared_datasets)}
    result = _run([str(EXAMPLES / "train_loop_by_hand.py"), "4"], env=env)
    assert result.returncode == 0, result.stderr
    printed = [float(line.split()[-1]) for line in result.stdout.splitlines()]

    rng = np.random.default_rng(0)
    vae = build_mlp_vae(2, rng=rng)
    adam = Adam(vae.parameters(), lr=2.5e-3)
    x_train, _ = data.load("mnist", "train", shared_datasets)
    losses = []
    for _, idx in zip(range(4), data.batches(len(x_train), 256), strict=False):
        eps = rng.standard_normal((len(idx), 2), dtype=np.float32)
        losses.append(vae.forward(x_train[idx], eps).loss)
        vae.backward()
        adam.step()
    assert len(printed) == 4 and losses[3] < losses[0]
    np.testing.assert_allclose(printed, losses, atol=0.006)
