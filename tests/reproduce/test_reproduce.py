"""reproduce: the plan of runs, the claim rules on synthetic numbers, and --quick end to end."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from numpyvae.cli.main import main as cli_main
from numpyvae.models.architectures import DEFAULT_HIDDEN
from numpyvae.reproduce import FULL, QUICK, reproduce
from numpyvae.reproduce import claims as C
from numpyvae.reproduce.experiments import (
    EXPERIMENTS,
    RunSpec,
    experiment_specs,
    members,
    unique_specs,
)
from numpyvae.reproduce.sweep import FIGURES, claim_inputs, judge
from numpyvae.reproduce.tables import ROW_KEYS, mean_sd, ratio_text

ISSUE_KEYS = {"experiment", "arch", "dataset", "latent_dim", "hidden", "c", "seed", "epochs",
              "train", "test", "report_loss", "seconds"}


# -- the plan ------------------------------------------------------------------
def test_full_plan_runs_and_report_figures():
    plan = members(FULL)
    specs = unique_specs(plan)
    # arch 8; latent 30 MLP + 5 CNN, 4 of them already in arch; balance 6 (c = 0.05 shared);
    # ae: the autoencoder and the shared VAE; beyond: plain (shared), conditional and
    # Bernoulli MLP at z = 2 and 20; collapse: plain (shared with latent), KL warm-up and free
    # bits at z = 5 and 20, three seeds each
    assert len(plan) == 8 + 35 + 6 + 2 + 6 + 18
    assert len(specs) == 8 + 31 + 5 + 1 + 4 + 12 == 61
    assert len({s.name for s in specs}) == len(specs)  # one folder per run
    reports = {(m.experiment, m.spec.arch, m.spec.dataset, m.spec.latent_dim, m.spec.hidden):
               m.report for m in plan}
    assert reports[("arch", "mlp", "mnist", 2, DEFAULT_HIDDEN)] == ("fig4", 307.0)
    assert reports[("latent", "mlp", "mnist", 2, DEFAULT_HIDDEN)] == ("fig8", 302.0)
    assert reports[("latent", "mlp", "mnist", 2, (300, 100, 20))] == ("fig8", 302.0)
    assert reports[("arch", "cnn", "fashion-mnist", 2, None)] == ("fig7", 246.0)
    assert reports[("latent", "cnn", "mnist", 20, None)] == ("fig9", 133.0)
    assert all(m.report is None for m in plan if m.experiment in ("balance", "ae", "beyond"))
    beyond = {s.name for s in specs if s.conditional or s.likelihood == "bernoulli"}
    assert beyond == {"cvae-mlp-mnist-z2-h300.100.10-c0.05-s0",
                      "cvae-mlp-mnist-z20-h300.100.10-c0.05-s0",
                      "vae-mlp-mnist-z2-h300.100.10-bernoulli-s0",
                      "vae-mlp-mnist-z20-h300.100.10-bernoulli-s0"}
    seeds = {s.seed for s in specs if s.arch == "mlp" and s.c == 0.05 and s.model == "vae"}
    assert seeds == {0, 1, 2} and {s.seed for s in specs if s.arch == "cnn"} == {0}
    collapse = [m.spec for m in plan if m.experiment == "collapse"]
    assert {(s.remedy, s.latent_dim, s.hidden) for s in collapse} == {
        (r, z, DEFAULT_HIDDEN) for r in ("plain", "warm-up", "free bits") for z in (5, 20)}
    by_name = {s.name: s for s in collapse}
    warm = by_name["vae-mlp-mnist-z20-h300.100.10-c0.05-w5-s2"].config(FULL)
    free = by_name["vae-mlp-mnist-z5-h300.100.10-c0.05-fb0.1-s0"].config(FULL)
    assert (warm.kl_warmup, warm.free_bits, warm.beta, warm.seed) == (5, 0.0, 1.0, 2)
    assert (free.kl_warmup, free.free_bits) == (0, 0.1)
    # the plain runs are the latent experiment's own folders: trained once
    assert by_name["vae-mlp-mnist-z5-h300.100.10-c0.05-s1"] in experiment_specs("latent")


def test_quick_plan_is_six_runs_of_one_epoch():
    plan = members(QUICK)
    specs = unique_specs(plan)
    assert len(specs) == 6 and len(plan) == 11
    assert {(s.kind, s.arch, s.latent_dim, s.likelihood, s.remedy) for s in specs} == {
        ("vae", "mlp", 2, "gaussian", "plain"), ("vae", "cnn", 2, "gaussian", "plain"),
        ("ae", "mlp", 2, "gaussian", "plain"), ("cvae", "mlp", 2, "gaussian", "plain"),
        ("vae", "mlp", 2, "bernoulli", "plain"), ("vae", "mlp", 5, "gaussian", "free bits")}
    config = specs[0].config(QUICK)
    assert (config.epochs, config.train_subset, config.test_subset) == (1, 2048, 500)
    assert RunSpec("vae", "cnn", "mnist", 2, None, 0.05, 0).name == "vae-cnn-mnist-z2-c0.05-s0"


def test_table_helpers():
    assert mean_sd([300.0]) == "300.0"
    assert mean_sd([1.0, 2.0, 3.0]) == "2.0 ± 1.0"
    assert ratio_text(330.0, 300.0) == "1.100 (+10.0%)"
    assert "outside ±10%" in ratio_text(340.0, 300.0)
    assert "outside ±10%" in ratio_text(260.0, 300.0)
    assert ratio_text(300.0, None) == ""


# -- the claim rules: each can give every verdict --------------------------------
def _losses(mlp, cnn):
    return {"mlp": dict(zip(C.LATENT_SWEEP, mlp, strict=True)),
            "cnn": dict(zip(C.LATENT_SWEEP, cnn, strict=True))}


def test_claim_a():
    falling = [365, 302, 258, 204, 154]
    assert C.claim_a(_losses(falling, falling)).verdict == C.HOLDS
    assert C.claim_a(_losses(falling, [399, 336, 284, 290, 133])).verdict == C.FAILS
    assert C.claim_a(_losses(falling, falling[:4] + [falling[3]])).verdict == C.FAILS  # equal
    partial = _losses(falling, falling)
    del partial["cnn"][5]
    assert C.claim_a(partial).verdict == C.UNJUDGED
    assert C.claim_a({}).verdict == C.UNJUDGED


def test_claims_b_and_c():
    assert C.claim_b(307.0, 322.0).verdict == C.HOLDS
    assert C.claim_b(330.0, 322.0).verdict == C.FAILS
    assert C.claim_b(307.0, None).verdict == C.UNJUDGED
    assert C.claim_c(154.0, 133.0).verdict == C.HOLDS
    assert C.claim_c(130.0, 133.0).verdict == C.FAILS
    assert C.claim_c(None, 133.0).verdict == C.UNJUDGED


def test_claim_d():
    vae = {"mean": [0.05, -0.1], "std": [0.9, 0.97]}
    ae = {"mean": [-4.6, 3.5], "std": [0.8, 0.5]}
    assert C.claim_d(vae, ae).verdict == C.HOLDS
    assert C.claim_d(vae, vae).verdict == C.FAILS  # the autoencoder also near the origin
    assert C.claim_d({"mean": [0.3, 0.0], "std": [0.9, 0.9]}, ae).verdict == C.FAILS
    assert C.claim_d({"mean": [0.0, 0.0], "std": [1.06, 0.9]}, ae).verdict == C.FAILS
    assert C.claim_d({"mean": [0.0, 0.0], "std": [0.9, 0.9]},
                     {"mean": [0.0, 0.0], "std": [2.0, 0.9]}).verdict == C.HOLDS  # std alone
    assert C.claim_d(vae, None).verdict == C.UNJUDGED
    # |mean|, not mean: a VAE whose codes sit at -0.3 is off the origin too (issue 23)
    assert C.claim_d({"mean": [-0.3, 0.0], "std": [0.9, 0.9]}, ae).verdict == C.FAILS
    assert C.claim_d({"mean": [-0.2, 0.2], "std": [0.9, 0.9]}, ae).verdict == C.HOLDS
    assert C.claim_d(vae, {"mean": [-4.6, 0.0], "std": [0.9, 0.9]}).verdict == C.HOLDS


def test_claim_e():
    dist = {0.0001: 5.0, 0.05: 2.0}
    sse = {1.0: 60.0, 0.05: 30.0}
    kl = {1.0: 2.0, 0.05: 6.0}
    assert C.claim_e(dist, sse, kl).verdict == C.HOLDS
    assert C.claim_e({0.0001: 3.9, 0.05: 2.0}, sse, kl).verdict == C.FAILS  # under 2×
    assert C.claim_e(dist, {1.0: 20.0, 0.05: 30.0}, kl).verdict == C.FAILS  # SSE not higher
    assert C.claim_e(dist, sse, {1.0: 7.0, 0.05: 6.0}).verdict == C.FAILS  # KL not lower
    assert C.claim_e({0.05: 2.0}, sse, kl).verdict == C.UNJUDGED
    assert C.claim_e(dist, {}, {}).verdict == C.UNJUDGED
    # one failing part decides even when the other is missing? No: missing means unjudged
    assert C.claim_e({0.0001: 1.0, 0.05: 2.0}, {}, {}).verdict == C.UNJUDGED


def _scores(div1, conf20):
    by_z = {1: {"diversity": div1, "confidence": 0.9}, 3: {"diversity": 3.2, "confidence": 0.9},
            20: {"diversity": 3.3, "confidence": conf20}}
    return {"mlp": by_z, "cnn": by_z}


def test_claim_f():
    assert C.claim_f(_scores(2.0, 0.7), 0.98).verdict == C.HOLDS
    assert C.claim_f(_scores(3.3, 0.7), 0.98).verdict == C.FAILS  # z = 1 as diverse
    assert C.claim_f(_scores(2.0, 0.95), 0.98).verdict == C.FAILS  # z = 20 as confident
    assert C.claim_f(_scores(2.0, 0.7), None).verdict == C.UNJUDGED
    partial = _scores(2.0, 0.7)
    partial["cnn"] = {3: partial["cnn"][3]}
    assert C.claim_f(partial, 0.98).verdict == C.UNJUDGED
    weak = C.claim_f(_scores(2.0, 0.7), 0.9)
    assert weak.verdict == C.HOLDS and "below the 97%" in weak.evidence[0]


def _collapse(plain5, plain20, treated5, treated20, remedy="warm-up"):
    """Experiment 6's inputs: (test −ELBO, active units) per seed."""
    return {"plain": {5: plain5, 20: plain20}, remedy: {5: treated5, 20: treated20}}


