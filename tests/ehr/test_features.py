"""EHR features: nothing recorded at or after the prediction time reaches the model."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from medlearn.ehr.features import Featurize, Window, build_cohort, extract_units, fit_featurize
from medlearn.ehr.io import read_source
from medlearn.ehr.io.schema import EVENT_SCHEMA
from tests.conftest import require_data


@pytest.fixture(scope="module")
def mimic4():
    return read_source(require_data("ehr/mimic-iv-demo"))


def _event(subject: str, admission: str, time, code: str, value: float) -> pl.DataFrame:
    row = {
        "subject_id": subject,
        "admission_id": admission,
        "stay_id": None,
        "time": time,
        "code_system": "MIMIC4_LABITEM",
        "code": code,
        "value_num": value,
        "unit": "mg/dL",
        "value_text": str(value),
        "source_table": "test",
    }
    return pl.DataFrame([row], schema=EVENT_SCHEMA)


def test_cohort_is_admissions_still_in_hospital_at_the_prediction_time(mimic4):
    cohort = build_cohort(mimic4.admissions, Window(24, 2))
    assert len(cohort) == 245  # of 275 admissions, 30 end (discharge or death) within 24 h
    stay_h = (cohort["discharge_time"] - cohort["admit_time"]).dt.total_seconds() / 3600
    assert (stay_h > 24).all()
    assert cohort["remaining_los_days"].min() > 0


def test_an_event_after_the_cutoff_never_reaches_the_model(mimic4):
    window = Window(24, 2)
    cohort = build_cohort(mimic4.admissions, window).head(5)
    first = cohort.row(0, named=True)
    late = _event(first["subject_id"], first["admission_id"], first["cutoff"], "LEAK_AT_CUTOFF", 1e6)
    later = _event(
        first["subject_id"], first["admission_id"], first["cutoff"] + timedelta(hours=5), "LEAK_LATER", 1e6
    )
    early = _event(
        first["subject_id"], first["admission_id"], first["cutoff"] - timedelta(minutes=1), "EARLY", 7.0
    )
    base = extract_units(mimic4.events, cohort, window)
    spiked = extract_units(
        pl.concat([mimic4.events, late.lazy(), later.lazy(), early.lazy()]), cohort, window
    )
    keys = spiked[0]["lab_keys"]
    assert "MIMIC4_LABITEM//EARLY" in keys
    assert not any("LEAK" in k for u in spiked for k in u["lab_keys"] + u["code_keys"] + u["history"])
    params = fit_featurize(base, window.n_bins, min_count=1)
    featurize = Featurize(**params)
    for a, b in zip(base[1:], spiked[1:]):
        np.testing.assert_array_equal(featurize(a), featurize(b))


def test_current_diagnoses_only_enter_through_the_named_ablation(mimic4):
    window = Window(24, 2)
    cohort = build_cohort(mimic4.admissions, window)
    honest = extract_units(mimic4.events, cohort, window)
    leaky = extract_units(mimic4.events, cohort, window, leaky_current_diagnoses=True)
    diagnoses = (
        mimic4.events.filter(pl.col("code_system").is_in(["ICD9CM", "ICD10CM"]))
        .with_columns(key=pl.col("code_system") + "//" + pl.col("code"))
        .collect()
    )
    changed = 0
    for unit_honest, unit_leaky, row in zip(honest, leaky, cohort.to_dicts()):
        mine = diagnoses.filter(pl.col("subject_id") == row["subject_id"])
        earlier = set(mine.filter(pl.col("time") < row["admit_time"])["key"].to_list())
        current = set(mine.filter(pl.col("admission_id") == row["admission_id"])["key"].to_list())
        assert set(unit_honest["history"]) <= earlier  # only what was known before this admission
        assert current <= set(unit_leaky["history"])
        changed += bool(current - earlier)
    assert changed > 100  # the ablation really adds information for most admissions


def test_featurize_forward_fills_masks_and_repeats_statics():
    raw = {
        "lab_bins": [1, 3],
        "lab_keys": ["L//a", "L//a"],
        "lab_values": [10.0, 30.0],
        "code_bins": [2],
        "code_keys": ["NDC//x"],
        "history": ["ICD10CM//I10"],
        "age_years": 70.0,
        "sex": "F",
        "admission_type": "URGENT",
        "n_prior_admissions": 1,
    }
    f = Featurize(
        n_bins=5,
        lab_keys=["L//a"],
        lab_low=[0.0],
        lab_high=[100.0],
        lab_mean=[20.0],
        lab_std=[10.0],
        code_keys=["NDC//x"],
        history_keys=["ICD10CM//I10"],
        admission_types=["URGENT"],
        age_mean=60.0,
        age_std=10.0,
    )
    x = f(raw)
    assert x.shape == (5, f.n_features)
    np.testing.assert_allclose(x[:, 0], [0.0, -1.0, -1.0, 1.0, 1.0])  # z-score, forward-filled, 0 before
    np.testing.assert_allclose(x[:, 1], [0, 1, 0, 1, 0])  # measured in this bin
    np.testing.assert_allclose(x[:, 2], [0, 0, 1, 0, 0])  # the medication
    assert (x[:, 4] == 1.0).all() and (x[:, -1] == 1.0).all()  # age z-score 1; history code repeated
    assert f.unknown_codes({**raw, "code_keys": ["NDC//new"]}) == ["NDC//new"]


def test_vocabularies_come_from_the_training_units_only(mimic4):
    window = Window(24, 2)
    units = extract_units(mimic4.events, build_cohort(mimic4.admissions, window), window)
    train = units[:100]
    params = fit_featurize(train, window.n_bins)
    seen = {k for u in train for k in u["code_keys"]}
    assert set(params["code_keys"]) <= seen
