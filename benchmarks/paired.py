#!/usr/bin/env python3
"""Paired step-time comparison of two checkouts: does a change keep the speed?

    python benchmarks/paired.py OLD_TREE NEW_TREE [--pairs 5] [--json FILE]
                                [--own-bench] [--no-cold-start] [--threads 2]

Runs ``bench.py step --batch 256 --threads 2 --steps-only`` on each tree in turn,
``--pairs`` times, alternating which goes first, with that tree on PYTHONPATH. Both trees are
timed by the same bench.py, NEW_TREE's, so by the same warm-up rule (``--own-bench``:
each tree's own bench.py, as before issue 20; an older one warms up for one call). On a
shared, noisy machine two runs minutes apart differ by tens of percent; two runs
side by side drift together, so the ratio new/old within a pair is what to read,
and the median over the pairs is the figure to quote. Cold start (import to the
first CNN step with an empty numba cache) and warm start come from the same runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

KEYS = ("mlp", "cnn", "cold", "warm")


def run_bench(tree: Path, bench: Path, cold_start: bool = True,
              steps_only: bool = True, threads: int = 2) -> dict[str, float]:
    """One ``bench`` step run on ``tree``'s package: step ms at batch 256 and ``threads``,
    start-up seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        env = dict(os.environ, PYTHONPATH=str(tree))
        cmd = [sys.executable, str(bench), "step", "--batch", "256", "--threads", str(threads),
               "--json", str(out)] + ([] if cold_start else ["--no-cold-start"])
        cmd += ["--steps-only"] if steps_only else []  # an older bench.py knows neither
        subprocess.run(cmd, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL)
        rows = json.loads(out.read_text())
    found: dict[str, float] = {}
    for r in rows:
        if (r.get("framework"), r.get("batch"), r.get("threads")) == ("numpyvae", 256, threads):
            found[r["arch"]] = r["median_ms"]
            if "cold_start_cold_s" in r:
                found["cold"], found["warm"] = r["cold_start_cold_s"], r["cold_start_warm_s"]
    missing = [k for k in KEYS[:None if cold_start else 2] if k not in found]
    if missing:
        raise SystemExit(f"paired.py: {tree}: bench.py gave no {', '.join(missing)} figure")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="checkout of the old commit")
    parser.add_argument("new", type=Path, help="checkout of the new commit")
    parser.add_argument("--pairs", type=int, default=5, help="number of old/new pairs")
    parser.add_argument("--json", type=Path, help="also save every run here")
    parser.add_argument("--own-bench", action="store_true",
                        help="run each tree's own bench.py (default: NEW's for both)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for both trees' steps (default 2)")
    parser.add_argument("--no-cold-start", action="store_true",
                        help="skip the cold and warm start (about a minute per run)")
    args = parser.parse_args(argv)
    keys = KEYS if not args.no_cold_start else KEYS[:2]
    runs = []
    for i in range(args.pairs):
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        pair = {}
        for which in order:
            print(f"pair {i + 1}/{args.pairs}: {which}", file=sys.stderr, flush=True)
            tree = getattr(args, which).resolve()
            bench = (tree if args.own_bench else args.new.resolve()) / "benchmarks" / "bench.py"
            pair[which] = run_bench(tree, bench, cold_start=not args.no_cold_start,
                                    steps_only=not args.own_bench, threads=args.threads)
        pair["load_average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        runs.append(pair)
        print(f"pair {i + 1} (load {pair['load_average']}): " + "  ".join(
            f"{k} {pair['new'][k]:.4g}/{pair['old'][k]:.4g} = {pair['new'][k] / pair['old'][k]:.3f}"
            for k in keys), flush=True)
    print("\nmedian over pairs (old, new, median of the per-pair ratios new/old):")
    for k in keys:
        old = statistics.median(p["old"][k] for p in runs)
        new = statistics.median(p["new"][k] for p in runs)
        ratio = statistics.median(p["new"][k] / p["old"][k] for p in runs)
        unit = "ms" if k in ("mlp", "cnn") else "s"
        label = {"mlp": "MLP step", "cnn": "CNN step", "cold": "cold start", "warm": "warm start"}
        print(f"  {label[k]:<11} old {old:8.2f} {unit}  new {new:8.2f} {unit}  ratio {ratio:.3f}")
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(runs, indent=1))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
