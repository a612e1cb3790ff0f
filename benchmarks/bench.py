"""Benchmarks: the conv kernels at the CNN's shapes, whole training steps, their floor.

    python benchmarks/bench.py [kernels|step|trace|all] [--threads N] [--json FILE]
                               [--compare-torch] [--repeats K] [--batch B]
                               [--warmup-max N] [--trace-calls N] [--no-cold-start]

kernels  each conv and transposed conv of the report's CNN, at its exact shapes:
         forward, grad_input and grad_weight timed separately through the public
         functions of numpyvae.kernels, against a float32 1024×1024 matmul timed
         in the same run at the same thread count.
step     a full training step (forward with the loss, backward, Adam) of the MLP
         and the CNN VAE, each configuration in a fresh process (so peak memory
         is its own), at batches 64/256/1024 and at 1 vs N threads; the floor
         (BLAS on the step's whole-batch GEMMs, plus the bytes of BatchNorm, ELU
         and Adam at the streaming rate); then the cold start: import to the
         first finished CNN step, with a cold and a warm numba cache.
trace    the first steps of a fresh process, one by one: the warm-up.
--compare-torch  the same steps in PyTorch (benchmarks/torch_models.py), each in
         its own process, one after another, never beside our kernels.

Every figure is warmed up by one rule (``warmed_up``: at least 10 calls and until
two successive medians of 5 agree within 3%, capped), then reported as the median
of ``--repeats`` timed calls with their spread. Every row carries the date,
commit, load average, thread count, numba threading layer, BLAS libraries and CPU
model. See benchmarks/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
LATENT_DIM = 2
EPOCH_IMAGES = 60_000
BATCH = 256
STEP_BATCHES = (64, 256, 1024)
GEMM_N = 1024
RESULT_TAG = "BENCH_RESULT "  # marks a worker's answer on its stdout
INSTALL_TORCH = 'pip install -e ".[bench]"'


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# What every row carries
# ----------------------------------------------------------------------------
def package_tree() -> Path:
    """The checkout numpyvae is imported from (PYTHONPATH): paired.py may time another
    checkout's package with this file."""
    spec = importlib.util.find_spec("numpyvae")
    if spec is None or spec.origin is None:
        return HERE.parent
    return Path(spec.origin).resolve().parents[1]


def git_commit(tree: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree or package_tree(),
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def uncommitted_changes() -> bool:
    """Whether the package or the benchmarks differ from the commit: then the commit alone
    does not say what code ran."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                              "numpyvae", "benchmarks"], cwd=package_tree(),
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_detail() -> str:
    """What ``model name`` leaves out ("AMD EPYC" names several generations): the family
    and model numbers, the widest SIMD, the core count."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return f"{os.cpu_count()} cores"
    flags = fields.get("flags", "").split()
    simd = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), "?")
    return (f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}, {simd}, "
            f"{os.cpu_count()} cores")


def blas_libraries() -> list[dict[str, Any]]:
    """threadpoolctl's view of every BLAS this process has loaded."""
    from threadpoolctl import threadpool_info

    keys = ("internal_api", "version", "architecture", "num_threads", "filepath")
    return [{k: lib.get(k) for k in keys} for lib in threadpool_info() if lib["user_api"] == "blas"]


