"""Benchmarks: the conv kernels at the CNN's shapes, and whole training steps.

    python benchmarks/bench.py [kernels|step|all] [--threads N] [--json FILE]
                               [--compare-torch] [--repeats K] [--batch B]

kernels  each conv and transposed conv of the report's CNN, at its exact shapes:
         forward, grad_input and grad_weight timed separately through the public
         functions of numpyvae.kernels, against a float32 1024×1024 matmul timed
         in the same run at the same thread count.
step     a full training step (forward with the loss, backward, Adam) of the MLP
         and the CNN VAE, each configuration in a fresh process (so peak memory
         is its own), at batches 64/256/1024 and at 1 vs N threads; then the
         cold start: import to the first finished CNN step, with a cold and a
         warm numba cache.
--compare-torch  the same steps in PyTorch (benchmarks/torch_models.py), each in
         its own process, one after another, never beside our kernels.

Times are medians of ``--repeats`` runs after a warm-up. Every row carries the
date, commit, thread count, numba threading layer, BLAS libraries and CPU model.
See benchmarks/README.md for what each column means.
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
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def uncommitted_changes() -> bool:
    """Whether the package or the benchmarks differ from the commit: then the commit alone
    does not say what code ran."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                              "numpyvae", "benchmarks"], cwd=HERE.parent,
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


def run_info() -> dict[str, Any]:
    """The fields shared by every row of one run."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "uncommitted_changes": uncommitted_changes(),
        "cpu_model": cpu_model(),
    }


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in ms, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


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
def gemm_gflops(repeats: int) -> float:
    """The float32 GEMM rate of NumPy's BLAS: the ceiling the conv kernels are held against."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    ms = median_ms(lambda: np.matmul(a, b, out=out), max(repeats, 5))
    return 2 * GEMM_N**3 / (ms * 1e6)


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
    gemm = gemm_gflops(repeats)
    log(f"float32 matmul {GEMM_N}x{GEMM_N}: {gemm:.1f} GFLOP/s at {threads} thread(s)")
    rows = []
    for conv in cnn_convs():
        (C, _, _), (F, Ho, Wo) = conv["conv_in"], conv["conv_out"]
        flops = 2 * batch * Ho * Wo * F * C * conv["kernel_size"] ** 2
        for direction, call in conv_directions(conv, batch).items():
            ms = median_ms(call, repeats)
            gflops = flops / (ms * 1e6)
            rows.append({
                "bench": "kernel", "arch": "cnn", "layer": conv["layer"],
                "direction": direction, "batch": batch, "threads": threads,
                "median_ms": ms, "gflops": gflops, "flops": flops,
                "gemm_gflops": gemm, "gemm_fraction": gflops / gemm, "thin": conv["thin"],
            })
    blas, layer = blas_libraries(), numba_threading_layer()
    for row in rows:
        row.update(numba_threading_layer=layer, blas=blas)
    return rows


