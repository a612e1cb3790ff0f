"""Figures: each writes a valid PNG atomically, with the fixed names a run folder uses.

A small untrained float32 MLP VAE and random images are enough: these tests
check the plumbing (files, names, shapes, modes, batching, determinism), not
what a trained model draws.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from numpyvae.figures import plots, run_figures
from numpyvae.models.architectures import build_mlp_vae

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_IMAGES = 40  # four of each class


def make_vae(latent_dim: int, dtype=np.float32):
    return build_mlp_vae(latent_dim, hidden=(16, 8), dtype=dtype, rng=np.random.default_rng(0))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = rng.random((N_IMAGES, 1, 28, 28), dtype=np.float32)
    y = np.arange(N_IMAGES) % 10
    return x, y


def history(epochs: int) -> list[dict]:
    def losses(base: float) -> dict:
        return {"loss": base + 10.0, "recon": base, "kl": 10.0}

    return [
        {"epoch": e, "train": losses(300.0 - e), "test100": losses(305.0 - e), "seconds": 1.0,
         "images_per_s": 1000.0}
        for e in range(1, epochs + 1)
    ]


def read_png(path) -> tuple[int, int]:
    """Check the file is a PNG that matplotlib reads back; return its (height, width)."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
    pixels = imread(path)
    assert pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))
    assert min(pixels.shape[:2]) > 50
    return pixels.shape[:2]


def assert_only(folder, names) -> None:
    """The folder holds exactly these files: no temporary file left behind."""
    assert sorted(os.listdir(folder)) == sorted(names)


# -- each figure ---------------------------------------------------------------
def test_save_samples_writes_a_png_of_the_figure_size(tmp_path):
    path = plots.save_samples(make_vae(2), tmp_path / "samples.png", n=100, seed=0)
    assert path == tmp_path / "samples.png"
    # 6 x 6.5 inches at 100 dpi, a 10 x 10 grid
    assert read_png(path) == (650, 600)
    assert_only(tmp_path, ["samples.png"])


def test_grey_figures_are_stored_grey_and_coloured_ones_in_colour(tmp_path, data):
    x, y = data
    vae = make_vae(2)
    grey = plots.save_samples(vae, tmp_path / "samples.png", n=16)
    colour = plots.save_latent_scatter(vae, x, y, tmp_path / "scatter.png")
    assert imread(grey).ndim == 2
    pixels = imread(colour)
    assert pixels.ndim == 3 and np.any(pixels[..., 0] != pixels[..., 1])


def test_save_samples_is_deterministic_in_its_seed(tmp_path):
    vae = make_vae(2)
    a = plots.save_samples(vae, tmp_path / "a.png", n=16, seed=3).read_bytes()
    b = plots.save_samples(vae, tmp_path / "b.png", n=16, seed=3).read_bytes()
    c = plots.save_samples(vae, tmp_path / "c.png", n=16, seed=4).read_bytes()
    assert a == b
    assert a != c


def test_save_reconstructions(tmp_path, data):
    x, _ = data
    path = plots.save_reconstructions(make_vae(3), x, tmp_path / "r.png", n=10)
    height, width = read_png(path)
    assert width > 2 * height  # two rows of ten
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        plots.save_reconstructions(make_vae(3), x[:, 0], tmp_path / "bad.png")


def test_save_curves_of_one_epoch(tmp_path):
    path = plots.save_curves(history(1), tmp_path / "curves.png")
    assert read_png(path) == (420, 1000)


