"""Per-hospital evaluation: the federated model (every round) beside centralised and local-only training.

Every arm is scored the way ``train`` scores its model: post-hoc calibration and (binary) operating point
fitted on validation predictions, then the test units scored with group-bootstrap 95 % CIs
(:func:`~medlearn.engine.experiment.score_split`). A pooled figure is always computed on the pooled
predictions of the hospitals' test units, never by averaging per-hospital metrics:

- federated (round k): the global model after round k; calibrated on the pooled validation units;
- centralised: one model trained on the pooled training units of all hospitals (what sharing the data
  would give), calibrated on the pooled validation units;
- local-only: each hospital's own model, trained, calibrated and thresholded on its own units only, each
  scored on its own test units; its pooled figure pools these predictions (the "local-only average").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medlearn.engine import metrics as M
from medlearn.engine.data import CachedDataset, UnitTable
from medlearn.engine.experiment import score_split
from medlearn.engine.posthoc import apply_calibration, fit_calibration, outputs_to_predictions
from medlearn.engine.report import ReportSection
from medlearn.engine.task import Task
from medlearn.engine.trainer import Trainer

__all__ = ["ArmScores", "compact", "comparison_section", "primary_metric", "score_arm"]

POOLED = "pooled"


@dataclass
class ArmScores:
    """One arm's test metrics (``metrics.json`` dicts) by hospital name and ``pooled``."""

    name: str
    by_scope: dict[str, dict[str, Any]]


def primary_metric(task: Task, monitor: str | None) -> str:
    """The figure the comparison tables show: the monitored metric, or the task's (never ``loss``)."""
    name = monitor if monitor and monitor != "loss" else task.target.monitor
    return task.target.monitor if name == "loss" else name


def calibrated(
    task: Task, val: UnitTable, val_logits: np.ndarray, calibrate: bool, rule: str
) -> tuple[Any, M.OperatingPoint | None, np.ndarray]:
    """Calibration and operating point fitted on validation; returns them and the validation predictions."""
    from medlearn.engine.posthoc import Calibration

    calibration = fit_calibration(val_logits, val.targets, task.kind) if calibrate else Calibration()
    val_pred = outputs_to_predictions(apply_calibration(torch.from_numpy(val_logits), calibration), task.kind)
    op = M.choose_operating_point(val.targets, val_pred, rule, "val") if task.kind == "binary" else None
    return calibration, op, val_pred


def predict(calibration: Any, logits: np.ndarray, kind: str) -> np.ndarray:
    return outputs_to_predictions(apply_calibration(torch.from_numpy(logits), calibration), kind)


def logits_of(trainer: Trainer, model: torch.nn.Module, ds: CachedDataset) -> np.ndarray:
    return trainer.logits(model, ds)[0]


