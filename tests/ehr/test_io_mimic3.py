"""MIMIC-III partial demo → canonical tables: counts, date-only prescriptions, ages > 89, header case."""

from __future__ import annotations

import gzip
from datetime import datetime, time
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import require_data


@pytest.fixture(scope="module")
def root() -> Path:
    return require_data("ehr/mimic-iii-demo")


@pytest.fixture(scope="module")
def source(root: Path):
    from medlearn.ehr.io.mimic3 import read_mimic3

    return read_mimic3(root)


def test_counts_and_schema(events, admissions):
    from medlearn.ehr.io.schema import ADMISSION_SCHEMA, EVENT_SCHEMA

    assert admissions.height == 129 and admissions["subject_id"].n_unique() == 100
    assert dict(events.group_by("source_table").len().iter_rows()) == {
        "diagnoses_icd": 1_761,
        "procedures_icd": 506,
        "prescriptions": 10_398,
    }
    assert dict(events.schema) == EVENT_SCHEMA and dict(admissions.schema) == ADMISSION_SCHEMA
    assert events["time"].null_count() == 0


def test_prescriptions_count_at_the_end_of_their_day(events):
    rx = events.filter(pl.col("source_table") == "prescriptions")
    assert set(rx["time"].dt.time()) == {time(23, 59, 59)}
    # ROW_ID 32600: subject 42458, startdate 2146-07-21 00:00:00, NDC 00006494300, 0.5 mL
    row = rx.filter((pl.col("subject_id") == "42458") & (pl.col("code") == "00006494300"))
    assert row.select("time", "code_system", "value_num", "unit").row(0) == (
        datetime(2146, 7, 21, 23, 59, 59),
        "NDC",
        0.5,
        "mL",
    )
    assert dict(rx.group_by("code_system").len().iter_rows()) == {"NDC": 8_920, "DRUG": 1_478}


def test_diagnoses_and_procedures_at_discharge(events, admissions):
    coded = events.filter(pl.col("source_table").is_in(["diagnoses_icd", "procedures_icd"]))
    joined = coded.join(admissions, on="admission_id")
    assert joined.height == coded.height and (joined["time"] == joined["discharge_time"]).all()
    first = coded.filter((pl.col("admission_id") == "142345") & (pl.col("code") == "99591"))
    assert first.select("code_system", "time").row(0) == ("ICD9CM", datetime(2164, 11, 1, 17, 15))
    proc = coded.filter((pl.col("admission_id") == "167957") & (pl.col("code") == "3605"))
    assert proc.select("code_system", "time").row(0) == ("ICD9PCS", datetime(2171, 11, 6, 14, 59))


def test_age_from_dob_capped_at_90(admissions, source):
    row = admissions.filter(pl.col("admission_id") == "142345").row(0, named=True)
    expected = (datetime(2164, 10, 23, 21, 9) - datetime(2094, 3, 5)).total_seconds() / (86400 * 365.2425)
    assert row["age_years"] == pytest.approx(expected) and 70 < expected < 71
    assert row["sex"] == "F" and row["admission_type"] == "EMERGENCY" and row["died_in_hospital"] is False
    shifted = admissions.filter(pl.col("subject_id") == "42458")  # DOB 1846: "300 years old"
    assert shifted["age_years"].to_list() == [90.0]
    assert admissions.filter(pl.col("age_years") == 90.0).height == 9
    assert any("9 admission(s) with age > 89" in note for note in source.notes)
    assert admissions["died_in_hospital"].sum() == 40
    assert any("LABEVENTS.csv.gz absent" in note for note in source.notes)


def test_upper_case_headers_and_lower_case_file_names_are_accepted(root, tmp_path, events):
    from medlearn.ehr.io import read_source

    for path in root.glob("*.csv.gz"):
        with gzip.open(path, "rt") as fh:
            header, rest = fh.readline().upper(), fh.read()
        with gzip.open(tmp_path / path.name.lower(), "wt", compresslevel=1) as fh:  # admissions.csv.gz
            fh.write(header + rest)
    upper = read_source(tmp_path, cache=False)
    assert upper.kind == "mimic3"
    assert upper.events.select(pl.len()).collect().item() == events.height
    assert upper.admissions.select(pl.col("age_years").max()).collect().item() == 90.0
