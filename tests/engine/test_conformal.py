"""Split-conformal intervals for regression bundles reach their coverage on new data."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.engine.uncertainty import conformal_interval


def test_interval_covers_ninety_percent_of_fresh_residuals():
    rng = np.random.default_rng(0)
    truth_val, truth_test = rng.normal(5, 2, 500), rng.normal(5, 2, 5000)
    pred_val, pred_test = truth_val + rng.normal(0, 1, 500), truth_test + rng.normal(0, 1, 5000)
    interval = conformal_interval(truth_val, pred_val)
    covered = np.abs(truth_test - pred_test) <= interval["half_width"]
    assert interval["coverage"] == 0.9 and covered.mean() == pytest.approx(0.9, abs=0.03)
    assert interval["half_width"] == pytest.approx(1.645, rel=0.12)  # the normal 90% quantile of |N(0,1)|
