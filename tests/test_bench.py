"""Smoke tests of benchmarks/bench.py on tiny settings: rows, keys, FLOP counts, JSON.

Nothing here asserts on speed: timings on a shared machine are not test material.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from numpyvae.models.architectures import build_cnn_vae, build_mlp_vae

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
REQUIRED = {"bench", "arch", "batch", "threads", "median_ms", "gflops", "min_ms", "max_ms",
            "warmup_calls", "warmed_up", "date", "commit", "cpu_model", "cpu_detail",
            "load_average", "numba_threading_layer", "blas"}
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
        run_fields = {"date", "commit", "cpu_model", "cpu_detail", "load_average"}  # main() adds
        assert REQUIRED - run_fields | {"images_per_s", "epoch_s", "peak_rss_mb"} <= row.keys()
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
                {**step, "threads": 2, "median_ms": two_ms, "ours_over_torch": two_ms / torch_ms,
                 "over_gemm_floor": two_ms / 100},
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
    assert "cnn step / GEMM-only floor" in text and "1.50   (2.00, 1.00, 1.50)" in text
    assert median.main([str(tmp_path / "missing.json")]) == 2


# ----------------------------------------------------------------------------
# The warm-up rule (issue 20), on a fake clock: no timing in these tests
# ----------------------------------------------------------------------------
def fake_clock(durations_ms: list[float]):
    """A clock for ``warm_up``/``timed``: the n-th call of fn lasts durations_ms[n]. Each call
    reads the clock twice (start, end); the calls are counted in ``clock.calls``."""
    state = {"t": 0.0, "reads": 0}

    def clock() -> float:
        if state["reads"] % 2 == 1:  # an end: the call in progress took its duration
            state["t"] += durations_ms[state["reads"] // 2] / 1e3
        state["reads"] += 1
        return state["t"]

    clock.calls = lambda: state["reads"] // 2
    return clock


# The first 25 CNN steps of a fresh process quoted by issue 20 (Intel, batch 256, 2 threads)
ISSUE_TRACE = [543, 328, 185, 154, 111, 148, 108, 111, 114, 116, 122, 116, 121, 110, 114, 120,
               114, 110, 111, 113, 123, 110, 111, 110, 109]


def test_warm_up_stops_when_two_successive_medians_agree(bench):
    # medians of calls 1-5 and 6-10 first agree at call 15 (114 and 116 ms, within 3%);
    # worked by hand: after 14 calls they are 111 and 116, 4.5% apart
    clock = fake_clock(ISSUE_TRACE)
    times, steady = bench.warm_up(lambda: None, max_calls=60, clock=clock)
    assert steady and len(times) == 15 and clock.calls() == 15
    assert [round(1e3 * t) for t in times] == ISSUE_TRACE[:15]
    assert bench.rule_stops_after(ISSUE_TRACE) == 15
    assert bench.rule_stops_after(ISSUE_TRACE[:14]) is None
    # the 3% band, both sides: 100 vs 102.9 agrees, 100 vs 103.2 does not
    assert bench.warmed_up([100] * 5 + [102.9] * 5)
    assert not bench.warmed_up([100] * 5 + [103.2] * 5)
    assert not bench.warmed_up([103.2] * 5 + [100] * 5)
    # it is the last two windows that count, not the first ones
    assert bench.warmed_up([500, 400, 300, 200, 150] + [100] * 10)
    assert not bench.warmed_up([100] * 10 + [200] * 5)


def test_warm_up_takes_at_least_ten_calls(bench):
    # steady from the first call: still 10 calls, also with a window of 3 (6 would do)
    clock = fake_clock([7.0] * 60)
    times, steady = bench.warm_up(lambda: None, max_calls=60, clock=clock)
    assert steady and len(times) == 10 and clock.calls() == 10
    assert not bench.warmed_up([7.0] * 9, window=3)
    assert bench.warmed_up([7.0] * 10, window=3)


def test_warm_up_stops_at_the_cap_and_says_so(bench):
    # 10, 20, 10, 20 ...: two windows five calls apart always have medians 10 and 20
    alternating = [10.0, 20.0] * 50
    clock = fake_clock(alternating)
    times, steady = bench.warm_up(lambda: None, max_calls=25, clock=clock)
    assert not steady and len(times) == 25 and clock.calls() == 25
    assert bench.rule_stops_after(alternating) is None
    # timed() after a capped warm-up: the row says so, and times its own calls only
    clock = fake_clock(alternating[:12] + [3.0, 1.0, 2.0])
    row = bench.timed(lambda: None, repeats=3, max_warmup=12, clock=clock)
    assert (row["warmup_calls"], row["warmed_up"], row["timed_calls"]) == (12, False, 3)
    assert (row["median_ms"], row["min_ms"], row["max_ms"]) == pytest.approx((2.0, 1.0, 3.0))


def test_timed_reports_median_and_spread_after_the_warm_up(bench):
    clock = fake_clock([9.0] * 10 + [4.0, 6.0, 5.0, 30.0, 5.5])
    row = bench.timed(lambda: None, repeats=5, max_warmup=60, clock=clock)
    assert (row["warmup_calls"], row["warmed_up"], row["timed_calls"]) == (10, True, 5)
    assert (row["median_ms"], row["min_ms"], row["max_ms"]) == pytest.approx((5.5, 4.0, 30.0))


def test_warmup_max_below_the_minimum_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["kernels", "--warmup-max", "9"])
    assert "--warmup-max must be at least 10" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# The floor, the trace and the targets
# ----------------------------------------------------------------------------
def test_floor_products_are_three_per_layer_and_carry_the_step_flops(bench):
    # CNN: the five big layers, three products each, 3x their forward FLOPs (each direction
    # of a conv costs 2·N·Ho·Wo·F·C·K², counted here by hand from the issue's shapes)
    cnn = bench.gemm_products("cnn", 4)
    assert len(cnn) == 15 and {p["layer"] for p in cnn} == set(CNN_LAYERS[1:-1])
    by_hand = 4 * 9 * (7 * 7 * 64 * 32 + 4 * 4 * 32 * 64 + 4 * 4 * 32 * 64 + 7 * 7 * 64 * 32
                       + 14 * 14 * 32 * 32)
    assert sum(p["m"] * p["k"] * p["n"] for p in cnn) == 3 * by_hand
    t3 = [(p["m"], p["k"], p["n"]) for p in cnn if p["layer"] == CNN_LAYERS[5]]
    assert t3 == [(4 * 196, 288, 32), (4 * 196, 32, 288), (32, 4 * 196, 288)]
    # MLP: every Dense, three products each = 3 forward passes
    mlp = bench.gemm_products("mlp", 4)
    assert len(mlp) == 3 * 8
    assert sum(2 * p["m"] * p["k"] * p["n"] for p in mlp) == 3 * 4 * bench.forward_flops_per_image(
        build_mlp_vae(2))


def test_stream_bytes_count_batchnorm_elu_and_adam(bench):
    cnn = bench.stream_bytes("cnn", 2)
    bn_elu_sizes = [32 * 14 * 14, 64 * 7 * 7, 32 * 4 * 4, 64 * 7 * 7, 32 * 14 * 14, 32 * 28 * 28]
    assert cnn["batchnorm+elu"] == 4 * 8 * 2 * sum(bn_elu_sizes)
    assert cnn["elu"] == 0  # every ELU of the CNN follows a BatchNorm2d
    n_params = sum(p.size for p, _ in build_cnn_vae(2).parameters())
    assert cnn["adam"] == 4 * 7 * n_params
    mlp = bench.stream_bytes("mlp", 2)
    assert mlp["batchnorm+elu"] == 0
    assert mlp["elu"] == 4 * 5 * 2 * (300 + 100 + 10 + 10 + 100 + 300)


def test_floor_row_and_trace_from_fresh_processes(bench):
    step = {"arch": "cnn", "batch": 2, "threads": 1, "median_ms": 10.0}
    floor = bench.floor_row(step, repeats=1)
    assert floor["bench"] == "floor" and len(floor["products"]) == 15
    assert floor["gemm_floor_ms"] == pytest.approx(sum(p["median_ms"] for p in floor["products"]))
    assert floor["floor_with_stream_ms"] > floor["gemm_floor_ms"] > 0
    assert all(p["warmup_calls"] >= 10 for p in floor["products"])
    assert step["over_gemm_floor"] == pytest.approx(10.0 / floor["gemm_floor_ms"])
    traces = bench.bench_trace(["numpyvae"], batch=2, threads=1, calls=3)
    assert [(t["arch"], len(t["trace_ms"])) for t in traces] == [("mlp", 3), ("cnn", 3)]
    assert all(t["rule_stops_after"] is None for t in traces)  # 3 calls never satisfy it


def test_summary_states_the_targets_of_issue_20(bench):
    kernel = {"bench": "kernel", "thin": False}
    rows = [{**kernel, "layer": "dec.convT3 32->32 14->28", "direction": d, "gemm_fraction": f}
            for d, f in (("forward", 0.55), ("grad_input", 0.6), ("grad_weight", 0.49))]
    rows += [{**kernel, "layer": "enc.conv2 32->64 14->7", "direction": "forward",
              "gemm_fraction": 0.41},
             {**kernel, "layer": "enc.conv1 1->32 28->14", "direction": "forward",
              "gemm_fraction": 0.05, "thin": True}]
    step = {"bench": "step", "framework": "numpyvae", "batch": 256}
    rows += [{**step, "arch": "cnn", "threads": 2, "median_ms": 100.0, "gemm_floor_ms": 60.0,
              "over_gemm_floor": 100 / 60, "floor_with_stream_ms": 70.0,
              "over_floor_with_stream": 100 / 70},
             {**step, "arch": "cnn", "threads": 1, "median_ms": 180.0},
             {**step, "arch": "mlp", "threads": 2, "median_ms": 6.0, "torch_ms": 10.0,
              "ours_over_torch": 0.6},
             {"bench": "ceiling", "threads": 1, "gemm_ms": 20.0, "stream_ms": 10.0},
             {"bench": "ceiling", "threads": 2, "gemm_ms": 10.0, "stream_ms": 6.0}]
    checks = bench.summary_checks(rows)
    assert [(c[0].split(" (")[0].split(",")[0].strip(), c[2], c[3]) for c in checks] == [
        ("CNN step / GEMM-only floor", "<= 1.6x", False),  # 100 / 60 = 1.67x
        ("CNN step / floor with the stream term", "-", None),
        ("dec.convT3", ">= 50% each", False),  # grad_weight 49%
        ("slowest other big layer", ">= 40%", True),  # 41%; the thin layer is not counted
        ("CNN step", ">= 90%", True),  # 180 / 100 = 1.8x against the GEMM's 2.0x: 90%
        ("", "-", None),  # "(ceiling) streaming loop": context, no goal
        ("MLP step / PyTorch's", "<= 0.65", True),  # 0.60
    ]
    assert "1.80x / 2.00x = 90%" in checks[4][1]
    rows[-4]["median_ms"] = 179.0  # the 1-thread step: 1.79x / 2.0x, just below 90%
    assert bench.summary_checks(rows)[4][3] is False
    rows[-3]["ours_over_torch"] = 0.66
    assert bench.summary_checks(rows)[-1][3] is False


def test_profile_step_accounts_for_every_layer_and_adam(bench):
    spec = importlib.util.spec_from_file_location("profile_step",
                                                  BENCH.parent / "profile_step.py")
    profile_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profile_step)
    per_step, vae = profile_step.profile("mlp", 4, 2, bench)
    assert len(per_step) == 2
    names = [f"{part}.{i} {type(layer).__name__}" for part, seq in (("enc", vae.encoder),
                                                                    ("dec", vae.decoder))
             for i, layer in enumerate(seq.layers)]
    for s in per_step:
        assert {f"{n} forward" for n in names} <= s.keys()
        # every backward ran but the encoder's first (Flatten: no one needs d x)
        assert {f"{n} backward" for n in names[1:]} <= s.keys()
        assert {"enc.1 Dense forward", "dec.6 Dense backward", "Adam step"} <= s.keys()
        assert s["rest"] >= 0 and s["step"] == pytest.approx(
            sum(v for k, v in s.items() if k != "step"))
    parts = profile_step.dense_parts(vae, 4, 1, bench)
    assert len(parts) == 5 * 8 and all(ms > 0 for _, ms in parts)


def test_profile_step_clocks_the_fused_pairs_and_the_loss_apart_from_rest(bench):
    """The CNN's BatchNorm2d+ELU pairs run as one kernel that calls neither layer's own
    methods: each pair, the likelihood and the reparameterization get their own clock,
    and the module functions patched for it are put back afterwards."""
    from numpyvae.nn import batchnorm_elu

    spec = importlib.util.spec_from_file_location("profile_step",
                                                  BENCH.parent / "profile_step.py")
    profile_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profile_step)
    fused = batchnorm_elu.forward, batchnorm_elu.backward
    per_step, _ = profile_step.profile("cnn", 2, 1, bench)
    assert (batchnorm_elu.forward, batchnorm_elu.backward) == fused
    pairs = ["enc.1+2", "enc.4+5", "enc.7+8", "dec.3+4", "dec.6+7", "dec.9+10"]
    wanted = {f"{p} BatchNorm2d+ELU {d}" for p in pairs for d in ("forward", "backward")}
    wanted |= {"likelihood nll", "likelihood backward", "reparameterize forward",
               "reparameterize backward"}
    s = per_step[0]
    assert wanted <= s.keys() and all(s[k] > 0 for k in wanted)
    assert not any(k.startswith("enc.1 BatchNorm2d") for k in s)  # fused: not the layer's own
    assert s["rest"] >= 0 and s["step"] == pytest.approx(sum(v for k, v in s.items()
                                                             if k != "step"))


def test_readme_speed_block_is_median_py_output():
    """Every number of README's Performance block comes from `median.py --readme` on the
    runs its command names (committed in docs/bench/)."""
    spec = importlib.util.spec_from_file_location("median", BENCH.parent / "median.py")
    median = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(median)
    root = BENCH.parents[1]
    text = (root / "README.md").read_text()
    start = text.index("python benchmarks/median.py --readme")
    command = text[start:text.index("\n```", start)].replace("\\\n", " ").split()
    paths = [root / p for p in command[3:]]
    assert len(paths) >= 1 and all(p.suffix == ".json" for p in paths)
    block_start = text.index("```\n", text.index("\n```", start) + 4) + 4
    block = text[block_start:text.index("\n```", block_start)]
    runs = [json.loads(p.read_text()) for p in paths]
    assert block.splitlines() == median.summary(runs, readme=True)


FAKE_BENCH = '''
import json, os, sys
from pathlib import Path
tree = Path(os.environ["PYTHONPATH"])
ms = json.loads((tree / "ms.json").read_text())  # this tree's step times
calls = Path(sys.argv[0]).parent / "calls.txt"
with calls.open("a") as f:
    f.write(f"{tree.name} {' '.join(sys.argv[1:])}\\n")
threads = int(sys.argv[sys.argv.index("--threads") + 1])
rows = [{"framework": "numpyvae", "batch": 256, "threads": threads, "arch": a,
         "median_ms": ms[a]} for a in ("mlp", "cnn")]
Path(sys.argv[sys.argv.index("--json") + 1]).write_text(json.dumps(rows))
'''


def test_paired_times_both_trees_with_the_new_bench_and_takes_ratios_per_pair(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("paired", BENCH.parent / "paired.py")
    paired = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(paired)
    for name, ms in (("old", {"mlp": 10.0, "cnn": 200.0}), ("new", {"mlp": 6.0, "cnn": 150.0})):
        (tmp_path / name / "benchmarks").mkdir(parents=True)
        (tmp_path / name / "ms.json").write_text(json.dumps(ms))
        (tmp_path / name / "benchmarks" / "bench.py").write_text(FAKE_BENCH)
    assert paired.main([str(tmp_path / "old"), str(tmp_path / "new"), "--pairs", "2",
                        "--no-cold-start"]) == 0
    out = capsys.readouterr().out
    assert "mlp 6/10 = 0.600  cnn 150/200 = 0.750" in out
    assert "MLP step    old    10.00 ms  new     6.00 ms  ratio 0.600" in out
    calls = (tmp_path / "new" / "benchmarks" / "calls.txt").read_text().splitlines()
    assert not (tmp_path / "old" / "benchmarks" / "calls.txt").exists()  # new's bench only
    assert [c.split()[0] for c in calls] == ["old", "new", "new", "old"]  # order alternates
    assert all("--steps-only" in c and "--no-cold-start" in c and "--threads 2" in c
               for c in calls)
    assert paired.main([str(tmp_path / "old"), str(tmp_path / "new"), "--pairs", "1",
                        "--no-cold-start", "--threads", "1"]) == 0
    calls = (tmp_path / "new" / "benchmarks" / "calls.txt").read_text().splitlines()
    assert len(calls) == 6 and all("--threads 1" in c for c in calls[4:])


def test_profile_step_cpu_time_clock(bench):
    spec = importlib.util.spec_from_file_location("profile_step",
                                                  BENCH.parent / "profile_step.py")
    profile_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profile_step)
    ticks = iter(range(10**6))
    per_step, _ = profile_step.profile("mlp", 2, 1, bench, clock=lambda: float(next(ticks)))
    # every clocked call reads the clock twice: a part's time is 1 tick per call
    assert per_step[0]["Adam step"] == 1.0 and per_step[0]["enc.1 Dense forward"] == 1.0


def test_a_busy_machine_is_named_in_the_summary(bench):
    rows = [{"bench": "step", "load_average": "1.50 1.00 0.90", "load_average_end": "1.90 1 1"}]
    assert bench.busy_machine(rows, cores=2) is None
    rows[0]["load_average_end"] = "12.63 13.19 12.13"
    assert "BUSY MACHINE: load average 1.5 / 12.6 (start / end) on 2 cores" in bench.busy_machine(
        rows, cores=2)
    assert bench.busy_machine([{"bench": "step"}], cores=2) is None  # an old run: no load


def test_pair_bound_rates_count_the_arrays_each_kernel_moves():
    """pair_bound.py: GB/s from the arrays each kernel of the pair must read and write, against
    the same run's stream loop; then the script end to end on a tiny batch (times unchecked)."""
    spec = importlib.util.spec_from_file_location("pair_bound", BENCH.parent / "pair_bound.py")
    pair_bound = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pair_bound)
    # one array of dec.9's x per ms for every kernel; the stream loop at 128 MB / 3.2 ms
    ms = {"moments": 1, "forward": 2, "pass 1": 3, "pass 2": 3, "stream": 3.2}
    run = {"batch": 256, "times": {k: [v / 1e3] * 3 for k, v in ms.items()},
           "hot": {k: [8 * 32 * 784 * 1e-9] * 3 for k in ms if k != "stream"}}
    rows = {r["kernel"]: r for r in pair_bound.rows(run)}
    array_mb = 256 * 32 * 784 * 4 / 1e6
    assert rows["stream loop"]["gb_per_s"] == pytest.approx(40.0)
    for name in ("moments", "forward", "pass 1", "pass 2"):
        assert rows[name]["mb"] == pytest.approx(ms[name] * array_mb), name
        assert rows[name]["gb_per_s"] == pytest.approx(array_mb), name
        assert rows[name]["of_stream"] == pytest.approx(array_mb / 40.0), name
        assert rows[name]["hot_ns"] == pytest.approx(1.0), name
    out = subprocess.run([sys.executable, str(BENCH.parent / "pair_bound.py"), "--threads", "1",
                          "--rounds", "1", "--batch", "2"], capture_output=True, text=True,
                         check=True).stdout
    lines = [line.strip() for line in out.splitlines()]
    for name in ("stream loop", "moments", "forward", "pass 1", "pass 2"):
        assert sum(line.startswith(name + " ") for line in lines) == 1, (name, out)
