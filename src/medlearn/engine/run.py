"""Train and evaluate an experiment end to end, writing the CONVENTIONS.md outputs.

``train``: ``<out>/bundle/``, ``config.yaml``, ``metrics.json`` (test), ``metrics_val.json``,
``predictions.csv``, ``report.html`` and ``checkpoints/last.pt`` (for ``--resume``).
``evaluate``: ``metrics.json``, ``predictions.csv``, ``report.html`` for a bundle on a split or a dataset.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.config import ExperimentConfig, dump_config
from medlearn.engine import metrics as M
from medlearn.engine.bundle import Bundle, load_bundle, save_bundle
from medlearn.engine.data import (CachedDataset, Preprocessing, UnitTable, cv_group_splits, dataset_cache_key,
                                  group_split, halve_by_group)
from medlearn.engine.model_card import model_card, training_summary
from medlearn.engine.models import build_model, count_parameters
from medlearn.engine.trees import ArrayFitted
from medlearn.engine.progress import info
from medlearn.engine.task import Task
from medlearn.engine.posthoc import Calibration, apply_calibration, fit_calibration
from medlearn.engine.trainer import (REPRODUCIBILITY, FitResult, Trainer, balanced_class_weights,
                                     outputs_to_predictions, pick_device)
from medlearn.errors import InputError
from medlearn.paths import resolve_config_data_path
from medlearn.registry import task_class

log = logging.getLogger(__name__)


@dataclass
class RunOutputs:
    out: Path
    metrics: dict[str, Any]
    metrics_val: dict[str, Any] | None = None
    bundle: Path | None = None
    report: Path | None = None
    fit: FitResult | None = None


def make_task(cfg: ExperimentConfig) -> Task:
    return task_class(cfg.task)(cfg.data.options)


def resolve_root(cfg: ExperimentConfig) -> Path:
    root = resolve_config_data_path(cfg.data.root)
    if not root.exists():
        raise InputError(f"{root}: data.root does not exist (config {cfg.name}; set MEDLEARN_DATA or --data)")
    return root


def make_dataset(task: Task, table: UnitTable, pre: Preprocessing, cache: bool, augment: Any = None) -> CachedDataset:
    options = json.dumps(task.options_dict(), sort_keys=True)
    key = dataset_cache_key(table.fingerprint, pre, table.ids, options) if cache else None
    return CachedDataset(table.raw, table.targets, pre, augment=augment, cache_key=key)


def score_split(task: Task, table: UnitTable, pred: np.ndarray, split: str,
                op: M.OperatingPoint | None, n_boot: int) -> dict[str, Any]:
    return M.evaluate_predictions(task.name, split, task.unit, task.kind, table.targets, pred,
                                  task.class_names, op, groups=table.groups, n_boot=n_boot, seed=0,
                                  ordinal=task.ordinal, f1_groups=task.f1_groups)


def write_predictions(path: Path, task: Task, tables: dict[str, UnitTable], preds: dict[str, np.ndarray],
                      threshold: float | None) -> None:
    """One row per scored unit: id, split, group, target, prediction columns, task meta columns."""
    meta_keys = sorted({k for t in tables.values() for k in t.meta})
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        if task.kind == "binary":
            pred_cols = ["probability", "prediction"]
        elif task.kind == "multiclass":
            pred_cols = [f"prob_{c}" for c in task.class_names] + ["prediction"]
        else:
            pred_cols = ["prediction"]
        writer.writerow(["id", "split", "group", "target", *pred_cols, *meta_keys])
        for split, table in tables.items():
            for i, uid in enumerate(table.ids):
                p = preds[split][i]
                target = table.targets[i]
                if task.kind == "binary":
                    cols = [f"{p:.6f}", task.class_names[int(p >= (threshold or 0.5))]]
                    target = task.class_names[int(target)]
                elif task.kind == "multiclass":
                    cols = [f"{q:.6f}" for q in p] + [task.class_names[int(np.argmax(p))]]
                    target = task.class_names[int(target)]
                else:
                    cols = [f"{p:.6f}"]
                meta = [table.meta[k][i] if k in table.meta else "" for k in meta_keys]
                writer.writerow([uid, split, table.groups[i], target, *cols, *meta])


def conformal_interval(y_cal: np.ndarray, pred_cal: np.ndarray, coverage: float = 0.9,
                       source: str = "validation residuals") -> dict[str, Any]:
    """Split-conformal prediction interval: ``prediction ± q`` where ``q`` is the finite-sample
    ``coverage`` quantile of the absolute residuals on calibration units (Lei et al., 2018).

    The guarantee needs calibration units exchangeable with new ones, so they must not have steered the
    fit: :func:`fit_fold` takes them from validation groups the Trainer did not monitor for early
    stopping (``source`` says which units they were).
    """
    residuals = np.sort(np.abs(np.asarray(y_cal, float) - np.asarray(pred_cal, float)))
    rank = min(int(np.ceil((len(residuals) + 1) * coverage)), len(residuals)) - 1
    return {"coverage": coverage, "half_width": float(residuals[rank]), "method": f"split conformal, {source}",
            "n_residuals": int(len(residuals))}


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2))


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


def fit_fold(cfg: ExperimentConfig, task: Task, model_name: str, tables: dict[str, UnitTable],
             checkpoints: Path, resume: bool, device: str, epochs: int | None = None) -> FoldResult:
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
    datasets = {s: make_dataset(task, t, pre, cfg.data.cache, augment if s == "train" else None)
                for s, t in tables.items()}
    torch.manual_seed(cfg.train.seed)
    model, model_kwargs = build_model(model_name, cfg.model.params, task.model_kwargs(model_name))
    info(f"model {model_name}: " + ("fitted in one pass on the training split" if isinstance(model, ArrayFitted)
                                    else f"{count_parameters(model):,} parameters"))
    weights = None
    if cfg.train.class_weighting == "balanced" and task.kind != "regression":
        weights = balanced_class_weights(tables["train"].targets, len(task.class_names))
    monitor = cfg.train.early_stopping.monitor or task.monitor
    trainer = Trainer(cfg.train, task.target, monitor, checkpoints, pick_device(device))
    monitored, conformal, monitor_ds = None, None, None
    if "val" in tables:
        monitored, monitor_ds = tables["val"], datasets["val"]
        halves = halve_by_group(tables["val"].groups, cfg.data.split.seed) if task.kind == "regression" else None
        if halves is not None:
            monitored = tables["val"].subset(np.flatnonzero(~halves))
            conformal = tables["val"].subset(np.flatnonzero(halves))
            monitor_ds = make_dataset(task, monitored, pre, cfg.data.cache)
            info(f"validation: {len(monitored)} {task.unit}s for early stopping, {len(conformal)} "
                 f"{task.unit}s ({len(set(conformal.groups))} groups) for the conformal interval")
    fit = trainer.fit(model, datasets["train"], monitor_ds, class_weights=weights, resume=resume, epochs=epochs)
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
        summary[name] = ({"mean": None, "sd": None, "min": None, "max": None, "n_folds": 0} if values.size == 0 else
                         {"mean": round(float(values.mean()), 4),
                          "sd": round(float(values.std(ddof=1)), 4) if values.size > 1 else None,
                          "min": round(float(values.min()), 4), "max": round(float(values.max()), 4),
                          "n_folds": int(values.size)})
    return summary


def train_experiment(cfg: ExperimentConfig, out: Path, resume: bool = False, device: str = "auto") -> RunOutputs:
    """Run one experiment: load → split by group → preprocess (cached) → fit → calibrate and choose the
    operating point on validation → score test with bootstrap CIs → bundle, predictions, metrics, report.

    With ``data.split.folds`` (CONVENTIONS.md, cross-validated tasks) every fold is fitted in turn; the
    metrics (``split: "cv"``) pool the out-of-fold test predictions, each unit predicted by the model that
    never saw it, with per-fold figures under ``"folds"`` and their spread under ``"folds_summary"``. The
    bundle is the model refit on **all** units (no validation split, no early stopping) for the median of
    the folds' best epochs. Its calibration (one temperature/Platt fit) and operating point are fitted on
    the pooled fold-validation predictions: each fold's validation units scored by that fold's model, never
    the out-of-fold test predictions ``metrics.json`` scores. The same calibration and threshold are applied
    to the folds' predictions, so the ``cv`` metrics measure what the bundle ships. A regression bundle's
    interval uses the pooled residuals of the folds' conformal halves of validation (see :func:`fit_fold`).
    """
    task = make_task(cfg)
    root = resolve_root(cfg)
    model_name = cfg.model.name or task.default_model
    info(f"[bold]{cfg.name}[/]: task {task.name}, model {model_name}, data {root}")
    if task.kind == "generative":
        from medlearn.engine.generative import train_generative

        return train_generative(cfg, task, root, out, resume, device)
    table = task.load(root)
    splits = experiment_splits(cfg, table)
    cv = len(splits) > 1
    folds = [fit_fold(cfg, task, model_name,
                      split_tables(table, split, root, task.unit, f"fold {k + 1}/{len(splits)}: " if cv else ""),
                      out / "checkpoints" / (f"fold{k + 1}" if cv else ""), resume, device)
             for k, split in enumerate(splits)]
    test_name = "cv" if cv else "test"
    pooled = {s: UnitTable.concat([f.tables[s] for f in folds]) for s in ("val", "test")}
    if cv:
        for s in pooled:
            pooled[s].meta["fold"] = [k + 1 for k, f in enumerate(folds) for _ in range(len(f.tables[s]))]
    val_logits = np.concatenate([f.logits["val"] for f in folds])
    calibration = (fit_calibration(val_logits, pooled["val"].targets, task.kind) if cfg.eval.calibrate
                   else Calibration())
    fold_preds = [{s: calibrated_predictions(z, calibration, task.kind) for s, z in f.logits.items()} for f in folds]
    preds = {s: np.concatenate([p[s] for p in fold_preds]) for s in ("val", "test")}
    cal_source = (f"the pooled fold-validation predictions ({len(pooled['val']):,}: each fold's validation "
                  f"{task.unit}s scored by that fold's model)" if cv
                  else f"the validation split ({len(pooled['val']):,} {task.unit}s)")
    op, interval = None, None
    if task.kind == "binary":
        op = M.choose_operating_point(pooled["val"].targets, preds["val"], cfg.eval.operating_point,
                                      "pooled fold-validation" if cv else "val")
    if task.kind == "regression":
        interval = regression_interval(folds, fold_preds, cv)
    metrics_val = score_split(task, pooled["val"], preds["val"], "val", op, cfg.eval.n_bootstrap)
    metrics_test = score_split(task, pooled["test"], preds["test"], test_name, op, cfg.eval.n_bootstrap)
    for name, mask in task.metric_subsets(pooled["test"]).items():
        index = np.flatnonzero(mask)
        metrics_test.setdefault("subsets", {})[name] = score_split(
            task, pooled["test"].subset(index), preds["test"][index], f"{test_name}/{name}", op, cfg.eval.n_bootstrap)
    final = folds[-1]
    one_pass = isinstance(final.model, ArrayFitted)
    training: dict[str, Any] = {"calibrated_on": cal_source}
    if cv:
        metrics_test["folds"] = [
            {"fold": k + 1, "n": len(f.tables["test"]), "best_val_score": round(f.fit.best_score, 4),
             "best_epoch": f.fit.best_epoch,
             "metrics": {name: m["value"] for name, m in
                         score_split(task, f.tables["test"], p["test"], f"fold{k + 1}", op, 0)["metrics"].items()}}
            for k, (f, p) in enumerate(zip(folds, fold_preds))]
        metrics_test["folds_summary"] = folds_summary(metrics_test["folds"])
        best_epochs = [f.fit.best_epoch for f in folds]
        epochs = median_epoch(best_epochs)
        info("refit on all the data for the bundle: " + ("one pass" if one_pass else
                                                          f"{epochs} epochs (median best epoch of the folds)"))
        final = fit_fold(cfg, task, model_name,
                         split_tables(table, np.full(len(table), "train"), root, task.unit, "refit: ", ("train",)),
                         out / "checkpoints" / "refit", resume, device, epochs=None if one_pass else epochs)
        training["refit"] = {"units": len(table), "groups": len(set(table.groups)), "one_pass": one_pass,
                             "epochs": None if one_pass else epochs, "fold_best_epochs": best_epochs,
                             "rule": "all units, median best epoch of the folds, no validation split"}
    write_json(out / "metrics.json", metrics_test)
    write_json(out / "metrics_val.json", metrics_val)
    (out / "config.yaml").write_text(dump_config(cfg))
    write_predictions(out / "predictions.csv", task, {"val": pooled["val"], test_name: pooled["test"]},
                      {"val": preds["val"], test_name: preds["test"]}, op.threshold if op else None)
    fit = final.fit
    best_score = None if cv or not np.isfinite(fit.best_score) else fit.best_score
    training.update({
        "best_epoch": fit.best_epoch, "best_val_score": best_score, "monitor": final.monitor,
        "epochs_run": len(fit.history), "one_pass": one_pass,
        "monitored_units": None if final.monitored is None else len(final.monitored),
        "seconds": round(sum(f.fit.seconds for f in folds) + (fit.seconds if cv else 0), 1),
        "history": fit.history, "folds": len(folds),
        "threads": fit.extra.get("threads"), "deterministic": fit.extra.get("deterministic"),
        "reproducibility": REPRODUCIBILITY})
    meta = {
        "task": {"name": task.name, "options": task.options_dict()},
        "kind": task.kind, "unit": task.unit, "class_names": task.class_names,
        "model": {"name": model_name, "params": final.model_kwargs},
        "preprocessing": final.pre.spec,
        "operating_point": op.to_dict() if op else None,
        "calibration": calibration.to_dict(),
        "prediction_interval": interval,
        "metrics": {"test": metrics_test, "val": metrics_val},
        "data": {"root": cfg.data.root, "fingerprint": table.fingerprint,
                 "n_units": len(table)},
        "splits": {s: t.ids for s, t in final.tables.items()},
        "training": training,
        "config": cfg.model_dump(mode="json"),
        "intended_use": task.intended_use, "credits": task.credits,
    }
    if final.conformal is not None and final.monitored is not None:
        meta["validation_parts"] = {"early_stopping": final.monitored.ids, "conformal": final.conformal.ids}
    training["summary"] = training_summary(meta)
    info(training["summary"])
    bundle_path = save_bundle(out / "bundle", final.model, meta, model_card(meta))
    bundle = load_bundle(bundle_path)
    report = write_run_report(out / "report.html", bundle, {test_name: pooled["test"]}, {test_name: preds["test"]},
                              {test_name: metrics_test, "val": metrics_val}, fit.history, dump_config(cfg),
                              task.data_sections())
    return RunOutputs(out, metrics_test, metrics_val, bundle_path, report, fit)


def regression_interval(folds: list[FoldResult], fold_preds: list[dict[str, np.ndarray]], cv: bool) -> dict[str, Any]:
    """The conformal interval from the folds' conformal halves of validation (units the Trainer did not
    monitor); from all validation units, and said so, where validation held a single group."""
    ys, preds, n_groups, all_carved = [], [], 0, True
    for f, p in zip(folds, fold_preds):
        val = f.tables["val"]
        if f.conformal is None:
            all_carved = False
            ys.append(val.targets)
            preds.append(p["val"])
            continue
        wanted = set(f.conformal.ids)
        index = np.array([i for i, uid in enumerate(val.ids) if uid in wanted], dtype=int)
        ys.append(val.targets[index])
        preds.append(p["val"][index])
        n_groups += len(set(f.conformal.groups))
    where = "of the folds' " if cv else ""
    source = (f"residuals of the {sum(len(y) for y in ys)} units in {n_groups} validation groups {where}kept out "
              "of early stopping" if all_carved else
              "validation residuals (validation had one group, so these units were also used for early stopping)")
    return conformal_interval(np.concatenate(ys), np.concatenate(preds), source=source)


def split_tables(table: UnitTable, split: np.ndarray, root: Path, unit: str, prefix: str = "",
                 required: tuple[str, ...] = ("train", "val", "test")) -> dict[str, UnitTable]:
    """The units of each split named in ``split`` (those in ``required`` must not be empty), logged."""
    tables = {s: table.subset(np.flatnonzero(split == s)) for s in ("train", "val", "test") if (split == s).any()}
    for s in required:
        if s not in tables:
            raise InputError(f"{root}: the {s} split is empty ({len(table)} units in {len(set(table.groups))} groups)")
    info(prefix + "units: " + ", ".join(f"{s} {len(t)} {unit}s in {len(set(t.groups))} groups" for s, t in tables.items()))
    return tables


def evaluate_bundle(bundle_path: Path, out: Path, data_path: Path | None = None, split: str | None = None,
                    device: str = "auto") -> RunOutputs:
    """Score a bundle: its own test split by default; the whole dataset at ``data_path`` (split "all")
    unless ``split`` names one of the bundle's splits. Uses the bundle's preprocessing only."""
    bundle = load_bundle(bundle_path, device)
    meta, task = bundle.meta, bundle.task
    cfg_root = resolve_config_data_path(meta["data"]["root"])
    root = data_path or cfg_root
    if not root.exists():
        raise InputError(f"{root}: evaluation data does not exist (pass --data PATH)")
    table = task.load(root)
    if table.fingerprint != meta["data"]["fingerprint"]:
        log.warning("data at %s differs from the data this bundle was trained on (fingerprint %s, bundle %s)",
                    root, table.fingerprint[:12], meta["data"]["fingerprint"][:12])
    if data_path is not None and split is None:
        split_name, subset = "all", table
    else:
        split_name = split or "test"
        if split_name not in meta["splits"] and meta["training"].get("folds", 1) > 1:
            raise InputError(f"{bundle_path}: refit on all the data after {meta['training']['folds']}-fold "
                             "cross-validation, so it has no held-out split (its cross-validated metrics are in "
                             "bundle.json); pass --data PATH to score other data")
        if split_name not in meta["splits"]:
            raise InputError(f"--split {split_name}: the bundle has splits {', '.join(meta['splits'])}")
        wanted = set(meta["splits"][split_name])
        index = np.flatnonzero([uid in wanted for uid in table.ids])
        if len(index) == 0:
            raise InputError(f"{root}: none of the bundle's {split_name} units are in this dataset")
        subset = table.subset(index)
    pred = bundle.predict_raw(list(subset.raw))
    op = M.OperatingPoint(**meta["operating_point"]) if meta.get("operating_point") else None
    n_boot = meta["config"]["eval"]["n_bootstrap"]
    scored = score_split(task, subset, pred, split_name, op, n_boot)
    scored["data"] = {"root": str(root), "fingerprint": table.fingerprint,
                      "matches_training_data": table.fingerprint == meta["data"]["fingerprint"]}
    write_json(out / "metrics.json", scored)
    write_predictions(out / "predictions.csv", task, {split_name: subset}, {split_name: pred},
                      op.threshold if op else None)
    report = write_run_report(out / "report.html", bundle, {split_name: subset}, {split_name: pred},
                              {split_name: scored}, meta["training"]["history"], None, task.data_sections())
    return RunOutputs(out, scored, report=report)


def write_run_report(path: Path, bundle: Bundle, tables: dict[str, UnitTable], preds: dict[str, np.ndarray],
                     metrics_by_split: dict[str, dict], history: list[dict], config_yaml: str | None,
                     data_sections: list | None = None) -> Path:
    from medlearn.engine.report import standard_sections, write_report

    task, meta = bundle.task, bundle.meta
    (split, table), = list(tables.items())[:1]
    op = M.OperatingPoint(**meta["operating_point"]) if meta.get("operating_point") else None
    training = meta["training"]
    sections = standard_sections(task.kind, table.targets, preds[split], task.class_names, op, history,
                                 monitor=training.get("monitor"), best_epoch=training.get("best_epoch"))
    sections.extend(task_report_sections(bundle, table, preds[split]))
    sections.extend(data_sections or [])
    warnings = bundle.calibration.at_bound()
    provenance = {"task": task.name, "model": meta["model"]["name"], "data fingerprint": meta["data"]["fingerprint"],
                  "best epoch": training["best_epoch"], "monitored metric": training.get("monitor"),
                  **{f"calibration {k}": round(v, 4) for k, v in bundle.calibration.to_dict().items()},
                  "calibration fitted on": training.get("calibrated_on", "the validation split"),
                  **({"calibration warning": "; ".join(warnings)} if warnings else {}),
                  **meta["versions"]}
    # The bundle's own credits: what this model was trained on (a demo's synthetic data, not the task's dataset).
    return write_report(path, f"medlearn — {task.name} ({meta['model']['name']})", metrics_by_split, sections,
                        meta.get("intended_use", task.intended_use), meta.get("credits", task.credits),
                        config_yaml=config_yaml, provenance=provenance, warnings=warnings)


def task_report_sections(bundle: Bundle, table: UnitTable, pred: np.ndarray, n_examples: int = 12) -> list:
    """Sample inputs and, for image models, Grad-CAM overlays of the most and least confident units."""
    from medlearn.engine.plots import figure_to_data_uri, image_grid
    from medlearn.engine.report import ReportSection

    task = bundle.task
    custom = task.report_examples(bundle, table, pred)
    if custom is not None:
        return custom
    scores = pred if pred.ndim == 1 else pred.max(axis=1)
    order = np.argsort(-scores)
    picks = list(dict.fromkeys([*order[: n_examples // 2], *order[::-1][: n_examples // 2]]))
    arrays = [bundle.preprocessing(table.raw[i]) for i in picks]
    images = [task.display_image(a) for a in arrays]
    if not picks or any(img is None for img in images):
        return []
    titles = [f"{table.ids[i][:18]}\ny={task.class_names[int(table.targets[i])] if task.kind != 'regression' else table.targets[i]}"
              f" p={scores[i]:.2f}" for i in picks]
    sections = [ReportSection("Sample inputs (model view, highest and lowest scores)",
                              figures=[("Preprocessed inputs as the model sees them",
                                        figure_to_data_uri(image_grid(images, titles)))])]
    if getattr(bundle.model, "gradcam_layer", None):
        import html as _html

        from medlearn.explain.gradcam import cam_problem, gradcam, overlay

        heat = gradcam(bundle.model, np.stack(arrays))
        maps = [task.display_image(h[None]) for h in heat]
        overlays = [overlay(img, m) for img, m in zip(images, maps)]
        problems = [cam_problem(m) for m in maps]
        text = ("<p>Where the network's last convolutional block found evidence for the positive class (red = "
                "strongest). Heatmaps are normalised per image.</p>")
        flagged = [(table.ids[i], problem) for i, problem in zip(picks, problems) if problem is not None]
        if flagged:  # said in words, not left to a blank overlay
            items = "".join(f"<li><code>{_html.escape(str(uid))}</code>: {_html.escape(problem)}</li>"
                            for uid, problem in flagged)
            text += (f'<p class="cam-problem"><strong>{len(flagged)} of {len(picks)} maps show nothing.</strong>'
                     f"</p><ul>{items}</ul>")
        titles = [t + ("\nGrad-CAM: nothing" if p is not None else "") for t, p in zip(titles, problems)]
        sections.append(ReportSection("Grad-CAM", html=text,
                                      figures=[("Grad-CAM overlays", figure_to_data_uri(image_grid(overlays, titles)))]))
    return sections
