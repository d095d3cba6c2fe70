"""MEDS: write any source out, read it back unchanged; read MEDS written by other ETLs."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import require_data

_KEY = [
    "subject_id",
    "time",
    "code_system",
    "code",
    "admission_id",
    "stay_id",
    "unit",
    "value_text",
    "source_table",
    "value_num",
]


@pytest.fixture(scope="module")
def mimic4(tmp_path_factory: pytest.TempPathFactory):
    from medlearn.ehr.io.meds import write_meds
    from medlearn.ehr.io.mimic4 import read_mimic4

    source = read_mimic4(require_data("ehr/mimic-iv-demo"))
    out = write_meds(source, tmp_path_factory.mktemp("meds") / "mimic4")
    return source, out


def test_layout_and_arrow_schema_follow_meds(mimic4):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, out = mimic4
    schema = pq.read_schema(out / "data" / "0.parquet")
    assert schema.field("subject_id").type == pa.int64() and schema.field("time").type == pa.timestamp("us")
    assert schema.field("code").type == pa.string() and schema.field("numeric_value").type == pa.float32()
    assert schema.field("text_value").type == pa.large_string()
    meta = json.loads((out / "metadata" / "dataset.json").read_text())
    assert meta["dataset_name"] == "mimic-iv-demo" and meta["dataset_version"] == source.fingerprint
    assert meta["meds_version"] == "0.3.3" and meta["medlearn"]["notes"] == source.notes
    data = pl.read_parquet(out / "data" / "0.parquet")
    assert data["subject_id"].is_sorted() and data["subject_id"].n_unique() == 100
    assert data.filter(pl.col("code") == "MIMIC4_LABITEM//51277").height > 0
    codes = pl.read_parquet(out / "metadata" / "codes.parquet")
    assert set(codes["code"]) == set(data["code"])
    assert codes.filter(pl.col("code") == "MIMIC4_LABITEM//51277")["description"].to_list() == ["RDW (Blood)"]
    assert not (out / "metadata" / "subject_ids.parquet").exists()  # MIMIC ids are integers


def test_mimic4_round_trip_gives_the_same_events_and_admissions(mimic4):
    from medlearn.ehr.io.meds import read_meds
    from medlearn.ehr.io.schema import ADMISSION_SCHEMA, EVENT_SCHEMA

    source, out = mimic4
    back = read_meds(out)
    before = source.events.collect().sort(_KEY, nulls_last=True)
    after = back.events.collect().sort(_KEY, nulls_last=True)
    assert dict(after.schema) == EVENT_SCHEMA and after.height == before.height == 177_836
    for column in _KEY[:-1]:
        assert before[column].equals(after[column]), column
    # MEDS stores numeric_value as float32: equal to float32 precision
    assert after["value_num"].null_count() == before["value_num"].null_count()
    rel = ((after["value_num"] - before["value_num"]).abs() / before["value_num"].abs().clip(1e-12)).max()
    assert rel < 1e-6
    adm_before = source.admissions.collect().sort("admission_id")
    adm_after = back.admissions.collect().sort("admission_id")
    assert dict(adm_after.schema) == ADMISSION_SCHEMA and adm_after.equals(adm_before)
    assert back.notes == source.notes and back.kind == "meds"
    rdw = back.codes.filter(
        (pl.col("code_system") == "MIMIC4_LABITEM") & (pl.col("code") == "51277")
    ).collect()
    assert rdw["description"].to_list() == ["RDW (Blood)"]


def test_eicu_string_ids_survive_through_the_id_map(tmp_path):
    from medlearn.ehr.io import read_source, write_meds
    from medlearn.ehr.io.eicu import read_eicu

    source = read_eicu(require_data("ehr/eicu-demo"))
    out = write_meds(source, tmp_path / "eicu")
    ids = pl.read_parquet(out / "metadata" / "subject_ids.parquet")
    assert ids.height == 100 and "002-1039" in set(ids["source_subject_id"])
    back = read_source(out)  # detected as MEDS, cached
    assert back.kind == "meds"
    adm = back.admissions.collect().sort("admission_id")
    assert adm.equals(source.admissions.collect().sort("admission_id"))  # incl. null died_in_hospital
    assert back.events.select(pl.len()).collect().item() == source.events.select(pl.len()).collect().item()


def test_existing_output_is_not_overwritten_without_force(mimic4):
    from medlearn.ehr.io.meds import write_meds
    from medlearn.errors import OutputExistsError

    source, out = mimic4
    with pytest.raises(OutputExistsError, match="--force"):
        write_meds(source, out)


def test_foreign_meds_without_admission_ids(tmp_path):
    """A MEDS dataset from another ETL: admissions paired with discharges by time, age from birth."""
    from medlearn.ehr.io.meds import read_meds

    rows = pl.DataFrame(
        {
            "subject_id": [7, 7, 7, 7, 7, 7, 7],
            "time": [
                None,
                datetime(2000, 1, 1),
                datetime(2050, 3, 1, 8),
                datetime(2050, 3, 1, 9),
                datetime(2050, 3, 4, 12),
                datetime(2050, 3, 4, 12),
                datetime(2051, 1, 1),
            ],
            "code": [
                "GENDER//M",
                "MEDS_BIRTH",
                "HOSPITAL_ADMISSION//EMERGENCY",
                "LOINC//2345-7",
                "HOSPITAL_DISCHARGE",
                "MEDS_DEATH",
                "HOSPITAL_ADMISSION",
            ],
            "numeric_value": [None, None, None, 5.5, None, None, None],
        },
        schema_overrides={"numeric_value": pl.Float32, "time": pl.Datetime("us")},
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "metadata").mkdir()
    rows.write_parquet(tmp_path / "data" / "shard0.parquet")
    (tmp_path / "metadata" / "dataset.json").write_text('{"dataset_name": "toy"}')
    source = read_meds(tmp_path)
    events = source.events.collect()
    assert events.select("subject_id", "code_system", "code", "value_num").rows() == [
        ("7", "LOINC", "2345-7", 5.5)
    ]
    adm = source.admissions.collect()
    assert adm.height == 2
    first = adm.row(0, named=True)
    assert first["admission_type"] == "EMERGENCY" and first["discharge_time"] == datetime(2050, 3, 4, 12)
    assert first["died_in_hospital"] is True and first["death_time"] == datetime(2050, 3, 4, 12)
    assert first["sex"] == "M" and first["age_years"] == pytest.approx(50.16, abs=0.01)
    second = adm.row(1, named=True)
    assert second["discharge_time"] is None and second["died_in_hospital"] is None


def test_meds_without_metadata_is_an_input_error(tmp_path):
    from medlearn.ehr.io.meds import read_meds
    from medlearn.errors import InputError

    (tmp_path / "data").mkdir()
    with pytest.raises(InputError, match="dataset.json"):
        read_meds(tmp_path)
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "dataset.json").write_text("{}")
    with pytest.raises(InputError, match="no parquet shards"):
        read_meds(Path(tmp_path))
