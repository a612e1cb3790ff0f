"""The latent explorer: the view shows model.decode(z) for the z it holds, and every
way of moving z (update, a slider, a click on the z = 2 scatter, the class slider)
redraws it; headless, the same view is written as a PNG; bad --z / --label fail clearly.

Tiny untrained MLPs are enough for the view (an untrained decoder still maps each z to
its own image); one test trains a tiny real run for the command end to end.
"""

import os
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # the explorer must never open a window under test

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from numpyvae.cli import explore  # noqa: E402
from numpyvae.cli import main as cli  # noqa: E402
from numpyvae.figures import plots  # noqa: E402
from numpyvae.models.architectures import build_mlp_vae  # noqa: E402
from numpyvae.training.checkpoint import save_checkpoint  # noqa: E402
from numpyvae.training.train import CHECKPOINT, TrainConfig, build_model  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def make_model(latent_dim: int, num_classes: int = 0):
    return build_mlp_vae(latent_dim, hidden=(16, 8), rng=np.random.default_rng(0),
                         num_classes=num_classes)


def new_view(model, **kw) -> explore.View:
    return explore.build_view(plots.new_figure(1.0, 1.0), model, **kw)


def decoded(model, z, label=None) -> np.ndarray:
    """What the view must show: the model's own decode of z, as (H, W)."""
    y = None if label is None else np.array([label])
    return model.decode(np.asarray(z, dtype=model.dtype)[None], y)[0, 0]


def random_points(model, n: int = 60):
    rng = np.random.default_rng(1)
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    y = np.arange(n) % 10
    return explore.scatter_points(model, x, y)


