"""The median over several ``bench.py --json`` runs, with each run's value beside it.

    python benchmarks/median.py run1.json run2.json run3.json
    python benchmarks/median.py --readme run1.json run2.json run3.json

Shared machines are noisy: one run can be 30% off in either direction. This prints,
for every row the runs share, the median and the per-run values; ratios (ours/torch,
2 threads vs 1, the ceilings) are taken within each run first, then their median.
``--readme`` prints the block README.md's "Performance" section shows (batch 256 only,
the kernels as ranges, the epoch times and the peak memory); a test holds README to it.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from typing import Any


def _key(row: dict[str, Any]) -> tuple:
    if row["bench"] == "kernel":
        return ("kernel", row["layer"], row["direction"])
    if row["bench"] == "step":
        return ("step", row["framework"], row["arch"], row["batch"], row["threads"])
    if row["bench"] == "floor":
        return ("floor", row["arch"], row["batch"], row["threads"])
    if row["bench"] == "trace":
        return ("trace", row["framework"], row["arch"], row["batch"], row["threads"])
    return (row["bench"], row["threads"])


def _line(label: str, values: Sequence[float], fmt: str) -> str:
    each = ", ".join(format(v, fmt) for v in values)
    return f"{label:<48} {format(statistics.median(values), fmt):>8}   ({each})"


def _kernel_ranges(full: dict[tuple, list[dict[str, Any]]], n_runs: int) -> list[str]:
    """The lowest and highest fraction of GEMM among the big layers' directions, per run."""
    out = []
    for what, pick in (("big layers but dec.convT3", lambda r: not r["thin"]
                        and not r["layer"].startswith("dec.convT3")),
                       ("dec.convT3", lambda r: r["layer"].startswith("dec.convT3"))):
        per_run = [[r["gemm_fraction"] for k, v in full.items() if k[0] == "kernel"
                    for r in v[i:i + 1] if pick(r)] for i in range(n_runs)]
        if all(per_run):
            out.append(_line(f"{what}, lowest of GEMM", [min(f) for f in per_run], ".0%"))
            out.append(_line(f"{what}, highest of GEMM", [max(f) for f in per_run], ".0%"))
    return out


def summary(runs: Sequence[list[dict[str, Any]]], readme: bool = False) -> list[str]:
    by_key: dict[tuple, list[dict[str, Any]]] = {}
    for rows in runs:
        for row in rows:
            by_key.setdefault(_key(row), []).append(row)
    full = {k: v for k, v in by_key.items() if len(v) == len(runs)}  # rows every run has
    info = runs[0][0]
    out = [f"{len(runs)} runs on {info.get('cpu_model', '?')}, commit {info.get('commit', '?')}: "
           "median (each run)", "", "Conv kernels, batch 256: fraction of the same run's GEMM"]
    if readme:
        out += _kernel_ranges(full, len(runs))
    else:
        out += [_line(f"{k[1]} {k[2]}", [r["gemm_fraction"] for r in v], ".0%")
                for k, v in full.items() if k[0] == "kernel"]
    out += ["", "Training step, ms"]
    out += [_line(f"{k[1]} {k[2]} batch {k[3]}, {k[4]} thread(s)",
                  [r["median_ms"] for r in v], ".1f") for k, v in full.items()
            if k[0] == "step" and (not readme or k[3] == 256)]
    for k, v in ((k, v) for k, v in full.items() if k[0] == "floor"):
        for key, what in (("gemm_floor_ms", "GEMM"), ("floor_with_stream_ms", "GEMM+stream")):
            out.append(_line(f"floor: {what} {k[1]} batch {k[2]}, {k[3]} thread(s)",
                             [r[key] for r in v], ".1f"))
    out += ["", "Ratios within each run"]
    for arch in ("mlp", "cnn"):
        rows = [r for k, v in full.items() if k[:3] == ("step", "numpyvae", arch) for r in v
                if "ours_over_torch" in r]
        if len(rows) == len(runs):
            out.append(_line(f"{arch} step, ours / torch", [r["ours_over_torch"] for r in rows],
                             ".2f"))
        for key, what in (("over_gemm_floor", "GEMM-only floor"),
                          ("over_floor_with_stream", "floor with the stream term")):
            rows = [r for k, v in full.items() if k[:3] == ("step", "numpyvae", arch) for r in v
                    if key in r]
            if len(rows) == len(runs):
                out.append(_line(f"{arch} step / {what}", [r[key] for r in rows], ".2f"))
    one, two = full.get(("step", "numpyvae", "cnn", 256, 1)), full.get(("step", "numpyvae",
                                                                         "cnn", 256, 2))
    if one and two:
        out.append(_line("cnn step, 2 threads vs 1",
                         [a["median_ms"] / b["median_ms"] for a, b in zip(one, two, strict=True)],
                         ".2f"))
    c1, c2 = full.get(("ceiling", 1)), full.get(("ceiling", 2))
    if one and two and c1 and c2:
        out.append(_line("cnn step 2-vs-1 / the GEMM's 2-vs-1",
                         [(a["median_ms"] / b["median_ms"]) / (g1["gemm_ms"] / g2["gemm_ms"])
                          for a, b, g1, g2 in zip(one, two, c1, c2, strict=True)], ".0%"))
    if c1 and c2:
        for what, key in (("GEMM 1024", "gemm_ms"), ("streaming loop (memory)", "stream_ms")):
            out.append(_line(f"ceiling: {what}, 2 threads vs 1",
                             [a[key] / b[key] for a, b in zip(c1, c2, strict=True)], ".2f"))
    if readme:
        out += ["", "Batch 256, the most threads; start-up"]
        for arch in ("mlp", "cnn"):
            rows = [r for k, v in full.items() if k[:4] == ("step", "numpyvae", arch, 256)
                    for r in v]
            top = max((r["threads"] for r in rows), default=None)
            rows = [r for r in rows if r["threads"] == top]
            if len(rows) == len(runs):
                out.append(_line(f"{arch} epoch (60,000 images), s", [r["epoch_s"] for r in rows],
                                 ".1f"))
                out.append(_line(f"{arch} peak resident memory, MB",
                                 [r["peak_rss_mb"] for r in rows], ".0f"))
    cold = [r for v in full.values() for r in v if "cold_start_cold_s" in r]
    if len(cold) == len(runs):
        out.append(_line("import to first CNN step, cold numba cache, s",
                         [r["cold_start_cold_s"] for r in cold], ".1f"))
        out.append(_line("import to first CNN step, warm numba cache, s",
                         [r["cold_start_warm_s"] for r in cold], ".1f"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    paths = list(sys.argv[1:] if argv is None else argv)
    readme = "--readme" in paths
    paths = [p for p in paths if p != "--readme"]
    if not paths:
        print("usage: python benchmarks/median.py [--readme] RUN.json [RUN.json ...]",
              file=sys.stderr)
        return 2
    runs = []
    for path in paths:
        try:
            with open(path) as f:
                runs.append(json.load(f))
        except (OSError, json.JSONDecodeError) as e:
            print(f"error: cannot read {path} as a bench.py --json file: {e}", file=sys.stderr)
            return 2
    print("\n".join(summary(runs, readme)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
