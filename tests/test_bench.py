"""Smoke tests of benchmarks/bench.py on tiny settings: rows, keys, FLOP counts, JSON.

Nothing here asserts on speed: timings on a shared machine are not test material.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from numpyvae.models.architectures import build_cnn_vae, build_mlp_vae

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
REQUIRED = {"bench", "arch", "batch", "threads", "median_ms", "gflops",
            "date", "commit", "cpu_model", "numba_threading_layer", "blas"}
CNN_LAYERS = [  # the issue's list: every conv and transposed conv of the CNN, in order
    "enc.conv1 1->32 28->14", "enc.conv2 32->64 14->7", "enc.conv3 64->32 7->4",
    "dec.convT1 32->64 4->7", "dec.convT2 64->32 7->14", "dec.convT3 32->32 14->28",
    "dec.conv1 32->1 28->28",
]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_forward_flops_match_the_issue(bench):
    # 2.3 GFLOP per CNN forward pass at batch 256; the MLP's 532k weights, 2 FLOPs each
    assert bench.forward_flops_per_image(build_cnn_vae(2)) == 8_975_616
    assert bench.forward_flops_per_image(build_mlp_vae(2)) == 2 * (784 * 300 + 300 * 100
                                                                   + 100 * 10 + 10 * 4
                                                                   + 2 * 10 + 10 * 100
                                                                   + 100 * 300 + 300 * 784)


def test_kernels_write_one_row_per_layer_and_direction(bench, tmp_path):
    out = tmp_path / "kernels.json"
    assert bench.main(["kernels", "--batch", "2", "--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [p.name for p in tmp_path.iterdir()] == ["kernels.json"]  # no temp file left behind
    assert [r["layer"] for r in rows[::3]] == CNN_LAYERS
    for row in rows:
        assert REQUIRED | {"layer", "direction", "gemm_fraction"} <= row.keys()
        assert (row["bench"], row["arch"], row["batch"]) == ("kernel", "cnn", 2)
        assert row["median_ms"] > 0
        assert row["gflops"] == pytest.approx(row["flops"] / (row["median_ms"] * 1e6))
        assert row["thin"] == (row["layer"] in (CNN_LAYERS[0], CNN_LAYERS[-1]))
    for i in range(0, len(rows), 3):
        assert [r["direction"] for r in rows[i:i + 3]] == ["forward", "grad_input", "grad_weight"]
    flops = {r["layer"]: r["flops"] for r in rows}
    assert flops["enc.conv2 32->64 14->7"] == 2 * 2 * 7 * 7 * 64 * 32 * 9
    # a transposed conv counts as the conv it reverses: its input is that conv's output
    assert flops["dec.convT1 32->64 4->7"] == 2 * 2 * 4 * 4 * 32 * 64 * 9


def test_step_rows_from_fresh_processes(bench):
    rows = bench.bench_steps([4], [1], repeats=1, with_cold_start=False)
    assert [(r["arch"], r["batch"], r["threads"]) for r in rows] == [("mlp", 4, 1), ("cnn", 4, 1)]
    for row in rows:
        assert REQUIRED - {"date", "commit", "cpu_model"} | {"images_per_s", "epoch_s",
                                                             "peak_rss_mb"} <= row.keys()
        assert row["bench"] == "step" and row["framework"] == "numpyvae"
        assert row["epoch_s"] == pytest.approx(60_000 / row["images_per_s"])
        assert row["peak_rss_mb"] > 10
        assert row["step_flops"] == 3 * 4 * row["forward_flops_per_image"]
    assert rows[1]["forward_flops_per_image"] == 8_975_616


def test_compare_torch_without_torch_says_how_to_install(bench, monkeypatch, capsys):
    monkeypatch.setattr(bench, "torch_available", lambda: False)
    assert bench.main(["step", "--compare-torch"]) != 0
    assert 'pip install -e ".[bench]"' in capsys.readouterr().err


def test_median_of_runs_takes_ratios_within_each_run(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("median", BENCH.parent / "median.py")
    median = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(median)

    def run(one_ms: float, two_ms: float, torch_ms: float) -> list[dict]:
        step = {"bench": "step", "framework": "numpyvae", "arch": "cnn", "batch": 256}
        return [{**step, "threads": 1, "median_ms": one_ms, "cpu_model": "X", "commit": "c"},
                {**step, "threads": 2, "median_ms": two_ms, "ours_over_torch": two_ms / torch_ms},
                {"bench": "kernel", "layer": "L", "direction": "forward", "gemm_fraction": 0.3}]

    paths = []
    for i, (a, b, t) in enumerate([(300, 200, 400), (200, 100, 400), (330, 150, 300)]):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(run(a, b, t)))
    assert median.main([str(p) for p in paths]) == 0
    text = capsys.readouterr().out
    # 2-vs-1 per run: 1.50, 2.00, 2.20 -> median 2.00 (the ratio of medians would be 1.5)
    assert "cnn step, 2 threads vs 1                             2.00   (1.50, 2.00, 2.20)" in text
    assert "cnn step, ours / torch" in text and "0.50   (0.50, 0.25, 0.50)" in text
    assert median.main([str(tmp_path / "missing.json")]) == 2
