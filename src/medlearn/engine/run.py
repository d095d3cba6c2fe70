"""Train an experiment end to end, writing the outputs of ``docs/conventions.md#outputs-of-train-and-evaluate``.

``train``: ``<out>/bundle/``, ``config.yaml``, ``metrics.json`` (test), ``metrics_val.json``,
``predictions.csv``, ``history.csv``, ``report.html`` and ``checkpoints/last.pt`` (for ``--resume``).
Scoring a saved bundle (``evaluate``) is :mod:`medlearn.engine.evaluate`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.config import ExperimentConfig, dump_config
from medlearn.engine import metrics as M
from medlearn.engine.artifacts import (
    RunOutputs,
    build_bundle_meta,
    save_bundle,
    write_config,
    write_json,
    write_predictions,
)
from medlearn.engine.bundle import load_bundle
from medlearn.engine.callbacks import Callback, CallbackList
from medlearn.engine.data import Preprocessing, UnitTable, cv_group_splits, group_split, halve_by_group
from medlearn.engine.evaluate import evaluate_bundle
from medlearn.engine.experiment import make_dataset, make_task, resolve_root, score_split, split_tables
from medlearn.engine.model_card import training_summary
from medlearn.engine.models import build_model, count_parameters
from medlearn.engine.posthoc import Calibration, apply_calibration, fit_calibration, outputs_to_predictions
from medlearn.engine.progress import info
from medlearn.engine.run_report import write_run_report
from medlearn.engine.runtime import REPRODUCIBILITY, pick_device
from medlearn.engine.subgroups import MIN_GROUP_UNITS, subgroup_gaps
from medlearn.engine.task import Task
from medlearn.engine.tracking import run_callbacks
from medlearn.engine.trainer import FitResult, Trainer, balanced_class_weights
from medlearn.engine.trees import ArrayFitted
from medlearn.engine.uncertainty import (
    fit_prediction_sets,
    held_out_mask,
    regression_interval,
    score_prediction_sets,
)
from medlearn.engine.validate import validate_experiment
from medlearn.errors import ConfigError

__all__ = ["RunOutputs", "evaluate_bundle", "make_task", "resolve_root", "train_experiment"]

log = logging.getLogger(__name__)


@dataclass
class FoldResult:
    """One fitted model and its raw outputs (logits) on its own validation and test units.

    ``monitored`` are the validation units the Trainer watched for early stopping; ``conformal`` the
    validation units kept out of it for the regression prediction interval (None for classification, or
    when validation has a single group). Calibration is fitted by the caller on validation logits, so a
    cross-validation can fit one calibration on all folds' validation units.
    """

    tables: dict[str, UnitTable]
    model: torch.nn.Module
    model_kwargs: dict[str, Any]
    pre: Preprocessing
    fit: FitResult
    logits: dict[str, np.ndarray]
    monitor: str
    monitored: UnitTable | None = None
    conformal: UnitTable | None = None


def calibrated_predictions(logits: np.ndarray, calibration: Calibration, kind: str) -> np.ndarray:
    """Probabilities (or values) from raw model outputs after post-hoc calibration."""
    return outputs_to_predictions(apply_calibration(torch.from_numpy(logits), calibration), kind)


def fit_fold(
    cfg: ExperimentConfig,
    task: Task,
    model_name: str,
    tables: dict[str, UnitTable],
    checkpoints: Path,
    resume: bool,
    device: str,
    epochs: int | None = None,
    callbacks: Sequence[Callback] = (),
) -> FoldResult:
    """Preprocess (fitted on train only) → build → fit → raw outputs on val and test.

    Early stopping watches ``tables["val"]``, except for regression: there the validation groups are
    halved (:func:`~medlearn.engine.data.halve_by_group`), the Trainer monitors one half and the other
    half is kept for the conformal interval's residuals, which must come from units model selection never
    looked at. Classification keeps the whole validation split for early stopping, and its temperature/
    Platt calibration and operating point (two parameters and a threshold, fitted by the caller) reuse it:
    halving validation would cost early stopping more than that small reuse biases the calibration.
    Without ``tables["val"]`` (a refit on all units) the model is trained for exactly ``epochs`` epochs.
    """
    pre = Preprocessing(task.fit_preprocessing(model_name, tables["train"]))
    augment = task.augmentation(model_name, cfg.train.seed) if cfg.train.augment else None
    datasets = {
        s: make_dataset(task, t, pre, cfg.data.cache, augment if s == "train" else None)
        for s, t in tables.items()
    }
    torch.manual_seed(cfg.train.seed)
    model, model_kwargs = build_model(model_name, cfg.model.params, task.model_kwargs(model_name))
    info(
        f"model {model_name}: "
        + (
            "fitted in one pass on the training split"
            if isinstance(model, ArrayFitted)
            else f"{count_parameters(model):,} parameters"
        )
    )
    weights = None
    if cfg.train.class_weighting == "balanced" and task.kind != "regression":
        weights = balanced_class_weights(tables["train"].targets, len(task.class_names))
    monitor = cfg.train.early_stopping.monitor or task.target.monitor
    trainer = Trainer(
        cfg.train,
        task.target,
        monitor,
        checkpoints,
        pick_device(device),
        callbacks=callbacks,
        privacy=cfg.privacy,
    )
    monitored, conformal, monitor_ds = None, None, None
    if "val" in tables:
        monitored, monitor_ds = tables["val"], datasets["val"]
        held_out = task.kind == "regression" or cfg.eval.conformal is not None
        halves = halve_by_group(tables["val"].groups, cfg.data.split.seed) if held_out else None
        if halves is not None:
            monitored = tables["val"].subset(np.flatnonzero(~halves))
            conformal = tables["val"].subset(np.flatnonzero(halves))
            monitor_ds = make_dataset(task, monitored, pre, cfg.data.cache)
            info(
                f"validation: {len(monitored)} {task.unit}s for early stopping, {len(conformal)} "
                f"{task.unit}s ({len(set(conformal.groups))} groups) held out for conformal "
                + ("intervals" if task.kind == "regression" else "prediction sets")
            )
    fit = trainer.fit(
        model, datasets["train"], monitor_ds, class_weights=weights, resume=resume, epochs=epochs
    )
    logits = {s: trainer.logits(model, datasets[s])[0] for s in ("val", "test") if s in datasets}
    return FoldResult(tables, model, model_kwargs, pre, fit, logits, monitor, monitored, conformal)


def experiment_splits(cfg: ExperimentConfig, table: UnitTable) -> list[np.ndarray]:
    """The task's own split, k cross-validation folds (``data.split.folds``), or one group split."""
    s = cfg.data.split
    if table.split is not None:
        return [table.split]
    if s.folds:
        return cv_group_splits(table.targets, table.groups, s.folds, s.val_fraction, s.seed)
    return [group_split(table.targets, table.groups, s.val_fraction, s.test_fraction, s.seed)]


