"""MIMIC-IV demo → canonical tables: counts against the data README, schema, time conventions, cache."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import require_data
from tests.ehr.helpers import MIMIC4_CORE, copy_tables, read_raw


@pytest.fixture(scope="module")
def root() -> Path:
    return require_data("ehr/mimic-iv-demo")


@pytest.fixture(scope="module")
def source(root: Path):
    from medlearn.ehr.io.mimic4 import read_mimic4

    return read_mimic4(root)


def test_counts_match_the_data_readme(events, admissions):
    assert admissions.height == 275 and admissions["admission_id"].n_unique() == 275
    assert admissions["subject_id"].n_unique() == 100
    per_table = dict(events.group_by("source_table").len().iter_rows())
    assert per_table == {
        "hosp/labevents": 107_727,
        "hosp/diagnoses_icd": 4_506,
        "hosp/prescriptions": 18_087,
        "hosp/procedures_icd": 722,
        "icu/inputevents": 20_404,
        "icu/outputevents": 9_362,
        "icu/procedureevents": 1_468,
        "icu/datetimeevents": 15_280,
        "icu/icustays": 2 * 140,
    }
    assert events["time"].null_count() == 992  # labs never resulted (no storetime): never known


def test_canonical_schema_is_exact(source, events, admissions):
    from medlearn.ehr.io.schema import ADMISSION_SCHEMA, EVENT_SCHEMA, validate_schema

    assert dict(events.schema) == EVENT_SCHEMA and list(events.columns) == list(EVENT_SCHEMA)
    assert dict(admissions.schema) == ADMISSION_SCHEMA and list(admissions.columns) == list(ADMISSION_SCHEMA)
    validate_schema(source.events, EVENT_SCHEMA, "events")  # lazily, without collecting
    assert events["time"].dtype == pl.Datetime("us")


def test_diagnoses_carry_the_discharge_time(events, admissions):
    diag = events.filter(pl.col("source_table") == "hosp/diagnoses_icd")
    joined = diag.join(admissions, on="admission_id", how="left")
    assert (joined["time"] == joined["discharge_time"]).all()
    row = diag.filter((pl.col("admission_id") == "22580999") & (pl.col("code") == "4139"))
    assert row["code_system"].to_list() == ["ICD9CM"]
    assert row["time"].to_list() == [datetime(2120, 5, 17, 16, 0)]  # dischtime of hadm 22580999
    assert set(diag["code_system"]) == {"ICD9CM", "ICD10CM"}
    assert diag.filter(pl.col("code_system") == "ICD10CM").height == 2_313


def test_procedure_billing_codes_count_at_discharge(events, admissions):
    proc = events.filter((pl.col("admission_id") == "27505812") & (pl.col("code") == "3961"))
    assert proc["code_system"].to_list() == ["ICD9PCS"]
    discharge = admissions.filter(pl.col("admission_id") == "27505812")["discharge_time"].item()
    assert proc["time"].to_list() == [discharge] == [datetime(2146, 12, 19, 13, 37)]  # chartdate 2146-12-15


def test_labs_count_from_their_result_time(events):
    rdw = events.filter((pl.col("subject_id") == "10014354") & (pl.col("code") == "51277"))
    assert datetime(2148, 8, 16, 1, 30) in rdw["time"].to_list()  # storetime; charttime 2148-08-16 00:00
    assert datetime(2148, 8, 16) not in rdw["time"].to_list()


def test_icu_events_count_from_when_they_were_stored(events):
    icu = events.filter(
        pl.col("source_table").str.starts_with("icu/") & (pl.col("source_table") != "icu/icustays")
    )
    assert icu["time"].null_count() == 0
    raw = read_raw(require_data("ehr/mimic-iv-demo") / "icu" / "outputevents.csv.gz").head(50)
    stored = raw.select(
        pl.max_horizontal(pl.col("charttime", "storetime").str.to_datetime("%Y-%m-%d %H:%M:%S"))
    )
    out = events.filter(pl.col("source_table") == "icu/outputevents")
    assert set(stored.to_series().to_list()) <= set(out["time"].to_list())


def test_lab_values_numeric_and_non_numeric(events):
    labs = events.filter(pl.col("source_table") == "hosp/labevents")
    rdw = labs.filter(
        (pl.col("subject_id") == "10014354")
        & (pl.col("code") == "51277")
        & (pl.col("time") == datetime(2148, 8, 16, 1, 30))
    )
    assert rdw.select("value_num", "unit", "value_text", "code_system").row(0) == (
        15.4,
        "%",
        "15.4",
        "MIMIC4_LABITEM",
    )
    error = labs.filter(
        (pl.col("subject_id") == "10020740")
        & (pl.col("code") == "51237")
        & (pl.col("time") == datetime(2150, 4, 5, 6, 24))
    )  # stored 06:24
    assert error["value_text"].to_list() == ["ERROR"] and error["value_num"].to_list() == [None]
    above = labs.filter(pl.col("value_text") == ">300")
    assert above.height > 0 and above["value_num"].null_count() == above.height
    text_only = labs.filter(pl.col("value_num").is_null() & pl.col("value_text").is_not_null())
    assert text_only.height == 2_893
    assert labs["admission_id"].null_count() == 28_420  # outpatient labs


def test_prescriptions_coded_by_ndc_else_drug_name(events):
    rx = events.filter(pl.col("source_table") == "hosp/prescriptions")
    assert dict(rx.group_by("code_system").len().iter_rows()) == {"NDC": 15_456, "DRUG": 2_631}
    assert "0" not in set(rx.filter(pl.col("code_system") == "NDC")["code"])
    assert rx.filter(pl.col("value_text") == "500,000")["value_num"].unique().to_list() == [500_000.0]


def test_admission_age_sex_and_death(admissions):
    row = admissions.filter(pl.col("admission_id") == "23300884").row(0, named=True)
    assert row["subject_id"] == "10014729" and row["sex"] == "F"
    assert row["age_years"] == 21.0  # anchor_age 21 in anchor_year 2125, admitted 2125
    assert row["admit_time"] == datetime(2125, 3, 19, 16, 58)
    assert admissions["died_in_hospital"].sum() == 15 and admissions["death_time"].null_count() == 260
    assert admissions["age_years"].max() == 90.0
    assert set(admissions["sex"]) == {"F", "M"}


def test_notes_report_the_quirks(source):
    notes = "\n".join(source.notes)
    assert "icu/chartevents.csv.gz absent: no ICU vitals" in notes
    assert "28,420 lab event(s) outside any admission" in notes
    assert "4 admission(s) with deathtime after dischtime" in notes
    assert "8 admission(s) with age > 89" in notes
    assert "6,823 'value' text(s) redacted as '___'" in notes


def test_codes_describe_lab_items_and_ndcs(source):
    codes = source.codes.collect()
    rdw = codes.filter((pl.col("code_system") == "MIMIC4_LABITEM") & (pl.col("code") == "51277"))
    assert rdw["description"].to_list() == ["RDW (Blood)"]
    icd = codes.filter((pl.col("code_system") == "ICD9CM") & (pl.col("code") == "0090"))
    assert icd["description"].to_list() == ["Infectious colitis, enteritis, and gastroenteritis"]


def test_charttime_option_is_the_leaky_specimen_time(root):
    from medlearn.ehr.io.mimic4 import fingerprint, read_mimic4

    source = read_mimic4(root, lab_time="charttime")
    labs = source.events.filter((pl.col("subject_id") == "10014354") & (pl.col("code") == "51277")).collect()
    assert datetime(2148, 8, 16) in labs["time"].to_list()
    assert (
        source.fingerprint
        == fingerprint(root, "charttime")
        != fingerprint(root)
        == fingerprint(root, "storetime")
    )


def test_cache_is_written_once_and_reused(root, monkeypatch):
    import medlearn.ehr.io.mimic4 as mimic4
    from medlearn.ehr.io import cached_events, read_source
    from medlearn.paths import cache_dir

    first = read_source(root)
    folder = cache_dir("ehr", first.fingerprint[:16])
    assert (folder / "events.parquet").is_file() and (folder / "admissions.parquet").is_file()
    assert first.events.select(pl.len()).collect().item() == 177_836

    def boom(*args, **kwargs):
        raise AssertionError("the CSVs were parsed again")

    monkeypatch.setattr(mimic4, "read_mimic4", boom)
    again = read_source(root)  # only hashes the files, then scans the parquet
    assert again.fingerprint == first.fingerprint and again.notes == first.notes
    assert again.admissions.select(pl.len()).collect().item() == 275
    # cached_events on an already-cached source returns the parquet, even if its CSV plan is broken
    broken = type(first)(
        name="x",
        root=root,
        events=pl.LazyFrame({"nope": [1]}),
        admissions=first.admissions,
        fingerprint=first.fingerprint,
    )
    assert cached_events(broken).collect_schema().names()[0] == "subject_id"
    events = pl.read_parquet(folder / "events.parquet")
    assert events["subject_id"].is_sorted()


def test_cache_is_keyed_by_content_not_path(root, tmp_path):
    from medlearn.ehr.io import read_source

    tables = MIMIC4_CORE
    same = copy_tables(root, tmp_path / "same", tables)
    changed = copy_tables(
        root,
        tmp_path / "changed",
        tables,
        edit={
            "hosp/admissions.csv.gz": lambda df: df.with_columns(
                pl.when(pl.col("hadm_id") == "23300884")
                .then(pl.lit("ELECTIVE"))
                .otherwise(pl.col("admission_type"))
                .alias("admission_type")
            )
        },
    )
    a, b = read_source(same), read_source(tmp_path / "same")
    c = read_source(changed)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    row = c.admissions.filter(pl.col("admission_id") == "23300884").collect()
    assert row["admission_type"].to_list() == ["ELECTIVE"]
    assert any("icu/ absent" in note for note in a.notes)
