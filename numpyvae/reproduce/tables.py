"""results.json rows and the Markdown tables of results.md.

A row is one run's place in one experiment (a run shared by several experiments,
like the MLP on MNIST at z = 2, appears once under each, with the same numbers and
that experiment's report figure). The keys are the issue's, plus ``model`` ("vae" or
"ae"), without which experiment 4's two rows could not be told apart, ``likelihood``
and ``conditional`` (experiment 5's), ``kl_warmup`` and ``free_bits`` (experiment 6's),
``log_px``: the importance-weighted log p(x) on the first test images (``iwae.py``), and
``latent_health``: active units and KL per dimension on the test set
(``models/latent_health.py``); both null for the autoencoder.

In the tables a configuration run with several seeds shows mean ± sd (sample sd) and
each seed; the ratio is our mean final training loss (the mean over the last epoch,
as the report gives it) over the report's figure. Squared error is per image, summed
over pixels: SSE = recon · 2c, which compares across c where the loss does not.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .claims import Claim, spread
from .experiments import EXPERIMENTS, REMEDIES, Member, RunSpec, Settings

ROW_KEYS = ("experiment", "model", "arch", "dataset", "latent_dim", "hidden", "c", "seed",
            "epochs", "train", "test", "report_loss", "seconds", "likelihood", "conditional",
            "kl_warmup", "free_bits", "log_px", "latent_health")
HEALTH_KEYS = ("latent_dim", "n_images", "active", "active_dims", "threshold", "kl_per_dim",
               "kl_total")  # what a row keeps of the health measure
CLAIMS_HEADING = ("## The report's claims (A–F), and G and H, pre-registered in "
                  "numpyvae/reproduce/claims.py")
RATIO_BAND = 0.10  # the target: every ratio within ±10%
LOG_PX_HEADER = "log p(x) (test, nats; see below)"
ACTIVE_HEADER = "active units (each seed; see below)"


def make_row(member: Member, final: Mapping[str, Any],
             measures: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The results.json row of a finished run in one experiment (``measures``: the run's
    reproduce.json, for log p(x) and the latent health)."""
    s = member.spec
    health = (measures or {}).get("health")
    return {
        "experiment": member.experiment,
        "model": s.model,
        "arch": s.arch,
        "dataset": s.dataset,
        "latent_dim": s.latent_dim,
        "hidden": list(s.hidden) if s.hidden else None,
        "c": s.c,
        "seed": s.seed,
        "epochs": final["epochs"],
        "train": dict(final["train"]),
        "test": dict(final["test"]),
        "report_loss": member.report[1] if member.report else None,
        "seconds": final["seconds"],
        "likelihood": s.likelihood,
        "conditional": s.conditional,
        "kl_warmup": s.kl_warmup,
        "free_bits": s.free_bits,
        "log_px": (measures or {}).get("loglik"),
        "latent_health": {k: health[k] for k in HEALTH_KEYS} if health else None,
    }


def spec_of(row: Mapping[str, Any]) -> RunSpec:
    """The RunSpec a row came from (its run folder is ``spec_of(row).name``)."""
    hidden = tuple(row["hidden"]) if row["hidden"] else None
    return RunSpec(row["model"], row["arch"], row["dataset"], row["latent_dim"], hidden,
                   row["c"], row["seed"], row.get("likelihood", "gaussian"),
                   bool(row.get("conditional", False)), row.get("kl_warmup", 0),
                   row.get("free_bits", 0.0))


def group(rows: Iterable[Mapping[str, Any]]) -> dict[tuple, list[Mapping[str, Any]]]:
    """Rows by configuration (everything but the seed), in first-seen order."""
    out: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        key = (r["experiment"], r["model"], r["arch"], r["dataset"], r["latent_dim"],
               tuple(r["hidden"] or ()), r["c"], r.get("likelihood", "gaussian"),
               bool(r.get("conditional", False)), r.get("kl_warmup", 0), r.get("free_bits", 0.0))
        out.setdefault(key, []).append(r)
    return out


