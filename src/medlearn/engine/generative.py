"""Train a generative model end to end: the engine's run for tasks of kind ``"generative"``.

The same pieces as a predictive run (task data, fitted preprocessing, cached datasets, the one Trainer,
bundles, HTML reports), with what a generator is judged by in place of predictions: after training,
``n_samples`` are drawn from the best epoch's model and the task scores the *set* (for molecules, the
MOSES table). Writes ``bundle/``, ``config.yaml``, ``metrics.json`` (the generated set), ``metrics_val.json``
(validation loss and sample validity), ``predictions.csv`` (one row per generated sample, the units the
metrics score; its ``SMILES`` column is what ``mol-metrics`` reads) and ``report.html``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from medlearn.config import ExperimentConfig, dump_config
from medlearn.engine.artifacts import (
    RunOutputs,
    build_bundle_meta,
    save_bundle,
    write_config,
    write_json,
    write_samples,
)
from medlearn.engine.bundle import Bundle, load_bundle
from medlearn.engine.callbacks import Callback
from medlearn.engine.data import Preprocessing
from medlearn.engine.experiment import make_dataset, split_tables
from medlearn.engine.models import build_model, count_parameters
from medlearn.engine.progress import info
from medlearn.engine.runtime import REPRODUCIBILITY, pick_device
from medlearn.engine.task import GenerativeTask
from medlearn.engine.trainer import Trainer
from medlearn.errors import ConfigError

__all__ = ["train_generative", "write_generative_report", "write_samples"]

log = logging.getLogger(__name__)


def train_generative(
    cfg: ExperimentConfig,
    task: GenerativeTask,
    root: Path,
    out: Path,
    resume: bool = False,
    device: str = "auto",
    callbacks: Sequence[Callback] = (),
) -> RunOutputs:
    """Fit a generator with the one Trainer, then sample and score the generated set (see the module)."""
    model_name = cfg.model.name or task.default_model
    table = task.load(root)
    if table.split is None:
        raise ConfigError(f"task {task.name}: a generative task names its own train/val split")
    tables = split_tables(table, table.split, root, task.unit, required=("train", "val"))
    pre = Preprocessing(task.fit_preprocessing(model_name, tables["train"]))
    datasets = {s: make_dataset(task, tables[s], pre, cfg.data.cache) for s in ("train", "val")}
    torch.manual_seed(cfg.train.seed)
    model, model_kwargs = build_model(model_name, cfg.model.params, task.model_kwargs(model_name))
    info(
        f"model {model_name}: {count_parameters(model):,} parameters "
        f"({sum(p.numel() for p in model.parameters() if p.requires_grad):,} trained)"
    )
    monitor = cfg.train.early_stopping.monitor or task.target.monitor
    trainer = Trainer(
        cfg.train,
        task.target,
        monitor,
        out / "checkpoints",
        pick_device(device),
        val_scorer=lambda m: task.sample_scores(m, pre),
        callbacks=callbacks,
    )
    fit = trainer.fit(model, datasets["train"], datasets["val"], resume=resume)
    # Every epoch's time (validation included) adds up across a --resume; fit.seconds restarts with it.
    seconds = max(fit.seconds, sum(row.get("epoch_seconds", 0.0) for row in fit.history))
    info(
        f"trained {seconds / 60:.1f} min ({len(fit.history)} epochs, best {fit.best_epoch}); "
        f"sampling {task.options.n_samples:,} molecules"
    )
    best = fit.history[fit.best_epoch - 1] if fit.history else {}
    metrics_val = {
        "task": task.name,
        "split": "val",
        "unit": task.unit,
        "n": len(tables["val"]),
        "metrics": {
            k[4:]: {"value": round(float(v), 6), "ci95": None}
            for k, v in best.items()
            if k.startswith("val_")
        },
        "per_class": {},
        "operating_point": None,
    }
    write_json(out / "metrics_val.json", metrics_val)
    write_config(out / "config.yaml", cfg)

    def meta_with(metrics: dict[str, dict[str, Any]]) -> Any:
        return build_bundle_meta(
            cfg,
            task,
            model_name=model_name,
            model_params=model_kwargs,
            preprocessing=pre.spec,
            data_root=cfg.data.root,
            fingerprint=table.fingerprint,
            n_units=len(table),
            splits={s: t.ids for s, t in tables.items() if s != "train"},
            n_train=len(tables["train"]),
            training={
                "best_epoch": fit.best_epoch,
                "best_val_score": fit.best_score,
                "monitor": monitor,
                "epochs_run": len(fit.history),
                "seconds": round(seconds, 1),
                "history": fit.history,
                "folds": 1,
                "samples_per_second": round(fit.samples_per_second, 1),
                "threads": fit.extra.get("threads"),
                "deterministic": fit.extra.get("deterministic"),
                "reproducibility": REPRODUCIBILITY,
            },
            metrics=metrics,
        )

    model.cpu()
    # Saved before sampling and scoring so that a failure there never loses the trained model.
    save_bundle(out / "bundle", model, meta_with({"val": metrics_val}))
    samples = task.generate(model, pre, task.options.n_samples, seed=cfg.train.seed)
    write_samples(out / "predictions.csv", samples, task.sample_columns(samples))
    reference = task.reference(root, tables)
    metrics = task.score_generated(samples, reference, split="generated")
    metrics["training_seconds"] = round(seconds, 1)
    write_json(out / "metrics.json", metrics)
    bundle_path = save_bundle(out / "bundle", model, meta_with({"test": metrics, "val": metrics_val}))
    bundle = load_bundle(bundle_path, allow_external=True)  # this process already runs the run's own code
    report = write_generative_report(
        out / "report.html",
        bundle,
        samples,
        metrics,
        metrics_val,
        list(tables["train"].raw),
        dump_config(cfg),
    )
    return RunOutputs(out, metrics, metrics_val, bundle_path, report, fit)


def write_generative_report(
    path: Path,
    bundle: Bundle,
    samples: list[str],
    metrics: dict[str, Any],
    metrics_val: dict[str, Any],
    train: list[str],
    config_yaml: str | None,
) -> Path:
    from medlearn.engine.plots import figure_to_data_uri, loss_curves
    from medlearn.engine.report import ReportSection, write_report

    task, meta = bundle.task, bundle.meta
    training = meta.training
    sections = list(task.report_sections(samples, metrics, train, meta.model.name))
    if training.history:
        sections.append(
            ReportSection(
                "Training",
                html=(
                    f"<p>{training.epochs_run} epochs in {training.seconds / 60:.1f} min on "
                    f"{meta.data.n_train:,} training {task.unit}s; best epoch {training.best_epoch} by "
                    f"validation {training.monitor}.</p>"
                ),
                figures=[
                    ("Loss per epoch", figure_to_data_uri(loss_curves(training.history, training.monitor)))
                ],
            )
        )
    provenance = {
        "task": task.name,
        "model": meta.model.name,
        "data fingerprint": meta.data.fingerprint,
        "best epoch": training.best_epoch,
        **meta.versions,
    }
    return write_report(
        path,
        f"medlearn — {task.name} ({meta.model.name})",
        {metrics["split"]: metrics, "val": metrics_val},
        sections,
        task.intended_use,
        task.credits,
        config_yaml=config_yaml,
        provenance=provenance,
    )
