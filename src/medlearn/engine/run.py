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
                                  group_split, train_val_split)
from medlearn.engine.models import build_model, count_parameters
from medlearn.engine.trees import ArrayFitted
from medlearn.engine.progress import info
from medlearn.engine.task import Task
from medlearn.engine.posthoc import Calibration, apply_calibration, fit_calibration
from medlearn.engine.trainer import FitResult, Trainer, balanced_class_weights, outputs_to_predictions, pick_device
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


def conformal_interval(y_val: np.ndarray, pred_val: np.ndarray, coverage: float = 0.9) -> dict[str, Any]:
    """Split-conformal prediction interval: ``prediction ± q`` where ``q`` is the finite-sample
    ``coverage`` quantile of the absolute validation residuals (Lei et al., 2018)."""
    residuals = np.sort(np.abs(np.asarray(y_val, float) - np.asarray(pred_val, float)))
    rank = min(int(np.ceil((len(residuals) + 1) * coverage)), len(residuals)) - 1
    return {"coverage": coverage, "half_width": float(residuals[rank]), "method": "split conformal, validation residuals"}


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2))


@dataclass
class FoldResult:
    """One fitted model and its calibrated predictions on its own validation and test units."""

    tables: dict[str, UnitTable]
    model: torch.nn.Module
    model_kwargs: dict[str, Any]
    pre: Preprocessing
    fit: FitResult
    calibration: Calibration
    preds: dict[str, np.ndarray]
    monitor: str


def fit_fold(cfg: ExperimentConfig, task: Task, model_name: str, tables: dict[str, UnitTable],
             checkpoints: Path, resume: bool, device: str) -> FoldResult:
    """Preprocess (fitted on train only) → build → fit → calibrate on validation → predict val and test."""
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
    trainer = Trainer(cfg.train, task.kind, monitor, task.class_names, checkpoints, pick_device(device),
                      ordinal=task.ordinal, f1_groups=task.f1_groups)
    fit = trainer.fit(model, datasets["train"], datasets["val"], class_weights=weights, resume=resume)
    logits = {s: trainer.logits(model, datasets[s])[0] for s in ("val", "test") if s in datasets}
    calibration = fit_calibration(logits["val"], tables["val"].targets, task.kind) if cfg.eval.calibrate else Calibration()
    preds = {s: outputs_to_predictions(apply_calibration(torch.from_numpy(z), calibration), task.kind)
             for s, z in logits.items()}
    return FoldResult(tables, model, model_kwargs, pre, fit, calibration, preds, monitor)


def experiment_splits(cfg: ExperimentConfig, table: UnitTable) -> list[np.ndarray]:
    """The task's own split, k cross-validation folds (``data.split.folds``), or one group split."""
    s = cfg.data.split
    if table.split is not None:
        return [table.split]
    if s.folds:
        return cv_group_splits(table.targets, table.groups, s.folds, s.val_fraction, s.seed)
    return [group_split(table.targets, table.groups, s.val_fraction, s.test_fraction, s.seed)]