# The report's own pathologies (width 10): one z = 5 seed 30 nats up, two z = 20 seeds 12 up
PLAIN5 = [(202.4, 5), (231.6, 4), (201.0, 5)]  # spread 30.6
PLAIN20 = [(167.3, 12), (166.6, 12), (154.9, 14)]  # spread 12.4, 12.67 active units
GOOD5 = [(200.0, 5), (201.0, 5), (203.0, 5)]  # spread 3
GOOD20 = [(150.0, 14), (151.0, 14), (152.0, 14)]  # spread 2, 14 active units


@pytest.mark.parametrize("claim, remedy", [(C.claim_g, "warm-up"), (C.claim_h, "free bits")])
def test_claims_g_and_h(claim, remedy):
    def verdict(t5, t20, p5=PLAIN5, p20=PLAIN20):
        return claim(_collapse(p5, p20, t5, t20, remedy)).verdict

    assert verdict(GOOD5, GOOD20) == C.HOLDS
    # each of the three parts alone can fail it
    assert verdict([(200.0, 5), (216.0, 5), (203.0, 5)], GOOD20) == C.FAILS  # z = 5 spread 16
    assert verdict(GOOD5, [(150.0, 14), (157.0, 14), (152.0, 14)]) == C.FAILS  # z = 20: 7
    assert verdict(GOOD5, [(150.0, 13), (151.0, 13), (152.0, 14)]) == C.FAILS  # 13.3 < 13.67
    # the limits are in: exactly half the spread, exactly one more active unit on average
    half = [(200.0, 5), (216.0, 5), (203.0, 5)]  # spread 16 against 32
    assert verdict(half, GOOD20, p5=[(200.0, 5), (232.0, 5), (210.0, 5)]) == C.HOLDS
    assert verdict(GOOD5, [(150.0, 13), (151.0, 14), (152.0, 15)],
                   p20=[(167.0, 13), (166.0, 13), (155.0, 13)]) == C.HOLDS  # 14 against 13 + 1
    # the other remedy's runs are not this claim's evidence
    other = "free bits" if remedy == "warm-up" else "warm-up"
    assert claim(_collapse(PLAIN5, PLAIN20, GOOD5, GOOD20, other)).verdict == C.UNJUDGED
    # a missing seed leaves it unjudged, even when another part fails
    assert verdict(GOOD5[:2], [(150.0, 12)] * 3) == C.UNJUDGED
    assert verdict(GOOD5, GOOD20, p20=PLAIN20[:2]) == C.UNJUDGED
    text = claim(_collapse(PLAIN5, PLAIN20, GOOD5, GOOD20, remedy))
    assert text.source.startswith("Pre-registered in numpyvae/reproduce/claims.py") \
        and "spread 3.0" in " ".join(text.evidence)


