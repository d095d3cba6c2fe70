"""Uncertainty a trained model ships with, fitted on validation units no choice looked at: a regression
bundle's split-conformal interval and a classifier's conformal prediction sets.

:func:`~medlearn.engine.run.fit_fold` holds half of the validation groups out of early stopping for them;
here the held-out units' predictions become the interval's residuals or the sets' thresholds, and the
scored split measures what was promised (coverage, set sizes, the selective-prediction curve).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.engine.conformal import ConformalSets, fit_sets, selective_curve, set_metrics

if TYPE_CHECKING:  # run.py imports this module; its types only are needed here
    from medlearn.engine.data import UnitTable
    from medlearn.engine.run import FoldResult
    from medlearn.engine.task import Task

log = logging.getLogger(__name__)


def conformal_interval(
    y_cal: np.ndarray, pred_cal: np.ndarray, coverage: float = 0.9, source: str = "validation residuals"
) -> dict[str, Any]:
    """Split-conformal prediction interval: ``prediction ± q`` where ``q`` is the finite-sample
    ``coverage`` quantile of the absolute residuals on calibration units (Lei et al., 2018).

    The guarantee needs calibration units exchangeable with new ones, so they must not have steered the
    fit: :func:`~medlearn.engine.run.fit_fold` takes them from validation groups the Trainer did not monitor for early
    stopping (``source`` says which units they were).
    """
    residuals = np.sort(np.abs(np.asarray(y_cal, float) - np.asarray(pred_cal, float)))
    rank = min(int(np.ceil((len(residuals) + 1) * coverage)), len(residuals)) - 1
    return {
        "coverage": coverage,
        "half_width": float(residuals[rank]),
        "method": f"split conformal, {source}",
        "n_residuals": int(len(residuals)),
    }


def regression_interval(
    folds: list[FoldResult], fold_preds: list[dict[str, np.ndarray]], cv: bool
) -> dict[str, Any]:
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
    source = (
        f"residuals of the {sum(len(y) for y in ys)} units in {n_groups} validation groups {where}kept out "
        "of early stopping"
        if all_carved
        else "validation residuals (validation had one group, so these units were also used for early stopping)"
    )
    return conformal_interval(np.concatenate(ys), np.concatenate(preds), source=source)


def held_out_mask(folds: Sequence[FoldResult]) -> np.ndarray:
    """Over the folds' pooled validation units: True for those :func:`fit_fold` held out of early stopping
    (for conformal intervals or prediction sets), False for the rest."""
    return np.concatenate(
        [np.isin(f.tables["val"].ids, [] if f.conformal is None else f.conformal.ids) for f in folds]
    )


def fit_prediction_sets(
    conf: Any,
    task: Task,
    pooled: dict[str, UnitTable],
    preds: dict[str, np.ndarray],
    held: np.ndarray,
    cv: bool,
) -> ConformalSets | None:
    """A classifier's prediction sets, calibrated on the held-out validation units' calibrated
    probabilities (None, said, when validation had too few groups to hold any out)."""
    if not held.any():
        log.warning(
            "eval.conformal: the validation split has a single group, so no units could be held out for the "
            "prediction sets; the bundle returns none"
        )
        return None
    groups = len(set(np.asarray(pooled["val"].groups)[held]))
    where = "the folds' validation splits" if cv else "the validation split"
    source = (
        f"{int(held.sum()):,} {task.unit}s ({groups} groups) of {where} held out of early stopping, "
        "calibration and the operating point"
    )
    return fit_sets(preds["val"][held], pooled["val"].targets[held], conf.coverage, conf.score, source)


def score_prediction_sets(
    sets: ConformalSets, task: Task, table: UnitTable, pred: np.ndarray
) -> dict[str, Any]:
    """The sets on the scored split: coverage against the target, set sizes, the uncertain share, and
    the selective-prediction curve (accuracy of the most confident units at each coverage)."""
    return {
        **sets.to_dict(),
        "scored": set_metrics(sets.sets(pred), table.targets, task.class_names),
        "selective": selective_curve(pred, table.targets),
    }