def numba_threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process yet
        return "not started"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (``uptime``'s): how busy the shared machine was."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def run_info() -> dict[str, Any]:
    """The fields shared by every row of one run."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),  # of the package timed
        "bench_commit": git_commit(HERE),  # of this file
        "uncommitted_changes": uncommitted_changes(),
        "cpu_model": cpu_model(),
        "cpu_detail": cpu_detail(),
        "load_average": load_average(),
        "warmup_rule": {"min_calls": WARMUP_MIN, "window": WARMUP_WINDOW, "tol": WARMUP_TOL,
                        "max_calls": max_warmup_calls},
    }


# The warm-up rule (issue 20): a numba kernel, a BLAS thread pool, the allocator and the
# CPU's clocks all settle over the first calls; a figure is only read once they have.
WARMUP_MIN = 10      # at least this many untimed calls ...
WARMUP_WINDOW = 5    # ... and until the medians of the last two windows of this many calls
WARMUP_TOL = 0.03    # agree within this fraction ...
WARMUP_MAX = 60      # ... but never more calls than this (--warmup-max); the row says so
max_warmup_calls = WARMUP_MAX  # this run's cap: main() and worker_main() set it


def warmed_up(times: Sequence[float], window: int = WARMUP_WINDOW, tol: float = WARMUP_TOL,
              min_calls: int = WARMUP_MIN) -> bool:
    """Whether the calls timed so far are steady: at least ``min_calls`` of them, and the
    median of the last ``window`` within ``tol`` of the median of the ``window`` before."""
    if len(times) < max(min_calls, 2 * window):
        return False
    before = statistics.median(times[-2 * window:-window])
    last = statistics.median(times[-window:])
    return abs(last - before) <= tol * min(last, before)


def warm_up(fn: Callable[[], Any], max_calls: int = WARMUP_MAX,
            clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], bool]:
    """Call ``fn`` until ``warmed_up`` or ``max_calls`` calls: every call's time in
    seconds (the warm-up trace), and whether the rule was met before the cap."""
    times: list[float] = []
    while len(times) < max_calls:
        start = clock()
        fn()
        times.append(clock() - start)
        if warmed_up(times):
            return times, True
    return times, False


def timed(fn: Callable[[], Any], repeats: int, max_warmup: int | None = None,
          clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """``fn`` warmed up by the rule above, then timed ``repeats`` times: the median and the
    spread (min, max) in ms, and how the warm-up went."""
    warmup, steady = warm_up(fn, max_warmup or max_warmup_calls, clock)
    times = []
    for _ in range(max(repeats, 1)):
        start = clock()
        fn()
        times.append(clock() - start)
    return {"median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times),
            "max_ms": 1e3 * max(times), "timed_calls": len(times),
            "warmup_calls": len(warmup), "warmed_up": steady}


def warmup_rule() -> str:
    """The rule, as the output states it."""
    return (f"warm-up: at least {WARMUP_MIN} calls and until the medians of two successive "
            f"{WARMUP_WINDOW} calls agree within {WARMUP_TOL:.0%}, at most {max_warmup_calls} "
            "calls (a row that hit the cap is marked 'cap'); then the timed calls: median, "
            "spread min-max")


# ----------------------------------------------------------------------------
# Shapes and FLOPs, read from the models numpyvae builds
# ----------------------------------------------------------------------------
def walk(vae: Any) -> list[tuple[str, Any, tuple, tuple]]:
    """(name, layer, input shape, output shape) for every layer, from a batch-2 forward pass."""
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    found = []
    for part, seq in (("enc", vae.encoder), ("dec", vae.decoder)):
        for i, layer in enumerate(seq.layers):
            y = layer.forward(x)
            found.append((f"{part}.{i}", layer, x.shape, y.shape))
            x = y
        x = np.ascontiguousarray(x[:, :LATENT_DIM])  # the decoder reads z: the output's first half
    return found


def forward_flops_per_image(vae: Any) -> int:
    """2 × weight size × the positions each weight is applied at, over the conv and dense layers.

    A conv applies its weight at every output pixel, a transposed conv at every
    input pixel, a dense layer once per image.
    """
    from numpyvae.nn import Conv2d, ConvTranspose2d, Dense

    total = 0
    for _, layer, x_shape, y_shape in walk(vae):
        if isinstance(layer, ConvTranspose2d):
            positions = x_shape[2] * x_shape[3]
        elif isinstance(layer, Conv2d):
            positions = y_shape[2] * y_shape[3]
        elif isinstance(layer, Dense):
            positions = 1
        else:
            continue
        total += 2 * layer.params["weight"].size * positions
    return total


def cnn_convs() -> list[dict[str, Any]]:
    """Every conv and transposed conv of the CNN VAE, as the conv kernels see it.

    A conv maps a (C, H, W) input to a (F, Ho, Wo) output with a (F, C, K, K)
    weight. A transposed conv is the same conv run backwards: its input is the
    conv's output, its output the conv's input, its weight already (F, C, K, K).
    """
    from numpyvae.models.architectures import build_cnn_vae
    from numpyvae.nn import Conv2d, ConvTranspose2d

    convs, counts = [], {}
    for name, layer, x_shape, y_shape in walk(build_cnn_vae(LATENT_DIM)):
        if not isinstance(layer, (Conv2d, ConvTranspose2d)):
            continue
        transposed = isinstance(layer, ConvTranspose2d)
        kind = "convT" if transposed else "conv"
        counts[(name[:3], kind)] = k = counts.get((name[:3], kind), 0) + 1
        conv_in, conv_out = (y_shape, x_shape) if transposed else (x_shape, y_shape)
        convs.append({
            "layer": f"{name[:3]}.{kind}{k} {x_shape[1]}->{y_shape[1]} "
                     f"{x_shape[2]}->{y_shape[2]}",
            "transposed": transposed,
            "conv_in": conv_in[1:], "conv_out": conv_out[1:],
            "kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding,
            "thin": 1 in (x_shape[1], y_shape[1]),
        })
    return convs


# ----------------------------------------------------------------------------
# kernels
# ----------------------------------------------------------------------------
def gemm_timing(repeats: int) -> dict[str, Any]:
    """A float32 1024² matmul of NumPy's BLAS (the ceiling the conv kernels are held
    against): ``timed``'s figures and the rate in GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    t = timed(lambda: np.matmul(a, b, out=out), max(repeats, 5))
    return {**t, "gflops": 2 * GEMM_N**3 / (t["median_ms"] * 1e6)}


def conv_directions(conv: dict[str, Any], batch: int) -> dict[str, Callable[[], Any]]:
    """The three calls a layer makes, by direction, on random data of the layer's shapes.

    With a (the conv's input) and d (its output), a conv's forward is
    conv2d_forward, its grad_input conv2d_grad_input; a transposed conv swaps
    those two. Both take conv2d_grad_weight(d, a) for their weight gradient.
    """
    from numpyvae import kernels

    rng = np.random.default_rng(0)
    (C, H, W), (F, _, _) = conv["conv_in"], conv["conv_out"]
    K, s, p = conv["kernel_size"], conv["stride"], conv["padding"]
    a = rng.standard_normal((batch, *conv["conv_in"]), dtype=np.float32)
    d = rng.standard_normal((batch, *conv["conv_out"]), dtype=np.float32)
    w = rng.standard_normal((F, C, K, K), dtype=np.float32)
    conv_forward = partial(kernels.conv2d_forward, a, w, np.zeros(F, np.float32), s, p)
    conv_grad_input = partial(kernels.conv2d_grad_input, d, w, (H, W), s, p,
                              bias=np.zeros(C, np.float32))
    grad_weight = partial(kernels.conv2d_grad_weight, d, a, K, s, p)
    if conv["transposed"]:
        return {"forward": conv_grad_input, "grad_input": conv_forward, "grad_weight": grad_weight}
    return {"forward": conv_forward, "grad_input": conv_grad_input, "grad_weight": grad_weight}