def log_px_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """Mean log p(x) over the seeds that have one: "−67.3 ± 0.4" (± sd over seeds), or ±
    the standard error of the estimate for a single run."""
    est = [r["log_px"] for r in rows if r.get("log_px")]
    if not est:
        return ""
    if len(est) == 1:
        return f"{est[0]['log_px']:.1f} ± {est[0]['log_px_se']:.1f} (se)"
    return mean_sd([e["log_px"] for e in est])


def active_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """Active units of each seed's run out of z, e.g. "14, 15, 13 of 20"; "—" for a run
    not measured, "" when none was (see ACTIVE_NOTE)."""
    counts = [r["latent_health"]["active"] if r.get("latent_health") else None for r in rows]
    if all(c is None for c in counts):
        return ""
    return (", ".join("—" if c is None else str(c) for c in counts)
            + f" of {rows[0]['latent_dim']}")


def mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values))


def mean_sd(values: Sequence[float], digits: int = 1) -> str:
    """"306.1 ± 2.3" (sample sd) for several values, "306.1" for one."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def ratio_text(ours: float, report: float | None) -> str:
    if report is None:
        return ""
    r = ours / report
    flag = f" **outside ±{RATIO_BAND:.0%}**" if abs(r - 1) > RATIO_BAND + 1e-9 else ""  # ±10% is in
    return f"{r:.3f} ({r - 1:+.1%}){flag}"


def _values(rows: Sequence[Mapping[str, Any]], split: str, key: str = "loss") -> list[float]:
    return [r[split][key] for r in rows]


def _sse(rows: Sequence[Mapping[str, Any]], split: str) -> list[float]:
    return [r[split]["recon"] * 2 * r["c"] for r in rows]


def _seeds(rows: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"s{r['seed']}: {r['train']['loss']:.1f} / {r['test']['loss']:.1f}"
                     for r in rows)


def _arch_label(r: Mapping[str, Any]) -> str:
    return r["arch"].upper() + (" " + "-".join(map(str, r["hidden"])) if r["hidden"] else "")


def _figure(member_reports: Mapping[tuple, tuple[str, float]], r: Mapping[str, Any]) -> str:
    rep = member_reports.get((r["experiment"], spec_of(r)))
    return f"{rep[1]:g} ({rep[0].replace('fig', 'fig. ')})" if rep else ""


def _table(header: Sequence[str], body: Iterable[Sequence[str]], text: int = 1) -> list[str]:
    """A Markdown table; the first ``text`` columns are left-aligned, the numbers right."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def arch_table(rows: Sequence[Mapping[str, Any]], reports: Mapping[tuple, tuple[str, float]],
               split_of: Mapping[tuple, tuple[float, float]]) -> list[str]:
    """Experiment 1: architecture × data set at z = 2."""
    body = []
    for (_, _, arch, dataset, z, *_), g in group(rows).items():
        report = g[0]["report_loss"]
        split = split_of.get((arch, dataset, z))
        body.append([
            _arch_label(g[0]), dataset, str(len(g)), _figure(reports, g[0]),
            f"{split[0]:g} + {split[1]:g}" if split else "",
            mean_sd(_values(g, "train")),
            f"{mean(_values(g, 'train', 'recon')):.1f} + {mean(_values(g, 'train', 'kl')):.1f}",
            mean_sd(_values(g, "test")),
            ratio_text(mean(_values(g, "train")), report), log_px_text(g), active_text(g),
            _seeds(g),
        ])
    return _table(["model", "data set", "seeds", "report (figure)", "report recon + KL",
                   "ours: train", "ours: train recon + KL", "ours: test", "ratio train/report",
                   LOG_PX_HEADER, ACTIVE_HEADER, "each seed: train / test"], body, text=2)


