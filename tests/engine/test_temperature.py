"""Temperature scaling recovers the overconfidence factor and never changes the ranking."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.engine.temperature import fit_temperature


def _calibrated(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    return true_logit, y


def test_overconfident_binary_logits_get_the_factor_back():
    logit, y = _calibrated(5000)
    assert fit_temperature((4.0 * logit)[:, None], y, "binary") == pytest.approx(4.0, rel=0.15)
    assert fit_temperature(logit[:, None], y, "binary") == pytest.approx(1.0, rel=0.15)


def test_multiclass_logits_use_cross_entropy():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (3000, 3))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    assert fit_temperature(0.5 * logits, y, "multiclass") == pytest.approx(0.5, rel=0.15)


def test_nothing_to_fit_gives_one():
    assert fit_temperature(np.ones((10, 1)), np.zeros(10, int), "binary") == 1.0
    assert fit_temperature(np.ones((10, 1)), np.arange(10.0), "regression") == 1.0