def bench_kernels(batch: int, threads: int, repeats: int) -> list[dict[str, Any]]:
    """One row per (layer, direction); each direction costs 2·N·Ho·Wo·F·C·K² FLOPs."""
    from numpyvae.kernels.threads import set_threads

    set_threads(threads)
    gemm_row = gemm_timing(repeats)
    gemm = gemm_row["gflops"]
    log(f"float32 matmul {GEMM_N}x{GEMM_N}: {gemm:.1f} GFLOP/s at {threads} thread(s)")
    rows = []
    for conv in cnn_convs():
        (C, _, _), (F, Ho, Wo) = conv["conv_in"], conv["conv_out"]
        flops = 2 * batch * Ho * Wo * F * C * conv["kernel_size"] ** 2
        for direction, call in conv_directions(conv, batch).items():
            t = timed(call, repeats)
            gflops = flops / (t["median_ms"] * 1e6)
            rows.append({
                "bench": "kernel", "arch": "cnn", "layer": conv["layer"],
                "direction": direction, "batch": batch, "threads": threads, **t,
                "gflops": gflops, "flops": flops, "gemm_gflops": gemm,
                "gemm_ms": gemm_row["median_ms"], "gemm_min_ms": gemm_row["min_ms"],
                "gemm_max_ms": gemm_row["max_ms"], "gemm_warmup_calls": gemm_row["warmup_calls"],
                "gemm_fraction": gflops / gemm, "thin": conv["thin"],
            })
    blas, layer = blas_libraries(), numba_threading_layer()
    for row in rows:
        row.update(numba_threading_layer=layer, blas=blas)
    return rows


# ----------------------------------------------------------------------------
# step: each configuration in a fresh process
# ----------------------------------------------------------------------------
def keep_memory_as_train_does() -> None:
    """``train`` keeps freed memory for the next step (training/memory.py); an older
    checkout timed by paired.py may not have it, and then runs as it would train."""
    try:
        from numpyvae.training.memory import keep_freed_memory
    except ImportError:
        return
    keep_freed_memory()


def numpyvae_step(arch: str, batch: int) -> tuple[Callable[[], Any], int]:
    """A training step of our model on fixed random data, and its forward FLOPs per image."""
    from numpyvae.models.architectures import build_vae
    from numpyvae.nn.adam import Adam

    keep_memory_as_train_does()
    rng = np.random.default_rng(0)
    vae = build_vae(arch, LATENT_DIM, rng=rng)
    flops = forward_flops_per_image(vae)
    adam = Adam(vae.parameters(), lr=1e-3)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    noise = np.random.default_rng(1)

    def step() -> None:
        vae.forward(x, rng=noise)
        vae.backward()
        adam.step()

    return step, flops


def torch_step(arch: str, batch: int) -> Callable[[], Any]:
    """The same step in PyTorch: the same model, loss, data and Adam."""
    sys.path.insert(0, str(HERE))
    import torch
    from torch_models import build_torch_vae

    torch.manual_seed(0)
    vae = build_torch_vae(arch, LATENT_DIM)
    adam = torch.optim.Adam(vae.parameters(), lr=1e-3)
    x = torch.from_numpy(np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32))

    def step() -> None:
        adam.zero_grad()
        vae.loss(x).backward()
        adam.step()

    return step


def measure_step(framework: str, arch: str, batch: int, threads: int,
                 repeats: int) -> dict[str, Any]:
    """Time one configuration (runs inside a worker process)."""
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        t = timed(torch_step(arch, batch), repeats)
        info = {"numba_threading_layer": "n/a",
                "blas": [{"internal_api": "torch", "version": torch.__version__,
                          "architecture": torch.backends.cpu.get_cpu_capability()}]}
        flops = None  # the parent fills it in from our model: the architecture is the same
    else:
        from numpyvae.kernels.threads import set_threads

        set_threads(threads)
        step, flops = numpyvae_step(arch, batch)
        t = timed(step, repeats)
        info = {"numba_threading_layer": numba_threading_layer(), "blas": blas_libraries()}
    ms = t["median_ms"]
    return {
        "bench": "step", "framework": framework, "arch": arch, "batch": batch,
        "threads": threads, **t, "forward_flops_per_image": flops,
        "images_per_s": batch / (ms / 1e3), "epoch_s": EPOCH_IMAGES / batch * ms / 1e3,
        # ru_maxrss is in KiB on Linux
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **info,
    }


def _stream_loop(n: int) -> Any:
    """A memory-bound numba loop, b = 1.5·a over n float32s (far beyond the caches): what
    the batch-norm and ELU kernels are limited by."""
    import numba

    @numba.njit(parallel=True)
    def run(a, b):
        for i in numba.prange(a.size):
            b[i] = a[i] * np.float32(1.5)

    a = np.ones(n, np.float32)
    b = np.empty_like(a)
    return lambda: run(a, b)


def ceiling_worker(threads: int, repeats: int) -> dict[str, Any]:
    """At ``threads`` threads: a 1024² float32 GEMM (compute-bound) and a streaming loop
    (memory-bound), the two limits the training step's kernels live between."""
    from numpyvae.kernels.threads import set_threads

    set_threads(threads)
    stream, gemm = stream_timing(repeats), gemm_timing(repeats)
    return {"bench": "ceiling", "threads": threads,
            **{f"gemm_{k.replace('median_', '')}": v for k, v in gemm.items() if k != "gflops"},
            **{f"stream_{k.replace('median_', '')}": v for k, v in stream.items()}}


def stream_timing(repeats: int, n: int = 16_000_000) -> dict[str, Any]:
    """``timed`` on the streaming loop over n float32s (default 64 MB in, 64 MB out), and
    its rate: bytes read and written per second."""
    t = timed(_stream_loop(n), max(repeats, 5))
    return {**t, "gb_per_s": 2 * 4 * n / (t["median_ms"] * 1e6)}