def test_claim_inputs_average_over_seeds_and_pick_the_reference_runs():
    def vae(arch, z=2, c=0.05, seed=0, hidden=DEFAULT_HIDDEN):
        return RunSpec("vae", arch, "mnist", z, hidden if arch == "mlp" else None, c, seed)

    def final(loss):
        return {"test": {"loss": loss, "recon": loss - 5, "kl": 5.0}}

    finished = {vae("mlp", seed=0): final(300.0), vae("mlp", seed=1): final(310.0),
                vae("mlp", hidden=(300, 100, 20)): final(100.0),  # the other width: not used
                vae("cnn"): final(320.0), vae("mlp", c=1.0): final(70.0),
                # experiment 6's remedies optimise another objective: not the report's runs
                replace(vae("mlp"), kl_warmup=5): final(50.0),
                replace(vae("mlp", seed=1), free_bits=0.1): final(60.0)}
    measures = {s.name: {"latent": {"cluster_distance": 1.0, "mean": [0, 0], "std": [1, 1]},
                         "samples": {"confidence": 0.9, "diversity": 3.0}} for s in finished}
    inputs = claim_inputs(finished, measures)
    assert inputs["loss"] == {"mlp": {2: 305.0}, "cnn": {2: 320.0}}
    # E takes the balance experiment's runs only (seed 0), not the other seeds at c = 0.05
    assert inputs["sse"] == {0.05: pytest.approx(295 * 0.1), 1.0: 130.0}
    assert inputs["latent"]["ae"] is None and inputs["latent"]["vae"]["cluster_distance"] == 1.0
    verdicts = {c.key: c.verdict for c in judge(inputs, 0.98)}
    assert verdicts == {"A": C.UNJUDGED, "B": C.HOLDS, "C": C.UNJUDGED, "D": C.UNJUDGED,
                        "E": C.UNJUDGED, "F": C.UNJUDGED, "G": C.UNJUDGED, "H": C.UNJUDGED}
    assert inputs["collapse"] == {}  # no run of experiment 6, and none measured for health


