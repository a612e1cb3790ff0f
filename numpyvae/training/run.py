"""Open a finished (or interrupted) run folder from Python: ``load_run("runs/NAME")``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..models.report_losses import REPORT_SPLIT, report_loss
from ..models.vae import VAE
from .checkpoint import (
    is_temp_file_name,
    load_model_arrays,
    load_run_checkpoint,
    parse_json,
    read_bounded,
    write_json,
)
from .config import CHECKPOINT, TrainConfig, build_model, objective_options

LOCK = ".lock"  # held by the one process writing the run folder (data/filelock.py)


@dataclass
class Run:
    """A trained model with its config and history; the model is in eval mode.

    >>> run = load_run("runs/mlp-mnist-z2-s0")
    >>> images = run.sample(16)                 # (16, 1, 28, 28) in [0, 1]
    >>> m, v = run.encode(images)               # posterior means and variances
    """

    path: Path
    config: TrainConfig
    vae: VAE
    epoch: int
    history: list[dict[str, Any]]

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance, each (N, latent_dim), for images (N, 1, 28, 28)."""
        return self.vae.encode(np.asarray(x, dtype=self.vae.dtype))

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Images (N, 1, 28, 28) for latent codes (N, latent_dim)."""
        z = np.asarray(z, dtype=self.vae.dtype)
        if z.ndim != 2 or z.shape[1] != self.vae.latent_dim:
            raise ValueError(f"decode: expected z of shape (N, {self.vae.latent_dim}), "
                             f"got {z.shape}")
        return self.vae.decode(z)

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """n images decoded from z ~ N(0, I)."""
        return self.vae.sample(n, np.random.default_rng(seed))

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """Decode each image's posterior mean."""
        return self.vae.reconstruct(np.asarray(x, dtype=self.vae.dtype))


def load_run(path: str | Path) -> Run:
    """Rebuild the model of a run folder from its checkpoint, in eval mode."""
    path = Path(path)
    ckpt = path / CHECKPOINT
    if not ckpt.is_file():
        hint = " (it has config.json: training stopped before the first epoch ended)" \
            if (path / "config.json").is_file() else ""
        raise FileNotFoundError(f"no checkpoint in {path}: expected {ckpt}{hint}")
    arrays, _, meta = load_run_checkpoint(ckpt)
    config = TrainConfig.from_json(meta["config"], where=f"{ckpt} (its config)")
    vae = load_model_arrays(config, arrays, str(ckpt), build_model)
    vae.eval()
    return Run(path, config, vae, int(meta["epoch"]), list(meta["history"]))


def saved_config(run_dir: str | Path) -> tuple[str, dict[str, Any]]:
    """(where, options) of the run in ``run_dir``: its checkpoint's config, which is the
    record, else (stopped in epoch 1) its config.json."""
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT).is_file():
        _, _, meta = load_run_checkpoint(run_dir / CHECKPOINT)
        return f"{run_dir / CHECKPOINT} (its config)", meta["config"]
    path = run_dir / "config.json"
    if holds_no_run(run_dir):
        raise ValueError(f"--resume: there is nothing to resume in {run_dir}: it holds no run "
                         "(no checkpoint, no config.json: it was stopped before it began). "
                         "Run the same train command without --resume: it reuses the folder")
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no run to continue in {run_dir}: it has neither "
                                f"{CHECKPOINT} nor config.json")
    saved = read_json(path)
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: expected a JSON object of options, got "
                         f"{type(saved).__name__}")
    return str(path), saved


