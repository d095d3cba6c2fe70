"""The embedded EHR demo data: real MIMIC-IV layout, read by the real reader, and learnable."""

from __future__ import annotations

import json

import pytest

from medlearn.ehr.io import read_source
from medlearn.ehr.synthetic import write_synthetic_mimic4


def test_synthetic_tables_read_like_mimic4(tmp_path):
    write_synthetic_mimic4(tmp_path, n_patients=40, seed=1)
    source = read_source(tmp_path, cache=False)
    assert source.kind == "mimic4"
    admissions = source.admissions.collect()
    assert admissions["subject_id"].n_unique() == 40 and admissions.height >= 40
    events = source.events.collect()
    assert set(events["code_system"].unique()) >= {"MIMIC4_LABITEM", "DRUG", "ICD10CM"}
    assert (admissions["discharge_time"] > admissions["admit_time"]).all()


def test_same_seed_same_data(tmp_path):
    a, b = (
        write_synthetic_mimic4(tmp_path / "a", 10, seed=3),
        write_synthetic_mimic4(tmp_path / "b", 10, seed=3),
    )
    first, second = read_source(a, cache=False), read_source(b, cache=False)
    order = ["subject_id", "admission_id", "time", "code_system", "code", "value_num"]
    assert (
        first.admissions.collect()
        .sort("admission_id")
        .equals(second.admissions.collect().sort("admission_id"))
    )
    assert first.events.collect().sort(order).equals(second.events.collect().sort(order))


@pytest.mark.slow
def test_ehr_demo_learns_length_of_stay(tmp_path):
    from typer.testing import CliRunner

    from medlearn.cli import app

    result = CliRunner().invoke(
        app, ["demo", "ehr", "--out", str(tmp_path / "d"), "--quiet"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert metrics["metrics"]["kappa_linear"]["value"] > 0.3  # severity drives LOS: there is signal to learn