def median_epoch(best_epochs: list[int]) -> int:
    """The median of the folds' best epochs, halves rounded up (the refit's fixed epoch count)."""
    return max(1, int(np.floor(np.median(best_epochs) + 0.5)))


def folds_summary(fold_rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Mean, standard deviation (ddof 1), min and max of each metric over the folds (finite values)."""
    names = list(dict.fromkeys(n for row in fold_rows for n in row["metrics"]))
    summary: dict[str, dict[str, float | None]] = {}
    for name in names:
        values = np.array([row["metrics"].get(name) for row in fold_rows], dtype=float)
        values = values[np.isfinite(values)]
        summary[name] = (
            {"mean": None, "sd": None, "min": None, "max": None, "n_folds": 0}
            if values.size == 0
            else {
                "mean": round(float(values.mean()), 4),
                "sd": round(float(values.std(ddof=1)), 4) if values.size > 1 else None,
                "min": round(float(values.min()), 4),
                "max": round(float(values.max()), 4),
                "n_folds": int(values.size),
            }
        )
    return summary


def train_experiment(
    cfg: ExperimentConfig,
    out: Path,
    resume: bool = False,
    device: str = "auto",
    track: str | None = None,
    callbacks: Sequence[Callback] = (),
) -> RunOutputs:
    """Run one experiment: load → split by group → preprocess (cached) → fit → calibrate and choose the
    operating point on validation → score test with bootstrap CIs → bundle, predictions, metrics, report.

    With ``data.split.folds`` (cross-validated tasks, docs/conventions.md#outputs-of-train-and-evaluate) every
    fold is fitted in turn; the metrics (``split: "cv"``) pool the out-of-fold test predictions, each unit
    predicted by the model that never saw it, with per-fold figures under ``"folds"`` and their spread under
    ``"folds_summary"``. The bundle is the model refit on **all** units (no validation split, no early
    stopping) for the median of the folds' best epochs. Its calibration (one temperature/Platt fit) and
    operating point are fitted on the pooled fold-validation predictions: each fold's validation units scored
    by that fold's model, never the out-of-fold test predictions ``metrics.json`` scores. The same calibration
    and threshold are applied to the folds' predictions, so the ``cv`` metrics measure what the bundle ships.
    A regression bundle's interval uses the pooled residuals of the folds' conformal halves of validation (see
    :func:`fit_fold`).

    The config is checked whole (:func:`~medlearn.engine.validate.validate_experiment`) before any data
    file is read. Every Trainer of the run hears ``callbacks`` after the run's own: ``history.csv``,
    progress lines on a non-terminal stderr and the tracker ``track`` names (``"mlflow"``).

    Args:
        cfg: the validated experiment config.
        out: the run folder (created; outputs are overwritten, so callers check it first).
        resume: continue from ``out/checkpoints`` (an interrupted run of the same config).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        track: ``None`` or ``"mlflow"`` (a local store in ``out/mlflow.db`` unless MLFLOW_TRACKING_URI).
        callbacks: further :class:`~medlearn.engine.callbacks.Callback` objects.

    Returns:
        The run's :class:`~medlearn.engine.artifacts.RunOutputs`.
    """
    validate_experiment(cfg)
    task = make_task(cfg)
    if cfg.privacy is not None and task.kind == "generative":
        raise ConfigError(
            f"privacy: differential privacy is not supported for generative models (task {task.name}); "
            "remove the privacy section"
        )
    root = resolve_root(cfg)
    model_name = cfg.model.name or task.default_model
    info(f"[bold]{cfg.name}[/]: task {task.name}, model {model_name}, data {root}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    heard = CallbackList([*run_callbacks(out, track), *callbacks])
    heard.on_run_start(cfg.model_dump(mode="json"))
    if task.kind == "generative":
        from medlearn.engine.generative import train_generative

        outputs = train_generative(cfg, task, root, out, resume, device, callbacks=[heard])
    else:
        outputs = _train_predictive(cfg, task, model_name, root, out, resume, device, heard)
    heard.on_run_end(out)
    return outputs


def _train_predictive(
    cfg: ExperimentConfig,
    task: Task,
    model_name: str,
    root: Path,
    out: Path,
    resume: bool,
    device: str,
    heard: Callback,
) -> RunOutputs:
    """:func:`train_experiment` for a task that predicts (binary, multiclass, regression)."""
    table = task.load(root)
    splits = experiment_splits(cfg, table)
    cv = len(splits) > 1
    folds = [
        fit_fold(
            cfg,
            task,
            model_name,
            split_tables(table, split, root, task.unit, f"fold {k + 1}/{len(splits)}: " if cv else ""),
            out / "checkpoints" / (f"fold{k + 1}" if cv else ""),
            resume,
            device,
            callbacks=[heard],
        )
        for k, split in enumerate(splits)
    ]
    return finish_predictive(cfg, task, model_name, root, out, table, folds, resume, device, heard)


def finish_predictive(
    cfg: ExperimentConfig,
    task: Task,
    model_name: str,
    root: Path,
    out: Path,
    table: UnitTable,
    folds: list[FoldResult],
    resume: bool,
    device: str,
    heard: Callback,
    extra_metrics: dict[str, Any] | None = None,
    extra_sections: Sequence[Any] = (),
) -> RunOutputs:
    """From fitted models to a run's outputs: calibration and operating point on validation, the test
    metrics with CIs, predictions, bundle and report (the second half of ``train``, which ``federate``
    shares). ``extra_metrics`` join ``metrics.json`` (e.g. ``federated``); ``extra_sections`` the report."""
    cv = len(folds) > 1
    test_name = "cv" if cv else "test"
    pooled = {s: UnitTable.concat([f.tables[s] for f in folds]) for s in ("val", "test")}
    if cv:
        for s in pooled:
            pooled[s].meta.update(fold=[k + 1 for k, f in enumerate(folds) for _ in range(len(f.tables[s]))])
    val_logits = np.concatenate([f.logits["val"] for f in folds])
    # with prediction sets, calibration and the operating point keep off the units held out for them
    chooses = ~held_out_mask(folds) if task.kind != "regression" else np.ones(len(val_logits), bool)
    calibration = (
        fit_calibration(val_logits[chooses], pooled["val"].targets[chooses], task.kind)
        if cfg.eval.calibrate
        else Calibration()
    )

    fold_preds = [
        {s: calibrated_predictions(z, calibration, task.kind) for s, z in f.logits.items()} for f in folds
    ]
    preds = {s: np.concatenate([p[s] for p in fold_preds]) for s in ("val", "test")}
    cal_source = (
        f"the pooled fold-validation predictions ({len(pooled['val']):,}: each fold's validation "
        f"{task.unit}s scored by that fold's model)"
        if cv
        else f"the validation split ({len(pooled['val']):,} {task.unit}s)"
    )
    if not chooses.all():
        cal_source += f", less the {int((~chooses).sum()):,} held out for the prediction sets"
    op, interval = None, None
    if task.kind == "binary":
        op = M.choose_operating_point(
            pooled["val"].targets[chooses],
            preds["val"][chooses],
            cfg.eval.operating_point,
            "pooled fold-validation" if cv else "val",
        )
    if task.kind == "regression":
        interval = regression_interval(folds, fold_preds, cv)
    metrics_val = score_split(task, pooled["val"], preds["val"], "val", op, cfg.eval.n_bootstrap)
    metrics_test = score_split(task, pooled["test"], preds["test"], test_name, op, cfg.eval.n_bootstrap)
    sets = None
    if cfg.eval.conformal is not None and task.kind != "regression":
        sets = fit_prediction_sets(cfg.eval.conformal, task, pooled, preds, ~chooses, cv)
        if sets is not None:
            metrics_test["conformal"] = score_prediction_sets(sets, task, pooled["test"], preds["test"])
    subsets = task.metric_subsets(pooled["test"])
    for name, mask in subsets.items():
        if "=" in name and mask.sum() < MIN_GROUP_UNITS:  # a subgroup too small to score (listed in the gaps)
            continue
        index = np.flatnonzero(mask)
        metrics_test.setdefault("subsets", {})[name] = score_split(
            task,
            pooled["test"].subset(index),
            preds["test"][index],
            f"{test_name}/{name}",
            op,
            cfg.eval.n_bootstrap,
        )
    if subsets:  # fairness: the gap between subgroups, with its CI (model card)
        threshold = op.threshold if op else None
        metrics_test["subgroup_gaps"] = subgroup_gaps(
            task, pooled["test"], preds["test"], subsets, threshold, cfg.eval.n_bootstrap
        )
    final = folds[-1]
    one_pass = isinstance(final.model, ArrayFitted)
    training: dict[str, Any] = {"calibrated_on": cal_source}
    if cv:
        metrics_test["folds"] = [
            {
                "fold": k + 1,
                "n": len(f.tables["test"]),
                "best_val_score": round(f.fit.best_score, 4),
                "best_epoch": f.fit.best_epoch,
                "metrics": {
                    name: m["value"]
                    for name, m in score_split(task, f.tables["test"], p["test"], f"fold{k + 1}", op, 0)[
                        "metrics"
                    ].items()
                },
            }
            for k, (f, p) in enumerate(zip(folds, fold_preds))
        ]
        metrics_test["folds_summary"] = folds_summary(metrics_test["folds"])
        best_epochs = [f.fit.best_epoch for f in folds]
        epochs = median_epoch(best_epochs)
        info(
            "refit on all the data for the bundle: "
            + ("one pass" if one_pass else f"{epochs} epochs (median best epoch of the folds)")
        )
        final = fit_fold(
            cfg,
            task,
            model_name,
            split_tables(table, np.full(len(table), "train"), root, task.unit, "refit: ", ("train",)),
            out / "checkpoints" / "refit",
            resume,
            device,
            epochs=None if one_pass else epochs,
            callbacks=[heard],
        )
        training["refit"] = {
            "units": len(table),
            "groups": len(set(table.groups)),
            "one_pass": one_pass,
            "epochs": None if one_pass else epochs,
            "fold_best_epochs": best_epochs,
            "rule": "all units, median best epoch of the folds, no validation split",
        }
    privacy = final.fit.extra.get("privacy")  # DP-SGD: what the shipped model's training spent
    if privacy is not None:
        metrics_test["privacy"] = privacy
    metrics_test.update(extra_metrics or {})
    write_json(out / "metrics.json", metrics_test)
    write_json(out / "metrics_val.json", metrics_val)
    write_config(out / "config.yaml", cfg)
    write_predictions(
        out / "predictions.csv",
        task.kind,
        task.class_names,
        {"val": pooled["val"], test_name: pooled["test"]},
        {"val": preds["val"], test_name: preds["test"]},
        op.threshold if op else None,
    )
    fit = final.fit
    best_score = None if cv or not np.isfinite(fit.best_score) else fit.best_score
    training.update(
        {
            "best_epoch": fit.best_epoch,
            "best_val_score": best_score,
            "monitor": final.monitor,
            "epochs_run": len(fit.history),
            "one_pass": one_pass,
            "monitored_units": None if final.monitored is None else len(final.monitored),
            "seconds": round(sum(f.fit.seconds for f in folds) + (fit.seconds if cv else 0), 1),
            "history": fit.history,
            "folds": len(folds),
            "threads": fit.extra.get("threads"),
            "deterministic": fit.extra.get("deterministic"),
            "reproducibility": REPRODUCIBILITY,
        }
    )
    meta = build_bundle_meta(
        cfg,
        task,
        model_name=model_name,
        model_params=final.model_kwargs,
        preprocessing=final.pre.spec,
        data_root=cfg.data.root,
        fingerprint=table.fingerprint,
        n_units=len(table),
        splits={s: t.ids for s, t in final.tables.items()},
        n_train=len(final.tables["train"]),
        training=training,
        metrics={"test": metrics_test, "val": metrics_val},
        operating_point=op.to_dict() if op else None,
        calibration=calibration.to_dict(),
        prediction_interval=interval,
        prediction_sets=None if sets is None else sets.to_dict(),
        validation_parts=(
            {"early_stopping": final.monitored.ids, "conformal": final.conformal.ids}
            if final.conformal is not None and final.monitored is not None
            else None
        ),
        input_profile=task.input_profile(final.tables["train"]),
        input_shape=np.shape(final.pre(final.tables["train"].raw[0])),
        privacy=privacy,
    )
    meta.training.summary = training_summary(meta)
    info(meta.training.summary)
    bundle_path = save_bundle(out / "bundle", final.model, meta)
    bundle = load_bundle(bundle_path, allow_external=True)  # this process already runs the run's own code
    report = write_run_report(
        out / "report.html",
        bundle,
        {test_name: pooled["test"]},
        {test_name: preds["test"]},
        {test_name: metrics_test, "val": metrics_val},
        fit.history,
        dump_config(cfg),
        [*task.data_sections(), *extra_sections],
    )
    return RunOutputs(out, metrics_test, metrics_val, bundle_path, report, fit)
