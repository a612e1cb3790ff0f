"""latent_health.png: a PNG of the per-dimension KL, written atomically."""

import os

import numpy as np
import pytest
from matplotlib.image import imread

from numpyvae.figures import latent_health_figure as fig_module
from numpyvae.figures import plots
from numpyvae.models.architectures import build_mlp_vae
from numpyvae.models.latent_health import latent_health

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def result(d: int = 6, with_mi: bool = True) -> dict:
    rng = np.random.default_rng(0)
    scale = np.r_[np.full(max(d - 2, 0), 1.5), np.zeros(min(d, 2))]  # the last two unused
    m = rng.standard_normal((300, d)) * scale
    v = np.where(scale > 0, 0.1, 1.0) * np.ones((300, d))
    return latent_health(m, v, with_mi=with_mi)


def read_png(path, colour: bool) -> np.ndarray:
    """Check the file is a PNG matplotlib reads back; in colour if a bar is active (an
    all-grey figure is stored as a grey PNG by plots.save_figure)."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
    pixels = imread(path)
    assert (pixels.ndim == 3 and pixels.shape[2] in (3, 4)) if colour else pixels.ndim in (2, 3)
    assert min(pixels.shape[:2]) > 100
    return pixels


@pytest.mark.parametrize("d, with_mi", [(6, True), (1, False), (40, True)])
def test_save_latent_health_writes_a_png_and_nothing_else(tmp_path, d, with_mi):
    r = result(d, with_mi)
    path = fig_module.save_latent_health(r, tmp_path / "latent_health.png", label="run")
    assert path == tmp_path / "latent_health.png"
    read_png(path, colour=r.active > 0)
    assert os.listdir(tmp_path) == ["latent_health.png"]


def test_the_figure_is_renamed_into_place(tmp_path, monkeypatch):
    """Written under a temporary name in the same folder, then renamed to its own."""
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    path = fig_module.save_latent_health(result(), tmp_path / "latent_health.png")
    assert len(renames) == 1
    src, dst = renames[0]
    assert dst == os.fspath(path) and os.path.dirname(src) == os.fspath(tmp_path)
    assert src != dst


def test_a_failed_write_leaves_the_old_figure_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "latent_health.png"
    path.write_bytes(b"old figure")

    def half_written(fig, tmp):
        with open(tmp, "wb") as f:
            f.write(PNG_SIGNATURE)
        raise OSError("disk full")

    monkeypatch.setattr(plots, "_write_png", half_written)
    with pytest.raises(OSError, match="disk full"):
        fig_module.save_latent_health(result(), path)
    assert path.read_bytes() == b"old figure"
    assert os.listdir(tmp_path) == ["latent_health.png"]


def test_active_and_inactive_bars_have_their_colours(tmp_path, monkeypatch):
    drawn = {}
    real_save = fig_module.save_figure

    def keep(fig, path):
        ax = fig.axes[0]
        drawn["bars"] = [(p.get_height(), p.get_facecolor()) for p in ax.patches]
        drawn["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        drawn["ticks"] = [t.get_text() for t in ax.get_xticklabels()]
        return real_save(fig, path)

    monkeypatch.setattr(fig_module, "save_figure", keep)
    r = result(6)
    fig_module.save_latent_health(r, tmp_path / "f.png")
    heights = [h for h, _ in drawn["bars"]]
    assert heights == sorted(r.kl_per_dim, reverse=True)  # sorted, largest first
    colours = [c for _, c in drawn["bars"]]
    assert len({tuple(c) for c in colours[:4]}) == 1 and len({tuple(c) for c in colours[4:]}) == 1
    assert tuple(colours[0]) != tuple(colours[-1])
    assert set(drawn["ticks"][4:]) == {"z4", "z5"}  # the two unused dimensions, last
    assert drawn["legend"][0].startswith("active") and drawn["legend"][1] == "inactive"


def test_make_latent_health_figure_from_a_model(tmp_path):
    vae = build_mlp_vae(3, hidden=(16, 8), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).random((30, 1, 28, 28), dtype=np.float32)
    path = fig_module.make_latent_health_figure(vae, x, None, tmp_path / "latent_health.png")
    read_png(path, colour=False)


def test_save_latent_health_rejects_another_dict(tmp_path):
    with pytest.raises(ValueError, match="LatentHealth of latent_health, got dict"):
        fig_module.save_latent_health({"loss": 1.0}, tmp_path / "f.png")
    with pytest.raises(ValueError, match="got dict"):  # its JSON form is not it either
        fig_module.save_latent_health(result().as_dict(), tmp_path / "f.png")
    assert os.listdir(tmp_path) == []