def thread_ceiling(thread_counts: Sequence[int], repeats: int) -> list[dict[str, Any]]:
    """``ceiling_worker`` at each thread count, each in a fresh process."""
    rows = []
    for t in thread_counts:
        log(f"ceiling: GEMM and a streaming loop, {t} thread(s)")
        rows.append(in_worker({"kind": "ceiling", "threads": t, "repeats": repeats}))
    return rows


# ----------------------------------------------------------------------------
# The floor: what BLAS needs for the step's GEMMs, and what memory needs for its
# elementwise passes, timed in the same run at the step's thread count
# ----------------------------------------------------------------------------
def gemm_products(arch: str, batch: int) -> list[dict[str, Any]]:
    """The whole-batch products of the step, as (m, k) @ (k, n) shapes with the transposes
    BLAS gets. CNN: the three im2col products of each big (not 1-channel) conv layer; a
    transposed conv counts as the conv it reverses. MLP: the three products of each Dense."""
    from numpyvae.models.architectures import build_vae
    from numpyvae.nn import Dense

    found = []
    if arch == "cnn":
        for conv in (c for c in cnn_convs() if not c["thin"]):
            (C, _, _), (F, Ho, Wo) = conv["conv_in"], conv["conv_out"]
            P, Kc = batch * Ho * Wo, C * conv["kernel_size"] ** 2  # positions, patch length
            found += [(conv["layer"], "forward", (P, Kc, F, False)),      # cols @ Wᵀ
                      (conv["layer"], "grad_input", (P, F, Kc, False)),   # dY @ W
                      (conv["layer"], "grad_weight", (F, P, Kc, True))]   # dYᵀ @ cols
    else:
        for name, layer, _, _ in walk(build_vae(arch, LATENT_DIM)):
            if isinstance(layer, Dense):
                D, E = layer.params["weight"].shape
                found += [(name, "forward", (batch, D, E, False)),        # X @ W
                          (name, "grad_input", (batch, E, D, False)),     # dY @ Wᵀ
                          (name, "grad_weight", (D, batch, E, True))]     # Xᵀ @ dY
    return [{"layer": n, "direction": d, "m": m, "k": k, "n": nn, "transposed_a": t}
            for n, d, (m, k, nn, t) in found]


def time_product(p: dict[str, Any], repeats: int) -> dict[str, Any]:
    """``timed`` on one float32 product (m, k) @ (k, n) into a preallocated output; a
    transposed left factor is passed as a view, so BLAS reads it with its transpose flag."""
    rng = np.random.default_rng(0)
    m, k, n = p["m"], p["k"], p["n"]
    a = rng.standard_normal((k, m) if p["transposed_a"] else (m, k), dtype=np.float32)
    a = a.T if p["transposed_a"] else a
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    return {**p, **timed(lambda: np.matmul(a, b, out=out), repeats)}


def stream_bytes(arch: str, batch: int) -> dict[str, int]:
    """The bytes BatchNorm, ELU and Adam cannot avoid reading and writing in one step.

    BatchNorm2d followed by ELU, fused at best: forward reads x for the statistics, then
    reads x and writes y; backward reads dy and x for its two sums, then reads dy and x and
    writes dx: 8 arrays of the activation's size. An ELU alone: forward reads x, writes y;
    backward reads dy and y, writes dx: 5 arrays. Adam reads θ, g, m, v and writes θ, m, v:
    7 arrays of the parameter count. Everything float32.
    """
    from numpyvae.models.architectures import build_vae
    from numpyvae.nn import ELU, BatchNorm2d

    vae = build_vae(arch, LATENT_DIM)
    layers = walk(vae)
    found = {"batchnorm+elu": 0, "elu": 0,
             "adam": 4 * 7 * sum(p.size for p, _ in vae.parameters())}
    for i, (_, layer, _, y_shape) in enumerate(layers):
        size = 4 * batch * int(np.prod(y_shape[1:]))
        if isinstance(layer, BatchNorm2d):
            found["batchnorm+elu"] += 8 * size
        elif isinstance(layer, ELU) and not isinstance(layers[i - 1][1], BatchNorm2d):
            found["elu"] += 5 * size
    return found


def floor_worker(arch: str, batch: int, threads: int, repeats: int) -> dict[str, Any]:
    """The step's floor at ``threads`` threads: the sum of its GEMMs' medians, and the stream
    term, ``stream_bytes`` over the streaming loop's rate in the same process."""
    from numpyvae.kernels.threads import set_threads

    set_threads(threads)
    products = [time_product(p, repeats) for p in gemm_products(arch, batch)]
    stream = stream_timing(repeats)
    moved = stream_bytes(arch, batch)
    gemm_ms = sum(p["median_ms"] for p in products)
    stream_ms = sum(moved.values()) / (stream["gb_per_s"] * 1e6)
    return {"bench": "floor", "arch": arch, "batch": batch, "threads": threads,
            "gemm_floor_ms": gemm_ms, "stream_floor_ms": stream_ms,
            "floor_with_stream_ms": gemm_ms + stream_ms, "stream_bytes": moved,
            "stream_gb_per_s": stream["gb_per_s"], "stream_warmup_calls": stream["warmup_calls"],
            "products": products}


def floor_row(step: dict[str, Any], repeats: int) -> dict[str, Any]:
    """The floor for our step row's (arch, batch, threads), in a fresh process; the step row
    gets its ratios to both floors."""
    arch, batch, threads = step["arch"], step["batch"], step["threads"]
    log(f"floor: {arch} GEMMs and stream, batch {batch}, {threads} thread(s)")
    row = in_worker({"kind": "floor", "arch": arch, "batch": batch, "threads": threads,
                     "repeats": repeats})
    step["gemm_floor_ms"] = row["gemm_floor_ms"]
    step["floor_with_stream_ms"] = row["floor_with_stream_ms"]
    step["over_gemm_floor"] = step["median_ms"] / row["gemm_floor_ms"]
    step["over_floor_with_stream"] = step["median_ms"] / row["floor_with_stream_ms"]
    return row


