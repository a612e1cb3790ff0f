"""encode, decode, sample and reconstruct keep nothing: run between a training forward and
its backward, they change neither the gradients nor BatchNorm's running statistics.

They go through ``infer`` (no cache, no buffer update) and the stateless functions; a
model whose encode called ``forward`` would overwrite the caches backward needs (and move
BN's running statistics), which the bitwise comparisons below catch.
"""

import numpy as np
import pytest

from numpyvae.models.architectures import build_cnn_vae, build_mlp_vae
from numpyvae.models.autoencoder import build_mlp_autoencoder


def _models():
    return {
        "mlp-vae": lambda: build_mlp_vae(2, hidden=(16, 8), rng=np.random.default_rng(0)),
        "cnn-vae": lambda: build_cnn_vae(2, rng=np.random.default_rng(0)),
        "mlp-ae": lambda: build_mlp_autoencoder(2, hidden=(16, 8), rng=np.random.default_rng(0)),
        "cvae-mlp": lambda: build_mlp_vae(2, hidden=(16, 8), rng=np.random.default_rng(0),
                                          num_classes=10),
    }


def _run(model, x, y, eps, between) -> dict[str, np.ndarray]:
    """forward → (between) → backward in training mode; every grad and buffer afterwards."""
    model.train()
    model.forward(x, eps, y=y)
    between(model)
    model.backward()
    out = {f"grad.{n}": g.copy() for n, _, g in model.named_parameters()}
    out.update({k: v.copy() for k, v in model.named_arrays().items() if ".buffer." in k})
    return out


def _inference_calls(model, x2, y2) -> None:
    """Every inference entry point, on another batch of another size."""
    model.encode(x2, y2)
    model.reconstruct(x2, y2)
    model.decode(np.zeros((3, model.latent_dim), np.float32), y2[:3] if y2 is not None else None)
    labels = None if y2 is None else 4
    model.sample(5, np.random.default_rng(9), labels=labels)


@pytest.mark.parametrize("name", list(_models()))
def test_inference_between_forward_and_backward_changes_nothing(name):
    r = np.random.default_rng(1)
    x = r.uniform(0, 1, (6, 1, 28, 28)).astype(np.float32)
    x2 = r.uniform(0, 1, (7, 1, 28, 28)).astype(np.float32)
    model = _models()[name]()
    y = r.integers(0, 10, 6) if model.conditional else None
    y2 = r.integers(0, 10, 7) if model.conditional else None
    eps = r.standard_normal((6, 2)).astype(np.float32)

    plain = _run(_models()[name](), x, y, eps, lambda m: None)
    interrupted = _run(model, x, y, eps, lambda m: _inference_calls(m, x2, y2))
    assert plain.keys() == interrupted.keys()
    if name == "cnn-vae":
        assert any(".buffer.running_mean" in k for k in plain)  # BN's statistics are compared
    for k in plain:
        np.testing.assert_array_equal(interrupted[k], plain[k], err_msg=k)


def test_the_comparison_catches_an_encode_that_runs_forward(monkeypatch):
    """Planted bug: encode through the encoder's forward. The CNN's gradients and its
    BatchNorm running statistics must then differ."""
    r = np.random.default_rng(1)
    x = r.uniform(0, 1, (6, 1, 28, 28)).astype(np.float32)
    x2 = r.uniform(0, 1, (7, 1, 28, 28)).astype(np.float32)
    eps = r.standard_normal((6, 2)).astype(np.float32)
    plain = _run(build_cnn_vae(2, rng=np.random.default_rng(0)), x, None, eps, lambda m: None)

    model = build_cnn_vae(2, rng=np.random.default_rng(0))
    monkeypatch.setattr(model.encoder, "infer", model.encoder.forward)
    with pytest.raises(ValueError):  # the encoder's caches now hold the other batch of 7
        _run(model, x, None, eps, lambda m: m.encode(x2))

    model = build_cnn_vae(2, rng=np.random.default_rng(0))
    monkeypatch.setattr(model.encoder, "infer", model.encoder.forward)
    broken = _run(model, x, None, eps, lambda m: m.encode(x[::-1].copy()))
    differs = [k for k in plain if not np.array_equal(plain[k], broken[k])]
    assert any(k.startswith("grad.encoder") for k in differs), differs
    assert any("running_mean" in k for k in differs), differs
