"""Conformal prediction sets on a real test split (issue 16: coverage within ±3 points of its target).

PneumoniaMNIST's official split: a small 2D ResNet trained briefly here (the sets' guarantee does not
depend on the model's quality, only on the calibration units being held out), and the shipped
``cxr_pneumonia`` result, whose test split was scored once for the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import medlearn
from tests.conftest import require_data

REPO = Path(__file__).resolve().parents[2]


def test_aps_sets_cover_the_real_test_split_within_three_points(tmp_path):
    require_data("imaging/pneumoniamnist.npz")
    run = medlearn.train(
        "cxr_pneumonia",
        out=tmp_path / "run",
        overrides=[
            "model.params.widths=[8,16,16,32]",
            "model.params.layers=[1,1,1,1]",
            "train.epochs=2",
            "train.max_train_batches=15",
            "eval.n_bootstrap=0",
            "eval.conformal.score=aps",
            "eval.conformal.coverage=0.9",
        ],
        threads=1,
    )
    scored = run.metrics["conformal"]["scored"]
    assert scored["n"] == 624  # the official test split, scored once
    assert abs(scored["coverage"] - 0.9) <= 0.03
    assert 1.0 < scored["mean_set_size"] < 2.0  # the sets adapt: some units get both classes
    meta = json.loads((run.bundle / "bundle.json").read_text())
    held, steered = meta["validation_parts"]["conformal"], meta["validation_parts"]["early_stopping"]
    assert meta["prediction_sets"]["n_calibration"] == len(held) and not set(held) & set(steered)


def test_the_shipped_result_reached_its_target_within_three_points():
    metrics = json.loads((REPO / "results" / "cxr_pneumonia" / "metrics.json").read_text())
    sets = metrics["conformal"]
    assert sets["coverage"] == 0.9 and sets["scored"]["n"] == 624
    assert sets["scored"]["coverage"] == pytest.approx(0.9, abs=0.03)
