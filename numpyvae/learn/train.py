"""``learn train``: the report's VAE built from the learner's finished layers.

First a replay (the verdict): a few dozen training steps of the learner's model beside
the package's, in float64, on the same batches and the same ε, from the same
parameters; the losses and every gradient must agree to ``REPLAY_TOLERANCE``.
Then a training run on MNIST through the package's loop (``numpyvae.training.train``),
with its run folder and figures, and its final loss beside the package's on the same
seed. That last comparison is information, not a verdict: separate float32 runs
decorrelate over thousands of steps, so final losses alone cannot tell a right layer
from a slightly wrong one.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import data, nn
from ..models.architectures import DEFAULT_HIDDEN, IMAGE_SHAPE, PIXELS
from ..models.vae import VAE
from ..nn import Reparameterize as ReferenceReparameterize
from ..nn.adam import Adam as ReferenceAdam
from .grader import done_steps
from .loading import StepProblem, has_learner_frame, learner_traceback, load_module
from .steps import BY_NAME

# The replay's verdict, on ``gradient_errors``: each gradient's max difference from the
# package's, relative to the largest gradient of its layer (not of its own tensor: a conv's
# bias feeding a training-mode BatchNorm has a true gradient of 0, rounding noise on both
# sides). Both models compute in float64 from the same parameters, batches and ε; a correct
# layer differs from the package's only in the order of its sums. Measured (seed 0):
#   correct, written differently: the package's NumPy forms (use_kernels = False on every
#   layer) 2.3e-14 on the MLP (30 steps of 256), 5.7e-15 on the CNN (5 steps of 16); an
#   im2col Conv2d + a ConvTranspose2d built on it + a staged BatchNorm2d 9.7e-15 (5 of 16);
#   a four-loop Conv2d 1.6e-12 (2 of 4), the worst; losses within 4e-15.
#   wrong by 0.1% (dx or dW of Dense, ELU, Conv2d, ConvTranspose2d, BatchNorm2d): 1.0e-3
#   at the least, from the first step (a 1% mistake: 1e-2 and more).
# 1e-8 sits 3.8 orders of magnitude above the worst correct layer and 5 below the
# smallest mistake measured.
REPLAY_TOLERANCE = 1e-8
REPLAY = {"mlp": (30, 256), "cnn": (5, 16)}  # (steps, batch size) by default
# The output sigmoid and the variance's softplus are functions inside the likelihood and
# Reparameterize (stateless math), so of the activations step only ELU is a node here.
MLP_NAMES = ("Dense", "ELU", "Reparameterize", "Adam")
CNN_NAMES = MLP_NAMES + ("Conv2d", "ConvTranspose2d", "BatchNorm2d")
PACKAGE_KIT: dict[str, Any] = {
    "Dense": nn.Dense, "ELU": nn.ELU, "Sigmoid": nn.Sigmoid, "Softplus": nn.Softplus,
    "Conv2d": nn.Conv2d, "ConvTranspose2d": nn.ConvTranspose2d,
    "BatchNorm2d": nn.BatchNorm2d, "Reparameterize": ReferenceReparameterize,
    "Adam": ReferenceAdam,
}


def learner_kit(directory: str | Path, arch: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The classes to build from: the learner's where their step is done, else the package's.

    Returns the kit and, per class name, whose it is.
    """
    kit, owner = dict(PACKAGE_KIT), dict.fromkeys(PACKAGE_KIT, "package")
    for name in done_steps(directory):
        step = BY_NAME[name]
        wanted = [k for k in step.defines if k in (MLP_NAMES if arch == "mlp" else CNN_NAMES)]
        if not wanted:
            continue
        module = load_module(step, directory)
        for k in wanted:
            kit[k], owner[k] = getattr(module, k), f"yours ({Path(directory) / name}.py)"
    return kit, owner


class LearnVAE(VAE):
    """The package's VAE (encoder → reparameterize → decoder → likelihood) with the
    learner's Reparameterize in the middle; the encoder and decoder are built from the kit."""

    def __init__(self, encoder: Any, decoder: Any, latent_dim: int, kit: dict[str, Any],
                 c: float = 0.05) -> None:
        super().__init__(encoder, decoder, latent_dim, c=c)
        self.reparameterize = kit["Reparameterize"]()


