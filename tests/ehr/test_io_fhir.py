"""FHIR R4 bundles (Synthea sample) → canonical tables: counts against the raw JSON, times, errors."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from medlearn.errors import InputError
from tests.conftest import require_data

SKIPPED = ("hospitalInformation1559319163815.json", "practitionerInformation1559319163815.json")


@pytest.fixture(scope="module")
def root() -> Path:
    return require_data("ehr/fhir/synthea-r4-bundles")


@pytest.fixture(scope="module")
def raw(root: Path) -> dict[str, list[dict[str, Any]]]:
    """The resources of the patient bundles by type, read with json directly (the expected values)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(root.glob("*.json")):
        if path.name in SKIPPED:
            continue
        for entry in json.loads(path.read_text())["entry"]:
            by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return by_type


@pytest.fixture(scope="module")
def source(root: Path):
    from medlearn.ehr.io.fhir import read_fhir

    return read_fhir(root)


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    """A transaction bundle the way Synthea writes it (fullUrl urn:uuid:<id>)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{r['id']}",
                "resource": r,
                "request": {"method": "POST", "url": r["resourceType"]},
            }
            for r in resources
        ],
    }


def _write(path: Path, content: Any) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "gender": "female",
    "birthDate": "1970-06-15",
    "deceasedDateTime": "2020-03-02T06:00:00+02:00",
}
SUBJECT = {"reference": "urn:uuid:p1"}


def test_every_patient_bundle_is_read_and_counts_match_the_json(events, admissions, raw):
    from medlearn.ehr.io.schema import ADMISSION_SCHEMA, EVENT_SCHEMA

    assert len(raw["Patient"]) == 15
    assert set(admissions["subject_id"]) == {p["id"] for p in raw["Patient"]}
    assert set(events["subject_id"]) == {p["id"] for p in raw["Patient"]}
    assert admissions.height == len(raw["Encounter"]) == 126
    assert set(admissions["admission_id"]) == {e["id"] for e in raw["Encounter"]}
    classes = Counter(e["class"]["code"] for e in raw["Encounter"])
    assert dict(admissions.group_by("admission_type").len().iter_rows()) == dict(classes)
    assert dict(classes) == {"AMB": 119, "EMER": 6, "IMP": 1}

    def codings(resources: list[dict[str, Any]], key: str = "code") -> int:
        return sum(len(r[key]["coding"]) for r in resources)

    observations = raw["Observation"]
    panels = [o for o in observations if "component" in o and not any(k.startswith("value") for k in o)]
    expected = {
        "Condition": codings(raw["Condition"]),
        "Procedure": codings(raw["Procedure"]),
        "MedicationRequest": codings(raw["MedicationRequest"], "medicationCodeableConcept"),
        "Immunization": codings(raw["Immunization"], "vaccineCode"),
        "Observation": codings([o for o in observations if o not in panels]),
        "Observation.component": sum(codings(o["component"]) for o in observations if "component" in o),
    }
    assert dict(events.group_by("source_table").len().iter_rows()) == expected
    assert expected["Condition"] == len(raw["Condition"]) == 45  # one SNOMED coding each
    assert expected["Observation"] + len(panels) == len(observations) == 781
    assert dict(events.schema) == EVENT_SCHEMA and dict(admissions.schema) == ADMISSION_SCHEMA
    assert events["time"].null_count() == 0 and events["admission_id"].null_count() == 0
    # every event's encounter is an admission of the same patient
    joined = events.join(admissions, on="admission_id", how="left")
    assert (joined["subject_id"] == joined["subject_id_right"]).all()


def test_codes_and_code_systems(events, source, raw):
    from medlearn.ehr.io.schema import CODES_SCHEMA

    systems = dict(events.group_by("source_table").agg(pl.col("code_system").unique()).iter_rows())
    assert systems == {
        "Condition": ["SNOMED"],
        "Procedure": ["SNOMED"],
        "MedicationRequest": ["RXNORM"],
        "Immunization": ["CVX"],
        "Observation": ["LOINC"],
        "Observation.component": ["LOINC"],
    }
    codes = source.codes.collect()
    assert dict(codes.schema) == CODES_SCHEMA
    assert codes.select("code_system", "code").is_unique().all()
    assert set(codes.select("code_system", "code").iter_rows()) == set(
        events.select("code_system", "code").unique().iter_rows()
    )
    condition = raw["Condition"][0]["code"]["coding"][0]
    label = codes.filter((pl.col("code_system") == "SNOMED") & (pl.col("code") == condition["code"]))
    assert label["description"].to_list() == [condition["display"]]


def test_inpatient_encounter_and_death_in_hospital(admissions, raw):
    inpatient = admissions.filter(pl.col("admission_type") == "IMP")
    assert inpatient.height == 1
    row = inpatient.row(0, named=True)
    assert row["admit_time"] < row["discharge_time"]
    # Tony Beer: IMP 1989-01-08T00:41:27+00:00 → 1989-01-09T06:41:27+00:00, deceased at the admission
    assert (row["admit_time"], row["discharge_time"]) == (
        datetime(1989, 1, 8, 0, 41, 27),
        datetime(1989, 1, 9, 6, 41, 27),
    )
    assert row["died_in_hospital"] is True and row["death_time"] == datetime(1989, 1, 8, 0, 41, 27)
    assert row["sex"] == "M" and row["age_years"] == pytest.approx(42.22, abs=0.01)  # born 1946-10-19
    assert admissions["died_in_hospital"].sum() == 1 and admissions["death_time"].null_count() == 125
    assert admissions["died_in_hospital"].null_count() == 0 and admissions["age_years"].null_count() == 0
    assert set(admissions["sex"]) == {"F", "M"}


def test_condition_time_is_when_recorded(events, raw):
    condition = raw["Condition"][0]
    encounter = condition["encounter"]["reference"].removeprefix("urn:uuid:")
    row = events.filter((pl.col("source_table") == "Condition") & (pl.col("admission_id") == encounter))
    expected = datetime.fromisoformat(condition["recordedDate"]).replace(tzinfo=None)
    assert (condition["code"]["coding"][0]["code"], expected) in set(row.select("code", "time").iter_rows())


def test_observation_components_are_separate_events(events, raw):
    panel = next(o for o in raw["Observation"] if o["code"]["coding"][0]["code"] == "55284-4")
    when = datetime.fromisoformat(panel["issued"]).replace(tzinfo=None)  # known when issued
    subject = panel["subject"]["reference"].removeprefix("urn:uuid:")
    rows = events.filter(
        (pl.col("subject_id") == subject)
        & (pl.col("time") == when)
        & (pl.col("source_table") == "Observation.component")
    )
    expected = {
        (c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["unit"])
        for c in panel["component"]
    }
    assert set(rows.select("code", "value_num", "unit").iter_rows()) == expected
    assert {code for code, _, _ in expected} == {"8462-4", "8480-6"}  # diastolic, systolic
    assert events.filter(pl.col("code") == "55284-4").height == 0  # the valueless panel is not an event
    coded = events.filter(pl.col("value_text") == "Never smoker")  # a valueCodeableConcept
    assert coded.height > 0 and coded["value_num"].null_count() == coded.height


def test_directory_bundles_are_skipped_with_a_note(source):
    for name, kind in zip(SKIPPED, ("Organization", "Practitioner")):
        skipped = [note for note in source.notes if note.startswith(f"{name}: bundle without a Patient")]
        assert len(skipped) == 1 and f"({kind} 102) skipped" in skipped[0]
    assert source.notes[0].startswith(
        "15 patient bundle(s): 15 patient(s), 126 encounter(s) (AMB 119, EMER 6, IMP 1)"
    )
    assert source.kind == "fhir" and source.name == "synthea-r4-bundles"


def test_times_references_and_codes_of_a_hand_written_bundle(tmp_path):
    from medlearn.ehr.io.fhir import read_fhir

    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "class": {"code": "IMP"},
        "subject": SUBJECT,
        "period": {"start": "2020-03-01T22:30:00-05:00"},
    }  # still in hospital: no end
    bundle = _bundle(
        PATIENT,
        encounter,
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": SUBJECT,
            "encounter": {"reference": "urn:uuid:e1"},
            "code": {
                "coding": [
                    {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9", "display": "T2DM"},
                    {"system": "http://snomed.info/sct", "code": "44054006"},
                ]
            },
            "onsetDateTime": "2001-01-01",
            "recordedDate": "2020-03-02",
        },
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"},
            "effectiveDateTime": "2020-03-02T08:15:30.1234567Z",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
            "valueQuantity": {"value": 0.5, "comparator": "<", "unit": "mg/dL"},
        },
        {
            "resourceType": "Observation",
            "id": "o2",
            "status": "entered-in-error",
            "subject": SUBJECT,
            "effectiveDateTime": "2020-03-02",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1-1"}]},
        },
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "subject": SUBJECT,
            "encounter": {"reference": "urn:uuid:gone"},
            "authoredOn": "2020-03",
            "medicationReference": {"reference": "urn:uuid:med1"},
        },
        {
            "resourceType": "Medication",
            "id": "med1",
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "0069-3150-83"}]},
        },
        {
            "resourceType": "Procedure",
            "id": "x1",
            "subject": SUBJECT,
            "performedDateTime": "garbage",
            "code": {"coding": [{"system": "http://example.org/local", "code": "P7"}]},
        },
    )
    source = read_fhir(_write(tmp_path / "one.json", bundle))
    events = source.events.collect().sort("source_table", "code")
    rows = {(r["source_table"], r["code_system"], r["code"]): r for r in events.iter_rows(named=True)}
    assert set(rows) == {
        ("Condition", "ICD10CM", "E119"),
        ("Condition", "SNOMED", "44054006"),
        ("Observation", "LOINC", "2160-0"),
        ("MedicationRequest", "NDC", "00069315083"),
        ("Procedure", "http://example.org/local", "P7"),
    }
    # date-only → the end of that day; recordedDate (not the back-dated onset) is when it was known
    assert rows[("Condition", "ICD10CM", "E119")]["time"] == datetime(2020, 3, 2, 23, 59, 59)
    assert rows[("Condition", "ICD10CM", "E119")]["time"].time() == time(23, 59, 59)
    assert rows[("MedicationRequest", "NDC", "00069315083")]["time"] == datetime(2020, 3, 31, 23, 59, 59)
    obs = rows[("Observation", "LOINC", "2160-0")]  # Z, 7 fraction digits → microseconds
    assert obs["time"] == datetime(2020, 3, 2, 8, 15, 30, 123456) and obs["admission_id"] == "e1"
    assert (obs["value_num"], obs["value_text"], obs["unit"]) == (None, "<0.5", "mg/dL")
    assert rows[("MedicationRequest", "NDC", "00069315083")]["admission_id"] is None  # unknown encounter
    assert rows[("Procedure", "http://example.org/local", "P7")]["time"] is None  # malformed, row kept
    adm = source.admissions.collect().row(0, named=True)
    assert adm["admit_time"] == datetime(2020, 3, 2, 3, 30)  # 22:30 at -05:00 = 03:30 UTC next day
    assert adm["discharge_time"] is None and adm["died_in_hospital"] is True
    assert adm["death_time"] == datetime(2020, 3, 2, 4, 0)  # 06:00 at +02:00, after the admission
    assert adm["sex"] == "F" and adm["age_years"] == pytest.approx(49.71, abs=0.01)
    codes = dict(((s, c), d) for s, c, d in source.codes.collect().iter_rows())
    assert codes[("ICD10CM", "E119")] == "T2DM" and codes[("SNOMED", "44054006")] is None
    notes = "\n".join(source.notes)
    for expected in (
        "1 Observation resource(s) entered-in-error (or refuted) dropped",
        "1 event(s) naming an encounter absent from the bundles: admission_id null",
        "1 malformed 'Procedure.performed' timestamp(s) set to null",
        "quantity value(s) with a comparator",
        "unrecognised system 'http://example.org/local'",
        "only IMP/ACUTE/NONAC are inpatient stays (1)",
    ):
        assert expected in notes, expected


def test_invalid_json_names_the_file_and_line(tmp_path):
    from medlearn.ehr.io.fhir import read_fhir

    bad = _write(tmp_path / "broken.json", '{\n  "resourceType": "Bundle",\n  "entry": [,]\n}\n')
    with pytest.raises(InputError) as err:
        read_fhir(tmp_path)
    assert str(err.value).startswith(f"{bad}: invalid JSON at line 3, column 13 (Expecting value)")


def test_a_resource_that_is_not_a_bundle_is_refused(tmp_path):
    from medlearn.ehr.io import read_source

    path = _write(tmp_path / "patient.json", PATIENT)
    with pytest.raises(InputError) as err:
        read_source(path)
    assert str(err.value) == f"{path}: not a FHIR Bundle (resourceType is 'Patient')"
    _write(path, "[1, 2]")
    with pytest.raises(InputError, match="not a FHIR Bundle"):
        read_source(tmp_path)


def test_a_bundle_without_a_patient_is_refused(tmp_path):
    from medlearn.ehr.io.fhir import read_fhir

    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": SUBJECT,
        "recordedDate": "2020-01-01",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]},
    }
    path = _write(tmp_path / "orphans.json", _bundle(condition))
    with pytest.raises(InputError) as err:
        read_fhir(path)
    assert str(err.value).startswith(f"{path}: bundle has no Patient resource (Condition 1)")


def test_empty_folder_or_only_directory_bundles_is_an_error(tmp_path, root):
    from medlearn.ehr.io import read_source
    from medlearn.ehr.io.fhir import read_fhir

    with pytest.raises(InputError, match=r"no FHIR bundle files \(\*\.json\)"):
        read_fhir(tmp_path)
    with pytest.raises(InputError, match="not a recognised EHR folder"):
        read_source(tmp_path)
    _write(tmp_path / SKIPPED[0], (root / SKIPPED[0]).read_text())
    with pytest.raises(InputError, match="no bundle with a Patient"):
        read_source(tmp_path)


def test_read_source_detects_fhir_and_serves_the_cache(root, events, monkeypatch):
    import medlearn.ehr.io.fhir as fhir
    from medlearn.ehr.io import detect_kind, read_source

    assert detect_kind(root) == "fhir" and detect_kind(root / SKIPPED[0]) == "fhir"
    first = read_source(root)
    assert first.kind == "fhir"

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(fhir, "read_fhir", fail)
    second = read_source(root)
    assert second.kind == "fhir" and second.notes == first.notes and second.fingerprint == first.fingerprint
    cached = second.events.collect()
    assert cached.height == events.height and cached.schema == events.schema
    key = list(events.columns)
    assert cached.sort(key, nulls_last=True).equals(events.sort(key, nulls_last=True))
    assert second.admissions.collect().height == 126 and second.codes is not None


def test_one_bundle_file_is_a_source(root, raw):
    from medlearn.ehr.io import read_source

    path = next(p for p in sorted(root.glob("Tony_Beer_*.json")))
    source = read_source(path)
    assert source.kind == "fhir" and source.name == path.stem
    adm = source.admissions.collect()
    assert adm["subject_id"].unique().to_list() == ["34a17aef-dd20-4eda-bf6c-f121e454616d"]
    assert "IMP" in set(adm["admission_type"])
