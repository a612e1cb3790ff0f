"""The latent explorer: move through a trained model's latent space by hand.

``python -m numpyvae explore --run runs/NAME`` opens a matplotlib window: one
slider per latent dimension (the first ``MAX_SLIDERS`` when z is larger; the
others stay where ``--z`` put them, 0 by default), the decoded image redrawn on
every move, and for z = 2 the test images' posterior means coloured by class:
a click there decodes that point. A conditional model gets a class slider too.

With no display the same view is written as a PNG for the given ``--z``
(``explore.png`` in the run folder, or ``--out``); ``--out`` always writes the PNG.
"No display" is decided by ``display_available``:

1. a backend chosen by the user (``MPLBACKEND``, ``matplotlib.use``, a
   matplotlibrc) decides alone: a window iff it is not one of matplotlib's
   non-interactive backends (agg, pdf, svg, ...);
2. otherwise, on Linux and other X11/Wayland systems a window needs ``DISPLAY``
   or ``WAYLAND_DISPLAY``; macOS and Windows always have a display;
3. if pyplot then still falls back to a non-interactive backend (no GUI toolkit
   installed) or the window cannot be opened, the PNG is written instead.

The view is built by one function, ``build_view``, for both: on a pyplot figure
for the window, on a plain Agg ``Figure`` (``plots.new_figure``) for the PNG.
Only the window imports pyplot, inside ``open_window``.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.widgets import Slider

from ..figures import plots
from ..models.encoder_decoder import EncoderDecoder

MAX_SLIDERS = 10
# Slider range ±3: the prior N(0, 1) puts 99.7 % of each coordinate's mass there.
# The range widens to take in a --z value or the latent scatter if they reach further.
SLIDER_LIMIT = 3.0
SCATTER_POINTS = 2000  # test images in the z = 2 scatter: enough to see the classes, quick
PNG_NAME = "explore.png"

# Layout, in inches (the figure is sized from these; see build_view).
_PANEL = 3.3  # the decoded image and the scatter are square panels this wide
_TOP = 0.9  # room for the figure's two-line title and the panels' titles
_MARGIN = 0.4
_SCATTER_LEFT = 1.0  # between the image and the scatter: the scatter's y label
_LEGEND = 1.1  # right of the scatter: the class legend
_BELOW_PANELS = 0.6  # the scatter's x label
_ROW = 0.32  # one slider
_SLIDER_LEFT = 0.9  # the slider's name, e.g. "z₁₀"
_SLIDER_RIGHT = 0.8  # its value, e.g. "+1.25"
_NOTE = 0.3  # the line saying which dimensions are held fixed
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _z_name(i: int) -> str:
    """The name of coordinate i (0-based) as the figures write it: z₁, z₂, ..."""
    return f"z{str(i + 1).translate(_SUBSCRIPTS)}"


class View:
    """The explorer's figure and its state: the current z (and class), the widgets.

    ``update(z, label)`` decodes and redraws; sliders, the class slider and clicks
    on the scatter all go through it, so everything shown always agrees.
    """

    def __init__(
        self,
        fig: Figure,
        model: EncoderDecoder,
        z: np.ndarray,
        label: int | None,
        image_ax: Axes,
        sliders: list[Slider],
        label_slider: Slider | None,
        scatter_ax: Axes | None,
        limit: float,
    ) -> None:
        self.fig = fig
        self.model = model
        self.z = np.array(z, dtype=np.float64)
        self.label = label
        self.image_ax = image_ax
        self.sliders = sliders
        self.label_slider = label_slider
        self.scatter_ax = scatter_ax
        self.limit = limit
        # a placeholder until update() below decodes z; the images are drawn in [0, 1]
        self.artist = image_ax.imshow(np.zeros((2, 2)), cmap="gray", vmin=0.0, vmax=1.0,
                                      interpolation="nearest")
        # A bare Agg canvas has no window: it draws when saved, not on every move
        # (its draw_idle would render the whole figure at once).
        self.on_screen = type(fig.canvas) is not FigureCanvasAgg
        self.marker = None
        if scatter_ax is not None:
            (self.marker,) = scatter_ax.plot([], [], marker="X", markersize=13, color="black",
                                             markeredgecolor="white", markeredgewidth=1.5,
                                             linestyle="none", zorder=5)
        for slider in [*sliders, *([label_slider] if label_slider else [])]:
            slider.drawon = self.on_screen
        for i, slider in enumerate(sliders):
            slider.on_changed(lambda value, i=i: self._move_coordinate(i, value))
        if label_slider is not None:
            label_slider.on_changed(lambda value: self.update(label=int(round(value))))
        self.click_id = fig.canvas.mpl_connect("button_press_event", self.on_click)
        self.update(self.z, label)

    @property
    def image(self) -> np.ndarray:
        """The decoded image on show, (H, W): the model's output, unclipped."""
        return np.asarray(self.artist.get_array())

    def decode(self, z: np.ndarray, label: int | None) -> np.ndarray:
        """The mean of p(x|z) (and the class) for one z (latent_dim,), as (H, W)."""
        y = None if label is None else np.array([label])
        return self.model.decode(z[None].astype(self.model.dtype), y)[0, 0]

    def update(self, z: np.ndarray | None = None, label: int | None = None) -> None:
        """Show z (latent_dim,) and, for a conditional model, the class ``label``.

        Either may be left out to keep its current value. Sliders and the marker
        follow without firing their own callbacks.
        """
        if z is not None:
            z = np.array(z, dtype=np.float64).reshape(-1)
            if z.shape != self.z.shape:
                raise ValueError(f"View.update: expected z of shape {self.z.shape}, "
                                 f"got {z.shape}")
            self.z = z
        if label is not None:
            if not self.model.conditional:
                raise ValueError("View.update: a label was given, but the model is not "
                                 "conditional")
            self.label = int(label)
        self.artist.set_data(self.decode(self.z, self.label))
        self._sync(self.sliders, self.z)
        if self.label_slider is not None:
            self._sync([self.label_slider], [self.label])
        title = "decoded image" if self.label is None else f"decoded image, class {self.label}"
        self.image_ax.set_title(title)
        if self.marker is not None:
            self.marker.set_data([self.z[0]], [self.z[1]])
        if self.on_screen:
            self.fig.canvas.draw_idle()

    @staticmethod
    def _sync(sliders: list[Slider], values: Any) -> None:
        # z may be longer than the sliders: the coordinates past MAX_SLIDERS have none
        for slider, value in zip(sliders, values, strict=False):
            if slider.val != value:
                drawon, slider.eventson, slider.drawon = slider.drawon, False, False
                slider.set_val(value)
                slider.eventson, slider.drawon = True, drawon

    def _move_coordinate(self, i: int, value: float) -> None:
        z = self.z.copy()
        z[i] = value
        self.update(z)

    def on_click(self, event: Any) -> None:
        """A left click on the scatter moves z₁, z₂ there (clamped to the sliders' range).

        Ignored elsewhere, and while the toolbar's zoom or pan is on.
        """
        if self.scatter_ax is None or event.inaxes is not self.scatter_ax:
            return
        if event.xdata is None or event.ydata is None or getattr(event, "button", 1) != 1:
            return
        toolbar = getattr(self.fig.canvas, "toolbar", None)
        if toolbar is not None and getattr(toolbar, "mode", ""):
            return
        z = self.z.copy()
        z[:2] = np.clip([event.xdata, event.ydata], -self.limit, self.limit)
        self.update(z)


