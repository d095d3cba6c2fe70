"""EHR predictions as FHIR R4 RiskAssessment (issue 15, item 3), validated with fhir.resources, for a real
Synthea patient whose inpatient stay is still open at the prediction time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import medlearn
from medlearn.ehr.fhir_risk import LOS_CODE_SYSTEM, risk_assessment
from tests.conftest import require_data, require_module

SYNTHEA = "ehr/fhir/synthea-r4-bundles"
PATIENT_WITH_A_STAY = "Tony_Beer_bb8cd3e5-8910-4eea-bbc6-3f64a4a655b8.json"


@pytest.fixture(scope="module")
def los_bundle(tmp_path_factory) -> Path:
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    folder = tmp_path_factory.mktemp("los")
    data = write_synthetic_mimic4(folder / "data", n_patients=40, seed=0)
    return medlearn.train(
        "ehr_los_mimic4_linear", out=folder / "run", data=data, overrides=["train.epochs=1"], device="cpu"
    ).bundle


@pytest.fixture
def patient_in_hospital(tmp_path) -> tuple[Path, str]:
    """The Synthea patient's inpatient encounter with its end (and the death Synthea dates to its start)
    removed: a patient in hospital now."""
    source = require_data(SYNTHEA) / PATIENT_WITH_A_STAY
    bundle = json.loads(source.read_text())
    patient_id = next(
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource.pop("deceasedDateTime", None)
        if resource["resourceType"] == "Encounter" and resource.get("class", {}).get("code") == "IMP":
            resource["period"].pop("end", None)
            resource["status"] = "in-progress"
    path = tmp_path / "ongoing.json"
    path.write_text(json.dumps(bundle))
    return path, patient_id


def test_a_length_of_stay_prediction_is_a_valid_risk_assessment_for_the_fhir_patient(
    los_bundle, patient_in_hospital
):
    require_module("fhir.resources")
    path, patient_id = patient_in_hospital
    bundle = medlearn.load_bundle(los_bundle)
    [record] = [r for r in bundle.predict(path) if "label" in r]
    resource = risk_assessment(record, bundle.meta.task.name, "0123456789ab", source="fhir")
    assert resource["resourceType"] == "RiskAssessment" and resource["status"] == "final"
    assert resource["subject"] == {"reference": f"Patient/{patient_id}"}
    assert resource["occurrenceDateTime"] == record["details"]["prediction_time"].replace(" ", "T") + "Z"
    bins = resource["prediction"]
    assert [p["outcome"]["coding"][0]["code"] for p in bins] == bundle.class_names
    assert all(p["outcome"]["coding"][0]["system"] == LOS_CODE_SYSTEM for p in bins)
    assert sum(p["probabilityDecimal"] for p in bins) == pytest.approx(1.0, abs=1e-4)
    assert bins[0]["whenRange"] == {
        "high": {"value": 1.0, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}
    }
    assert resource["method"]["coding"][0]["version"] == "0123456789ab"
    # a model trained on MIMIC codes says it does not know the FHIR codes, in the resource too
    assert any("unknown to this model" in n["text"] for n in resource.get("note", []))


def test_a_mimic_patient_is_referenced_by_identifier_and_mortality_is_snomed_dead():
    require_module("fhir.resources")
    record = {
        "unit": "10000032/22595853",
        "model": "gru@2026-12-05",
        "label": "died",
        "probability": 0.12,
        "details": {"prediction_time": "2180-05-07 22:15:00"},
    }
    resource = risk_assessment(record, "in_hospital_mortality", "abc", source="mimic4")
    assert resource["subject"]["identifier"] == {
        "system": "urn:medlearn:mimic4:subject_id",
        "value": "10000032",
    }
    [prediction] = resource["prediction"]
    assert (
        prediction["outcome"]["coding"][0]["code"] == "419099009" and prediction["probabilityDecimal"] == 0.12
    )


def test_a_record_without_a_prediction_is_not_expressed():
    require_module("fhir.resources")
    with pytest.raises(ValueError, match="no prediction"):
        risk_assessment({"input": "x", "skipped": {"unit": "1/2"}, "unit": "1/2"}, "los_classification", "v")