def build(kit: dict[str, Any], arch: str, latent_dim: int = 2, hidden=DEFAULT_HIDDEN,
          c: float = 0.05, dtype: Any = np.float32, rng: np.random.Generator | None = None
          ) -> LearnVAE:
    """The report's MLP or CNN VAE (numpyvae/models/architectures.py, layer for layer)."""
    rng = np.random.default_rng() if rng is None else rng
    D, E, kw = kit["Dense"], kit["ELU"], {"dtype": dtype, "rng": rng}

    def mlp(widths):
        layers = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(D(a, b, **kw))
            if i < len(widths) - 2:
                layers.append(E())
        return layers

    if arch == "mlp":
        encoder = nn.Sequential(nn.Flatten(), *mlp((PIXELS, *hidden, 2 * latent_dim)))
        decoder = nn.Sequential(*mlp((latent_dim, *hidden[::-1], PIXELS)),
                                nn.Reshape(*IMAGE_SHAPE))
    else:
        C, T, B = kit["Conv2d"], kit["ConvTranspose2d"], kit["BatchNorm2d"]

        def block(layer, ch):
            return [layer, B(ch, dtype=dtype), E()]
        encoder = nn.Sequential(
            *block(C(1, 32, 3, stride=2, padding=1, **kw), 32),
            *block(C(32, 64, 3, stride=2, padding=1, **kw), 64),
            *block(C(64, 32, 3, stride=2, padding=1, **kw), 32),
            nn.Flatten(), D(512, 2 * latent_dim, **kw))
        decoder = nn.Sequential(
            D(latent_dim, 512, **kw), nn.Reshape(32, 4, 4),
            *block(T(32, 64, 3, stride=2, padding=1, **kw), 64),
            *block(T(64, 32, 3, stride=2, padding=1, output_padding=1, **kw), 32),
            *block(T(32, 32, 3, stride=2, padding=1, output_padding=1, **kw), 32),
            C(32, 1, 3, stride=1, padding=1, **kw))
    return LearnVAE(encoder, decoder, latent_dim, kit, c=c)


def copy_arrays(src: Any, dst: Any) -> None:
    """dst's params and buffers := src's (same architecture, so the same names)."""
    a, b = src.named_arrays(), dst.named_arrays()
    if a.keys() != b.keys():
        raise StepProblem(f"your layers' parameters do not line up with the package's: "
                          f"{sorted(set(a) ^ set(b))[:6]}")
    for k, v in a.items():
        if b[k].shape != v.shape:
            raise StepProblem(f"{k}: your layer's array has shape {b[k].shape}, "
                              f"the package's {v.shape}")
        b[k][...] = v


def layer_of(name: str) -> str:
    """"encoder.3.bias" → "encoder.3": the layer a parameter belongs to."""
    return name.rsplit(".", 1)[0]


def gradient_errors(names: list[str], mine: list[np.ndarray], ref: list[np.ndarray]
                    ) -> list[float]:
    """Each tensor's max |mine − ref|, scaled by its layer's gradient size: the largest
    |ref| over every parameter of that layer.

    Not ``grader.rel_error`` (each tensor by its own size): a conv's bias that feeds a
    training-mode BatchNorm has a true gradient of exactly 0, which both sides hold as
    rounding noise (1e-14), and noise divided by noise is O(1) for correct layers. Scaled
    by the layer's weight gradient, that noise is what it is: rounding.
    """
    scale: dict[str, float] = {}
    for n, r in zip(names, ref, strict=True):
        size = float(np.max(np.abs(r))) if r.size else 0.0
        scale[layer_of(n)] = max(scale.get(layer_of(n), 0.0), size)
    return [float(np.max(np.abs(np.asarray(m, dtype=np.float64) - r))) / max(
        scale[layer_of(n)], 1e-300) if r.size else 0.0
        for n, m, r in zip(names, mine, ref, strict=True)]