def build_view(
    fig: Figure,
    model: EncoderDecoder,
    z: np.ndarray | None = None,
    label: int | None = None,
    points: tuple[np.ndarray, np.ndarray] | None = None,
    title: str | None = None,
) -> View:
    """Lay out the explorer on ``fig`` (resized to fit) and show z; returns the View.

    z: (latent_dim,), default 0. label: the class for a conditional model (default 0).
    points: (means (N, 2), labels (N,)) for the latent scatter; used when latent_dim
    is 2. The model is put in eval mode (BatchNorm uses its running statistics).
    """
    z, label = _start_point(model, z, label)
    model.eval()
    d = model.latent_dim
    scatter = points is not None and d == 2
    n_sliders = min(d, MAX_SLIDERS)
    rows = n_sliders + (1 if model.conditional else 0)
    note = _held_note(z) if d > MAX_SLIDERS else None
    width = _MARGIN + _PANEL + (_SCATTER_LEFT + _PANEL + _LEGEND if scatter else _MARGIN)
    height = _TOP + _PANEL + _BELOW_PANELS + rows * _ROW + (_NOTE if note else 0.0) + _MARGIN / 2
    fig.set_layout_engine("none")  # the widgets' axes are placed by hand, in inches
    fig.set_size_inches(width, height)
    box = functools.partial(_box, width, height)

    image_ax = fig.add_axes(box(_MARGIN, _TOP, _PANEL, _PANEL))
    image_ax.set_xticks([])
    image_ax.set_yticks([])
    scatter_ax, limit = _add_scatter(fig, box, points if scatter else None, z)
    top = _TOP + _PANEL + _BELOW_PANELS
    sliders, label_slider = _add_sliders(fig, box, model, z, label, n_sliders, limit,
                                         top, width - _SLIDER_LEFT - _SLIDER_RIGHT)
    if note:
        fig.text(_SLIDER_LEFT / width, 1.0 - (top + rows * _ROW + 0.6 * _NOTE) / height, note,
                 fontsize=9, color="0.3")
    if title:
        fig.suptitle(title, y=1.0 - 0.08 / height, va="top", fontsize=11)
    return View(fig, model, z, label, image_ax, sliders, label_slider, scatter_ax, limit)


