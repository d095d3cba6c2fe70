"""eICU demo subset → canonical tables: blank rows, the offset clock, ages, labs and medications."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import require_data


@pytest.fixture(scope="module")
def root() -> Path:
    return require_data("ehr/eicu-demo")


@pytest.fixture(scope="module")
def source(root: Path):
    from medlearn.ehr.io.eicu import read_eicu

    return read_eicu(root)


@pytest.fixture(scope="module")
def patient(root: Path) -> pl.DataFrame:
    raw = pl.read_csv(root / "patient.csv", infer_schema=False)
    assert raw.height == 178  # 174 stays + 4 blank lines read as all-null rows
    return raw.filter(~pl.all_horizontal(pl.all().is_null()))


def test_counts_schema_and_blank_rows(source, events, admissions):
    from medlearn.ehr.io.schema import ADMISSION_SCHEMA, EVENT_SCHEMA

    stays = events.filter(pl.col("code_system") == "ICU_ADMISSION")
    assert stays.height == 174 and stays["stay_id"].n_unique() == 174
    assert admissions.height == 144 and admissions["subject_id"].n_unique() == 100
    assert dict(events.schema) == EVENT_SCHEMA and dict(admissions.schema) == ADMISSION_SCHEMA
    assert events["subject_id"].null_count() == 0 and events["time"].null_count() == 0
    per_table = dict(events.group_by("source_table").len().iter_rows())
    assert per_table["lab"] == 29_961 and per_table["diagnosis"] == 1_518 and per_table["treatment"] == 2_359
    assert per_table["medication"] == 4_964 - 108  # code-less orders dropped; cancelled ones kept
    assert "medication.csv: 182 cancelled order(s) kept as orders" in "\n".join(source.notes)
    assert "patient.csv: 4 blank line(s) (read as all-null rows) dropped" in source.notes
    assert "hospital.csv: 4 blank line(s) (read as all-null rows) dropped" in source.notes


def test_offset_clock_reproduces_the_recorded_times_of_day(events, admissions, patient):
    unit = events.filter(pl.col("code_system") == "ICU_ADMISSION").select("stay_id", "admission_id", "time")
    checked = patient.join(unit, left_on="patientunitstayid", right_on="stay_id").join(
        admissions, left_on="patienthealthsystemstayid", right_on="admission_id"
    )
    assert checked.height == 174
    assert (checked["time"].dt.strftime("%H:%M:%S") == checked["unitadmittime24"]).all()
    assert (checked["discharge_time"].dt.strftime("%H:%M:%S") == checked["hospitaldischargetime24"]).all()
    assert (checked["admit_time"].dt.year() == checked["hospitaldischargeyear"].cast(pl.Int32)).all()


def test_a_lab_event_lands_at_unit_admission_plus_its_offset(events, admissions):
    # stay 758779: hospital admitted 2015-01-01 16:16 (anchor), unit admitted 5989 min later
    unit_admit = datetime(2015, 1, 1, 16, 16) + timedelta(minutes=5989)
    stay = events.filter(pl.col("stay_id") == "758779")
    assert stay.filter(pl.col("code_system") == "ICU_ADMISSION")["time"].to_list() == [unit_admit]
    # drawn at offset -6475, the stored (revised) value at -6440: it counts from its revision
    bun = stay.filter((pl.col("code") == "BUN") & (pl.col("time") == unit_admit - timedelta(minutes=6440)))
    assert bun.select("subject_id", "admission_id", "value_num", "unit").row(0) == (
        "006-100065",
        "585621",
        31.0,
        "mg/dL",
    )
    row = admissions.filter(pl.col("admission_id") == "585621").row(0, named=True)
    assert row["discharge_time"] == unit_admit + timedelta(minutes=8964)
    assert (row["sex"], row["age_years"], row["admission_type"]) == ("F", 67.0, "Operating Room")


def test_an_order_counts_from_its_entry_not_the_start_it_records(events):
    # medication 9726266 of stay 141765: entered at offset 1 for a start recorded at offset -188
    stay = events.filter(pl.col("stay_id") == "141765")
    unit_admit = stay.filter(pl.col("code_system") == "ICU_ADMISSION")["time"].item()
    diltiazem = stay.filter(pl.col("code") == "5 ML VIAL : DILTIAZEM HCL 25 MG/5ML IV SOLN")
    assert unit_admit + timedelta(minutes=1) in diltiazem["time"].to_list()
    assert unit_admit - timedelta(minutes=188) not in diltiazem["time"].to_list()


def test_the_order_of_hospital_stays_is_unknown_also_from_the_cache(source):
    from medlearn.ehr.io import read_source

    assert source.admission_order_known is False
    assert read_source(source.root).admission_order_known is False  # kept through the parquet cache
    assert read_source(source.root).admission_order_known is False  # (second call: read from parquet)


def test_ages_death_and_text_values(events, admissions, source):
    assert admissions["age_years"].max() == 90.0  # "> 89"
    assert admissions.filter(pl.col("age_years") == 90.0).height == 4
    assert admissions["died_in_hospital"].sum() == 6 and admissions["died_in_hospital"].null_count() == 2
    died = admissions.filter(pl.col("died_in_hospital"))
    assert (died["death_time"] == died["discharge_time"]).all()
    acetaminophen = events.filter((pl.col("stay_id") == "869526") & (pl.col("code") == "Acetaminophen"))
    assert acetaminophen.select("value_num", "value_text").row(0) == (None, "<2")
    peep = events.filter((pl.col("code") == "PEEP") & (pl.col("value_text") == "5.0"))
    assert peep.height > 0 and set(peep["value_num"]) == {5.0}  # empty labresult, numeric text
    hicl = events.filter(pl.col("code_system") == "EICU_HICL")
    assert hicl.height > 0 and not hicl["code"].str.ends_with(".0").any()
    assert any("patient-year(s) with several hospital stays" in note for note in source.notes)
