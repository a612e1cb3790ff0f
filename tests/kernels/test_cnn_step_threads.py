"""A whole CNN VAE training step (phase-split transposed convs, fused BatchNorm2d + ELU, Adam)
gives the same bits at 1 thread and at 2, in a process whose numba pool has 2 (it fails, never
skips, if 2 threads cannot run)."""

from tests.kernels.two_threads import run_with_two_threads

_STEPS = """
from numpyvae.kernels import set_threads
from numpyvae.models.architectures import build_vae
from numpyvae.nn.adam import Adam


def train(threads, batch):
    set_threads(threads)
    rng = np.random.default_rng(0)
    vae = build_vae("cnn", 2, rng=rng)
    adam = Adam(vae.parameters(), lr=1e-3)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    noise = np.random.default_rng(1)
    for _ in range(2):
        vae.forward(x, rng=noise)
        vae.backward()
        adam.step()
    return [p.copy() for p, _ in vae.parameters()] + [g.copy() for _, g in vae.parameters()]


for batch in (7, 33):  # chunks and samples that do not split evenly between 2 workers
    one, two = train(1, batch), train(2, batch)
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a, b), batch
print("ok")
"""


def test_cnn_training_steps_are_bitwise_the_same_at_one_and_two_threads():
    assert run_with_two_threads(_STEPS).strip().endswith("ok")