# ----------------------------------------------------------------------------
# The warm-up trace: the first calls of a fresh process, one by one
# ----------------------------------------------------------------------------
def trace_worker(framework: str, arch: str, batch: int, threads: int,
                 calls: int) -> dict[str, Any]:
    """The first ``calls`` step times of this (fresh) process, in ms."""
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        step = torch_step(arch, batch)
    else:
        from numpyvae.kernels.threads import set_threads

        set_threads(threads)
        step, _ = numpyvae_step(arch, batch)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - start))
    return {"bench": "trace", "framework": framework, "arch": arch, "batch": batch,
            "threads": threads, "trace_ms": times}


def rule_stops_after(times: Sequence[float]) -> int | None:
    """After how many of ``times`` the warm-up rule would stop (None: not within them)."""
    return next((n for n in range(1, len(times) + 1) if warmed_up(times[:n])), None)


def bench_trace(frameworks: Sequence[str], batch: int, threads: int,
                calls: int) -> list[dict[str, Any]]:
    """``trace_worker`` for each framework and arch, each in a fresh process."""
    rows = []
    for framework in frameworks:
        for arch in ("mlp", "cnn"):
            log(f"trace: first {calls} {framework} {arch} steps, batch {batch}, {threads} "
                "thread(s)")
            row = in_worker({"kind": "trace", "framework": framework, "arch": arch,
                             "batch": batch, "threads": threads, "calls": calls})
            row["rule_stops_after"] = rule_stops_after(row["trace_ms"])
            rows.append(row)
    return rows


def cold_start_worker(t0: float, threads: int, batch: int) -> dict[str, Any]:
    """Called right after ``import numpyvae``, timed from just before it."""
    from numpyvae.kernels.threads import set_threads

    set_threads(threads)
    step, _ = numpyvae_step("cnn", batch)
    step()
    return {"cold_start_s": time.perf_counter() - t0}


def in_worker(payload: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``payload`` in a fresh Python process and return its answer."""
    payload = {**payload, "max_warmup": max_warmup_calls}
    if payload["kind"] == "cold_start":
        # the clock starts before numpyvae is imported: numpy, numba and the kernels count
        code = ("import time; t0 = time.perf_counter(); import numpyvae, sys; "
                f"sys.path.insert(0, {str(HERE)!r}); import bench; "
                f"bench.worker_main({json.dumps(payload)!r}, t0)")
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "_worker", json.dumps(payload)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)  # stderr passes through
    answers = [line for line in out.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if out.returncode != 0 or not answers:
        raise RuntimeError(f"benchmark worker failed (exit {out.returncode}): {payload}")
    return json.loads(answers[-1][len(RESULT_TAG):])


def worker_main(payload_json: str, t0: float | None = None) -> None:
    global max_warmup_calls
    p = json.loads(payload_json)
    max_warmup_calls = p.get("max_warmup", max_warmup_calls)
    if p["kind"] == "cold_start":
        result = cold_start_worker(t0, p["threads"], p["batch"])
    elif p["kind"] == "ceiling":
        result = ceiling_worker(p["threads"], p["repeats"])
    elif p["kind"] == "floor":
        result = floor_worker(p["arch"], p["batch"], p["threads"], p["repeats"])
    elif p["kind"] == "trace":
        result = trace_worker(p["framework"], p["arch"], p["batch"], p["threads"], p["calls"])
    else:
        result = measure_step(p["framework"], p["arch"], p["batch"], p["threads"], p["repeats"])
    print(RESULT_TAG + json.dumps(result), flush=True)


def step_row(framework: str, arch: str, batch: int, threads: int, repeats: int,
             forward_flops: int | None = None) -> dict[str, Any]:
    """One step configuration, timed in a fresh process; torch rows take our model's FLOPs."""
    log(f"step: {framework} {arch} batch {batch}, {threads} thread(s)")
    row = in_worker({"kind": "step", "framework": framework, "arch": arch, "batch": batch,
                     "threads": threads, "repeats": repeats})
    row["forward_flops_per_image"] = row["forward_flops_per_image"] or forward_flops
    # forward + backward ≈ 3 forward passes: the backward computes dX and dW, each a forward's cost
    row["step_flops"] = 3 * row["forward_flops_per_image"] * batch
    row["gflops"] = row["step_flops"] / (row["median_ms"] * 1e6)
    return row


def cold_start(threads: int, batch: int) -> dict[str, float]:
    """Import to the first finished CNN step: with an empty numba cache, then with it filled."""
    result = {}
    with tempfile.TemporaryDirectory(prefix="numpyvae-numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "warm"):  # the cold run fills the cache the warm run reads
            log(f"cold start: {label} numba cache")
            answer = in_worker({"kind": "cold_start", "threads": threads, "batch": batch}, env)
            result[f"cold_start_{label}_s"] = answer["cold_start_s"]
    return result


def bench_steps(batches: Sequence[int], thread_counts: Sequence[int], repeats: int,
                with_cold_start: bool = True) -> list[dict[str, Any]]:
    """Each arch at every batch with the most threads, and at the middle batch with each count."""
    top, middle = max(thread_counts), batches[len(batches) // 2]
    configs = [(b, top) for b in batches] + [(middle, t) for t in thread_counts if t != top]
    rows = [step_row("numpyvae", arch, b, t, repeats) for arch in ("mlp", "cnn")
            for b, t in configs]
    if with_cold_start:
        cnn = next(r for r in rows if (r["arch"], r["batch"], r["threads"]) == ("cnn", middle, top))
        cnn.update(cold_start(top, middle))
    return rows


def compare_torch(rows: list[dict[str, Any]], batch: int, threads: int,
                  repeats: int) -> list[dict[str, Any]]:
    """Torch's step for each arch at (batch, threads), and ours/torch on our rows."""
    torch_rows = []
    for arch in ("mlp", "cnn"):
        ours = next((r for r in rows if r["framework"] == "numpyvae" and r["arch"] == arch
                     and r["batch"] == batch and r["threads"] == threads), None)
        if ours is None:
            ours = step_row("numpyvae", arch, batch, threads, repeats)
            rows.append(ours)
        theirs = step_row("torch", arch, batch, threads, repeats,
                          forward_flops=ours["forward_flops_per_image"])
        ours["torch_ms"] = theirs["median_ms"]
        ours["ours_over_torch"] = ours["median_ms"] / theirs["median_ms"]
        torch_rows.append(theirs)
    return torch_rows


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------
def print_table(title: str, columns: Sequence[tuple[str, str, str]],
                rows: Sequence[dict[str, Any]]) -> None:
    """columns: (header, row key, format spec); a missing value prints as '-'."""
    cells = [[format(r[k], f) if r.get(k) is not None else "-" for _, k, f in columns]
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _, _) in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                    for i, ((h, _, _), w) in enumerate(zip(columns, widths, strict=True))))
    for c in cells:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(c, widths, strict=True))))


