"""EHR table de-identification on the real MIMIC-IV, MIMIC-III and eICU demo tables."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest

from tests.conftest import require_data, require_module

pl = require_module("polars")

from medlearn.privacy.deid import deidentify  # noqa: E402
from medlearn.privacy.keys import Keyring  # noqa: E402
from medlearn.privacy.tables_deid import read_table  # noqa: E402

KEY = bytes(range(32))
TABLES = ("hosp/patients.csv.gz", "hosp/admissions.csv.gz", "hosp/labevents.csv.gz", "icu/icustays.csv.gz")


@pytest.fixture(scope="module")
def mimic(tmp_path_factory: pytest.TempPathFactory):
    """Four MIMIC-IV demo tables de-identified; two of them again with the same key and with another."""
    source = require_data("ehr/mimic-iv-demo")
    root = tmp_path_factory.mktemp("mimic")
    inp = root / "in"
    for table in TABLES:
        (inp / table).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / table, inp / table)
    before = {t: hashlib.sha256((inp / t).read_bytes()).hexdigest() for t in TABLES}
    run = deidentify(inp, root / "out", Keyring(KEY))
    small = root / "small"  # the repeat runs on the two small tables only (labevents takes seconds)
    for table in TABLES[:2]:
        (small / table).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / table, small / table)
    deidentify(small, root / "again", Keyring(KEY))
    deidentify(small, root / "other", Keyring(bytes(32)))
    return {"in": inp, "root": root, "run": run, "before": before}


def load(folder: Path, table: str):
    return read_table(folder / table)


def test_pseudonyms_link_the_tables(mimic):
    out = mimic["root"] / "out"
    patients, admissions = load(out, TABLES[0]), load(out, TABLES[1])
    labs, stays = load(out, TABLES[2]), load(out, TABLES[3])
    subjects = set(patients["subject_id"])
    assert set(admissions["subject_id"]) <= subjects and len(subjects) == 100
    assert set(labs["subject_id"]) <= subjects
    assert set(stays["hadm_id"]) <= set(admissions["hadm_id"])
    # the same row before and after: subject and admission pseudonyms keep their pairing
    original = load(mimic["in"], TABLES[1])
    pairs_before = len(set(zip(original["subject_id"], original["hadm_id"])))
    assert len(set(zip(admissions["subject_id"], admissions["hadm_id"]))) == pairs_before


def test_no_original_id_value_remains(mimic):
    out = mimic["root"] / "out"
    for table in TABLES:
        before, after = load(mimic["in"], table), load(out, table)
        for column in ("subject_id", "hadm_id", "stay_id", "labevent_id", "specimen_id", "order_provider_id"):
            if column in before.columns:
                originals = set(before[column].drop_nulls())
                assert not originals & set(after[column].drop_nulls()), f"{table}.{column}"
    raw = gzip.open(out / "hosp/admissions.csv.gz").read().decode()
    for subject in set(load(mimic["in"], TABLES[1])["subject_id"]):
        assert subject not in raw


def test_intervals_are_kept_and_dates_moved(mimic):
    def frame(folder: Path):
        return load(folder, TABLES[1]).select(
            pl.col("admittime").str.to_datetime(), pl.col("dischtime").str.to_datetime(), "hadm_id"
        )

    before, after = frame(mimic["in"]), frame(mimic["root"] / "out")
    assert (before["dischtime"] - before["admittime"]).to_list() == (
        after["dischtime"] - after["admittime"]
    ).to_list()
    shift = (after["admittime"] - before["admittime"]).dt.total_days()
    assert (shift.abs() >= 180).all() and (shift.abs() <= 3650).all()
    assert shift.n_unique() > 10  # per patient, not one global offset


def test_one_offset_per_patient_across_tables(mimic):
    out = mimic["root"] / "out"

    def offsets(table: str, column: str) -> dict[str, int]:
        before, after = load(mimic["in"], table), load(out, table)
        days = (
            after[column].str.slice(0, 10).str.to_date() - before[column].str.slice(0, 10).str.to_date()
        ).dt.total_days()
        frame = pl.DataFrame({"subject": after["subject_id"], "days": days}).drop_nulls()
        grouped = frame.group_by("subject").agg(pl.col("days").n_unique().alias("n"), pl.col("days").first())
        assert (grouped["n"] == 1).all()
        return dict(zip(grouped["subject"], grouped["days"]))

    admissions, labs = offsets(TABLES[1], "admittime"), offsets(TABLES[2], "charttime")
    assert all(admissions[s] == labs[s] for s in labs if s in admissions)


def test_anchor_year_moves_with_the_dates(mimic):
    before, after = load(mimic["in"], TABLES[0]), load(mimic["root"] / "out", TABLES[0])
    admissions_before = load(mimic["in"], TABLES[1])
    admissions_after = load(mimic["root"] / "out", TABLES[1])
    shift = (
        admissions_after["admittime"].str.slice(0, 10).str.to_date()
        - admissions_before["admittime"].str.slice(0, 10).str.to_date()
    ).dt.total_days()
    by_subject = dict(zip(admissions_after["subject_id"], shift))
    for subject, year_before, year_after in zip(
        after["subject_id"], before["anchor_year"], after["anchor_year"]
    ):
        if subject in by_subject:
            assert int(year_after) - int(year_before) == round(by_subject[subject] / 365.25)


def test_same_key_same_output_other_key_other_pseudonyms(mimic):
    root = mimic["root"]
    assert load(root / "out", TABLES[1]).equals(load(root / "again", TABLES[1]))
    assert not set(load(root / "out", TABLES[0])["subject_id"]) & set(
        load(root / "other", TABLES[0])["subject_id"]
    )


def test_input_untouched_and_report_per_column(mimic):
    for table, digest in mimic["before"].items():
        assert hashlib.sha256((mimic["in"] / table).read_bytes()).hexdigest() == digest
    entries = {e["path"]: e for e in mimic["run"].report["files"]}
    columns = entries["hosp/admissions.csv.gz"]["columns"]
    assert columns["subject_id"].startswith("pseudonym")
    assert columns["admittime"].startswith("date shifted per subject_id")
    assert columns["race"] == "kept"
    assert entries["hosp/labevents.csv.gz"]["columns"]["comments"].startswith("free text scrubbed")


def test_eicu_ids_are_pseudonymised_and_offsets_kept(tmp_path: Path):
    source = require_data("ehr/eicu-demo")
    for name in ("patient.csv", "lab.csv"):
        shutil.copy(source / name, tmp_path / name)
    deidentify(tmp_path / "patient.csv", tmp_path / "out" / "patient.csv", Keyring(KEY))
    deidentify(tmp_path / "lab.csv", tmp_path / "out2" / "lab.csv", Keyring(KEY))
    before, after = read_table(tmp_path / "patient.csv"), read_table(tmp_path / "out" / "patient.csv")
    before = before.filter(~pl.all_horizontal(pl.all().is_null()))
    assert not set(before["uniquepid"]) & set(after["uniquepid"])
    assert after["hospitaladmitoffset"].to_list() == before["hospitaladmitoffset"].to_list()
    labs = read_table(tmp_path / "out2" / "lab.csv")
    assert set(labs["patientunitstayid"]) <= set(after["patientunitstayid"])


def test_mimic_iii_dates_and_ids(tmp_path: Path):
    source = require_data("ehr/mimic-iii-demo/PATIENTS.csv.gz")
    deidentify(source, tmp_path / "PATIENTS.csv.gz", Keyring(KEY))
    before, after = read_table(source), read_table(tmp_path / "PATIENTS.csv.gz")
    assert not set(before["subject_id"]) & set(after["subject_id"])
    assert not set(before["dob"]) & set(after["dob"])
    assert after["gender"].to_list() == before["gender"].to_list()