def read_png(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
    pixels = imread(path)
    return pixels.shape[:2]


# -- the view -------------------------------------------------------------------
def test_view_shows_the_decode_of_the_given_z():
    model = make_model(2)
    z = np.array([0.5, -1.0])
    view = new_view(model, z=z)
    np.testing.assert_array_equal(view.image, decoded(model, z))
    assert view.image.shape == (28, 28)
    np.testing.assert_array_equal(view.z, z)
    assert [s.val for s in view.sliders] == [0.5, -1.0]
    # the default start is the prior's mean
    np.testing.assert_array_equal(new_view(model).image, decoded(model, [0.0, 0.0]))


def test_update_redraws_the_image_and_moves_the_sliders():
    model = make_model(2)
    view = new_view(model, z=[0.0, 0.0])
    before = view.image.copy()
    view.update(np.array([2.0, -1.5]))
    assert not np.array_equal(view.image, before)
    np.testing.assert_array_equal(view.image, decoded(model, [2.0, -1.5]))
    assert [s.val for s in view.sliders] == [2.0, -1.5]
    with pytest.raises(ValueError, match=r"expected z of shape \(2,\)"):
        view.update(np.zeros(3))


def test_moving_a_slider_decodes_the_new_point():
    model = make_model(3)
    view = new_view(model)
    view.sliders[1].set_val(2.0)  # what dragging does: fires the slider's callbacks
    np.testing.assert_array_equal(view.z, [0.0, 2.0, 0.0])
    np.testing.assert_array_equal(view.image, decoded(model, [0.0, 2.0, 0.0]))


def test_sliders_span_the_prior_and_widen_for_a_given_z():
    view = new_view(make_model(2))
    assert (view.sliders[0].valmin, view.sliders[0].valmax) == (-3.0, 3.0)
    view = new_view(make_model(2), z=[4.2, 0.0])
    assert view.sliders[0].valmax >= 4.2 and view.sliders[1].valmin <= -4.2


def test_more_than_ten_dimensions_get_ten_sliders_and_the_rest_held():
    model = make_model(12)
    z = np.zeros(12)
    z[10:] = [0.7, -0.3]
    view = new_view(model, z=z)
    assert len(view.sliders) == explore.MAX_SLIDERS == 10
    np.testing.assert_array_equal(view.image, decoded(model, z))
    view.sliders[0].set_val(1.0)
    np.testing.assert_array_equal(view.z[10:], [0.7, -0.3])  # held where --z put them
    np.testing.assert_array_equal(view.image, decoded(model, view.z))
    notes = [t.get_text() for t in view.fig.texts]
    assert any("z₁₁" in t and "z₁₂" in t and "--z" in t for t in notes), notes


def test_z2_has_the_scatter_and_a_click_moves_z_there():
    model = make_model(2)
    view = new_view(model, points=random_points(model))
    assert view.scatter_ax is not None
    assert len(view.scatter_ax.collections) == 10  # one colour per class
    view.on_click(SimpleNamespace(inaxes=view.scatter_ax, xdata=1.25, ydata=-0.75, button=1))
    np.testing.assert_array_equal(view.z, [1.25, -0.75])
    assert [s.val for s in view.sliders] == [1.25, -0.75]
    np.testing.assert_array_equal(view.image, decoded(model, [1.25, -0.75]))
    assert [float(v[0]) for v in view.marker.get_data()] == [1.25, -0.75]
    # clicks elsewhere, or with another button, change nothing
    view.on_click(SimpleNamespace(inaxes=view.image_ax, xdata=3.0, ydata=3.0, button=1))
    view.on_click(SimpleNamespace(inaxes=view.scatter_ax, xdata=0.0, ydata=0.0, button=3))
    np.testing.assert_array_equal(view.z, [1.25, -0.75])
    # beyond the sliders' range (a panned view): clamped, so sliders and z agree
    view.on_click(SimpleNamespace(inaxes=view.scatter_ax, xdata=99.0, ydata=0.5, button=1))
    np.testing.assert_array_equal(view.z, [view.limit, 0.5])


def test_the_scatter_is_for_z2_only():
    model = make_model(3)
    points = random_points(model)
    assert new_view(model, points=points).scatter_ax is None
    assert new_view(make_model(2)).scatter_ax is None  # no points given


def test_a_conditional_model_decodes_with_the_chosen_class():
    model = make_model(2, num_classes=10)
    z = [0.3, 0.1]
    view = new_view(model, z=z, label=3, points=random_points(model))
    assert view.label_slider is not None and view.label_slider.val == 3
    np.testing.assert_array_equal(view.image, decoded(model, z, 3))
    class3 = view.image.copy()
    view.label_slider.set_val(7)
    assert view.label == 7
    np.testing.assert_array_equal(view.image, decoded(model, z, 7))
    assert not np.array_equal(view.image, class3)
    view.sliders[0].set_val(-1.0)  # the class stays when z moves
    np.testing.assert_array_equal(view.image, decoded(model, [-1.0, 0.1], 7))
    assert new_view(model).label == 0
    with pytest.raises(ValueError, match=r"label must be in 0\.\.9, got 10"):
        new_view(model, label=10)
    with pytest.raises(ValueError, match="not conditional"):
        new_view(make_model(2), label=1)


def test_the_view_puts_the_model_in_eval_mode():
    model = make_model(2)
    model.train()
    new_view(model)
    assert not model.encoder.training and not model.decoder.training


def test_save_view_writes_a_png_of_the_whole_view(tmp_path):
    model = make_model(2)
    path = explore.save_view(model, tmp_path / "sub" / "view.png", z=np.array([0.5, -1.0]),
                             points=random_points(model), title="test")
    assert path == tmp_path / "sub" / "view.png"
    height, width = read_png(path)
    assert os.listdir(path.parent) == ["view.png"]  # written atomically: no temporary left
    assert 700 <= width <= 1200 and 450 <= height <= 800  # two panels and two sliders
    pixels = imread(path)
    assert pixels.ndim == 3 and np.any(pixels[..., 0] != pixels[..., 1])  # the coloured scatter


# -- the command line -------------------------------------------------------------
def test_parse_z():
    np.testing.assert_array_equal(explore.parse_z("0.5,-1", 2), [0.5, -1.0])
    np.testing.assert_array_equal(explore.parse_z(" 1 ", 1), [1.0])
    with pytest.raises(ValueError, match=r"z = 2, so --z takes 2 comma.*got 3 values: '1,2,3'"):
        explore.parse_z("1,2,3", 2)
    with pytest.raises(ValueError, match=r"z = 3.*got 1 value: '1'"):
        explore.parse_z("1", 3)
    with pytest.raises(ValueError, match=r"takes 2 .*'a' in '1,a' is not a number"):
        explore.parse_z("1,a", 2)
    with pytest.raises(ValueError, match="non-finite"):
        explore.parse_z("nan,1", 2)


def test_display_rule(monkeypatch):
    monkeypatch.setattr(explore, "_selected_backend", lambda: "agg")
    monkeypatch.setenv("DISPLAY", ":0")
    assert not explore.display_available()  # a chosen non-interactive backend decides
    monkeypatch.setattr(explore, "_selected_backend", lambda: "tkagg")
    assert explore.display_available()
    monkeypatch.setattr(explore, "_selected_backend", lambda: None)
    monkeypatch.setattr(explore.sys, "platform", "linux")
    assert explore.display_available()
    monkeypatch.delenv("DISPLAY")
    assert not explore.display_available()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert explore.display_available()


def test_the_test_backend_is_chosen_and_headless():
    assert explore._selected_backend() == "agg"
    assert not explore.display_available()


def write_run(folder, **config) -> str:
    """A run folder holding an untrained tiny model, as load_run reads it."""
    cfg = TrainConfig(hidden=(16, 8), **config)
    model = build_model(cfg)
    folder.mkdir()
    save_checkpoint(folder / CHECKPOINT, model.named_arrays(), {},
                    {"config": cfg.to_json(), "epoch": 1, "history": []})
    return str(folder)


def test_command_errors_name_what_was_expected(tmp_path, capsys):
    plain = write_run(tmp_path / "plain", latent_dim=3)
    cond = write_run(tmp_path / "cond", latent_dim=3, conditional=True)
    cases = [
        (["--run", plain, "--z", "1,2"], "z = 3, so --z takes 3 comma-separated numbers"),
        (["--run", plain, "--z", "1,x,2"], "'x' in '1,x,2' is not a number"),
        (["--run", plain, "--label", "2"], "is not conditional"),
        (["--run", cond, "--label", "10"], r"--label must be in 0..9, got 10"),
        (["--run", str(tmp_path / "missing")], "no such run folder"),
    ]
    for argv, message in cases:
        assert cli.main(["explore", *argv, "--out", str(tmp_path / "x.png")]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "x.png").exists()


def test_command_on_a_conditional_run_writes_the_chosen_class(tmp_path, capsys):
    run = write_run(tmp_path / "cond", latent_dim=3, conditional=True)
    out = tmp_path / "view.png"
    assert cli.main(["explore", "--run", run, "--z=-1,0.5,0", "--label", "4",
                     "--out", str(out)]) == 0
    assert f"class 4 to {out}" in capsys.readouterr().out
    read_png(out)


def test_command_falls_back_to_the_png_when_pyplot_has_no_window(tmp_path, capsys,
                                                                 monkeypatch):
    # a display that looks usable but matplotlib ends up with agg (no GUI toolkit)
    monkeypatch.setattr(explore, "display_available", lambda: True)
    run = write_run(tmp_path / "plain", latent_dim=3)
    assert cli.main(["explore", "--run", run]) == 0
    captured = capsys.readouterr()
    assert "no interactive backend" in captured.err
    read_png(tmp_path / "plain" / explore.PNG_NAME)


def test_command_on_a_trained_run(shared_datasets, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "--epochs", "1", "--train-subset", "256", "--test-subset", "100",
                     "--data-dir", str(shared_datasets), "--out", str(run),
                     "--no-figures"]) == 0
    capsys.readouterr()
    # no --out and no display: RUN/explore.png, with the z = 2 scatter of test images
    assert cli.main(["explore", "--run", str(run), "--z=0.5,-1"]) == 0
    captured = capsys.readouterr()
    path = run / explore.PNG_NAME
    assert f"z = (+0.50, -1.00) to {path}" in captured.out
    assert "no display" in captured.err
    height, width = read_png(path)
    assert width > 700  # the scatter beside the image


def test_open_window_builds_the_view_on_a_pyplot_figure(monkeypatch):
    import matplotlib.pyplot as plt

    model = make_model(2)
    assert explore.open_window(model) is None  # agg: no window, the caller writes the PNG
    monkeypatch.setattr(explore, "is_interactive_backend", lambda name: True)
    view = explore.open_window(model, z=np.array([1.0, 0.5]))
    try:
        assert plt.fignum_exists(view.fig.number)
        np.testing.assert_array_equal(view.image, decoded(model, [1.0, 0.5]))
    finally:
        plt.close(view.fig)
