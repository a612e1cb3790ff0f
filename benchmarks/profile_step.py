"""Where one training step's time goes, layer by layer.

    python benchmarks/profile_step.py [mlp|cnn] [--batch 256] [--threads 2] [--steps 50]

Warms the step up by bench.py's rule, then times ``--steps`` more steps with every
layer's forward and backward and Adam's step wrapped in a clock; prints each one's
median share of a step, and so are the parts that are no layer's own method: each
BatchNorm2d+ELU pair that ``Sequential`` runs as one fused kernel, the likelihood (the
loss and its sigmoid) and the reparameterization. "rest" is the step minus all of them:
Python between the layers and the VAE's own NumPy (ε, the KL's mean). Then the Dense
layers split into their parts (products, bias add, bias gradient), each timed
alone on the layer's shapes by the same warm-up rule. Nothing here changes the
package: the wrappers sit on this process's instances only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench", HERE / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def clocked(fn: Callable[..., Any], name: str, spent: dict[str, float],
            clock: Callable[[], float] = time.perf_counter) -> Callable[..., Any]:
    """``fn`` with its time by ``clock`` added to ``spent[name]`` on every call."""
    def run(*args: Any, **kw: Any) -> Any:
        start = clock()
        out = fn(*args, **kw)
        spent[name] += clock() - start
        return out

    return run


@contextlib.contextmanager
def fused_pairs_clocked(names: dict[int, str], spent: dict[str, float],
                        clock: Callable[[], float]) -> Iterator[None]:
    """Clock ``nn.batchnorm_elu``'s forward and backward (module functions, so patched on
    the module and put back on the way out), each call under its BatchNorm's name in
    ``names`` (by ``id``): the fused pairs never call the layers' own methods."""
    from numpyvae.nn import batchnorm_elu

    saved = batchnorm_elu.forward, batchnorm_elu.backward

    def by_pair(fn: Callable[..., Any], direction: str) -> Callable[..., Any]:
        def run(bn: Any, elu: Any, arg: Any) -> Any:
            return clocked(fn, f"{names[id(bn)]} {direction}", spent, clock)(bn, elu, arg)
        return run

    batchnorm_elu.forward = by_pair(saved[0], "forward")
    batchnorm_elu.backward = by_pair(saved[1], "backward")
    try:
        yield
    finally:
        batchnorm_elu.forward, batchnorm_elu.backward = saved


def profile(arch: str, batch: int, steps: int, bench: Any,
            clock: Callable[[], float] = time.perf_counter) -> tuple[list[dict[str, float]], Any]:
    """Per-step times (s, by ``clock``) of every wrapped part, after the warm-up; the model."""
    from numpyvae.models.architectures import build_vae
    from numpyvae.nn.adam import Adam

    bench.keep_memory_as_train_does()  # as bench.py's step and ``train`` run it
    rng = np.random.default_rng(0)
    vae = build_vae(arch, bench.LATENT_DIM, rng=rng)
    adam = Adam(vae.parameters(), lr=1e-3)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    noise = np.random.default_rng(1)
    spent: dict[str, float] = defaultdict(float)
    pairs: dict[int, str] = {}  # id(BatchNorm2d) → the fused pair's name
    for part, seq in (("enc", vae.encoder), ("dec", vae.decoder)):
        for i, layer in enumerate(seq.layers):
            name = f"{part}.{i} {type(layer).__name__}"
            pairs[id(layer)] = f"{part}.{i}+{i + 1} BatchNorm2d+ELU"
            layer.forward = clocked(layer.forward, f"{name} forward", spent, clock)
            layer.backward = clocked(layer.backward, f"{name} backward", spent, clock)
    for name, node in (("likelihood", vae.likelihood), ("reparameterize", vae.reparameterize)):
        for method in ("nll", "forward", "backward"):
            if hasattr(node, method):
                setattr(node, method, clocked(getattr(node, method), f"{name} {method}",
                                              spent, clock))
    adam.step = clocked(adam.step, "Adam step", spent, clock)

    def step() -> None:
        vae.forward(x, rng=noise)
        vae.backward()
        adam.step()

    per_step = []
    with fused_pairs_clocked(pairs, spent, clock):
        bench.warm_up(step)
        for _ in range(steps):
            spent.clear()
            start = clock()
            step()
            total = clock() - start
            per_step.append({**spent, "rest": total - sum(spent.values()), "step": total})
    return per_step, vae