# ----------------------------------------------------------------------------
# step: each configuration in a fresh process
# ----------------------------------------------------------------------------
def numpyvae_step(arch: str, batch: int) -> tuple[Callable[[], Any], int]:
    """A training step of our model on fixed random data, and its forward FLOPs per image."""
    from numpyvae.models.architectures import build_vae
    from numpyvae.nn.adam import Adam

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
        ms = median_ms(torch_step(arch, batch), repeats)
        info = {"numba_threading_layer": "n/a",
                "blas": [{"internal_api": "torch", "version": torch.__version__,
                          "architecture": torch.backends.cpu.get_cpu_capability()}]}
        flops = None  # the parent fills it in from our model: the architecture is the same
    else:
        from numpyvae.kernels.threads import set_threads

        set_threads(threads)
        step, flops = numpyvae_step(arch, batch)
        ms = median_ms(step, repeats)
        info = {"numba_threading_layer": numba_threading_layer(), "blas": blas_libraries()}
    return {
        "bench": "step", "framework": framework, "arch": arch, "batch": batch,
        "threads": threads, "median_ms": ms, "forward_flops_per_image": flops,
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
    n = 16_000_000  # 64 MB in, 64 MB out
    ms = median_ms(_stream_loop(n), max(repeats, 5))
    return {"bench": "ceiling", "threads": threads,
            "gemm_ms": 2 * GEMM_N**3 / (gemm_gflops(repeats) * 1e6),
            "stream_ms": ms, "stream_gb_per_s": 2 * 4 * n / (ms * 1e6)}


def thread_ceiling(thread_counts: Sequence[int], repeats: int) -> list[dict[str, Any]]:
    """``ceiling_worker`` at each thread count, each in a fresh process."""
    rows = []
    for t in thread_counts:
        log(f"ceiling: GEMM and a streaming loop, {t} thread(s)")
        rows.append(in_worker({"kind": "ceiling", "threads": t, "repeats": repeats}))
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
    p = json.loads(payload_json)
    if p["kind"] == "cold_start":
        result = cold_start_worker(t0, p["threads"], p["batch"])
    elif p["kind"] == "ceiling":
        result = ceiling_worker(p["threads"], p["repeats"])
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


KERNEL_COLUMNS = [("layer", "layer", ""), ("direction", "direction", ""),
                  ("ms", "median_ms", ".2f"), ("GFLOP/s", "gflops", ".1f"),
                  ("of GEMM", "gemm_fraction", ".0%")]
STEP_COLUMNS = [("framework", "framework", ""), ("arch", "arch", ""), ("batch", "batch", "d"),
                ("threads", "threads", "d"), ("ms", "median_ms", ".1f"),
                ("images/s", "images_per_s", ".0f"), ("epoch s", "epoch_s", ".1f"),
                ("GFLOP/s", "gflops", ".1f"), ("peak MB", "peak_rss_mb", ".0f"),
                ("ours/torch", "ours_over_torch", ".2f")]


CEILING_COLUMNS = [("threads", "threads", "d"), ("GEMM 1024 ms", "gemm_ms", ".2f"),
                   ("stream ms", "stream_ms", ".2f"), ("stream GB/s", "stream_gb_per_s", ".1f")]


def print_summary(rows: list[dict[str, Any]]) -> None:
    """The issue's targets, for whatever this run measured."""
    kernels = [r for r in rows if r["bench"] == "kernel"]
    ours = {(r["arch"], r["batch"], r["threads"]): r for r in rows
            if r["bench"] == "step" and r["framework"] == "numpyvae"}
    checks = []  # (target, measured, goal, met)
    for (arch, _, _), r in ours.items():
        if "ours_over_torch" in r:
            goal = 0.75 if arch == "cnn" else 0.8
            checks.append((f"{arch} step / torch's", f"{r['ours_over_torch']:.2f}",
                           f"<= {goal}", r["ours_over_torch"] <= goal))
    large = [r for r in kernels if not r["thin"]]
    if large:
        worst = min(large, key=lambda r: r["gemm_fraction"])
        checks.append((f"slowest large layer ({worst['layer']} {worst['direction']})",
                       f"{worst['gemm_fraction']:.0%} of GEMM", ">= 30%",
                       worst["gemm_fraction"] >= 0.3))
    if kernels and ("cnn", kernels[0]["batch"], kernels[0]["threads"]) in ours:
        step = ours[("cnn", kernels[0]["batch"], kernels[0]["threads"])]
        share = sum(r["median_ms"] for r in kernels if r["thin"]) / step["median_ms"]
        checks.append(("thin layers (1->32, 32->1), share of CNN step", f"{share:.0%}",
                       "<= 15%", share <= 0.15))
    one, two = ours.get(("cnn", BATCH, 1)), ours.get(("cnn", BATCH, 2))
    if one and two:
        speedup = one["median_ms"] / two["median_ms"]
        checks.append(("CNN step, 2 threads vs 1", f"{speedup:.2f}x", ">= 1.7x", speedup >= 1.7))
    ceiling = {r["threads"]: r for r in rows if r["bench"] == "ceiling"}
    if 1 in ceiling and 2 in ceiling:  # context for the line above: what the cores allow
        for what, key in (("float32 GEMM 1024", "gemm_ms"), ("streaming loop (memory)",
                                                              "stream_ms")):
            ratio = ceiling[1][key] / ceiling[2][key]
            checks.append((f"  (ceiling) {what}, 2 threads vs 1", f"{ratio:.2f}x", "-", True))
    for r in (r for (arch, batch, _), r in ours.items() if (arch, batch) == ("cnn", BATCH)):
        checks.append((f"CNN peak memory, {r['threads']} thread(s)",
                       f"{r['peak_rss_mb']:.0f} MB", "<= 1536 MB", r["peak_rss_mb"] <= 1536))
        for label, goal in (("warm", 3.0), ("cold", 45.0)):
            if f"cold_start_{label}_s" in r:
                value = r[f"cold_start_{label}_s"]
                checks.append((f"import to first CNN step, {label} numba cache",
                               f"{value:.1f} s", f"<= {goal:.0f} s", value <= goal))
    if checks:
        columns = [("target", "target", ""), ("measured", "measured", ""), ("goal", "goal", ""),
                   ("met", "met", "")]
        print_table("Targets of issue 6 (set for batch 256)", columns,
                    [dict(zip(("target", "measured", "goal", "met"),
                              (*c[:3], "yes" if c[3] else "NO"), strict=True)) for c in checks])


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
    parser.add_argument("what", nargs="?", default="all", choices=("kernels", "step", "all"))
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="thread count for numba and BLAS (default: all of numba's)")
    parser.add_argument("--json", metavar="FILE", help="also save the rows as a JSON list")
    parser.add_argument("--compare-torch", action="store_true",
                        help="time the same steps in PyTorch, in separate processes")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="timed runs per measurement; the median is reported (default 5)")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help="one batch size instead of 256 (kernels) and 64/256/1024 (step)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
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
    info = run_info()
    dirty = " (with uncommitted changes)" if info["uncommitted_changes"] else ""
    print(f"CPU: {info['cpu_model']}   commit {info['commit']}{dirty}   {info['date']}")
    rows: list[dict[str, Any]] = []
    if args.what in ("kernels", "all"):
        rows += bench_kernels(args.batch or BATCH, threads, args.repeats)
        print_table(f"Conv kernels, CNN shapes, batch {args.batch or BATCH}, {threads} thread(s); "
                    f"float32 GEMM {rows[0]['gemm_gflops']:.1f} GFLOP/s",
                    KERNEL_COLUMNS, rows)
    steps: list[dict[str, Any]] = []
    if args.what in ("step", "all"):
        batches = [args.batch] if args.batch else list(STEP_BATCHES)
        steps = bench_steps(batches, sorted({1, threads}), args.repeats)
    if args.compare_torch:
        steps += compare_torch(steps, args.batch or BATCH, threads, args.repeats)
    if args.what in ("step", "all") and threads > 1:
        steps += thread_ceiling(sorted({1, threads}), args.repeats)
    if steps:
        print_table("Training step (forward + loss + backward + Adam), float32", STEP_COLUMNS,
                    [r for r in steps if r["bench"] == "step"])
        ceiling = [r for r in steps if r["bench"] == "ceiling"]
        if ceiling:
            print_table("Thread ceiling: the same work at 1 and N threads", CEILING_COLUMNS,
                        ceiling)
        cold = [r for r in steps if "cold_start_cold_s" in r]
        for r in cold:
            print(f"\nCold start, import to first CNN step (batch {r['batch']}, {r['threads']} "
                  f"threads): cold numba cache {r['cold_start_cold_s']:.1f} s, "
                  f"warm {r['cold_start_warm_s']:.1f} s")
    rows += steps
    for row in rows:
        row.update(info)
    print_summary(rows)
    if args.json:
        write_json(args.json, rows)
        print(f"\n{len(rows)} rows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