# -- --quick end to end -----------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, shared_datasets):
    base = tmp_path_factory.mktemp("reproduce")
    out, docs = base / "out", base / "docs"
    lines: list[str] = []
    result = reproduce(out, quick=True, data_dir=str(shared_datasets), docs=docs,
                       log=lines.append)
    return {"out": out, "docs": docs, "result": result, "log": lines, "data": shared_datasets}


def test_quick_writes_results_json(quick_run, shared_datasets):
    rows = json.loads((quick_run["out"] / "results.json").read_text())
    assert len(rows) == 11  # arch 2, latent 2, balance 1, ae 2, beyond 3, collapse 1: six runs
    for row in rows:
        assert set(row) == set(ROW_KEYS) == ISSUE_KEYS | {
            "model", "likelihood", "conditional", "kl_warmup", "free_bits", "log_px",
            "latent_health"}
        if row["model"] == "ae":
            assert row["log_px"] is None and row["latent_health"] is None
        else:  # measured on the whole (quick) test set; the KLs add up to the test KL
            health = row["latent_health"]
            assert health["n_images"] == 500 and 0 <= health["active"] <= row["latent_dim"]
            assert len(health["kl_per_dim"]) == row["latent_dim"]
            assert sum(health["kl_per_dim"]) == pytest.approx(health["kl_total"])
            assert "mi" not in health  # at its log N bound from z = 3 on: not measured
            # K = 50 samples on 100 images (20 for the CNN) in --quick; above the ELBO
            n = 20 if row["arch"] == "cnn" else 100
            assert (row["log_px"]["k"], row["log_px"]["n"]) == (50, n)
            assert row["log_px"]["log_px"] >= row["log_px"]["elbo"]
        assert set(row["test"]) == {"loss", "recon", "kl"}
        # the training loss is −ELBO; the objective (β, free bits) sits beside it
        assert set(row["train"]) == {"loss", "recon", "kl", "objective", "beta"}
        if not row["free_bits"]:  # β = 1 throughout: the objective is −ELBO
            assert row["train"]["objective"] == pytest.approx(row["train"]["loss"])
        else:  # Σ_j max(λ, KL_j) ≥ Σ_j KL_j
            assert row["train"]["objective"] >= row["train"]["loss"]
        assert row["epochs"] == 1 and row["seconds"] > 0
        assert (row["hidden"] is None) == (row["arch"] == "cnn")
    by = {(r["experiment"], r["model"], r["arch"]): r for r in rows}
    assert by[("arch", "vae", "mlp")]["report_loss"] == 307.0
    assert by[("latent", "vae", "cnn")]["report_loss"] == 336.0
    assert by[("ae", "ae", "mlp")]["report_loss"] is None
    assert by[("ae", "ae", "mlp")]["test"]["kl"] == 0.0
    # a shared run: the same numbers in every experiment
    assert by[("arch", "vae", "mlp")]["test"] == by[("balance", "vae", "mlp")]["test"]
    beyond = {(r["conditional"], r["likelihood"]) for r in rows if r["experiment"] == "beyond"}
    assert beyond == {(False, "gaussian"), (True, "gaussian"), (False, "bernoulli")}
    bern = next(r for r in rows if r["likelihood"] == "bernoulli")
    assert bern["log_px"]["log_normalizer"] == 0 and bern["log_px"]["log_px"] < 0
    assert sorted(quick_run["result"].trained) == sorted(
        s.name for s in unique_specs(members(QUICK)))