def test_save_curves_rejects_an_empty_history(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plots.save_curves([], tmp_path / "curves.png")
    assert_only(tmp_path, [])


def test_save_interpolation_accepts_one_image_either_shape(tmp_path, data):
    x, _ = data
    vae = make_vae(2)
    path = plots.save_interpolation(vae, x[0], x[1:2], tmp_path / "i.png", steps=10)
    height, width = read_png(path)
    assert width > 5 * height  # one row: A, ten steps, B
    with pytest.raises(ValueError, match="one image"):
        plots.save_interpolation(vae, x[:2], x[2], tmp_path / "bad.png")


def test_save_manifold_for_z2(tmp_path):
    path = plots.save_manifold(make_vae(2), tmp_path / "m.png", n=20)
    assert read_png(path) == (740, 700)


@pytest.mark.parametrize("latent_dim", [1, 3, 5])
def test_save_manifold_rejects_other_latent_dims(tmp_path, latent_dim):
    with pytest.raises(ValueError, match="latent_dim = 2"):
        plots.save_manifold(make_vae(latent_dim), tmp_path / "m.png")
    assert_only(tmp_path, [])


def test_latent_scatter_rejects_mismatched_labels(tmp_path, data):
    x, y = data
    with pytest.raises(ValueError, match="labels"):
        plots.save_latent_scatter(make_vae(2), x, y[:-1], tmp_path / "s.png")
    assert_only(tmp_path, [])


# -- make_figures: the names a run folder holds (and every figure for z = 1, 2, 5) --
@pytest.mark.parametrize(
    "latent_dim, extra", [(1, ["latent_health.png"]), (2, ["manifold.png", "latent_health.png"]),
                          (5, ["latent_health.png"])]
)
def test_make_figures_writes_exactly_the_fixed_names(tmp_path, data, latent_dim, extra):
    x, y = data
    run_dir = tmp_path / "run"
    paths = run_figures.make_figures(make_vae(latent_dim), x, y, history(2), run_dir, seed=0)
    expected = [*plots.FIGURE_NAMES, *extra]
    assert [p.name for p in paths] == expected
    assert all(p.parent == run_dir for p in paths)
    assert_only(run_dir, expected)
    for p in paths:
        read_png(p)
        assert os.stat(p).st_mode & 0o777 != 0o600  # not left private like a temp file


# -- behaviour shared by all figures -------------------------------------------
@pytest.mark.parametrize("start_in_training", [True, False])
def test_figures_run_in_eval_mode_and_restore_the_mode(tmp_path, data, start_in_training):
    x, _ = data
    vae = make_vae(2)
    vae.train() if start_in_training else vae.eval()
    modes = []
    original = vae.decode

    def spy(z, y=None):
        modes.append(vae.decoder.training)
        return original(z, y)

    vae.decode = spy
    plots.save_samples(vae, tmp_path / "s.png", n=4)
    plots.save_reconstructions(vae, x, tmp_path / "r.png", n=4)
    assert modes and not any(modes)
    assert vae.encoder.training == vae.decoder.training == start_in_training


def test_latent_means_batches_the_model_calls(monkeypatch, data):
    x, _ = data
    vae = make_vae(3).eval()
    whole = vae.encode(x)[0]
    calls = []
    original = vae.encode

    def spy(b, y=None):
        calls.append(len(b))
        return original(b, y)

    monkeypatch.setattr(plots, "BATCH", 16)
    vae.encode = spy
    means = plots.latent_means(vae, x)
    assert calls == [16, 16, 8]
    assert means.dtype == np.float32
    np.testing.assert_allclose(means, whole, rtol=1e-6, atol=1e-6)


def test_float64_models_plot_too(tmp_path, data):
    x, y = data
    vae = make_vae(2, dtype=np.float64)
    assert plots.latent_means(vae, x).dtype == np.float64
    read_png(plots.save_manifold(vae, tmp_path / "m.png", n=5))


# -- helpers -------------------------------------------------------------------
def test_pca_matches_the_covariance_eigenvectors_and_keeps_the_origin():
    rng = np.random.default_rng(2)
    # anisotropic cloud, rotated and shifted off the origin
    raw = rng.standard_normal((2000, 4)) * np.array([5.0, 2.0, 0.5, 0.1])
    rotation, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    offset = np.array([3.0, -1.0, 2.0, 0.5])
    means = raw @ rotation.T + offset
    proj, explained = plots._pca_2d(means)
    evals, evecs = np.linalg.eigh(np.cov(means, rowvar=False))
    top = evecs[:, ::-1][:, :2]
    np.testing.assert_allclose(explained, evals[::-1][:2] / evals.sum(), rtol=1e-9)
    # same axes up to sign, projected without centring: the latent origin maps to (0, 0)
    np.testing.assert_allclose(np.abs(proj), np.abs(means @ top), rtol=1e-7, atol=1e-9)
    assert np.all(np.abs(plots._pca_2d(np.vstack([means, np.zeros(4)]))[0][-1]) < 1e-12)


def test_interpolation_pair_is_deterministic_and_crosses_classes():
    y = np.array([5, 1, 0, 1, 0])
    assert plots.interpolation_pair(y) == (2, 1)  # first 0, first 1
    assert plots.interpolation_pair(np.array([5, 5, 7, 8])) == (0, 2)  # no 0 or 1: next class
    assert plots.interpolation_pair(np.array([4, 4, 4])) == (0, 2)  # one class: first and last


def test_tile_lays_out_rows_with_padding():
    images = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 1, 2, 3)
    grid = plots.tile(images, cols=3, pad=1, fill=-1.0)
    assert grid.shape == (2 * 2 + 1, 3 * 3 + 2)
    np.testing.assert_array_equal(grid[0:2, 4:7], images[1, 0])
    np.testing.assert_array_equal(grid[3:5, 0:3], images[3, 0])
    assert np.all(grid[3:5, 8:11] == -1.0)  # the short last row is padding
    assert np.all(grid[2] == -1.0)


def test_importing_plots_leaves_pyplot_and_the_backend_alone():
    """Figures draw on their own Agg canvas: a reader's interactive backend stays as it was."""
    # a backend is chosen only through pyplot, so not importing it is the whole check
    code = "import sys, numpyvae.figures.plots; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_sample_memory_estimate_covers_what_drawing_the_grid_takes(tmp_path):
    """check_sample_memory once left out matplotlib's resampling of the grid (about 70
    bytes a grid pixel), so `sample --n 1000000` passed it and then ran out of memory."""
    import tracemalloc

    vae = make_vae(2)
    n = 3000
    tracemalloc.start()
    try:
        plots.save_samples(vae, tmp_path / "s.png", n=n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= n * plots.SAMPLE_BYTES, (peak / n, plots.SAMPLE_BYTES)


def test_a_million_samples_are_refused_on_a_machine_of_20_gb(monkeypatch):
    monkeypatch.setattr(plots, "available_memory", lambda: 20 * 10**9)
    with pytest.raises(ValueError, match="--n: 1,000,000 samples need about 8"):
        plots.check_sample_memory(10**6, "--n")
    plots.check_sample_memory(10**5, "--n")  # 10 times fewer fit
