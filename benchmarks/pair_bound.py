"""The fused BatchNorm2d+ELU pair against memory's speed: how near its kernels run to the limit.

    python benchmarks/pair_bound.py [--threads 1 2] [--rounds 8] [--batch 256]

The CNN's largest pair, dec.9+10 (x (256, 32, 28, 28) float32, 25.7 MB at batch 256), runs
four kernels: the batch moments and the forward (``normalize_elu``), the backward's pass 1
(dz = dy·ELU′ and its sums) and pass 2 (dz becomes dx in place). Each is timed on four sets of
its arrays (103 MB a set, beyond the L3), in turn, so no call finds its arrays in cache, in
rounds that also time bench.py's stream loop (b = 1.5·a, 64 MB in and out); each thread count
runs in a fresh process. Printed per kernel: the bytes it must read and write (without a
write's read-for-ownership, as bench.py's stream figure), the median ms with its spread, the
rate in GB/s and as a fraction of the same round's stream loop; then the kernel alone on data
that stays in L2 (one set of 8 samples, called again and again): its compute, in ns an entry.
(At 2 threads those calls last 20-50 µs, and the parallel region's start and join show in that
column: read it at 1 thread.) A kernel at ~1x the stream loop is bound by memory; its 2 vs 1
thread scaling is then the stream loop's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
TAG = "PAIR_BOUND "
SHAPE = (32, 28 * 28)  # dec.9's (C, H·W)
# arrays each kernel reads and writes: moments reads x; forward reads x, writes y; pass 1
# reads x and dy, writes dz; pass 2 reads x and dz, writes dz
TRAFFIC = {"moments": 1, "forward": 2, "pass 1": 3, "pass 2": 3}


def pair_calls(batch: int, seed: int = 0) -> dict[str, Callable[[], Any]]:
    """The pair's four kernels on one set of arrays of dec.9's shape, as the layers call them."""
    from numpyvae.kernels import batchnorm as B

    r = np.random.default_rng(seed)
    x = r.standard_normal((batch, *SHAPE), dtype=np.float32)
    dy = r.standard_normal(x.shape, dtype=np.float32)
    y, dz = np.empty_like(x), np.empty_like(x)
    C = SHAPE[0]
    mean, scale, shift = np.zeros(C, np.float32), np.ones(C, np.float32), np.zeros(C, np.float32)
    sums, sq = np.empty((batch, C), np.float32), np.empty((batch, C), np.float32)
    a = np.float32(1)
    return {
        "moments": lambda: B._plane_moments(x, sums, sq),
        "forward": lambda: B._bn_elu_forward_planes(x, mean, scale, shift, a, y),
        "pass 1": lambda: B._bn_elu_grad_sums_planes(x, dy, mean, scale, shift, a, dz, sums, sq),
        "pass 2": lambda: B._bn_grad_input_inplace(x, mean, scale, scale, shift, dz),
    }


def clock(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def worker(threads: int, rounds: int, batch: int) -> dict[str, Any]:
    """At ``threads``: every kernel's seconds per call from memory (4 sets in turn) and in L2,
    and the stream loop's, ``rounds`` times each."""
    sys.path.insert(0, str(HERE))
    import bench

    from numpyvae.kernels.threads import set_threads

    set_threads(threads)
    sets = [pair_calls(batch, seed) for seed in range(4)]
    hot = pair_calls(8)
    stream = bench._stream_loop(16_000_000)
    for calls in [*sets, hot, {"stream": stream}]:  # compile, fault in every page
        for fn in calls.values():
            fn()
            fn()
    times: dict[str, list[float]] = {k: [] for k in [*TRAFFIC, "stream"]}
    hot_times: dict[str, list[float]] = {k: [] for k in TRAFFIC}
    for _ in range(rounds):
        times["stream"].append(clock(stream))
        for calls in sets:
            for name, fn in calls.items():
                times[name].append(clock(fn))
        for name, fn in hot.items():
            hot_times[name].append(min(clock(fn) for _ in range(20)))
    return {"threads": threads, "batch": batch, "times": times, "hot": hot_times,
            "load": bench.load_average(), "cpu": bench.cpu_model()}


def in_process(threads: int, rounds: int, batch: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(threads),
           "--rounds", str(rounds), "--batch", str(batch)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith(TAG)][-1][len(TAG):])


def rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Per kernel: bytes, median ms and spread, GB/s, fraction of the stream loop's rate,
    ns an entry in L2."""
    entries = run["batch"] * SHAPE[0] * SHAPE[1]
    stream_gbs = 2 * 4 * 16_000_000 / statistics.median(run["times"]["stream"]) / 1e9
    out = [{"kernel": "stream loop", "mb": 128.0, "gb_per_s": stream_gbs, "of_stream": 1.0,
            **_ms(run["times"]["stream"])}]
    for name, arrays in TRAFFIC.items():
        mb = arrays * 4 * entries / 1e6
        ms = _ms(run["times"][name])
        hot_ns = 1e9 * statistics.median(run["hot"][name]) / (8 * SHAPE[0] * SHAPE[1])
        out.append({"kernel": name, "mb": mb, "gb_per_s": mb / ms["ms"],
                    "of_stream": mb / ms["ms"] / stream_gbs, "hot_ns": hot_ns, **ms})
    return out


def _ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = sorted(1e3 * s for s in seconds)
    return {"ms": statistics.median(ms), "lo": ms[len(ms) // 4], "hi": ms[(3 * len(ms)) // 4]}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(TAG + json.dumps(worker(args.worker, args.rounds, args.batch)), flush=True)
        return 0
    runs = [in_process(t, args.rounds, args.batch) for t in args.threads]
    print(f"CPU: {runs[0]['cpu']}; dec.9's pair at batch {args.batch}, x {args.batch}x32x28x28 "
          f"float32; median ms (interquartile range) over {args.rounds} rounds x 4 array sets")
    table = [rows(run) for run in runs]
    for run, kernel_rows in zip(runs, table, strict=True):
        print(f"\n{run['threads']} thread(s), load average {run['load']}:")
        print(f"  {'kernel':<12} {'MB':>6} {'ms':>7} {'(IQR)':>14} {'GB/s':>6} "
              f"{'of stream':>9} {'in L2, ns/entry':>16}")
        for r in kernel_rows:
            hot = f"{r['hot_ns']:16.3f}" if "hot_ns" in r else ""
            print(f"  {r['kernel']:<12} {r['mb']:6.1f} {r['ms']:7.3f} "
                  f"({r['lo']:5.3f}-{r['hi']:5.3f}) {r['gb_per_s']:6.1f} {r['of_stream']:9.2f}"
                  f"{hot}")
    if len(runs) > 1:
        first, last = table[0], table[-1]
        print(f"\n{runs[-1]['threads']} vs {runs[0]['threads']} thread(s), median ms ratio: "
              + ", ".join(f"{a['kernel']} {a['ms'] / b['ms']:.2f}x"
                          for a, b in zip(first, last, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
