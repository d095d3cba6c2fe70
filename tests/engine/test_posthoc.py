"""Post-hoc calibration recovers the overconfidence factor and shift, and never changes the ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.engine.posthoc import Calibration, apply_calibration, fit_calibration


def _calibrated(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    return true_logit, y


def test_overconfident_and_shifted_binary_logits_get_both_back():
    logit, y = _calibrated(5000)
    cal = fit_calibration((4.0 * (logit - 1.0))[:, None], y, "binary")  # overconfident x4, shifted by 1
    assert cal.temperature == pytest.approx(4.0, rel=0.15)
    assert cal.bias == pytest.approx(1.0, abs=0.2)
    identity = fit_calibration(logit[:, None], y, "binary")
    assert identity.temperature == pytest.approx(1.0, rel=0.15) and identity.bias == pytest.approx(
        0.0, abs=0.15
    )


def test_calibration_keeps_the_ranking():
    logit, y = _calibrated(500)
    cal = fit_calibration((3 * logit)[:, None], y, "binary")
    after = apply_calibration(torch.from_numpy(3 * logit), cal).numpy()
    assert np.array_equal(np.argsort(after), np.argsort(3 * logit))


def test_multiclass_logits_use_cross_entropy_and_no_bias():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (3000, 3))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    cal = fit_calibration(0.5 * logits, y, "multiclass")
    assert cal.temperature == pytest.approx(0.5, rel=0.15) and cal.bias == 0.0


def test_nothing_to_fit_gives_the_identity():
    assert fit_calibration(np.ones((10, 1)), np.zeros(10, int), "binary") == Calibration()
    assert fit_calibration(np.ones((10, 1)), np.arange(10.0), "regression") == Calibration()


def test_a_temperature_stopped_by_its_search_range_is_flagged_and_logged(caplog):
    logits = np.r_[np.full(50, -1.0), np.full(50, 1.0)][:, None]  # validation perfectly separated
    y = np.r_[np.zeros(50, int), np.ones(50, int)]
    with caplog.at_level("WARNING", logger="medlearn.engine.posthoc"):
        cal = fit_calibration(logits, y, "binary")
    assert cal.temperature == pytest.approx(0.05, rel=1e-3)
    problems = cal.at_bound()
    assert len(problems) == 1 and "temperature 0.05 is at the lower bound" in problems[0]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == problems


def test_a_bias_at_its_bound_is_flagged():
    assert Calibration(2.0, -10.0).at_bound() == [
        "calibration bias -10 is at the lower bound of its search range (-10): the fit was stopped by the "
        "range, so the calibrated probabilities are not trustworthy (degenerate validation logits?)"
    ]
    assert "upper bound" in Calibration(20.0, 0.0).at_bound()[0]


def test_an_ordinary_fit_is_not_at_a_bound(caplog):
    logit, y = _calibrated(2000)
    with caplog.at_level("WARNING", logger="medlearn.engine.posthoc"):
        cal = fit_calibration((2 * logit)[:, None], y, "binary")
    assert cal.at_bound() == [] and Calibration().at_bound() == []
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_model_card_warns_when_the_calibration_sits_at_its_bound():
    from medlearn.engine.model_card import model_card

    from .minimal_meta import minimal_meta

    meta = minimal_meta(calibration={"temperature": 20.0, "bias": 0.0})
    assert "**Warning:** calibration temperature 20" in model_card(meta)
    meta = minimal_meta(calibration={"temperature": 1.3, "bias": 0.2})
    assert "Warning" not in model_card(meta)