def holds_no_run(folder: str | Path) -> bool:
    """True if ``folder`` is a folder holding nothing but what a run stopped before it
    wrote config.json leaves (``kill -9`` skips every clean-up): nothing at all, atomic
    write's temporary files, the lock file. Such a folder can be reused for a new run,
    losing nothing; anything else in it (a file of the user's, a run) makes it False."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    return all(p.name == LOCK or (is_temp_file_name(p.name) and p.is_file())
               for p in folder.iterdir())


def sync_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """Rewrite ``history.json`` from the checkpoint's history if it differs (a killed
    run can leave it an epoch behind); returns the history. The checkpoint is the record."""
    run_dir = Path(run_dir)
    _, _, meta = load_run_checkpoint(run_dir / CHECKPOINT)
    history = meta["history"]
    path = run_dir / "history.json"
    try:
        current = read_json(path)
    except (FileNotFoundError, ValueError):
        current = None
    if current != history:
        write_json(path, history)
    return history


def summary_markdown(run_dir: str | Path) -> str:
    """A short Markdown summary of a finished run: ours beside the report's figures."""
    run = load_run(run_dir)  # the checkpoint, not config.json, says what the run is
    config, history = run.config, run.history
    final = read_final(run_dir, history)
    key = (config.arch, config.dataset, config.latent_dim)
    ours_train, test = final["train"], final["test"]
    hidden = f", hidden {','.join(map(str, config.hidden))}" if config.arch == "mlp" else ""
    lines = [
        f"# {config.arch.upper()} VAE, {config.dataset}, z = {config.latent_dim}",
        "",
        f"{run.epoch} epochs, batch {config.batch_size}, lr {config.lr}, c = {config.c}, "
        f"seed {config.seed}{hidden}; training took {sum(h['seconds'] for h in history):.0f} s "
        f"({history[-1]['images_per_s']:,.0f} images/s in the last epoch).",
        "",
        *_objective_lines(config, ours_train),
        "| | loss | recon | KL |",
        "|---|---:|---:|---:|",
    ]
    for fig, loss in report_loss(*key).items():
        split = REPORT_SPLIT.get(key) if fig in ("fig4", "fig5") else None
        recon, kl = (f"{split[0]:g}", f"{split[1]:g}") if split else ("", "")
        lines.append(f"| report ({fig.replace('fig', 'figure ')}), final training loss "
                     f"| {loss:g} | {recon} | {kl} |")
    rows = [("ours, final training loss (mean over the last epoch)", ours_train),
            ("ours, full training set, eval mode", final["train_eval"]),
            ("ours, 100-image test subset, last epoch", history[-1]["test100"]),
            ("ours, full test set (10,000 images)", test)]
    for name, d in rows:
        lines.append(f"| {name} | {d['loss']:.1f} | {d['recon']:.1f} | {d['kl']:.1f} |")
    lines.append("")
    return "\n".join(lines)


def _objective_lines(config: Any, ours_train: dict[str, Any]) -> list[str]:
    """For a run that optimised another objective than −ELBO: which, and its final value
    (the table's loss stays −ELBO, comparable with every other run)."""
    if not config.objective_tags():
        return []

    value = ours_train.get("objective")
    final = f" (final training objective {value:.1f})" if isinstance(value, (int, float)) else ""
    return [f"Trained on recon + β·Σ_j max(λ, KL_j) with {objective_options(config)}{final}; "
            "the loss below is −ELBO (recon + KL).", ""]


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``, read no further than a run file can be long; a file that is
    not JSON, holds NaN or is too long is a ValueError naming it."""
    return parse_json(read_bounded(path), path)


def read_final(run_dir: str | Path, history: list[dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    """A run's ``final.json``, checked: an object with train, train_eval and test losses,
    each loss recon + KL. Given the checkpoint's ``history``, also that it is this run's
    (its epochs, and its train losses those of the last epoch): a stale or hand-edited
    final.json is a ValueError naming it."""
    path = Path(run_dir) / "final.json"
    final = read_json(path)
    if not isinstance(final, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(final).__name__}")
    for key in ("train", "train_eval", "test"):
        losses = final.get(key)
        if not isinstance(losses, dict) or not all(
                isinstance(losses.get(k), (int, float)) for k in ("loss", "recon", "kl")):
            raise ValueError(f"{path}: {key!r} should hold the loss, recon and kl numbers, "
                             f"got {losses!r}")
        total = losses["recon"] + losses["kl"]  # float32 sums: equal to a few ulps
        if not abs(losses["loss"] - total) <= 1e-4 * max(1.0, abs(total)):
            raise ValueError(f"{path}: {key!r} has loss {losses['loss']!r}, but recon + kl = "
                             f"{total!r}: it was changed after the run wrote it")
    if history is not None and (final.get("epochs") != len(history)
                                or final["train"] != history[-1]["train"]):
        raise ValueError(f"{path} is not this run's: it says epochs {final.get('epochs')!r} "
                         f"and train loss {final['train']['loss']!r}, the checkpoint epoch "
                         f"{len(history)} and {history[-1]['train']['loss']!r}")
    return final


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """A run's ``history.json``, checked: a non-empty list of one object per epoch."""
    path = Path(run_dir) / "history.json"
    history = read_json(path)
    if not isinstance(history, list) or not history or not all(
            isinstance(h, dict) and isinstance(h.get("train"), dict) for h in history):
        raise ValueError(f"{path}: expected a list of one entry per epoch, got {history!r:.60}")
    return history