def replay(kit: dict[str, Any], arch: str, x: np.ndarray, steps: int, batch_size: int,
           lr: float, seed: int = 0, echo=print) -> bool:
    """Train the learner's model and the package's side by side in float64; True if they
    agree on every loss and gradient to ``REPLAY_TOLERANCE`` (``gradient_errors``)."""
    worst_loss, worst_grad, worst_name, first_bad = _replay_errors(
        kit, arch, x, steps, batch_size, lr, seed)
    echo(f"replay: {steps} steps of batch {batch_size} in float64 beside the package's layers, "
         f"same batches, same ε")
    where = f" ({worst_name})" if worst_grad > 0 else ""
    echo(f"  worst loss error {worst_loss:.1e}, worst gradient error {worst_grad:.1e}{where} "
         f"(each gradient's difference relative to its layer's largest gradient); "
         f"tolerance {REPLAY_TOLERANCE:.0e}")
    if first_bad is None:
        echo("  PASS: your model trains exactly as the package's does")
    else:
        echo(f"  FAIL: first off at step {first_bad[0]}, in {first_bad[1]}: a layer or your "
             "Adam disagrees with the package's; run `learn check` on the steps it uses")
    return first_bad is None


def _replay_errors(kit: dict[str, Any], arch: str, x: np.ndarray, steps: int,
                   batch_size: int, lr: float, seed: int
                   ) -> tuple[float, float, str, tuple[int, str] | None]:
    """(worst loss error, worst gradient error, its tensor, (step, tensor) first off)."""
    ref = build(PACKAGE_KIT, arch, dtype=np.float64, rng=np.random.default_rng([seed, 0]))
    mine = build(kit, arch, dtype=np.float64, rng=np.random.default_rng([seed, 0]))
    copy_arrays(ref, mine)
    opt_ref = ReferenceAdam(ref.parameters(), lr=lr)
    opt_mine = kit["Adam"](mine.parameters(), lr=lr)
    noise = np.random.default_rng([seed, 2])
    names = [n for n, _, _ in ref.named_parameters()]
    worst_loss, worst_grad, worst_name, first_bad = 0.0, 0.0, "", None
    order = data.epoch_order(len(x), seed, 0)
    for t in range(steps):
        idx = order[(t * batch_size) % len(x):][:batch_size]
        xb = x[idx].astype(np.float64)
        eps = noise.standard_normal((len(xb), ref.latent_dim))
        lr_ = ref.forward(xb, eps=eps)
        lm = mine.forward(xb, eps=eps)
        ref.backward()
        mine.backward()
        loss_err = abs(lm.loss - lr_.loss) / max(abs(lr_.loss), 1e-300)
        errs = gradient_errors(names, [g for _, g in mine.parameters()],
                               [g for _, g in ref.parameters()])
        k = int(np.argmax(errs))
        if errs[k] > worst_grad:
            worst_grad, worst_name = errs[k], names[k]
        worst_loss = max(worst_loss, loss_err)
        if first_bad is None and max(loss_err, errs[k]) > REPLAY_TOLERANCE:
            first_bad = (t + 1, names[k] if errs[k] > REPLAY_TOLERANCE else "the loss")
        opt_ref.step()
        opt_mine.step()
    return worst_loss, worst_grad, worst_name, first_bad


@contextlib.contextmanager
def _learner_model_in_the_loop(kit: dict[str, Any]) -> Iterator[None]:
    """numpyvae.training.train.train builds its model and optimizer itself
    (``build_model``, ``Adam``); for the learner's run both are swapped for the duration
    of the call, and put back afterwards. The model starts from the package's
    initialisation for the seed, so both runs start from the same parameters."""
    from ..training import train as loop

    build_model, adam = loop.build_model, loop.Adam

    def build_learner_model(config: Any, dtype: Any = np.float32) -> LearnVAE:
        model = build(kit, config.arch, config.latent_dim, config.hidden, config.c, dtype,
                      np.random.default_rng([config.seed, 0]))
        copy_arrays(build_model(config, dtype), model)
        return model

    loop.build_model, loop.Adam = build_learner_model, kit["Adam"]
    try:
        yield
    finally:
        loop.build_model, loop.Adam = build_model, adam


class LearnerExit(Exception):
    """The learner's code called sys.exit() inside learn train: a FAIL, never its exit code."""


@contextlib.contextmanager
def _no_exit_of_theirs(during: str) -> Iterator[None]:
    try:
        yield
    except SystemExit as e:  # only their layers run code that could exit here
        raise LearnerExit(f"FAIL: your code called sys.exit({e.code!r}) during {during}: a "
                          "layer returns its result, it never exits") from None