def _start_point(model: EncoderDecoder, z: np.ndarray | None, label: int | None
                 ) -> tuple[np.ndarray, int | None]:
    """z as a (latent_dim,) float64 array (default 0) and the class (default 0 for a
    conditional model, None otherwise), checked against the model."""
    d = model.latent_dim
    z = np.zeros(d) if z is None else np.array(z, dtype=np.float64).reshape(-1)
    if z.shape != (d,):
        raise ValueError(f"build_view: expected z of shape ({d},) for latent_dim {d}, "
                         f"got {z.shape}")
    if model.conditional:
        label = 0 if label is None else int(label)
        if not 0 <= label < model.num_classes:
            raise ValueError(f"build_view: label must be in 0..{model.num_classes - 1}, "
                             f"got {label}")
    elif label is not None:
        raise ValueError("build_view: a label was given, but the model is not conditional")
    return z, label


def _box(width: float, height: float, left: float, top: float, w: float, h: float
         ) -> list[float]:
    """An axes rectangle from inches measured from the figure's top-left corner."""
    return [left / width, 1.0 - (top + h) / height, w / width, h / height]


def _add_scatter(fig: Figure, box: Callable[..., list[float]],
                 points: tuple[np.ndarray, np.ndarray] | None, z: np.ndarray
                 ) -> tuple[Axes | None, float]:
    """The clickable latent scatter (when ``points`` are given) and the sliders' limit: a
    round number that covers z and the scatter, which then spans the same range."""
    limit = max(SLIDER_LIMIT, float(np.max(np.abs(z))))
    scatter_ax = None
    if points is not None:
        means, y = points
        scatter_ax = fig.add_axes(box(_MARGIN + _PANEL + _SCATTER_LEFT, _TOP, _PANEL, _PANEL))
        view_name = plots.draw_latent_scatter(scatter_ax, means, y)
        scatter_ax.set_title(f"{view_name}: click to decode", fontsize=10)
        limit = max(limit, float(scatter_ax.get_xlim()[1]))
    limit = math.ceil(limit * 2) / 2  # a round number at the ends of the sliders
    if scatter_ax is not None:  # the scatter spans the sliders' range: every z can be clicked
        scatter_ax.set_xlim(-limit, limit)
        scatter_ax.set_ylim(-limit, limit)
    return scatter_ax, limit


