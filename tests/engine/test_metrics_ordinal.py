"""Ordinal multiclass metrics (length-of-stay bins): linear-weighted kappa and mean absolute distance."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from medlearn.engine.metrics import evaluate_predictions, multiclass_metrics


def _case(seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, 400)
    pred = np.clip(y + rng.integers(-2, 3, 400), 0, 9)
    return y, np.eye(10)[pred] * 0.9 + 0.01, pred


def test_kappa_linear_and_mad_match_their_definitions():
    y, prob, pred = _case()
    overall, _ = multiclass_metrics(y, prob, [str(i) for i in range(10)], ordinal=True)
    assert overall["kappa_linear"] == pytest.approx(cohen_kappa_score(y, pred, weights="linear"))
    assert overall["mad"] == pytest.approx(np.abs(y - pred).mean())


def test_ordinal_metrics_are_only_reported_for_ordered_classes():
    y, prob, _ = _case()
    names = [str(i) for i in range(10)]
    plain = evaluate_predictions("t", "test", "admission", "multiclass", y, prob, names, None, n_boot=0)
    ordered = evaluate_predictions(
        "t", "test", "admission", "multiclass", y, prob, names, None, n_boot=100, ordinal=True
    )
    assert "kappa_linear" not in plain["metrics"]
    lo, hi = ordered["metrics"]["kappa_linear"]["ci95"]
    assert lo <= ordered["metrics"]["kappa_linear"]["value"] <= hi