def train_command(args: argparse.Namespace,
                  stop_requested: Callable[[], bool] | None = None) -> int:
    """``learn train``'s work, run in a child process (``isolate.train_in_child``): its exit
    code, with a FAIL for the learner's sys.exit and a message for an interrupt.
    ``stop_requested``: the training loop's check for an interrupt whose KeyboardInterrupt
    was swallowed."""
    try:
        return run_train(args, stop_requested)
    except LearnerExit as e:  # exit 1: their sys.exit(0) must not read as a finished run
        print(e, file=sys.stderr)
        return 1
    except Exception as e:
        if has_learner_frame(e):  # their layer raised: a FAIL at their line
            print(learner_traceback(e, "FAIL: your code raised an exception in learn train"),
                  file=sys.stderr)
            return 1
        if isinstance(e, (ValueError, FileNotFoundError)):  # as the command line says them
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: learn train has no resume
        from ..training.run import load_run

        kept = "nothing was written"
        if args.out is not None and (Path(args.out) / "checkpoint.npz").is_file():
            kept = (f"your run's last checkpoint (epoch {load_run(args.out).epoch}) is kept in "
                    f"{args.out}")
        print(f"\ninterrupted: learn train has no resume; {kept}, and no half-written file is "
              "left. Run it again to start over.", file=sys.stderr)
        return 130


def run_train(args: argparse.Namespace, stop_requested: Callable[[], bool] | None = None
              ) -> int:
    from ..training.train import TrainConfig, train, unique_run_dir

    epochs_default, subset_default = {"mlp": (15, None), "cnn": (1, 2048)}[args.arch]
    epochs = args.epochs if args.epochs is not None else epochs_default
    subset = args.train_subset if args.train_subset is not None else subset_default
    if args.arch == "cnn" and args.epochs is None and args.train_subset is None:
        print("the CNN on NumPy layers takes seconds a step: --epochs 1 --train-subset 2048 "
              "unless you ask for more")
    try:
        kit, owner = learner_kit(args.dir, args.arch)
    except StepProblem as e:
        print(e, file=sys.stderr)
        return 1
    names = MLP_NAMES if args.arch == "mlp" else CNN_NAMES
    print(f"the report's {args.arch.upper()} VAE, built from:")
    for k in names:
        print(f"  {k:<16} {owner[k]}")
    if not any(owner[k] != "package" for k in names):
        print(f"nothing of yours to replay: no step this model uses is done in {args.dir}/ "
              "(`python -m numpyvae learn` lists them; a step is done once `learn check` "
              "passes on the file as it is)")
        return 1
    config = TrainConfig(arch=args.arch, epochs=epochs, seed=args.seed, train_subset=subset,
                         data_dir=args.data_dir)
    config.validate()
    x_train, _ = data.load(config.dataset, "train", config.data_dir)
    steps, batch = REPLAY[args.arch]
    steps = args.replay_steps if args.replay_steps is not None else steps
    with _no_exit_of_theirs("the replay"):
        passed = replay(kit, args.arch, x_train, steps, batch, config.lr, args.seed)
    if not passed:
        return 1
    if args.replay_only:
        return 0
    out = args.out = Path(args.out) if args.out else unique_run_dir(  # named if interrupted
        Path("runs") / f"learn-{args.arch}-s{args.seed}")
    print(f"\ntraining your model: {epochs} epoch(s)"
          + (f" on {subset} images" if subset else "") + f" -> {out}")
    with _learner_model_in_the_loop(kit), _no_exit_of_theirs("training"):
        mine = train(config, out, stop_requested=stop_requested)
    from ..figures.run_figures import draw_run_figures

    draw_run_figures(out)  # from the checkpoint: the parameters your layers learned
    if args.no_compare:
        return 0
    ref_out = unique_run_dir(Path(f"{out}-package"))
    print(f"\ntraining the package's model, same config and seed -> {ref_out}")
    theirs = train(config, ref_out, stop_requested=stop_requested)  # numbers only: no figures
    print(f"\nfinal loss (train, eval mode / test): yours {mine['train_eval']['loss']:.2f} / "
          f"{mine['test']['loss']:.2f}, the package's {theirs['train_eval']['loss']:.2f} / "
          f"{theirs['test']['loss']:.2f}")
    print("(information, not a verdict: float32 runs decorrelate over thousands of steps; "
          "the replay above is the verdict)")
    return 0
