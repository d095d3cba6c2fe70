"""Source events → concept events: unit conversions, refused units, vital signs from ICU charting rows,
and a concepts-mode task that reads MIMIC-IV, MIMIC-III, eICU and FHIR into the same feature columns."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from medlearn.ehr.concepts import map_concepts, unconvertible_units
from medlearn.ehr.io.schema import EVENT_SCHEMA
from tests.conftest import require_data
from tests.ehr.helpers import MIMIC4_CORE, copy_tables, write_gz_csv

T0 = datetime(2150, 1, 1, 8)


def events(rows: list[tuple[str, str, float | None, str | None]]) -> pl.LazyFrame:
    """Synthetic events (code_system, code, value, unit) of one patient, one admission, at one time."""
    return pl.LazyFrame(
        [
            {
                "subject_id": "1",
                "admission_id": "10",
                "stay_id": None,
                "time": T0,
                "code_system": system,
                "code": code,
                "value_num": value,
                "unit": unit,
                "value_text": None if value is None else str(value),
                "source_table": "test",
            }
            for system, code, value, unit in rows
        ],
        schema=EVENT_SCHEMA,
    )


def mapped(frame: pl.LazyFrame, kind: str, codes: pl.LazyFrame | None = None) -> dict[str, list]:
    out = map_concepts(frame, kind, codes).collect()
    assert dict(out.schema) == EVENT_SCHEMA
    # sorted values per concept: the mapping joins, so row order is not the input's
    return {
        c: sorted(out.filter(pl.col("code") == c)["value_num"].to_list(), key=lambda v: (v is None, v or 0))
        for c in out["code"].unique()
    }


def test_units_are_converted_to_the_concepts_unit():
    got = mapped(
        events(
            [
                ("LOINC", "2160-0", 88.42, "umol/L"),  # creatinine µmol/L → mg/dL
                ("LOINC", "2160-0", 1.3, "mg/dL"),
                ("LOINC", "2345-7", 5.5, "mmol/L"),  # glucose mmol/L → mg/dL
                ("LOINC", "8310-5", 98.6, "[degF]"),  # temperature °F → °C
                ("LOINC", "8310-5", 37.2, "Cel"),
                ("LOINC", "29463-7", 154.0, "[lb_av]"),  # weight lb → kg
                ("LOINC", "1751-7", 35.0, "g/L"),  # albumin g/L → g/dL
            ]
        ),
        "fhir",
    )
    assert got["creatinine"] == pytest.approx([1.0002, 1.3], abs=1e-3)
    assert got["glucose"] == pytest.approx([99.09], abs=0.01)
    assert got["temperature"] == pytest.approx([37.0, 37.2], abs=1e-6)
    assert got["weight"] == pytest.approx([69.853], abs=1e-3)
    assert got["albumin"] == pytest.approx([3.5])


def test_eicu_and_mimic_spellings_of_the_same_unit_are_recognised():
    got = mapped(
        events(
            [
                ("EICU_LAB", "Temperature", 38.5, "&#176;C"),  # eICU's HTML entity
                ("EICU_LAB", "Temperature", 101.3, "&#176;F"),
                ("EICU_LAB", "potassium", 4.1, "mmol/L"),
                ("EICU_LAB", "pH", 7.31, None),  # no unit in the file: the pH scale is assumed
            ]
        ),
        "eicu",
    )
    assert got["temperature"] == pytest.approx([38.5, 38.5], abs=1e-6)
    assert got["potassium"] == [4.1] and got["ph"] == [7.31]
    got = mapped(
        events([("MIMIC4_ITEM", "223761", 100.4, "°F"), ("MIMIC4_LABITEM", "50971", 3.9, "mEq/L")]), "mimic4"
    )
    assert got["temperature"] == pytest.approx([38.0]) and got["potassium"] == [3.9]


def test_a_unit_the_table_cannot_convert_is_counted_and_left_out_never_passed_through():
    frame = events(
        [("LOINC", "2160-0", 1.1, "mg/dL"), ("LOINC", "2160-0", 0.09, "mmol/L"), ("LOINC", "2160-0", 2, "g")]
    )
    assert mapped(frame, "fhir")["creatinine"] == [1.1]
    bad = unconvertible_units(frame, "fhir")
    assert sorted(zip(bad["unit"], bad["n"])) == [("g", 1), ("mmol/L", 1)]
    assert set(bad["concept"]) == {"creatinine"}


def test_drugs_coded_by_ndc_map_through_their_name_and_events_carry_no_value():
    frame = events(
        [
            ("NDC", "00409171013", 4.0, "mg"),
            ("NDC", "00338004904", 1000.0, "mL"),
            ("DRUG", "Vasopressin", 20.0, "UNIT"),
        ]
    )
    codes = pl.LazyFrame(
        {
            "code_system": ["NDC", "NDC"],
            "code": ["00409171013", "00338004904"],
            "description": ["Norepinephrine", "Sodium Chloride 0.9%"],
        }
    )
    out = map_concepts(frame, "mimic4", codes).collect()
    assert sorted(out["code"]) == ["norepinephrine", "vasopressin"]
    assert set(out["code_system"]) == {"CONCEPT_EVENT"} and out["value_num"].null_count() == 2
    assert map_concepts(frame, "mimic4").collect()["code"].to_list() == [
        "vasopressin"
    ]  # no names: NDC unknown


def test_the_shared_demos_have_no_chartevents_and_no_vital_periodic():
    assert not (require_data("ehr/mimic-iv-demo") / "icu").joinpath("chartevents.csv.gz").exists()
    assert not [
        p for p in require_data("ehr/eicu-demo").iterdir() if p.name.lower().startswith("vitalperiodic")
    ]


def test_vital_signs_map_from_synthetic_chartevents_read_by_the_mimic4_reader(tmp_path):
    """chartevents rows (absent from the shared demo) go through the real reader into vital-sign concepts."""
    from medlearn.ehr.io.mimic4 import read_mimic4

    src = require_data("ehr/mimic-iv-demo")
    root = copy_tables(src, tmp_path / "m4", [*MIMIC4_CORE, "icu/icustays.csv.gz", "icu/d_items.csv.gz"])
    stay = pl.read_csv(root / "icu/icustays.csv.gz", infer_schema=False).row(0, named=True)
    rows = [("220045", "88", "bpm"), ("220179", "121", "mmHg"), ("220181", "80", "mmHg"), ("220210", "18", "insp/min"),
            ("223761", "100.4", "°F"), ("223762", "37.5", "°C"), ("220277", "97", "%"), ("223901", "6", None),
            ("226512", "82.5", "kg"), ("226707", "70", "Inch")]  # fmt: skip
    chart = pl.DataFrame(
        {
            "subject_id": stay["subject_id"],
            "hadm_id": stay["hadm_id"],
            "stay_id": stay["stay_id"],
            "caregiver_id": "1",
            "charttime": stay["intime"],
            "storetime": stay["intime"],
            "itemid": [r[0] for r in rows],
            "value": [r[1] for r in rows],
            "valuenum": [r[1] for r in rows],
            "valueuom": [r[2] for r in rows],
            "warning": "0",
        }
    )
    write_gz_csv(chart, root / "icu/chartevents.csv.gz")
    source = read_mimic4(root)
    got = mapped(source.events, "mimic4", source.codes)
    assert got["heart_rate"] == [88.0] and got["sbp"] == [121.0] and got["map"] == [80.0]
    assert got["resp_rate"] == [18.0] and got["spo2"] == [97.0] and got["gcs_motor"] == [6.0]
    assert sorted(got["temperature"]) == pytest.approx([37.5, 38.0])
    assert got["weight"] == [82.5] and got["height"] == pytest.approx([177.8])


def test_vital_signs_map_from_synthetic_vital_periodic_rows_read_by_the_eicu_reader(tmp_path):
    """vitalPeriodic/vitalAperiodic (absent from the shared subset) are unpivoted by the reader into
    EICU_VITAL events, which map to the vital-sign concepts."""
    import shutil

    from medlearn.ehr.io.eicu import read_eicu

    src = require_data("ehr/eicu-demo")
    root = tmp_path / "eicu"
    shutil.copytree(src, root)
    stay = pl.read_csv(root / "patient.csv", infer_schema=False).drop_nulls("patientunitstayid")[
        "patientunitstayid"
    ][0]
    pl.DataFrame(
        {"vitalperiodicid": ["1", "2"], "patientunitstayid": [stay, stay], "observationoffset": ["30", "35"],
         "temperature": ["37.9", ""], "sao2": ["95", "96"], "heartrate": ["112", "110"], "respiration": ["22", None],
         "systemicsystolic": ["98", "101"], "systemicdiastolic": ["55", "57"], "systemicmean": ["70", "72"]}
    ).write_csv(root / "vitalPeriodic.csv")  # fmt: skip
    pl.DataFrame(
        {"vitalaperiodicid": ["1"], "patientunitstayid": [stay], "observationoffset": ["40"],
         "noninvasivesystolic": ["104"], "noninvasivediastolic": ["60"], "noninvasivemean": ["75"]}
    ).write_csv(root / "vitalAperiodic.csv")  # fmt: skip
    source = read_eicu(root)
    vitals = source.events.filter(pl.col("code_system") == "EICU_VITAL").collect()
    assert vitals.height == 15 and set(vitals["stay_id"]) == {stay}  # empty and null cells make no event
    got = mapped(source.events.filter(pl.col("code_system") == "EICU_VITAL"), "eicu")
    assert got["heart_rate"] == [110.0, 112.0] and got["temperature"] == [37.9] and got["resp_rate"] == [22.0]
    assert (
        got["sbp"] == [98.0, 101.0, 104.0]
        and got["map"] == [70.0, 72.0, 75.0]
        and got["spo2"] == [95.0, 96.0]
    )
    assert read_eicu(src).fingerprint != source.fingerprint  # the new tables are part of the content hash


def test_eicu_vital_signs_map_from_the_real_physical_exam_rows():
    from medlearn.ehr.io import read_source

    source = read_source(require_data("ehr/eicu-demo"))
    got = mapped(source.events, "eicu")
    for concept in (
        "heart_rate",
        "sbp",
        "dbp",
        "resp_rate",
        "spo2",
        "gcs_eye",
        "gcs_verbal",
        "gcs_motor",
        "weight",
    ):
        assert len(got[concept]) >= 100, concept
    assert 60 < np.median(got["heart_rate"]) < 110 and 90 < np.median(got["sbp"]) < 160


@pytest.fixture(scope="module")
def concept_units() -> dict[str, list[dict]]:
    """Raw units of the concepts-mode mortality task on each shared demo."""
    from medlearn.ehr.tasks import InHospitalMortality

    roots = {
        "mimic4": "ehr/mimic-iv-demo",
        "mimic3": "ehr/mimic-iii-demo",
        "eicu": "ehr/eicu-demo",
        "fhir": "ehr/fhir/synthea-r4-bundles",
    }
    return {
        kind: InHospitalMortality({"features": "concepts"}).load(require_data(rel)).raw
        for kind, rel in roots.items()
    }


def test_a_concepts_task_reads_every_source_into_the_same_feature_columns(concept_units):
    from medlearn.ehr.features import Featurize, fit_featurize

    params = fit_featurize(concept_units["mimic4"], n_bins=12, impossible_values="drop")
    featurize = Featurize(**params)
    known = set(featurize.lab_index) | set(featurize.code_index) | set(featurize.history_index)
    for kind, units in concept_units.items():
        keys = {k for u in units for k in [*u["lab_keys"], *u["code_keys"], *u["history"]]}
        systems = {k.split("//")[0] for k in keys}
        assert systems <= {"CONCEPT", "CONCEPT_EVENT", "ICD9CM", "ICD10CM"}, (kind, systems)
        arrays = [featurize(u) for u in units]
        assert all(a.shape == (12, featurize.n_features) for a in arrays)
        if kind == "eicu":  # labs, vitals and drugs of eICU reach the MIMIC-IV-fitted vocabulary
            assert len(keys & known) >= 30
        if kind == "mimic3":  # the demo holds prescriptions and diagnoses only: drugs and ICD-9 history
            assert {"CONCEPT_EVENT//insulin", "CONCEPT_EVENT//heparin"} <= keys & known
            assert any(k.startswith("ICD9CM//") for k in keys & known)
        assert {u["admission_type"] for u in units} <= {
            "emergency",
            "elective",
            "urgent",
            "observation",
            "other",
        }
    assert {u["admission_type"] for u in concept_units["eicu"]} == {"emergency", "other"}
    assert len(concept_units["mimic4"]) == 245 and len(concept_units["eicu"]) == 135
    assert len(concept_units["mimic3"]) == 118


@pytest.fixture(scope="module")
def concepts_bundle(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from medlearn.cli import app

    require_data("ehr/mimic-iv-demo")
    out = tmp_path_factory.mktemp("concepts") / "run"
    result = CliRunner().invoke(
        app,
        ["train", "ehr_los_mimic4_concepts", "--out", str(out), "--quiet", "--set", "train.epochs=2",
         "--set", "eval.n_bootstrap=20"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out / "bundle"


@pytest.mark.slow
def test_a_mimic4_concepts_bundle_evaluates_on_eicu_and_predicts_a_fhir_inpatient(concepts_bundle, tmp_path):
    from typer.testing import CliRunner

    from medlearn.cli import app

    meta = json.loads((concepts_bundle / "bundle.json").read_text())
    assert meta["task"]["options"]["features"] == "concepts"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["evaluate", str(concepts_bundle), "--data", str(require_data("ehr/eicu-demo")), "--out", str(tmp_path / "ev"),
         "--quiet"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert scored["split"] == "all" and scored["n"] == 135
    # A hospital's FHIR export: an inpatient stay under way with LOINC vitals and labs (SI units for two)
    path = tmp_path / "inpatient.json"
    path.write_text(json.dumps(fhir_inpatient()))
    result = runner.invoke(
        app, ["predict", str(concepts_bundle), str(path), "--json", "--quiet"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["label"] in record["probabilities"]
    # the six labs reach the model; the vital signs do not, since the MIMIC-IV demo has no chartevents to learn
    # them from (a bundle trained on full MIMIC-IV would know them too)
    assert record["warnings"] == [
        "4 of 10 codes are unknown to this model and do not reach it (e.g. CONCEPT//dbp, CONCEPT//heart_rate, "
        "CONCEPT//sbp, CONCEPT//temperature)"
    ]
    assert any(
        f["feature"].startswith(("lab:CONCEPT//", "measured:CONCEPT//"))
        for f in record["explanation"]["top_features"]
    )


def fhir_inpatient() -> dict:
    """A FHIR R4 transaction bundle: one patient in hospital since 2150-01-01 08:00 (no end), with LOINC
    observations in the first hours: heart rate, blood pressure, creatinine in µmol/L, glucose in mmol/L,
    sodium, potassium, haemoglobin, white cells and a temperature in °F."""
    obs = [("8867-4", 96, "/min"), ("8480-6", 102, "mm[Hg]"), ("8462-4", 61, "mm[Hg]"), ("2160-0", 150, "umol/L"),
           ("2345-7", 9.1, "mmol/L"), ("2951-2", 133, "mmol/L"), ("2823-3", 4.9, "mmol/L"), ("718-7", 10.2, "g/dL"),
           ("6690-2", 14.5, "10*3/uL"), ("8310-5", 101.5, "[degF]")]  # fmt: skip
    entries = [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "2080-05-01"}},
        {"resource": {"resourceType": "Encounter", "id": "e1", "status": "in-progress", "class": {"code": "IMP"},
                      "subject": {"reference": "urn:uuid:p1"}, "period": {"start": "2150-01-01T08:00:00Z"}}},
    ]  # fmt: skip
    for i, (code, value, unit) in enumerate(obs):
        for hours in (2, 9, 17):
            entries.append(
                {"resource": {"resourceType": "Observation", "id": f"o{i}-{hours}", "status": "final",
                              "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                              "subject": {"reference": "urn:uuid:p1"}, "encounter": {"reference": "urn:uuid:e1"},
                              "effectiveDateTime": f"2150-01-01T{8 + hours:02d}:00:00Z",
                              "issued": f"2150-01-01T{8 + hours:02d}:30:00Z",
                              "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org"}}}
            )  # fmt: skip
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_an_unknown_features_value_is_a_config_error_naming_the_key():
    from medlearn.errors import ConfigError
    from medlearn.registry import task_class

    assert task_class("los_classification")({}).options.features == "codes"  # every existing bundle unchanged
    with pytest.raises(ConfigError, match=r"features: Input should be 'codes' or 'concepts'"):
        task_class("los_classification")({"features": "loinc"})