def _add_sliders(fig: Figure, box: Callable[..., list[float]], model: EncoderDecoder,
                 z: np.ndarray, label: int | None, n_sliders: int, limit: float, top: float,
                 slider_w: float) -> tuple[list[Slider], Slider | None]:
    """One slider per shown latent coordinate, and the class slider of a conditional model."""
    sliders = []
    for i in range(n_sliders):
        ax = fig.add_axes(box(_SLIDER_LEFT, top + i * _ROW, slider_w, 0.5 * _ROW))
        sliders.append(Slider(ax, _z_name(i), -limit, limit, valinit=float(z[i]),
                              valfmt="%+.2f", initcolor="0.6"))
    label_slider = None
    if model.conditional:
        ax = fig.add_axes(box(_SLIDER_LEFT, top + n_sliders * _ROW, slider_w, 0.5 * _ROW))
        label_slider = Slider(ax, "class", 0, model.num_classes - 1, valinit=label, valstep=1,
                              valfmt="%d", initcolor="none", color="C1")
    return sliders, label_slider


def _held_note(z: np.ndarray) -> str:
    """Which coordinates have no slider, and where they are held."""
    first, last = _z_name(MAX_SLIDERS), _z_name(len(z) - 1)
    held = z[MAX_SLIDERS:]
    where = "at 0" if not np.any(held) else "at their --z values"
    return f"{first} … {last}: no slider, held {where}"


# -- the command ------------------------------------------------------------
def parse_z(text: str, latent_dim: int, dtype: Any = np.float32) -> np.ndarray:
    """``--z`` as (latent_dim,) float64: comma-separated numbers, one per dimension, each
    finite also in the model's ``dtype`` (1e39 is inf in float32)."""
    example = "0.5,-1" if latent_dim == 2 else ",".join(["0"] * latent_dim)
    expected = (f"the model has z = {latent_dim}, so --z takes {latent_dim} comma-separated "
                f"number{'s' if latent_dim > 1 else ''} (e.g. --z={example})")
    parts = [p.strip() for p in text.split(",")]
    try:
        z = np.array([float(p) for p in parts])
    except ValueError:
        bad = next(p for p in parts if not _is_float(p))
        raise ValueError(f"--z: {expected}; {bad!r} in {text!r} is not a number") from None
    if len(z) != latent_dim:
        raise ValueError(f"--z: {expected}; got {len(z)} value{'s' if len(z) != 1 else ''}: "
                         f"{text!r}")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"--z: {expected}; got a non-finite value in {text!r}")
    limit = float(np.finfo(dtype).max)
    if np.any(np.abs(z) > limit):
        raise ValueError(f"--z: {expected}; {text!r} has a value beyond ±{limit:.3g}, the "
                         f"largest {np.dtype(dtype).name} the model computes in")
    return z


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _non_interactive_backends() -> set[str]:
    try:
        from matplotlib.backends import BackendFilter, backend_registry
    except ImportError:  # matplotlib < 3.9
        from matplotlib import rcsetup

        return {b.lower() for b in rcsetup.non_interactive_bk}
    return set(backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE))


def _selected_backend() -> str | None:
    """The backend the user chose, lower-case, or None when left to auto-selection.

    Asked without importing pyplot (which would make matplotlib choose one).
    """
    try:
        backend = matplotlib.get_backend(auto_select=False)
    except TypeError:  # matplotlib < 3.10: the "auto" sentinel marks no choice yet
        from matplotlib import rcsetup

        backend = dict.__getitem__(matplotlib.rcParams, "backend")
        if backend is rcsetup._auto_backend_sentinel:
            backend = None
    return None if backend is None else str(backend).lower()


def is_interactive_backend(name: str) -> bool:
    return name.lower() not in _non_interactive_backends()


