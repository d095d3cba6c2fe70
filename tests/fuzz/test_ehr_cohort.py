"""EHR cohort honesty: admissions dropped for impossible times or duplicated ids are counted, never silent.

Each case corrupts a copy of a real demo folder (or the synthetic MIMIC-IV generator's output) under
``tmp_path`` and asserts the exact count in the reader's notes, in the run log (one INFO line per reason)
and in the admission table (a duplicated id is counted once, impossible admissions are gone).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import require_data
from tests.ehr.helpers import MIMIC4_CORE, copy_tables, read_raw, write_gz_csv

LOG = "medlearn.ehr.io"


def _swap_every_other(frame: pl.DataFrame, admit: str, discharge: str) -> pl.DataFrame:
    """Admission and discharge exchanged on rows 0, 2, 4 … (a discharge before the admission)."""
    even = pl.int_range(pl.len()) % 2 == 0
    return frame.with_columns(
        pl.when(even).then(pl.col(discharge)).otherwise(pl.col(admit)).alias(admit),
        pl.when(even).then(pl.col(admit)).otherwise(pl.col(discharge)).alias(discharge),
    )


def _note(notes: list[str], fragment: str) -> str:
    found = [n for n in notes if fragment in n]
    assert len(found) == 1, (fragment, notes)
    return found[0]


def _read(root: Path, caplog: pytest.LogCaptureFixture):
    from medlearn.ehr.io import read_source

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOG):
        source = read_source(root, cache=False)
    logged = [r.getMessage() for r in caplog.records if r.name == LOG and r.levelno == logging.INFO]
    return source, logged


@pytest.fixture(scope="module")
def mimic4_demo() -> Path:
    return require_data("ehr/mimic-iv-demo")


@pytest.fixture(scope="module")
def mimic4_raw(mimic4_demo: Path) -> pl.DataFrame:
    raw = read_raw(mimic4_demo / "hosp/admissions.csv.gz")
    assert raw.height == 275 and raw["hadm_id"].n_unique() == 275
    return raw


def test_mimic4_discharge_before_admit_is_counted_not_silent(tmp_path, caplog, mimic4_demo, mimic4_raw):
    from medlearn.ehr.features import Window, build_cohort

    swapped = _swap_every_other(mimic4_raw, "admittime", "dischtime")
    impossible = swapped.filter(pl.col("dischtime") < pl.col("admittime")).height
    assert impossible == 138  # every even row of 275 (none has admittime == dischtime)
    root = copy_tables(
        mimic4_demo, tmp_path / "m4", MIMIC4_CORE, {"hosp/admissions.csv.gz": lambda _: swapped}
    )
    source, logged = _read(root, caplog)
    note = _note(source.notes, "admission(s) with 'dischtime' before 'admittime' dropped from the admissions")
    assert note.startswith("admissions.csv.gz: 138 ")
    assert any(note in line for line in logged)
    admissions = source.admissions.collect()
    assert admissions.height == 275 - 138
    assert (admissions["discharge_time"] >= admissions["admit_time"]).all()
    assert build_cohort(source.admissions, Window()).height == 122  # 245 on the intact table


def test_mimic4_duplicated_hadm_id_is_counted_once(tmp_path, caplog, mimic4_demo, mimic4_raw):
    from medlearn.ehr.features import Window, build_cohort

    # the 10 copies differ from their originals (later discharge): the first row must win
    copies = mimic4_raw.head(10).with_columns(dischtime=pl.lit("2299-01-01 00:00:00"))
    root = copy_tables(
        mimic4_demo,
        tmp_path / "m4",
        MIMIC4_CORE,
        {"hosp/admissions.csv.gz": lambda raw: pl.concat([raw, copies])},
    )
    source, logged = _read(root, caplog)
    note = _note(source.notes, "duplicate hadm_id row(s) dropped from the admissions")
    assert note.startswith("admissions.csv.gz: 10 duplicate hadm_id row(s)")
    assert any(note in line for line in logged)
    admissions = source.admissions.collect()
    assert admissions.height == 275 and admissions["admission_id"].n_unique() == 275
    kept = admissions.filter(pl.col("admission_id").is_in(copies["hadm_id"].implode()))
    assert kept.height == 10 and (kept["discharge_time"].dt.year() != 2299).all()  # first rows kept
    cohort = build_cohort(source.admissions, Window())
    assert cohort.height == 245 and cohort["admission_id"].n_unique() == 245


def test_mimic4_missing_times_each_reason_counted(tmp_path, caplog, mimic4_demo, mimic4_raw):
    row = pl.int_range(pl.len())
    edited = mimic4_raw.with_columns(
        admittime=pl.when(row < 5)
        .then(pl.lit(None))
        .when(row < 8)
        .then(pl.lit("yesterday"))
        .otherwise("admittime"),
        dischtime=pl.when((row >= 20) & (row < 24)).then(pl.lit(None)).otherwise("dischtime"),
    )
    root = copy_tables(
        mimic4_demo, tmp_path / "m4", MIMIC4_CORE, {"hosp/admissions.csv.gz": lambda _: edited}
    )
    source, logged = _read(root, caplog)
    no_admit = _note(source.notes, "admission(s) without a usable 'admittime' dropped from the admissions")
    assert no_admit.startswith("admissions.csv.gz: 8 ")  # 5 empty + 3 malformed
    no_discharge = _note(source.notes, "without a usable 'dischtime' kept")
    assert no_discharge.startswith("admissions.csv.gz: 4 ") and "not in any training cohort" in no_discharge
    assert "admissions.csv.gz: 3 malformed 'admittime' timestamp(s) set to null" in source.notes
    assert {no_admit, no_discharge} <= {line.split(": ", 1)[1] for line in logged}
    assert source.admissions.collect().height == 275 - 8


def test_synthetic_mimic4_swapped_and_duplicated(tmp_path, caplog):
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    root = write_synthetic_mimic4(tmp_path / "syn", n_patients=40, seed=3)
    path = root / "hosp/admissions.csv.gz"
    raw = read_raw(path)
    n = raw.height
    edited = _swap_every_other(raw, "admittime", "dischtime")
    edited = pl.concat([edited, raw.tail(3)])  # three odd-index or even-index rows repeated
    write_gz_csv(edited, path)
    impossible = edited.head(n).filter(pl.col("dischtime") < pl.col("admittime")).height
    assert impossible == (n + 1) // 2
    source, logged = _read(root, caplog)
    assert _note(source.notes, "before 'admittime' dropped").startswith(f"admissions.csv.gz: {impossible} ")
    assert _note(source.notes, "duplicate hadm_id").startswith("admissions.csv.gz: 3 ")
    assert source.admissions.collect().height == n - impossible
    assert len(logged) == 2


def test_mimic3_discharge_before_admit_and_duplicates(tmp_path, caplog):
    demo = require_data("ehr/mimic-iii-demo")
    tables = ["ADMISSIONS.csv.gz", "PATIENTS.csv.gz", "DIAGNOSES_ICD.csv.gz", "PROCEDURES_ICD.csv.gz"]
    tables.append("PRESCRIPTIONS.csv.gz")

    def corrupt(raw: pl.DataFrame) -> pl.DataFrame:
        assert raw.height == 129
        return pl.concat([_swap_every_other(raw, "admittime", "dischtime"), raw.head(4)])

    root = copy_tables(demo, tmp_path / "m3", tables, {"ADMISSIONS.csv.gz": corrupt})
    source, logged = _read(root, caplog)
    assert _note(source.notes, "before 'admittime' dropped").startswith("ADMISSIONS.csv.gz: 65 ")
    assert _note(source.notes, "duplicate hadm_id").startswith("ADMISSIONS.csv.gz: 4 ")
    admissions = source.admissions.collect()
    # rows 0-3 are repeated: 0 and 2 were swapped (their first row is dropped, the copy is a duplicate)
    assert admissions.height == 129 - 65 and admissions["admission_id"].n_unique() == admissions.height
    assert len(logged) == 2


@pytest.fixture(scope="module")
def eicu_demo() -> Path:
    return require_data("ehr/eicu-demo")


def _eicu_copy(demo: Path, dst: Path, patient: pl.DataFrame) -> Path:
    dst.mkdir(parents=True)
    for path in demo.glob("*.csv"):
        if path.name != "patient.csv":
            shutil.copyfile(path, dst / path.name)
    patient.write_csv(dst / "patient.csv")
    return dst


def test_eicu_duplicated_unit_stay_and_discharge_before_admit(tmp_path, caplog, eicu_demo):
    raw = read_raw(eicu_demo / "patient.csv").filter(~pl.all_horizontal(pl.all().is_null()))
    assert raw.height == 174
    first_visits = raw.filter(pl.col("unitvisitnumber") == "1").head(6)["patientunitstayid"]
    # a hospital discharge 10 minutes before the hospital admission on 6 first unit visits
    bad = raw.with_columns(
        hospitaldischargeoffset=pl.when(pl.col("patientunitstayid").is_in(first_visits.implode()))
        .then((pl.col("hospitaladmitoffset").cast(pl.Int64) - 10).cast(pl.String))
        .otherwise("hospitaldischargeoffset")
    )
    copies = raw.head(5).with_columns(hospitaldischargeoffset=pl.lit("999999"))
    root = _eicu_copy(eicu_demo, tmp_path / "eicu", pl.concat([bad, copies]))
    source, logged = _read(root, caplog)
    dup = _note(source.notes, "duplicate patientunitstayid row(s) dropped from the unit stays")
    assert dup.startswith("patient.csv: 5 ")
    impossible = _note(source.notes, "before hospital admission time")
    assert impossible.startswith("patient.csv: 6 ") and "dropped from the admissions" in impossible
    admissions = source.admissions.collect()
    assert admissions.height == 144 - 6
    assert (admissions["discharge_time"] >= admissions["admit_time"]).all()
    stays = source.events.filter(pl.col("code_system") == "ICU_ADMISSION").collect()
    assert stays.height == 174 and stays["stay_id"].n_unique() == 174  # the copies are not stays
    assert len(logged) == 2


@pytest.fixture(scope="module")
def fhir_demo() -> Path:
    return require_data("ehr/fhir/synthea-r4-bundles")


def test_fhir_encounter_ending_before_start_and_repeated(tmp_path, caplog, fhir_demo):
    from medlearn.ehr.io import read_source

    clean = read_source(fhir_demo, cache=False)
    n_clean = clean.admissions.collect().height
    dst = tmp_path / "fhir"
    shutil.copytree(fhir_demo, dst)
    bundle_path = sorted(dst.glob("Bill_Reinger_*.json"))[0]
    bundle = json.loads(bundle_path.read_text())
    encounters = [e for e in bundle["entry"] if e.get("resource", {}).get("resourceType") == "Encounter"]
    assert len(encounters) >= 4
    for entry in encounters[:2]:  # period end before start
        period = entry["resource"]["period"]
        period["start"], period["end"] = period["end"], "1900-01-01T00:00:00+00:00"
    del encounters[2]["resource"]["period"]  # no start at all
    bundle["entry"].append(json.loads(json.dumps(encounters[3])))  # the same Encounter id again
    bundle_path.write_text(json.dumps(bundle))
    source, logged = _read(dst, caplog)
    assert _note(source.notes, "period.end before period.start dropped").startswith("2 ")
    assert _note(source.notes, "without a usable period.start dropped").startswith("1 ")
    assert _note(source.notes, "repeated Encounter(s) dropped").startswith("1 ")
    assert source.admissions.collect().height == n_clean - 3
    assert len(logged) == 3


def test_meds_repeated_admission_and_discharge_before_admit(tmp_path, caplog):
    from medlearn.ehr.io import read_source, write_meds
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    syn = read_source(write_synthetic_mimic4(tmp_path / "syn", n_patients=20, seed=5), cache=False)
    n = syn.admissions.collect().height
    out = write_meds(syn, tmp_path / "meds")
    shard = sorted((out / "data").glob("*.parquet"))[0]
    data = pl.read_parquet(shard)
    admits = data.filter(pl.col("code").str.starts_with("HOSPITAL_ADMISSION"))
    first_ids = admits["admission_id"].head(4)
    discharge = pl.col("code").str.starts_with("HOSPITAL_DISCHARGE")
    moved = pl.col("admission_id").is_in(first_ids.head(2).implode()) & discharge
    data = data.with_columns(
        time=pl.when(moved).then(pl.col("time") - pl.duration(days=400)).otherwise("time")
    )
    repeated = admits.filter(pl.col("admission_id").is_in(first_ids.tail(2).implode()))
    pl.concat([data, repeated]).write_parquet(shard)
    source, logged = _read(out, caplog)
    assert _note(source.notes, "duplicate admission_id row(s) dropped").startswith("data: 2 ")
    impossible = _note(source.notes, "HOSPITAL_DISCHARGE time before HOSPITAL_ADMISSION time dropped")
    assert impossible.startswith("data: 2 ")
    assert source.admissions.collect().height == n - 2
    assert len(logged) == 2


def test_cached_read_logs_and_report_lists_the_counts(tmp_path, caplog, monkeypatch, mimic4_demo, mimic4_raw):
    from medlearn.ehr.quality import quality_html

    monkeypatch.setenv("MEDLEARN_CACHE", str(tmp_path / "cache"))
    swapped = _swap_every_other(mimic4_raw, "admittime", "dischtime")
    root = copy_tables(
        mimic4_demo, tmp_path / "m4", MIMIC4_CORE, {"hosp/admissions.csv.gz": lambda _: swapped}
    )
    from medlearn.ehr.io import read_source

    for _ in range(2):  # the first read writes the cache, the second serves it: both log the count
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=LOG):
            source = read_source(root)
        assert [r.getMessage() for r in caplog.records if "dropped from the admissions" in r.getMessage()]
        assert any("138 admission(s) with 'dischtime' before 'admittime'" in n for n in source.notes)
    html = quality_html(source.notes, pl.DataFrame(schema=_QUALITY_SCHEMA), 122, 24)
    first = html.index("Admissions left out by the readers")
    assert first < html.index("138 admission(s) with &#x27;dischtime&#x27; before &#x27;admittime&#x27;")
    assert html.index("138 admission(s)") < html.index("What the readers found")


_QUALITY_SCHEMA = {
    "key": pl.String,
    "description": pl.String,
    "n": pl.Int64,
    "non_numeric": pl.Int64,
    "examples": pl.List(pl.String),
    "units": pl.List(pl.String),
    "low": pl.Float64,
    "high": pl.Float64,
    "missing_in_window": pl.Float64,
}


def test_the_counts_are_status_lines_when_the_log_shows_warnings_only(
    tmp_path, capsys, mimic4_demo, mimic4_raw
):
    """The CLI logs warnings only: the drop counts are then printed as the run's status lines on stderr."""
    from medlearn.ehr.io import read_source

    swapped = _swap_every_other(mimic4_raw, "admittime", "dischtime")
    root = copy_tables(
        mimic4_demo, tmp_path / "m4", MIMIC4_CORE, {"hosp/admissions.csv.gz": lambda _: swapped}
    )
    logger = logging.getLogger(LOG)
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        read_source(root, cache=False)
    finally:
        logger.setLevel(previous)
    lines = [line for line in capsys.readouterr().err.splitlines() if "dropped from the admissions" in line]
    assert len(lines) == 1 and "138 admission(s) with 'dischtime' before 'admittime'" in lines[0]