def latent_table(rows: Sequence[Mapping[str, Any]],
                 reports: Mapping[tuple, tuple[str, float]]) -> list[str]:
    """Experiment 2: z = 1, 2, 3, 5, 20; MLP at both widths beside the same report figure."""
    groups = sorted(group(rows).items(),
                    key=lambda kv: (kv[0][2] != "mlp", kv[0][4], kv[0][5]))
    body = []
    for key, g in groups:
        z = key[4]
        report = g[0]["report_loss"]
        body.append([
            _arch_label(g[0]), str(z), str(len(g)), _figure(reports, g[0]),
            mean_sd(_values(g, "train")),
            f"{mean(_values(g, 'train', 'recon')):.1f} + {mean(_values(g, 'train', 'kl')):.1f}",
            mean_sd(_values(g, "test")), ratio_text(mean(_values(g, "train")), report),
            log_px_text(g), active_text(g), _seeds(g),
        ])
    return _table(["model", "z", "seeds", "report (figure)", "ours: train",
                   "ours: train recon + KL", "ours: test", "ratio train/report", LOG_PX_HEADER,
                   ACTIVE_HEADER, "each seed: train / test"], body)


def balance_table(rows: Sequence[Mapping[str, Any]],
                  measures: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Experiment 3: per-image squared error and KL, separately, across c."""
    body = []
    for key, g in sorted(group(rows).items(), key=lambda kv: kv[0][6]):
        c = key[6]
        dist = [measures[spec_of(r).name]["latent"]["cluster_distance"]
                for r in g if spec_of(r).name in measures]
        body.append([
            f"{c:g}", str(len(g)), mean_sd(_sse(g, "train"), 2), mean_sd(_sse(g, "test"), 2),
            mean_sd(_values(g, "train", "kl"), 2), mean_sd(_values(g, "test", "kl"), 2),
            mean_sd(_values(g, "train")), mean_sd(dist, 2) if dist else "", active_text(g),
        ])
    return _table(["c", "seeds", "squared error / image: train", "squared error: test",
                   "KL: train", "KL: test", "loss: train (SSE/2c + KL)",
                   "cluster distance (test)", ACTIVE_HEADER], body)


def ae_table(rows: Sequence[Mapping[str, Any]],
             measures: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Experiment 4: the autoencoder beside the VAE, with the statistics of claim D."""
    body = []
    for r in rows:
        m = measures.get(spec_of(r).name, {}).get("latent")
        body.append([
            "autoencoder" if r["model"] == "ae" else "VAE", f"{_sse([r], 'test')[0]:.2f}",
            f"{r['test']['kl']:.2f}", _vec(m["mean"]) if m else "", _vec(m["std"]) if m else "",
            f"{m['cluster_distance']:.2f}" if m else "",
        ])
    return _table(["model (MLP, z = 2)", "squared error / image: test", "KL: test",
                   "mean of μ per dim", "std of μ per dim", "cluster distance"], body)


def scores_table(rows: Sequence[Mapping[str, Any]],
                 measures: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The classifier's view of prior samples, for every scored configuration."""
    body = []
    seen = set()
    # model, arch, hidden, c, z: each architecture's sweep over z reads down the table
    order = sorted(group(rows).items(),
                   key=lambda kv: (kv[0][1] != "vae", kv[0][2] != "mlp", kv[0][5], kv[0][6],
                                   kv[0][4]))
    for (_, model, arch, _, z, hidden, c, likelihood, conditional, warmup, free_bits), g in order:
        if likelihood != "gaussian" or conditional or warmup or free_bits:
            continue  # experiment 5's and 6's models have their own tables
        key = (model, arch, z, hidden, c)
        scored = [measures[spec_of(r).name]["samples"] for r in g
                  if "samples" in measures.get(spec_of(r).name, {})]
        if key in seen or not scored:
            continue
        seen.add(key)
        body.append([
            f"{_arch_label(g[0])} {model.upper()}", str(z), f"{c:g}", str(len(scored)),
            mean_sd([s["confidence"] for s in scored], 3),
            mean_sd([s["diversity"] for s in scored], 2),
        ])
    return _table(["model", "z", "c", "seeds", "confidence (mean max prob)",
                   "diversity (bits, max 3.32)"], body)


def conditional_table(rows: Sequence[Mapping[str, Any]],
                      measures: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Experiment 5: conditional against plain samples, as the classifier sees them."""
    body = []
    for r in sorted(rows, key=lambda r: (r["latent_dim"], bool(r["conditional"]))):
        if r["likelihood"] != "gaussian":
            continue
        m = measures.get(spec_of(r).name, {})
        sc, asked = m.get("samples"), m.get("asked")
        if not sc:
            continue
        body.append([
            "conditional VAE" if r["conditional"] else "VAE", str(r["latent_dim"]),
            f"{asked['rate']:.1%}" if asked else "10% (no class can be asked)",
            f"{asked['confidence']:.3f}" if asked else "",
            f"{sc['confidence']:.3f}", f"{sc['diversity']:.2f}", active_text([r]),
        ])
    return _table(["model (MLP, c = 0.05)", "z", "classified as the asked-for class",
                   "mean probability of the asked-for class", "confidence (mean max prob)",
                   "diversity (bits)", ACTIVE_HEADER], body)


def likelihood_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Experiment 5: the Bernoulli decoder beside the report's Gaussian."""
    body = []
    for r in sorted(rows, key=lambda r: (r["latent_dim"], r["likelihood"])):
        if r["conditional"]:
            continue
        lp = r.get("log_px")
        body.append([
            r["likelihood"], str(r["latent_dim"]),
            "binarized" if r["likelihood"] == "bernoulli" else "grey levels",
            f"{r['test']['loss']:.1f} ({r['test']['recon']:.1f} + {r['test']['kl']:.1f})",
            f"{lp['elbo']:.1f}" if lp else "", f"{lp['log_px']:.1f} ± {lp['log_px_se']:.1f}"
            if lp else "",
            "density (includes −392·log(2πc))" if r["likelihood"] == "gaussian"
            else "probability of the binary image", active_text([r]),
        ])
    return _table(["decoder (MLP VAE)", "z", "test images", "test loss (recon + KL)",
                   "ELBO (nats)", "log p(x) (nats, ± se)", "what log p(x) is", ACTIVE_HEADER],
                  body, text=3)


def collapse_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Experiment 6: plain training, KL warm-up and free bits at z = 5 and 20, by seed."""
    order = list(REMEDIES)
    body = []
    for _, g in sorted(group(rows).items(),
                       key=lambda kv: (kv[0][4], order.index(spec_of(kv[1][0]).remedy))):
        spec = spec_of(g[0])
        health = [r["latent_health"] for r in g if r.get("latent_health")]
        body.append([
            str(spec.latent_dim), _remedy_text(spec), str(len(g)), mean_sd(_values(g, "test")),
            f"{spread(_values(g, 'test')):.1f}" if len(g) > 1 else "",
            f"{mean(_values(g, 'train')):.1f} / {mean(_values(g, 'train', 'objective')):.1f}",
            log_px_text(g),
            (f"{mean([h['active'] for h in health]):.1f} ({active_text(g)})"
             if health else ""),
            "; ".join(f"s{r['seed']}: {r['test']['loss']:.1f}" for r in g),
        ])
    return _table(["z", "objective", "seeds", "−ELBO: test", "seed spread (max − min)",
                   "train: −ELBO / objective", LOG_PX_HEADER, "active units: mean (each seed)",
                   "each seed: test −ELBO"], body, text=2)


def _remedy_text(spec: RunSpec) -> str:
    if spec.kl_warmup:
        return f"KL warm-up over {spec.kl_warmup} epochs"
    if spec.free_bits:
        return f"free bits λ = {spec.free_bits:g} nats"
    return "plain (−ELBO)"


def claims_markdown(claims: Sequence[Claim]) -> list[str]:
    lines = []
    for cl in claims:
        lines += [f"### {cl.key}. {cl.title}: **{cl.verdict}**", "",
                  f"- {cl.source}: \"{cl.report}\"", f"- Rule: {cl.rule}", "- Evidence:"]
        lines += [f"  - {e}" for e in cl.evidence]
        lines.append("")
    return lines


def results_markdown(
    rows: Sequence[Mapping[str, Any]],
    members: Sequence[Member],
    measures: Mapping[str, Mapping[str, Any]],
    claims: Sequence[Claim],
    classifier_info: Mapping[str, Any] | None,
    timing: Mapping[str, Any],
    settings: Settings,
    figures: Sequence[str],
    split_of: Mapping[tuple, tuple[float, float]],
) -> str:
    """The whole of results.md."""
    reports = {(m.experiment, m.spec): m.report for m in members if m.report}
    lines = _preamble(members, timing, settings)
    by_exp = {name: [r for r in rows if r["experiment"] == name] for name in EXPERIMENTS}
    sections = [
        ("arch", lambda rs: arch_table(rs, reports, split_of)),
        ("latent", lambda rs: latent_table(rs, reports)),
        ("balance", lambda rs: balance_table(rs, measures)),
        ("ae", lambda rs: ae_table(rs, measures)),
    ]
    for name, table in sections:
        lines += [f"## {EXPERIMENTS[name]}", ""]
        lines += table(by_exp[name]) if by_exp[name] else ["No finished runs."]
        lines.append("")
    lines += [LOG_PX_NOTE.format(k=settings.loglik_k, n=settings.loglik_images,
                                 n_cnn=settings.loglik_images_cnn), ""]
    lines += _beyond_sections(by_exp, measures)
    n_test = settings.test_subset or 10_000
    lines += [ACTIVE_NOTE.format(n=n_test, log_n=math.log(n_test)), ""]
    lines += [CLAIMS_HEADING, ""]
    lines += claims_markdown(claims)
    lines += _sample_quality(rows, measures, classifier_info, settings)
    if figures:
        lines += ["## Figures", ""] + [f"![{f}](figures/{f})" for f in figures] + [""]
    return "\n".join(lines)


def _preamble(members: Sequence[Member], timing: Mapping[str, Any], settings: Settings
              ) -> list[str]:
    """results.md's title, the --quick warning, the runs and time, and what the losses are."""
    lines = ["# The report reproduced", ""]
    if settings.quick:
        plural = "s" if settings.epochs > 1 else ""
        lines += [f"**--quick**: {settings.epochs} epoch{plural} on {settings.train_subset:,} "
                  f"training images, evaluation on {settings.test_subset:,} test images. These "
                  "numbers test the machinery and say nothing about the report.", ""]
    planned = len({m.spec for m in members})
    return lines + [
        f"Runs finished: {timing['finished']} of {planned}. Training time summed over runs: "
        f"{_duration(timing['train_seconds'])}; wall time of the sweep (all invocations that "
        f"trained): {_duration(timing['wall_seconds'])}.",
        "",
        "Loss per image = Σ(x − x̂)²/(2c) + KL, c = 0.05 unless stated. *train* is the mean over "
        "the last epoch's batches, as the report gives it; *test* is the full test set in eval "
        "mode (our figure of record). The ratio is ours (train) / the report's.",
        "",
    ]


def _beyond_sections(by_exp: Mapping[str, list], measures: Mapping[str, Mapping[str, Any]]
                     ) -> list[str]:
    """Experiments 5 (conditional VAE, Bernoulli decoder) and 6 (posterior collapse)."""
    lines = [f"## {EXPERIMENTS['beyond']}", ""]
    if by_exp["beyond"]:
        lines += ["The report: conditioning on the class would make its samples \"much "
                  "better\". Each model draws prior samples with the classifier as judge; a "
                  "conditional model is asked for each class equally often.", ""]
        lines += conditional_table(by_exp["beyond"], measures) + [""]
        lines += ["The Bernoulli decoder is trained and evaluated on binarized MNIST (each "
                  "pixel drawn from Bernoulli(grey level), anew each time an image is seen; one "
                  "fixed draw of the test set). Its loss is the binary cross-entropy + KL, and "
                  "its log p(x) a log-probability; the Gaussian's is a log-density of grey "
                  "levels. The two columns of log p(x) do not compare.", ""]
        lines += likelihood_table(by_exp["beyond"]) + [""]
    else:
        lines += ["No finished runs.", ""]
    lines += [f"## {EXPERIMENTS['collapse']}", ""]
    if by_exp["collapse"]:
        lines += [COLLAPSE_NOTE, ""] + collapse_table(by_exp["collapse"]) + [""]
    else:
        lines += ["No finished runs.", ""]
    return lines


def _sample_quality(rows: Sequence[Mapping[str, Any]], measures: Mapping[str, Mapping[str, Any]],
                    classifier_info: Mapping[str, Any] | None, settings: Settings) -> list[str]:
    """The classifier's view of the prior samples: the classifier, then the scores table."""
    lines = [f"## Sample quality: a classifier's view of {settings.prior_samples:,} prior "
             "samples per model", ""]
    if classifier_info:
        epochs = classifier_info["epochs"]
        lines += [f"Classifier: MLP 784-{'-'.join(map(str, classifier_info['hidden']))}-10 from "
                  f"the package's layers, {epochs} epoch{'s' if epochs > 1 else ''} on "
                  f"{classifier_info['train_images']:,} training images; test accuracy "
                  f"**{classifier_info['accuracy']:.2%}** on {classifier_info['test_images']:,} "
                  f"images. Confidence: mean of the largest class probability; diversity: "
                  f"entropy of the predicted-class histogram of {settings.prior_samples:,} "
                  "samples z ~ N(0, I).", ""]
    return lines + scores_table(rows, measures) + [""]


LOG_PX_NOTE = (
    "log p(x): the importance-weighted estimate (iwae.py) with K = {k} samples of q(z|x) "
    "per image, on the first {n:,} test images ({n_cnn:,} for the CNN, whose decoder costs 45 "
    "times the MLP's), mean over seeds (± sd), or ± its standard error for one run. For the "
    "Gaussian decoder it includes the normalising constant "
    "−(784/2)·log(2πc) (+454 nats at c = 0.05): a log-density, so it can be positive, and it "
    "compares only across runs of the same c. Empty for the autoencoder, which has no q(z|x)."
)


COLLAPSE_NOTE = (
    "Does KL warm-up (β rising from 0 to 1 over the first 5 epochs) or free bits (the KL "
    "term Σ_j max(λ, KL_j), λ = 0.1 nats) leave fewer latent dimensions unused, and the seeds "
    "closer together, than plain training? Every run reports −ELBO (β = 1, no free bits); "
    "the objective it optimised (its last epoch's mean) stands beside it. With free bits the "
    "objective is at least −ELBO; after the warm-up the two are the same. Claims G and H "
    "judge the answer by rules fixed before these runs."
)
ACTIVE_NOTE = (
    "Active units: the latent dimensions j with Var_x(E_q[z_j|x]) > 0.01 on the full test "
    "set, in eval mode (Burda, Grosse & Salakhutdinov 2016), each seed's run, out of z. "
    "I(x; z) is not measured here: on {n:,} test images it cannot exceed log {n:,} = "
    "{log_n:.1f} nats, nor the test KL, and where the KL is above that bound the estimate "
    "would only show the bound (`evaluate --run RUN --latent` gives it for any run). An "
    "empty cell: the run was not measured for them (its measurements predate these "
    "diagnostics and its checkpoint is gone: run folders are not kept in the repository)."
)


def console_summary(rows: Sequence[Mapping[str, Any]], claims: Sequence[Claim]) -> str:
    """The comparison with the report and the verdicts, for the terminal."""
    lines = [f"{'experiment':<8} {'run':<44} {'report':>7} {'train':>8} {'test':>8}  ratio"]
    for (exp, *_), g in group(rows).items():
        report = g[0]["report_loss"]
        if report is None:
            continue
        train = mean(_values(g, "train"))
        lines.append(f"{exp:<8} {spec_of(g[0]).label.rsplit(', seed', 1)[0][:44]:<44} "
                     f"{report:7.0f} {train:8.1f} {mean(_values(g, 'test')):8.1f}  "
                     f"{train / report:.3f}  ({len(g)} seed{'s' if len(g) > 1 else ''})")
    lines.append("")
    lines += [f"claim {c.key}: {c.verdict:<26} {c.title}" for c in claims]
    return "\n".join(lines)


def _vec(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{x:+.2f}" for x in values) + ")"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d} ({seconds:,.0f} s)"