def with_spread(rows: Sequence[dict[str, Any]], digits: int) -> list[dict[str, Any]]:
    """Rows with two printable cells: ``spread`` (the timed calls' min-max, ms) and
    ``warmup`` (the warm-up's calls, 'cap' if it stopped at the cap)."""
    out = []
    for r in rows:
        cells = {}
        if "min_ms" in r:
            cells["spread"] = f"{r['min_ms']:.{digits}f}-{r['max_ms']:.{digits}f}"
            cells["warmup"] = f"{r['warmup_calls']}{'' if r['warmed_up'] else ' cap'}"
        out.append({**r, **cells})
    return out


KERNEL_COLUMNS = [("layer", "layer", ""), ("direction", "direction", ""),
                  ("ms", "median_ms", ".2f"), ("spread", "spread", ""),
                  ("warm-up", "warmup", ""), ("GFLOP/s", "gflops", ".1f"),
                  ("of GEMM", "gemm_fraction", ".0%")]
STEP_COLUMNS = [("framework", "framework", ""), ("arch", "arch", ""), ("batch", "batch", "d"),
                ("threads", "threads", "d"), ("ms", "median_ms", ".1f"), ("spread", "spread", ""),
                ("warm-up", "warmup", ""), ("images/s", "images_per_s", ".0f"),
                ("epoch s", "epoch_s", ".1f"), ("GFLOP/s", "gflops", ".1f"),
                ("peak MB", "peak_rss_mb", ".0f"), ("ours/torch", "ours_over_torch", ".2f"),
                ("/floor", "over_gemm_floor", ".2f"), ("/floor+stream", "over_floor_with_stream",
                                                        ".2f")]
CEILING_COLUMNS = [("threads", "threads", "d"), ("GEMM 1024 ms", "gemm_ms", ".2f"),
                   ("spread", "gemm_spread", ""), ("stream ms", "stream_ms", ".2f"),
                   ("spread", "stream_spread", ""), ("stream GB/s", "stream_gb_per_s", ".1f")]
FLOOR_COLUMNS = [("layer", "layer", ""), ("direction", "direction", ""),
                 ("product (m,k)@(k,n)", "shape", ""), ("ms", "median_ms", ".2f"),
                 ("spread", "spread", ""), ("warm-up", "warmup", "")]


def floor_step_rows(floors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The floors as rows of the step table, under our steps."""
    rows = []
    for f in floors:
        for label, key in (("floor: GEMM", "gemm_floor_ms"),
                           ("floor: GEMM+stream", "floor_with_stream_ms")):
            rows.append({"framework": label, "arch": f["arch"], "batch": f["batch"],
                         "threads": f["threads"], "median_ms": f[key]})
    return rows


def print_floors(floors: Sequence[dict[str, Any]]) -> None:
    """Each floor's products, and its stream term."""
    for f in floors:
        products = [{**p, "shape": f"({p['m']},{p['k']})@({p['k']},{p['n']})"
                     + ("  Aᵀ" if p["transposed_a"] else "")} for p in f["products"]]
        print_table(f"Floor, {f['arch']} batch {f['batch']}, {f['threads']} thread(s): NumPy "
                    f"matmul (OpenBLAS) on the step's whole-batch products: "
                    f"{f['gemm_floor_ms']:.1f} ms", FLOOR_COLUMNS, with_spread(products, 2))
        moved = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in f["stream_bytes"].items())
        print(f"stream term: {moved} at {f['stream_gb_per_s']:.1f} GB/s (same run's streaming "
              f"loop) = {f['stream_floor_ms']:.1f} ms; floor with it "
              f"{f['floor_with_stream_ms']:.1f} ms")


def print_traces(traces: Sequence[dict[str, Any]]) -> None:
    for t in traces:
        stop = t["rule_stops_after"]
        print(f"\nWarm-up trace, {t['framework']} {t['arch']} batch {t['batch']}, "
              f"{t['threads']} thread(s), the first {len(t['trace_ms'])} steps of a fresh "
              f"process (ms); the rule stops after call "
              f"{stop if stop else 'none of them'}:")
        print(" ".join(f"{ms:.1f}" if ms < 100 else f"{ms:.0f}" for ms in t["trace_ms"]))