def score_arm(
    name: str,
    task: Task,
    hospitals: list[str],
    val: dict[str, UnitTable],
    val_logits: dict[str, np.ndarray],
    test: dict[str, UnitTable],
    test_logits: dict[str, np.ndarray],
    calibrate: bool,
    rule: str,
    n_boot: int,
    per_hospital_fit: bool,
) -> ArmScores:
    """Score one arm on every hospital's test units and on their pooled predictions.

    ``per_hospital_fit``: each hospital has its own model (local-only), so calibration and operating point
    are fitted on that hospital's validation units; otherwise one calibration on the pooled validation.
    """
    preds: dict[str, np.ndarray] = {}
    ops: dict[str, M.OperatingPoint | None] = {}
    if per_hospital_fit:
        for h in hospitals:
            calibration, ops[h], _ = calibrated(task, val[h], val_logits[h], calibrate, rule)
            preds[h] = predict(calibration, test_logits[h], task.kind)
        pooled_op = None  # each hospital keeps its own threshold; the pooled binary metrics use them below
    else:
        pooled_val = UnitTable.concat([val[h] for h in hospitals])
        z = np.concatenate([val_logits[h] for h in hospitals])
        calibration, pooled_op, _ = calibrated(task, pooled_val, z, calibrate, rule)
        for h in hospitals:
            preds[h], ops[h] = predict(calibration, test_logits[h], task.kind), pooled_op
    by_scope = {h: score_split(task, test[h], preds[h], f"test/{h}", ops[h], n_boot) for h in hospitals}
    pooled_test = UnitTable.concat([test[h] for h in hospitals])
    pooled_pred = np.concatenate([preds[h] for h in hospitals])
    if per_hospital_fit and task.kind == "binary":
        # one threshold per hospital: binarise with each, then score the pooled decisions at 0.5
        decided = np.concatenate(
            [(preds[h] >= (ops[h].threshold if ops[h] else 0.5)).astype(float) for h in hospitals]
        )
        by_scope[POOLED] = score_split(task, pooled_test, pooled_pred, f"test/{POOLED}", None, n_boot)
        thresholded = score_split(task, pooled_test, decided, f"test/{POOLED}", None, n_boot)
        for key in ("sensitivity", "specificity", "ppv", "npv", "f1", "accuracy", "balanced_accuracy"):
            if key in thresholded["metrics"]:
                by_scope[POOLED]["metrics"][key] = thresholded["metrics"][key]
        by_scope[POOLED]["operating_point"] = {"rule": rule, "chosen_on": "each hospital's own val"}
    else:
        by_scope[POOLED] = score_split(task, pooled_test, pooled_pred, f"test/{POOLED}", pooled_op, n_boot)
    return ArmScores(name, by_scope)


def _figure(metrics_json: dict[str, Any], metric: str) -> dict[str, Any]:
    m = metrics_json.get("metrics", {}).get(metric) or {}
    return {"value": m.get("value"), "ci95": m.get("ci95"), "n": metrics_json.get("n")}


def compact(arm: ArmScores, metric: str) -> dict[str, dict[str, Any]]:
    """``{scope: {value, ci95, n}}`` of one metric (what ``metrics.json``'s ``federated`` section keeps)."""
    return {scope: _figure(m, metric) for scope, m in arm.by_scope.items()}


def _cell(figure: dict[str, Any]) -> str:
    value, ci = figure.get("value"), figure.get("ci95")
    if value is None:
        return "–"
    text = f"{value:.3f}"
    return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else " (no CI)")


def comparison_section(
    metric: str,
    hospitals: list[dict[str, Any]],
    arms: dict[str, dict[str, dict[str, Any]]],
    per_round: list[dict[str, Any]],
    notes: list[str],
) -> ReportSection:
    """The report's "Federated learning" section: per-hospital table of the arms, and the rounds."""
    import html

    names = [h["name"] for h in hospitals] + [POOLED]
    head = "".join(f"<th>{html.escape(a)}</th>" for a in arms)
    rows = []
    for scope in names:
        n = next((arms[a][scope]["n"] for a in arms if scope in arms[a]), None)
        cells = "".join(f"<td>{html.escape(_cell(arms[a].get(scope, {})))}</td>" for a in arms)
        rows.append(f"<tr><td>{html.escape(scope)}</td><td>{n}</td>{cells}</tr>")
    round_head = "".join(f"<th>{html.escape(s)}</th>" for s in names)
    round_rows = []
    for r in per_round:
        cells = "".join(f"<td>{html.escape(_cell(r['metrics'].get(s, {})))}</td>" for s in names)
        who = ", ".join(r.get("hospitals", []))
        round_rows.append(f"<tr><td>{r['round']}</td><td>{html.escape(who)}</td>{cells}</tr>")
    parts = [
        f"<p>Test {html.escape(metric)} with 95% group-bootstrap CIs, per hospital and on the pooled "
        "predictions of all hospitals' test units (never an average of per-hospital figures). Local-only: "
        "each hospital's own model on its own test units.</p>",
        f"<table><tr><th>hospital</th><th>n</th>{head}</tr>{''.join(rows)}</table>",
        f"<p>Federated model after each round ({html.escape(metric)}):</p>",
        f"<table><tr><th>round</th><th>trained</th>{round_head}</tr>{''.join(round_rows)}</table>",
    ]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    return ReportSection("Federated learning: per hospital", "".join(parts))