def test_quick_writes_results_md_with_every_section_and_claim(quick_run, shared_datasets):
    text = (quick_run["out"] / "results.md").read_text()
    assert "--quick" in text
    for title in EXPERIMENTS.values():
        assert f"## {title}" in text
    for key in "ABCDEFGH":
        assert f"### {key}. " in text
    assert "| active units (each seed; see below) |" in text and " of 2 |" in text
    assert "| seed spread (max − min) |" in text and "free bits λ = 0.1 nats" in text
    assert "pre-registered" in text
    assert "| report (figure) |" in text and "ratio train/report" in text
    assert "307 (fig. 4)" in text and "302 (fig. 8)" in text
    assert text.count(f"**{C.UNJUDGED}**") >= 3  # A, C, E and F lack the runs in quick mode
    assert "squared error / image" in text and "test accuracy" in text
    assert "| classified as the asked-for class |" in text and "| log p(x) (nats, ± se) |" in text
    assert "−(784/2)·log(2πc)" in text  # the Gaussian log p(x) says it is a density
    verdicts = {c.key: c.verdict for c in quick_run["result"].claims}
    assert verdicts["A"] == verdicts["C"] == verdicts["E"] == verdicts["F"] == C.UNJUDGED
    assert verdicts["G"] == verdicts["H"] == C.UNJUDGED  # one run of experiment 6
    assert all(v in C.VERDICTS for v in verdicts.values())
    assert any("claim A: not enough runs to judge" in line for line in quick_run["log"])