def dense_part_calls(w: np.ndarray, b: np.ndarray, batch: int) -> dict[str, Callable[[], Any]]:
    """A Dense layer's five parts as calls on random data of its shapes (W (D, E), b (E,))."""
    from numpyvae import kernels

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, w.shape[0]), dtype=np.float32)
    dy = rng.standard_normal((batch, w.shape[1]), dtype=np.float32)
    y, gw, gb = np.empty_like(dy), np.empty_like(w), np.empty_like(b)
    return {
        "x W": lambda: kernels.matmul_unchecked(x, w, y),
        "+ b": lambda: y.__iadd__(b),
        "Xᵀ dY": lambda: kernels.matmul_unchecked(x.T, dy, gw),
        "Σ dY": lambda: gb.__setitem__(Ellipsis, dy.sum(axis=0)),
        "dY Wᵀ": lambda: kernels.matmul_unchecked(dy, w.T),
    }


def dense_parts(vae: Any, batch: int, repeats: int, bench: Any) -> list[tuple[str, float]]:
    """Each Dense layer's parts, timed alone on its shapes: (label, median ms)."""
    from numpyvae.nn import Dense

    rows = []
    for name, layer, _, _ in bench.walk(vae):
        if isinstance(layer, Dense):
            w, b = layer.params["weight"], layer.params["bias"]
            for part, fn in dense_part_calls(w, b, batch).items():
                rows.append((f"{name} Dense {w.shape[0]}->{w.shape[1]}: {part}",
                             bench.timed(fn, repeats)["median_ms"]))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arch", nargs="?", default="mlp", choices=("mlp", "cnn"))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--cpu-time", action="store_true",
                        help="clock the process's CPU time instead of wall time: on a busy "
                             "machine, at 1 thread, it leaves out the time spent waiting for a "
                             "core (at N threads it adds up every thread's, spinning included)")
    args = parser.parse_args(argv)
    bench = load_bench()
    from numpyvae.kernels.threads import set_threads

    set_threads(args.threads)
    info = bench.run_info()
    print(f"CPU: {info['cpu_model']}   commit {info['commit']}   {info['date']}   "
          f"load average {info['load_average']}")
    clock = time.process_time if args.cpu_time else time.perf_counter
    per_step, vae = profile(args.arch, args.batch, args.steps, bench, clock)
    step_ms = 1e3 * statistics.median(s["step"] for s in per_step)
    print(f"\n{'CPU' if args.cpu_time else 'wall'} time. "
          f"{args.arch} step, batch {args.batch}, {args.threads} thread(s): median "
          f"{step_ms:.2f} ms over {args.steps} steps after the warm-up; each part's median:")
    names = [k for k in per_step[0] if k != "step"]
    total = sum(1e3 * statistics.median(s[k] for s in per_step) for k in names)
    print(f"  (the parts' medians sum to {total:.2f} ms; a gap to the step's median is noise: "
          "each median comes from its own step)")
    for name in sorted(names, key=lambda k: -statistics.median(s[k] for s in per_step)):
        ms = 1e3 * statistics.median(s[name] for s in per_step)
        print(f"  {name:<36} {ms:8.3f} ms  {ms / step_ms:6.1%}")
    print("\nThe Dense layers' parts, each timed alone (median ms):")
    for label, ms in dense_parts(vae, args.batch, 20, bench):
        print(f"  {label:<44} {ms:8.3f}")
    print(f"\nload average at the end: {bench.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
