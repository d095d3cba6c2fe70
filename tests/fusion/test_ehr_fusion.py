"""The MIMIC-IV pairing: lab/event series, diagnosis history and demographics as separate encoders over the
columns the featurizer already makes (no re-extraction), on the same admissions and split as the LSTM."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_data


@pytest.fixture(scope="module")
def mimic4():
    return require_data("ehr/mimic-iv-demo")


def test_parts_cover_every_featurized_column_once(mimic4):
    from medlearn.ehr.features import Featurize
    from medlearn.ehr.fusion_tasks import InHospitalMortalityParts
    from medlearn.ehr.tasks import InHospitalMortality
    from medlearn.engine.data import group_split

    task = InHospitalMortalityParts({"prediction_hours": 24, "bin_hours": 2})
    table = task.load(mimic4)
    base = InHospitalMortality({"prediction_hours": 24, "bin_hours": 2}).load(mimic4)
    assert table.ids == base.ids  # the same admissions, so the same patient-level split
    np.testing.assert_array_equal(
        group_split(table.targets, table.groups, 0.2, 0.25, 0),
        group_split(base.targets, base.groups, 0.2, 0.25, 0),
    )
    spec = task.fit_preprocessing("fused_columns", table)
    names = Featurize(**spec[0]["params"]).feature_names()
    parts = task.model_kwargs("fused_columns")["parts"]
    assert set(parts) == {"timeseries", "history", "static"}
    columns = sorted(c for p in parts.values() for c in p["columns"])
    assert columns == list(range(len(names)))
    assert all(names[c].startswith("history:") for c in parts["history"]["columns"])
    assert {names[c] for c in parts["static"]["columns"]} >= {"age", "sex_F", "sex_M", "n_prior_admissions"}
    assert parts["timeseries"]["series"] and not parts["static"]["series"]
    assert task.model_kwargs("lstm")["in_features"] == len(names)  # the baseline runs unchanged


def test_fused_ehr_model_trains_and_predicts_probabilities(mimic4, tmp_path):
    from medlearn import api

    run = api.train(
        "ehr_mortality_mimic4_fusion",
        out=tmp_path / "run",
        overrides=["train.epochs=2", "eval.n_bootstrap=0"],
        data=mimic4,
        threads=1,
    )
    assert run.metrics["n"] > 0
    bundle = api.load_bundle(run.bundle)
    units = bundle.task.load(mimic4).subset(np.arange(5))
    p = np.asarray(bundle.predict_raw(list(units.raw))).reshape(5, -1)
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