def display_available() -> bool:
    """Whether ``explore`` should try a window (the rule is in the module docstring)."""
    backend = _selected_backend()
    if backend is not None:
        return is_interactive_backend(backend)
    if sys.platform.startswith(("darwin", "win", "cygwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def scatter_points(
    model: EncoderDecoder, x: np.ndarray, y: np.ndarray, n: int = SCATTER_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """The posterior means (n, latent_dim) of the first n images x, with their labels."""
    x, y = x[:n], np.asarray(y)[:n]
    return plots.latent_means(model, x, y if model.conditional else None), y


def save_view(model: EncoderDecoder, path: str | Path, **view_args: Any) -> Path:
    """Draw the explorer (``build_view``'s arguments) on an Agg figure and write it as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plots.new_figure(1.0, 1.0)  # build_view sizes it
    build_view(fig, model, **view_args)
    return plots.save_figure(fig, path)


def open_window(model: EncoderDecoder, **view_args: Any) -> View | None:
    """The explorer on a pyplot figure, ready for ``pyplot.show()``; None when pyplot
    has no interactive backend or the window cannot be opened."""
    import matplotlib.pyplot as plt  # only here: a window needs pyplot's event loop

    backend = matplotlib.get_backend()
    if not is_interactive_backend(backend):
        print(f"note: matplotlib found no interactive backend (it chose {backend.lower()}): "
              "writing the view as a PNG instead", file=sys.stderr)
        return None
    try:
        fig = plt.figure()
    except Exception as e:  # e.g. a display that refuses the connection (TclError, ...)
        print(f"note: could not open a window ({type(e).__name__}: {e}): writing the view "
              "as a PNG instead", file=sys.stderr)
        return None
    if fig.canvas.manager is not None:
        fig.canvas.manager.set_window_title("numpyvae explore")
    return build_view(fig, model, **view_args)


def explore(
    run_dir: str | Path,
    z: str | None = None,
    label: int | None = None,
    out: str | Path | None = None,
    data_dir: str | None = None,
) -> int:
    """The ``explore`` command: a window, or the view as a PNG (see the module docstring)."""
    from .. import data
    from ..training.run import load_run
    from ..training.train import evaluation_images

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--run {run_dir}: no such run folder")
    run = load_run(run_dir)
    model = run.vae
    d = model.latent_dim
    z0 = np.zeros(d) if z is None else parse_z(z, d, model.dtype)
    if label is not None and not model.conditional:
        raise ValueError(f"--label: the model in {run_dir} is not conditional (train it with "
                         "--conditional to decode a chosen class)")
    if label is not None and not 0 <= label < model.num_classes:
        raise ValueError(f"--label must be in 0..{model.num_classes - 1}, got {label}")

    points = None
    if d == 2:
        try:
            x, y = data.load(run.config.dataset, "test", data_dir or run.config.data_dir)
        except data.DataNotFoundError as e:
            first_line = str(e).splitlines()[0]
            print(f"note: no test images, so no latent scatter ({first_line})", file=sys.stderr)
        else:
            x = evaluation_images(run.config, x[:SCATTER_POINTS])
            points = scatter_points(model, x, y)
    title = f"Latent explorer, z = {d}\n{run_dir.name}"
    view_args = {"z": z0, "label": label, "points": points, "title": title}

    window = out is None and display_available()
    if window:
        view = open_window(model, **view_args)
        if view is not None:
            import matplotlib.pyplot as plt

            print("explorer open: drag the sliders" + (", click the scatter" if points else "")
                  + "; close the window to quit")
            plt.show()
            return 0
    elif out is None:
        backend = _selected_backend()
        why = (f"the matplotlib backend {backend} is not interactive" if backend
               else "neither DISPLAY nor WAYLAND_DISPLAY is set")
        print(f"note: no display ({why}): writing the view as a PNG", file=sys.stderr)
    path = save_view(model, out if out is not None else run_dir / PNG_NAME, **view_args)
    where = ", ".join(f"{v:+.2f}" for v in z0[:MAX_SLIDERS]) + (", …" if d > MAX_SLIDERS else "")
    cls = "" if not model.conditional else f", class {label or 0}"
    print(f"wrote the explorer view at z = ({where}){cls} to {path}")
    return 0