def summary_checks(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, goal, met) for the targets of issue 20 this run measured; met is
    None for a figure reported beside a target."""
    kernels = [r for r in rows if r["bench"] == "kernel"]
    ours = {(r["arch"], r["batch"], r["threads"]): r for r in rows
            if r["bench"] == "step" and r["framework"] == "numpyvae"}
    checks: list[tuple[str, str, str, bool | None]] = []
    for r in (r for r in ours.values() if r["arch"] == "cnn" and "over_gemm_floor" in r):
        checks.append((f"CNN step / GEMM-only floor (batch {r['batch']}, {r['threads']} thr)",
                       f"{r['median_ms']:.1f} / {r['gemm_floor_ms']:.1f} ms = "
                       f"{r['over_gemm_floor']:.2f}x", "<= 1.6x", r["over_gemm_floor"] <= 1.6))
        checks.append(("  CNN step / floor with the stream term",
                       f"{r['median_ms']:.1f} / {r['floor_with_stream_ms']:.1f} ms = "
                       f"{r['over_floor_with_stream']:.2f}x", "-", None))
    convt3 = [r for r in kernels if r["layer"].startswith("dec.convT3")]
    if convt3:
        worst = min(r["gemm_fraction"] for r in convt3)
        checks.append(("dec.convT3, of GEMM (forward, grad_input, grad_weight)",
                       ", ".join(f"{r['gemm_fraction']:.0%}" for r in convt3),
                       ">= 50% each", worst >= 0.5))
    others = [r for r in kernels if not r["thin"] and not r["layer"].startswith("dec.convT3")]
    if others:
        worst = min(others, key=lambda r: r["gemm_fraction"])
        checks.append((f"slowest other big layer ({worst['layer']} {worst['direction']})",
                       f"{worst['gemm_fraction']:.0%} of GEMM", ">= 40%",
                       worst["gemm_fraction"] >= 0.4))
    ceiling = {r["threads"]: r for r in rows if r["bench"] == "ceiling"}
    for top in sorted(t for t in ceiling if t > 1)[-1:]:
        one, many = ours.get(("cnn", BATCH, 1)), ours.get(("cnn", BATCH, top))
        gemm = ceiling[1]["gemm_ms"] / ceiling[top]["gemm_ms"] if 1 in ceiling else None
        if one and many and gemm:
            speedup = one["median_ms"] / many["median_ms"]
            checks.append((f"CNN step, {top} threads vs 1, / the GEMM's",
                           f"{speedup:.2f}x / {gemm:.2f}x = {speedup / gemm:.0%}", ">= 90%",
                           speedup / gemm >= 0.9))
            stream = ceiling[1]["stream_ms"] / ceiling[top]["stream_ms"]
            checks.append((f"  (ceiling) streaming loop, {top} threads vs 1", f"{stream:.2f}x",
                           "-", None))
    for r in sorted((r for r in ours.values() if "ours_over_torch" in r),
                    key=lambda r: r["arch"] != "mlp"):
        mlp = r["arch"] == "mlp"
        checks.append((f"{r['arch'].upper()} step / PyTorch's (batch {r['batch']}, "
                       f"{r['threads']} thr)", f"{r['median_ms']:.1f} / {r['torch_ms']:.1f} ms "
                       f"= {r['ours_over_torch']:.2f}", "<= 0.65" if mlp else "-",
                       r["ours_over_torch"] <= 0.65 if mlp else None))
    return checks


def busy_machine(rows: list[dict[str, Any]], cores: int | None = None) -> str | None:
    """A warning when the 1-minute load average, at the run's start or end, was above the
    core count: other processes then shared the cores, and a multi-threaded BLAS call
    waits for a descheduled thread (a 1 ms product measured 30-60 ms at load 12 on 2
    cores), so neither the floor nor any verdict above means anything."""
    cores = cores or os.cpu_count() or 1
    loads = []
    for key in ("load_average", "load_average_end"):
        text = next((r[key] for r in rows if key in r), None)
        try:
            loads.append(float(text.split()[0]))
        except (AttributeError, ValueError, IndexError):
            continue
    if not loads or max(loads) <= cores:
        return None
    return (f"BUSY MACHINE: load average {' / '.join(f'{x:.1f}' for x in loads)} (start / end) on "
            f"{cores} cores; other work shared the cores during this run, so its times, the "
            "floor and the verdicts above are not steady-state figures")


def print_summary(rows: list[dict[str, Any]]) -> None:
    """The targets of issue 20, for whatever this run measured."""
    checks = summary_checks(rows)
    if checks:
        met = {True: "yes", False: "NO", None: ""}
        columns = [("target", "target", ""), ("measured", "measured", ""), ("goal", "goal", ""),
                   ("met", "met", "")]
        print_table("Targets of issue 20 (batch 256, steady-state medians, ratios within "
                    "this run)", columns,
                    [dict(zip(("target", "measured", "goal", "met"), (*c[:3], met[c[3]]),
                              strict=True)) for c in checks])
    busy = busy_machine(rows)
    if busy:
        print(f"\n{busy}")
    capped = [r for r in rows if r.get("warmed_up") is False]
    if capped:
        print(f"\n{len(capped)} figure(s) reached the warm-up cap ({max_warmup_calls} calls) "
              "before two medians agreed: a busy machine; their figures are less steady")


def write_json(path: str, rows: list[dict[str, Any]]) -> None:
    """Write atomically (temporary name, then rename): a reader never sees half a file."""
    from numpyvae.training.checkpoint import write_json as write_json_atomic

    write_json_atomic(Path(path).resolve(), rows)


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------
def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="all",
                        choices=("kernels", "step", "trace", "all"))
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="thread count for numba and BLAS (default: all of numba's)")
    parser.add_argument("--json", metavar="FILE", help="also save the rows as a JSON list")
    parser.add_argument("--compare-torch", action="store_true",
                        help="time the same steps in PyTorch, in separate processes")
    parser.add_argument("--repeats", type=positive_int, default=10,
                        help="timed calls per figure after the warm-up; the median and the "
                             "spread are reported (default 10)")
    parser.add_argument("--warmup-max", type=positive_int, default=WARMUP_MAX,
                        help=f"the warm-up's cap in calls (default {WARMUP_MAX}; at least "
                             f"{WARMUP_MIN})")
    parser.add_argument("--trace-calls", type=positive_int, default=25,
                        help="steps the warm-up trace prints (default 25)")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help="one batch size instead of 256 (kernels) and 64/256/1024 (step)")
    parser.add_argument("--no-cold-start", action="store_true",
                        help="skip the cold start (import to the first CNN step)")
    parser.add_argument("--steps-only", action="store_true",
                        help="step: our steps at --threads only (no 1-thread run, thread "
                             "ceiling or floor): what paired.py reads")
    args = parser.parse_args(argv)
    if args.warmup_max < WARMUP_MIN:
        parser.error(f"--warmup-max must be at least {WARMUP_MIN} (the rule's minimum), got "
                     f"{args.warmup_max}")
    return args


def run_steps(args: argparse.Namespace, threads: int) -> list[dict[str, Any]]:
    """Our steps, PyTorch's, the thread ceiling and the floors, each in fresh processes."""
    batches = [args.batch] if args.batch else list(STEP_BATCHES)
    middle = batches[len(batches) // 2]
    steps = bench_steps(batches, [threads] if args.steps_only else sorted({1, threads}),
                        args.repeats, with_cold_start=not args.no_cold_start)
    if args.compare_torch:
        steps += compare_torch(steps, middle, threads, args.repeats)
    if args.steps_only:
        return steps
    if threads > 1:
        steps += thread_ceiling(sorted({1, threads}), args.repeats)
    steps += [floor_row(r, args.repeats) for r in list(steps)
              if r["bench"] == "step" and r["framework"] == "numpyvae"
              and (r["batch"], r["threads"]) == (middle, threads)]
    return steps


def print_steps(steps: list[dict[str, Any]]) -> None:
    floors = [r for r in steps if r["bench"] == "floor"]
    print_table("Training step (forward + loss + backward + Adam), float32", STEP_COLUMNS,
                with_spread([r for r in steps if r["bench"] == "step"], 1)
                + floor_step_rows(floors))
    ceiling = [{**r, "gemm_spread": f"{r['gemm_min_ms']:.2f}-{r['gemm_max_ms']:.2f}",
                "stream_spread": f"{r['stream_min_ms']:.2f}-{r['stream_max_ms']:.2f}"}
               for r in steps if r["bench"] == "ceiling"]
    if ceiling:
        print_table("Thread ceiling: the same work at 1 and N threads", CEILING_COLUMNS, ceiling)
    print_floors(floors)
    for r in (r for r in steps if "cold_start_cold_s" in r):
        print(f"\nCold start, import to first CNN step (batch {r['batch']}, {r['threads']} "
              f"threads): cold numba cache {r['cold_start_cold_s']:.1f} s, "
              f"warm {r['cold_start_warm_s']:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    global max_warmup_calls
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_worker"]:
        worker_main(argv[1])
        return 0
    args = parse_args(argv)
    if args.compare_torch and not torch_available():
        print("--compare-torch needs PyTorch, which numpyvae does not depend on. Install the "
              f"bench extra (torch==2.13.0, CPU build) from the repository root:\n"
              f"    {INSTALL_TORCH}", file=sys.stderr)
        return 2
    from numpyvae.kernels.threads import max_threads

    threads = args.threads or max_threads()
    if threads > max_threads():
        print(f"--threads must be between 1 and {max_threads()}, got {threads}", file=sys.stderr)
        return 2
    max_warmup_calls = args.warmup_max
    info = run_info()
    dirty = " (with uncommitted changes)" if info["uncommitted_changes"] else ""
    print(f"CPU: {info['cpu_model']} ({info['cpu_detail']})   commit {info['commit']}{dirty}   "
          f"{info['date']}   "
          f"load average {info['load_average']}")
    print(warmup_rule() + f", {args.repeats} timed calls")
    rows: list[dict[str, Any]] = []
    if args.what in ("kernels", "all"):
        rows += bench_kernels(args.batch or BATCH, threads, args.repeats)
        print_table(f"Conv kernels, CNN shapes, batch {args.batch or BATCH}, {threads} thread(s); "
                    f"float32 GEMM {rows[0]['gemm_gflops']:.1f} GFLOP/s (median "
                    f"{rows[0]['gemm_ms']:.2f} ms, spread {rows[0]['gemm_min_ms']:.2f}-"
                    f"{rows[0]['gemm_max_ms']:.2f})", KERNEL_COLUMNS, with_spread(rows, 2))
    if args.what in ("step", "all"):
        steps = run_steps(args, threads)
        print_steps(steps)
        rows += steps
    if args.what in ("trace", "all"):
        frameworks = ("numpyvae", "torch") if args.compare_torch else ("numpyvae",)
        traces = bench_trace(frameworks, args.batch or BATCH, threads, args.trace_calls)
        print_traces(traces)
        rows += traces
    info["load_average_end"] = load_average()
    for row in rows:
        row.update(info)
    print_summary(rows)
    print(f"\nload average at the end: {info['load_average_end']}")
    if args.json:
        write_json(args.json, rows)
        print(f"\n{len(rows)} rows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