def test_quick_writes_figures_and_the_docs_copy(quick_run, shared_datasets):
    out, docs = quick_run["out"], quick_run["docs"]
    for name in FIGURES:
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (docs / "figures" / name).is_file(), name
    for run in (out / "runs").iterdir():  # per-run figures stay in the run folders
        # a manifold for z = 2 only, and not for the conditional model: it needs a class
        manifold = "-z2-" in run.name and not run.name.startswith("cvae-")
        assert (run / "samples.png").is_file()
        assert (run / "manifold.png").is_file() == manifold
        assert (run / "latent_health.png").is_file() == (not run.name.startswith("ae-"))
        assert (run / "reproduce.json").is_file()
    asked = json.loads((out / "runs" / "cvae-mlp-mnist-z2-h300.100.10-c0.05-s0" /
                        "reproduce.json").read_text())["asked"]
    assert 0 <= asked["rate"] <= 1 and 0 < asked["confidence"] < 1
    assert (docs / "results.md").read_text() == (out / "results.md").read_text()
    assert json.loads((docs / "results.json").read_text()) == json.loads(
        (out / "results.json").read_text())
    png = sum(p.stat().st_size for p in (docs / "figures").glob("*.png"))
    assert png < 800_000, png
    assert (out / "classifier.npz").is_file()


def test_second_invocation_skips_finished_runs(quick_run, shared_datasets, capsys):
    out = quick_run["out"]
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoint.npz")}
    code = cli_main(["reproduce", "--quick", "--out", str(out), "--data-dir",
                     str(shared_datasets)])
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.count("finished, skipped") == 6 and "training MLP" not in printed
    assert "figures: nothing changed" in printed
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoint.npz")}
    # speed is for benchmarks: that nothing was retrained or redrawn is what is checked
    log = json.loads((out / "sweep.json").read_text())
    assert len(log) >= 2 and log[-1]["trained"] == []


def test_a_run_with_a_checkpoint_but_no_final_resumes(quick_run, shared_datasets):
    out = quick_run["out"]
    run = out / "runs" / "ae-mlp-mnist-z2-h300.100.10-c0.05-s0"
    final = json.loads((run / "final.json").read_text())
    (run / "final.json").unlink()  # as if stopped after the last checkpoint
    lines: list[str] = []
    result = reproduce(out, quick=True, only=["ae"], data_dir=str(shared_datasets),
                       log=lines.append)
    assert result.trained == [run.name]
    assert any("resuming from its checkpoint" in line for line in lines)
    assert json.loads((run / "final.json").read_text())["test"] == final["test"]
    assert len(json.loads((run / "history.json").read_text())) == 1  # no epoch trained again


def test_a_quick_folder_is_not_taken_for_the_full_sweep(quick_run, shared_datasets, capsys):
    with pytest.raises(ValueError, match="choose another --out"):
        reproduce(quick_run["out"], quick=False, only=["ae"], data_dir=str(shared_datasets),
                  log=lambda s: None)
    # --list shows the state of every run without training anything
    assert cli_main(["reproduce", "--list", "--quick", "--out", str(quick_run["out"])]) == 0
    assert "6 of 6 runs finished" in capsys.readouterr().out
    assert cli_main(["reproduce", "--list", "--out", str(quick_run["out"])]) == 0
    listed = capsys.readouterr().out
    assert listed.count("CONFLICT") == 6 and "0 of 61 runs finished" in listed