def train_experiment(cfg: ExperimentConfig, out: Path, resume: bool = False, device: str = "auto") -> RunOutputs:
    """Run one experiment: load → split by group → preprocess (cached) → fit → choose the operating point
    on validation → score test with bootstrap CIs → bundle, predictions, metrics, report.

    With ``data.split.folds`` (CONVENTIONS.md, cross-validated tasks) every fold is fitted in turn; the
    metrics (``split: "cv"``) pool the out-of-fold predictions, each unit predicted by the model that
    never saw it, with per-fold figures under ``"folds"``; the bundle is a model refit on all the data
    (a validation share of the groups kept for early stopping and calibration).
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
    preds = {s: np.concatenate([f.preds[s] for f in folds]) for s in ("val", "test")}
    if cv:
        for s in pooled:
            pooled[s].meta["fold"] = [k + 1 for k, f in enumerate(folds) for _ in range(len(f.tables[s]))]
    op, interval = None, None
    if task.kind == "binary":
        op = M.choose_operating_point(pooled["val"].targets, preds["val"], cfg.eval.operating_point, "val")
    if task.kind == "regression":
        interval = conformal_interval(pooled["val"].targets, preds["val"])
    metrics_val = score_split(task, pooled["val"], preds["val"], "val", op, cfg.eval.n_bootstrap)
    metrics_test = score_split(task, pooled["test"], preds["test"], test_name, op, cfg.eval.n_bootstrap)
    for name, mask in task.metric_subsets(pooled["test"]).items():
        index = np.flatnonzero(mask)
        metrics_test.setdefault("subsets", {})[name] = score_split(
            task, pooled["test"].subset(index), preds["test"][index], f"{test_name}/{name}", op, cfg.eval.n_bootstrap)
    final = folds[-1]
    if cv:
        metrics_test["folds"] = [
            {"fold": k + 1, "n": len(f.tables["test"]), "best_val_score": round(f.fit.best_score, 4),
             "metrics": {name: m["value"] for name, m in
                         score_split(task, f.tables["test"], f.preds["test"], f"fold{k + 1}", op, 0)["metrics"].items()}}
            for k, f in enumerate(folds)]
        info("refit on all the data for the bundle")
        refit = train_val_split(table.targets, table.groups, cfg.data.split.val_fraction, cfg.data.split.seed)
        final = fit_fold(cfg, task, model_name, split_tables(table, refit, root, task.unit, "refit: ", ("train", "val")),
                         out / "checkpoints" / "refit", resume, device)
    write_json(out / "metrics.json", metrics_test)
    write_json(out / "metrics_val.json", metrics_val)
    (out / "config.yaml").write_text(dump_config(cfg))
    write_predictions(out / "predictions.csv", task, {"val": pooled["val"], test_name: pooled["test"]},
                      {"val": preds["val"], test_name: preds["test"]}, op.threshold if op else None)
    fit = final.fit
    meta = {
        "task": {"name": task.name, "options": task.options_dict()},
        "kind": task.kind, "unit": task.unit, "class_names": task.class_names,
        "model": {"name": model_name, "params": final.model_kwargs},
        "preprocessing": final.pre.spec,
        "operating_point": op.to_dict() if op else None,
        "calibration": final.calibration.to_dict(),
        "prediction_interval": interval,
        "metrics": {"test": metrics_test, "val": metrics_val},
        "data": {"root": cfg.data.root, "fingerprint": table.fingerprint,
                 "n_units": len(table)},
        "splits": {s: t.ids for s, t in final.tables.items()},
        "training": {"best_epoch": fit.best_epoch, "best_val_score": fit.best_score, "monitor": final.monitor,
                     "epochs_run": len(fit.history), "seconds": round(sum(f.fit.seconds for f in folds)
                                                                       + (fit.seconds if cv else 0), 1),
                     "history": fit.history, "folds": len(folds)},
        "config": cfg.model_dump(mode="json"),
        "intended_use": task.intended_use, "credits": task.credits,
    }
    bundle_path = save_bundle(out / "bundle", final.model, meta, model_card(meta))
    bundle = load_bundle(bundle_path)
    report = write_run_report(out / "report.html", bundle, {test_name: pooled["test"]}, {test_name: preds["test"]},
                              {test_name: metrics_test, "val": metrics_val}, fit.history, dump_config(cfg),
                              task.data_sections())
    return RunOutputs(out, metrics_test, metrics_val, bundle_path, report, fit)


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
    sections = standard_sections(task.kind, table.targets, preds[split], task.class_names, op, history)
    sections.extend(task_report_sections(bundle, table, preds[split]))
    sections.extend(data_sections or [])
    provenance = {"task": task.name, "model": meta["model"]["name"], "data fingerprint": meta["data"]["fingerprint"],
                  "best epoch": meta["training"]["best_epoch"],
                  **{f"calibration {k} (fitted on val)": round(v, 4) for k, v in bundle.calibration.to_dict().items()},
                  **meta["versions"]}
    return write_report(path, f"medlearn — {task.name} ({meta['model']['name']})", metrics_by_split, sections,
                        task.intended_use, task.credits, config_yaml=config_yaml, provenance=provenance)


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
        from medlearn.explain.gradcam import gradcam, overlay

        heat = gradcam(bundle.model, np.stack(arrays))
        overlays = [overlay(img, task.display_image(h[None])) for img, h in zip(images, heat)]
        sections.append(ReportSection(
            "Grad-CAM", html="<p>Where the network's last convolutional block found evidence for the positive "
                             "class (red = strongest). Heatmaps are normalised per image.</p>",
            figures=[("Grad-CAM overlays", figure_to_data_uri(image_grid(overlays, titles)))]))
    return sections


def model_card(meta: dict[str, Any]) -> str:
    def fmt(metric: dict) -> str:
        ci = metric.get("ci95")
        value = "n/a" if metric["value"] is None else f"{metric['value']:.3f}"
        return value + (f" (95% CI {ci[0]:.3f}–{ci[1]:.3f})" if ci else "")

    test = meta["metrics"]["test"]
    lines = [f"# Model card: {meta['task']['name']} — {meta['model']['name']}", "",
             f"**Intended use.** {meta['intended_use']}", "",
             f"**Data.** `{meta['data']['root']}` (fingerprint `{meta['data']['fingerprint']}`), "
             f"{meta['data']['n_units']} {meta['unit']}s; splits by group: "
             + ", ".join(f"{k} {len(v)}" for k, v in meta["splits"].items()) + ".", "",
             f"**Test metrics** (split `{test['split']}`, n = {test['n']} {test['unit']}s):", ""]
    lines += [f"- {name}: {fmt(m)}" for name, m in test["metrics"].items()]
    if meta.get("operating_point"):
        op = meta["operating_point"]
        lines += ["", f"**Operating point.** threshold {op['threshold']:.4f}, chosen on {op['chosen_on']} by "
                      f"`{op['rule']}`."]
    cal = meta.get("calibration", {"temperature": 1.0, "bias": 0.0})
    lines += ["", f"**Calibration.** logit / {cal['temperature']:.3f} + {cal['bias']:.3f}, fitted on the validation "
                  "split (temperature/Platt scaling; ranking unchanged)."]
    lines += ["", "**Credits.**", *[f"- {c}" for c in meta["credits"]], ""]
    return "\n".join(lines)
