"""Bad inputs: one InputError naming the file (and column), never a traceback from deep inside polars."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from medlearn.errors import InputError
from tests.conftest import require_data
from tests.ehr.helpers import MIMIC4_CORE, copy_tables, read_raw, write_gz_csv


@pytest.fixture(scope="module")
def mimic4_root() -> Path:
    return require_data("ehr/mimic-iv-demo")


def test_missing_admissions_table_names_the_file(mimic4_root, tmp_path):
    from medlearn.ehr.io import read_source

    copy_tables(mimic4_root, tmp_path, [t for t in MIMIC4_CORE if "admissions" not in t])
    with pytest.raises(InputError) as err:
        read_source(tmp_path)
    message = str(err.value)
    assert message.startswith(str(tmp_path / "hosp" / "admissions.csv.gz")) and "missing" in message


def test_missing_admittime_column_names_file_and_column(mimic4_root, tmp_path):
    from medlearn.ehr.io import read_source

    copy_tables(
        mimic4_root, tmp_path, MIMIC4_CORE, edit={"hosp/admissions.csv.gz": lambda df: df.drop("admittime")}
    )
    with pytest.raises(InputError) as err:
        read_source(tmp_path)
    assert str(err.value) == f"{tmp_path / 'hosp' / 'admissions.csv.gz'}: missing required column 'admittime'"


def test_malformed_timestamps_become_null_and_are_counted(mimic4_root, tmp_path):
    from medlearn.ehr.io import read_source

    def corrupt_labs(df: pl.DataFrame) -> pl.DataFrame:
        bad = {"172061": "2148-13-45 99:00:00", "172062": "yesterday"}
        return df.with_columns(
            pl.col("labevent_id")
            .replace_strict(bad, default=None)
            .fill_null(pl.col("storetime"))
            .alias("storetime")
        )

    def corrupt_admissions(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(
            pl.when(pl.col("hadm_id") == "23300884")
            .then(pl.lit("2125-03-19"))
            .otherwise(pl.col("dischtime"))
            .alias("dischtime")
        )

    copy_tables(
        mimic4_root,
        tmp_path,
        MIMIC4_CORE,
        edit={"hosp/labevents.csv.gz": corrupt_labs, "hosp/admissions.csv.gz": corrupt_admissions},
    )
    source = read_source(tmp_path)
    assert "labevents.csv.gz: 2 malformed 'storetime' timestamp(s) set to null" in source.notes
    assert "admissions.csv.gz: 1 malformed 'dischtime' timestamp(s) set to null" in source.notes
    labs = source.events.filter(pl.col("source_table") == "hosp/labevents").collect()
    assert labs.height == 107_727 and labs["time"].null_count() == 2 + 992  # + never resulted
    adm = source.admissions.filter(pl.col("admission_id") == "23300884").collect()
    assert adm["discharge_time"].to_list() == [None] and adm["admit_time"].null_count() == 0
    # the admission's diagnoses lose their (discharge) time too, and say so
    assert any("without a known admission discharge time" in note for note in source.notes)


def test_unknown_or_missing_folders(tmp_path):
    from medlearn.ehr.io import read_source

    (tmp_path / "notes.txt").write_text("not an EHR export")
    with pytest.raises(InputError) as err:
        read_source(tmp_path)
    message = str(err.value)
    assert message.startswith(str(tmp_path)) and "hosp/" in message and "ADMISSIONS.csv.gz" in message
    assert "patient.csv" in message and "metadata/dataset.json" in message
    with pytest.raises(InputError, match="does not exist"):
        read_source(tmp_path / "absent")
    with pytest.raises(InputError, match="is a file"):
        read_source(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="unknown EHR source kind 'omop'"):
        read_source(tmp_path, kind="omop")


def test_ragged_or_empty_csv_is_an_input_error(mimic4_root, tmp_path):
    from medlearn.ehr.io import read_source

    copy_tables(mimic4_root, tmp_path, MIMIC4_CORE)
    procedures = tmp_path / "hosp" / "procedures_icd.csv.gz"
    rows = gzip.decompress(procedures.read_bytes()).decode().splitlines()
    rows[3] += ",surplus,fields"
    procedures.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    with pytest.raises(InputError, match=r"procedures_icd\.csv\.gz: cannot be read as CSV"):
        read_source(tmp_path)
    procedures.write_bytes(gzip.compress(b""))
    with pytest.raises(InputError, match=r"procedures_icd\.csv\.gz: file is empty"):
        read_source(tmp_path)


def test_eicu_without_patient_table(tmp_path):
    from medlearn.ehr.io.eicu import read_eicu

    write_gz_csv(read_raw(require_data("ehr/eicu-demo") / "lab.csv").head(5), tmp_path / "lab.csv.gz")
    with pytest.raises(InputError, match=r"patient\.csv\.gz: required table is missing"):
        read_eicu(tmp_path)


def test_validate_schema_names_the_column():
    from medlearn.ehr.io.schema import EVENT_SCHEMA, validate_schema

    frame = pl.LazyFrame(schema={**EVENT_SCHEMA, "time": pl.String})
    with pytest.raises(InputError, match="events.parquet: column 'time' has type String"):
        validate_schema(frame, EVENT_SCHEMA, "events.parquet")
    with pytest.raises(InputError, match="missing required column 'code'"):
        validate_schema(pl.LazyFrame(schema=EVENT_SCHEMA).drop("code"), EVENT_SCHEMA, "x")
    with pytest.raises(InputError, match="unexpected column"):
        validate_schema(pl.LazyFrame(schema={**EVENT_SCHEMA, "extra": pl.Int8}), EVENT_SCHEMA, "x")