def test_cli_rejects_an_unknown_experiment(capsys):
    with pytest.raises(SystemExit):
        cli_main(["reproduce", "--only", "nonsense"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown experiment"):
        reproduce("/nonexistent", only=["nonsense"])


def test_sigterm_stops_like_ctrl_c_and_records_the_invocation(shared_datasets, tmp_path):
    """`kill` during training: exit 130, the resume hint, and sweep.json still written."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "numpyvae", "reproduce", "--quick", "--only", "ae", "--out",
         str(out), "--data-dir", str(shared_datasets)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until training has started
        if "training MLP" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err
    record = json.loads((out / "sweep.json").read_text())[-1]
    assert record["wall_seconds"] > 0 and record["only"] == ["ae"]


def test_a_measure_cache_without_the_health_gets_it_added_and_keeps_the_rest(
        quick_run, shared_datasets, monkeypatch):
    """Runs measured before the latent-health measure existed: only that is computed."""
    from numpyvae import data
    from numpyvae.reproduce import measures as M
    from numpyvae.reproduce.classifier import load_classifier
    from numpyvae.reproduce.sweep import CLASSIFIER_FILE, _file_id

    out = quick_run["out"]
    run = out / "runs" / "vae-mlp-mnist-z5-h300.100.10-c0.05-fb0.1-s0"
    cache = json.loads((run / M.MEASURES_FILE).read_text())
    health = cache.pop("health")
    (run / M.MEASURES_FILE).write_text(json.dumps(cache))

    def not_again(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(M, "log_likelihood", not_again)
    monkeypatch.setattr(M, "score_samples", not_again)
    x, y = data.load("mnist", "test", str(shared_datasets))
    clf, _ = load_classifier(out / CLASSIFIER_FILE)
    result = M.measure_run(run, x[:QUICK.test_subset], y[:QUICK.test_subset], clf,
                           _file_id(out / CLASSIFIER_FILE), QUICK.prior_samples,
                           QUICK.loglik_k, QUICK.loglik_images)
    assert result["health"] == health  # the same numbers: a fixed seed, in eval mode
    assert {k: result[k] for k in cache} == cache
    assert json.loads((run / M.MEASURES_FILE).read_text()) == result


def test_results_md_claims_g_and_h_are_regenerated_from_results_json(tmp_path):
    """docs/report/results.md's G and H are what the claims module makes of results.json
    (refresh changes nothing), it cites its own pre-registration and nothing outside the
    project, and a changed number in results.json changes the section."""
    from numpyvae.reproduce.refresh import main as refresh

    docs = Path(__file__).resolve().parents[2] / "docs" / "report"
    for name in ("results.md", "results.json"):
        shutil.copy(docs / name, tmp_path / name)
    assert refresh([str(tmp_path)]) == 0
    text = (tmp_path / "results.md").read_text()
    assert text == (docs / "results.md").read_text()
    assert "the issue" not in text.lower()
    assert "Pre-registered in numpyvae/reproduce/claims.py" in text
    rows = json.loads((docs / "results.json").read_text())
    plain = next(r for r in rows if r["experiment"] == "collapse" and r["latent_dim"] == 20
                 and not r["kl_warmup"] and not r["free_bits"])
    plain["latent_health"]["active"] += 6  # planted: plain training's units changed
    (tmp_path / "results.json").write_text(json.dumps(rows))
    refresh([str(tmp_path)])
    assert (tmp_path / "results.md").read_text() != text


def test_docs_naming_a_file_is_refused_before_the_sweep(tmp_path, monkeypatch, capsys):
    """Once it failed only after the whole sweep had run (issue 23)."""
    import numpyvae.reproduce.sweep as sweep

    def no_sweep(*a, **k):
        raise AssertionError("the sweep ran before --docs was checked")

    monkeypatch.setattr(sweep, "reproduce", no_sweep)
    (tmp_path / "notes.md").write_text("x")
    code = cli_main(["reproduce", "--quick", "--out", str(tmp_path / "out"),
                     "--docs", str(tmp_path / "notes.md")])
    assert code == 2
    assert f"--docs {tmp_path / 'notes.md'} is a file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["results.md", "figures/.stamp"])
def test_a_full_disk_while_the_sweep_writes_keeps_the_old_file_whole(quick_run, monkeypatch,
                                                                     name):
    """results.md and the figures' stamp were written in place: a full disk left half of
    one (and the stamp, half-written, was then taken for another)."""
    import errno
    import os

    out = quick_run["out"]
    target = out / name
    before = target.read_text()
    real = Path.write_text

    def filling(self, data, *args, **kwargs):
        if self.name == target.name or self.name.startswith(f".{target.name}."):
            real(self, data[:len(data) // 2], *args, **kwargs)  # half, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", filling)
    if name == "figures/.stamp":  # drawn again only when something changed
        (out / "figures" / FIGURES[0]).unlink()
    with pytest.raises(OSError, match="No space left on device") as info:
        reproduce(out, quick=True, data_dir=str(quick_run["data"]), log=lambda s: None)
    assert info.value.filename == str(target)
    assert target.read_text() == before
    assert [p.name for p in target.parent.iterdir() if ".tmp" in p.name] == []


@pytest.mark.parametrize("content, message", [
    ("{}", "'train' should hold the loss, recon and kl numbers"),
    ('{"train": {"loss": 1, "recon": 1, "kl": 0}, "train_eval": {"loss": 1, "recon": 1, '
     '"kl": 0}, "test": {"loss": -5, "recon": 1, "kl": 2}, "epochs": 1, "seconds": 1}',
     "'test' has loss -5"),
])
def test_a_damaged_final_json_of_a_sweep_run_is_named(quick_run, content, message):
    """An empty one was a KeyError traceback; one edited by hand went into the tables."""
    run = quick_run["out"] / "runs" / "ae-mlp-mnist-z2-h300.100.10-c0.05-s0"
    final = (run / "final.json").read_text()
    (run / "final.json").write_text(content)
    try:
        with pytest.raises(ValueError, match=message) as info:
            reproduce(quick_run["out"], quick=True, only=["ae"],
                      data_dir=str(quick_run["data"]), log=lambda s: None)
        assert str(run / "final.json") in str(info.value)
    finally:
        (run / "final.json").write_text(final)


@pytest.mark.parametrize("content", ["{", "[]", "null"])
def test_a_damaged_measure_cache_is_measured_again(quick_run, content):
    """The cache's own reader meant to skip a damaged file, but caught JSONDecodeError,
    which read_json never raises: the sweep stopped on it until the file was deleted."""
    from numpyvae import data
    from numpyvae.reproduce import measures as M
    from numpyvae.reproduce.classifier import load_classifier
    from numpyvae.reproduce.sweep import CLASSIFIER_FILE, _file_id

    out = quick_run["out"]
    run = out / "runs" / "ae-mlp-mnist-z2-h300.100.10-c0.05-s0"
    cache = json.loads((run / M.MEASURES_FILE).read_text())
    (run / M.MEASURES_FILE).write_text(content)
    x, y = data.load("mnist", "test", str(quick_run["data"]))
    clf, _ = load_classifier(out / CLASSIFIER_FILE)
    result = M.measure_run(run, x[:QUICK.test_subset], y[:QUICK.test_subset], clf,
                           _file_id(out / CLASSIFIER_FILE), QUICK.prior_samples)
    assert result == cache  # the same numbers: fixed seeds, in eval mode
    assert json.loads((run / M.MEASURES_FILE).read_text()) == cache


@pytest.mark.parametrize("content", ["[1]", '[{"a": 1}]', '{"a": 1}', "{"])
def test_a_damaged_sweep_log_is_named_before_anything_is_trained(quick_run, content,
                                                                  monkeypatch):
    """sweep.json records each invocation; damaged, it was a TypeError or KeyError
    traceback at the end of the sweep, or silently replaced."""
    import numpyvae.reproduce.sweep as sweep

    def no_training(*a, **k):
        raise AssertionError("trained before sweep.json was checked")

    monkeypatch.setattr(sweep, "train_missing", no_training)
    log = quick_run["out"] / "sweep.json"
    before = log.read_text()
    log.write_text(content)
    try:
        with pytest.raises(ValueError) as info:
            reproduce(quick_run["out"], quick=True, only=["ae"],
                      data_dir=str(quick_run["data"]), log=lambda s: None)
        assert str(log) in str(info.value)
        assert log.read_text() == content  # kept as it was: the user decides
    finally:
        log.write_text(before)
