"""Fairness figures for the model card: a model's metric per subgroup and the gap between subgroups,
with a bootstrap confidence interval on the gap.

A task names its subgroups through :meth:`~medlearn.engine.task.Task.metric_subsets` as
``attribute=value`` masks over the scored units (``sex=F``, ``age=65-79``, ``race=Black``). For each
attribute, the groups of at least :data:`MIN_GROUP_UNITS` units are scored with one metric, and the gap
between the best and the worst of them is bootstrapped: each group's clusters (patients) are resampled
on their own, so the interval reflects the uncertainty of both groups. A gap whose interval holds 0 is
not evidence of a difference; a small group's interval is wide, and a group below the minimum is listed
as too small rather than given a figure that would mislead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.engine import metrics as M

if TYPE_CHECKING:
    from medlearn.engine.data import UnitTable
    from medlearn.engine.task import Task

#: a subgroup is scored only with at least this many units (smaller ones are listed as too small)
MIN_GROUP_UNITS = 20
#: the metric compared across subgroups, by task kind (threshold-free for binary: AUROC)
GAP_METRIC = {"binary": "auroc", "multiclass": "macro_f1", "regression": "mae"}


def metric_function(
    task: Task, threshold: float | None
) -> tuple[str, Callable[[np.ndarray, np.ndarray], float]]:
    """The gap metric's name and a function of (targets, predictions) computing it."""
    name = GAP_METRIC[task.kind]
    if task.kind == "binary":
        return name, lambda y, p: M.binary_metrics(y, p, 0.5 if threshold is None else threshold)[name]
    if task.kind == "multiclass":
        return name, lambda y, p: M.multiclass_metrics(y, p, task.class_names, ordinal=task.target.ordinal)[
            0
        ][name]
    return name, lambda y, p: M.regression_metrics(y, p)[name]


def _clusters(groups: np.ndarray) -> list[np.ndarray]:
    """The unit indices of each cluster (patient) in ``groups``, in sorted cluster order."""
    codes, inverse = np.unique(groups, return_inverse=True)
    return [np.flatnonzero(inverse == c) for c in range(len(codes))]


def _resample(members: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Indices of a cluster bootstrap resample (whole clusters drawn with replacement)."""
    drawn = rng.integers(0, len(members), len(members))
    return np.concatenate([members[c] for c in drawn])


def subgroup_gaps(
    task: Task,
    table: UnitTable,
    pred: np.ndarray,
    subsets: Mapping[str, np.ndarray],
    threshold: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per attribute: each subgroup's size and metric, and the best-minus-worst gap with its 95 % CI.

    Returns ``{attribute: {"metric", "groups": {name: {"n", "value"}}, "too_small": [...], "gap",
    "gap_ci95", "between"}}``; attributes with fewer than two scorable groups have no gap.
    """
    name, fn = metric_function(task, threshold)
    targets, groups_all = np.asarray(table.targets), np.asarray(table.groups)
    by_attribute: dict[str, list[tuple[str, np.ndarray]]] = {}
    for label, mask in subsets.items():
        if "=" not in label:  # a subset that is not a subgroup of people (e.g. the sleep period of a night)
            continue
        attribute = label.split("=", 1)[0]
        by_attribute.setdefault(attribute, []).append((label, np.flatnonzero(mask)))
    out: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for attribute, members in sorted(by_attribute.items()):
        scored = {label: index for label, index in members if len(index) >= MIN_GROUP_UNITS}
        entry: dict[str, Any] = {
            "metric": name,
            "min_units": MIN_GROUP_UNITS,
            "groups": {},
            "too_small": sorted(label for label, index in members if len(index) < MIN_GROUP_UNITS),
        }
        for label, index in scored.items():
            value = _safe(fn, targets[index], pred[index])
            entry["groups"][label] = {"n": int(len(index)), "value": value}
        finite = {k: v["value"] for k, v in entry["groups"].items() if v["value"] is not None}
        if len(finite) >= 2:
            lower_is_better = name == "mae"
            best = (min if lower_is_better else max)(finite, key=finite.get)
            worst = (max if lower_is_better else min)(finite, key=finite.get)
            a, b = scored[best], scored[worst]
            diffs = []
            clusters_a, clusters_b = _clusters(groups_all[a]), _clusters(groups_all[b])
            for _ in range(n_boot):
                ra, rb = a[_resample(clusters_a, rng)], b[_resample(clusters_b, rng)]
                va, vb = _safe(fn, targets[ra], pred[ra]), _safe(fn, targets[rb], pred[rb])
                if va is not None and vb is not None:
                    diffs.append(va - vb)
            entry["between"] = [best, worst]
            entry["gap"] = round(finite[best] - finite[worst], 4)
            entry["gap_ci95"] = (  # None without a bootstrap (n_boot 0) or when most replicates failed
                [round(float(q), 4) for q in np.percentile(diffs, [2.5, 97.5])]
                if diffs and len(diffs) >= max(1, n_boot // 2)
                else None
            )
        out[attribute] = entry
    return out


def _safe(fn: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, p: np.ndarray) -> float | None:
    """The metric, or None where it is undefined (e.g. AUROC of a group holding one class)."""
    try:
        value = float(fn(y, p))
    except ValueError:
        return None
    return round(value, 4) if np.isfinite(value) else None
