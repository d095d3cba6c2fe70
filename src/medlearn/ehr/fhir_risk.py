"""EHR predictions as FHIR R4 ``RiskAssessment`` resources, for the hospital information system.

One resource per predicted admission, built from the prediction record of ``medlearn predict --json`` and
the bundle's metadata, validated with ``fhir.resources`` (its R4B models; RiskAssessment is the same in
R4 and R4B):

- ``subject``: for a FHIR input, a literal reference to the input's ``Patient``; for a MIMIC, eICU or
  MEDS input (no FHIR server holds those patients), a logical reference by identifier whose system names
  the source's subject id (e.g. ``urn:medlearn:mimic4:subject_id``). ``encounter`` likewise.
- ``occurrenceDateTime``: the prediction time (the window's end), not the time the file was read; a
  time without a zone (MIMIC, eICU) is written as UTC, since FHIR requires one.
- ``method``: the model (``name@created``) and its bundle version (the manifest's SHA-256, 12 hex).
- ``basis``: the admission the prediction rests on (the encounter and the patient).
- ``prediction``: one entry per outcome. Length-of-stay bins are codes of medlearn's own code system
  :data:`LOS_CODE_SYSTEM` with ``whenRange`` giving the bin's remaining days (UCUM ``d``); mortality is
  SNOMED CT 419099009 "Dead"; a regression value is the outcome text with its interval as ``whenRange``.
"""

from __future__ import annotations

import re
from typing import Any

#: Medlearn's code system for the remaining length-of-stay bins (codes are the bin names, e.g. "2-3d").
LOS_CODE_SYSTEM = "https://medlearn.dev/fhir/CodeSystem/remaining-length-of-stay-bin"
MODEL_SYSTEM = "https://medlearn.dev/fhir/CodeSystem/model"
SNOMED = "http://snomed.info/sct"
_DAYS = {"system": "http://unitsofmeasure.org", "code": "d", "unit": "d"}


def _bin_range(name: str) -> dict[str, Any]:
    """``"2-3d"`` → low 2 d, high 3 d; ``"<1d"`` → high 1 d; ``">=14d"`` → low 14 d."""
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", name)]
    if name.startswith("<"):
        return {"high": {**_DAYS, "value": numbers[0]}}
    if name.startswith(">"):
        return {"low": {**_DAYS, "value": numbers[0]}}
    return {"low": {**_DAYS, "value": numbers[0]}, "high": {**_DAYS, "value": numbers[1]}}


def _reference(kind: str, value: str, source: str) -> dict[str, Any]:
    if source == "fhir":
        return {"reference": f"{kind}/{value}"}
    field = "subject_id" if kind == "Patient" else "admission_id"
    return {"type": kind, "identifier": {"system": f"urn:medlearn:{source}:{field}", "value": value}}


def _iso(text: str | None) -> str | None:
    """A FHIR dateTime: ``2150-01-14 19:05:33`` → ``2150-01-14T19:05:33Z``. FHIR requires a zone with a
    time; the sources' times carry none (MIMIC and eICU dates are shifted), so they are written as UTC."""
    if not text:
        return None
    iso = text.replace(" ", "T", 1)
    return iso if re.search(r"(Z|[+-]\d\d:\d\d)$", iso) else iso + "Z"


def risk_assessment(
    record: dict[str, Any], task: str, model_version: str, source: str = "fhir"
) -> dict[str, Any]:
    """One ``RiskAssessment`` (a JSON-able dict, validated) for one prediction record.

    Args:
        record: a record of ``Bundle.predict`` for an EHR unit (``unit`` = ``subject/admission``).
        task: the bundle's task name (``los_classification``, ``los_regression``, ``in_hospital_mortality``).
        model_version: the bundle's version (e.g. the first 12 hex of its manifest's SHA-256).
        source: the input's kind (``fhir``, ``mimic4``, ``mimic3``, ``eicu``, ``meds``): decides how the
            patient and encounter are referenced.

    Raises:
        ValueError: a record without a prediction (skipped or refused), or one that does not validate.
    """
    from fhir.resources.R4B.riskassessment import RiskAssessment

    if "label" not in record and "value" not in record:
        raise ValueError(f"{record.get('unit', '?')}: no prediction to express (skipped or refused)")
    subject, _, admission = str(record["unit"]).partition("/")
    details = record.get("details", {})
    predictions: list[dict[str, Any]] = []
    if "probabilities" in record:  # length-of-stay bins
        for name, p in record["probabilities"].items():
            predictions.append(
                {
                    "outcome": {
                        "coding": [{"system": LOS_CODE_SYSTEM, "code": name}],
                        "text": f"{name} remaining",
                    },
                    "probabilityDecimal": p,
                    "whenRange": _bin_range(name),
                }
            )
    elif "probability" in record:  # in-hospital mortality
        predictions.append(
            {
                "outcome": {
                    "coding": [{"system": SNOMED, "code": "419099009", "display": "Dead"}],
                    "text": "death in hospital",
                },
                "probabilityDecimal": record["probability"],
            }
        )
    else:  # remaining length of stay in days
        entry: dict[str, Any] = {"outcome": {"text": f"remaining length of stay {record['value']:g} d"}}
        if record.get("interval"):
            low, high = record["interval"]
            entry["whenRange"] = {"low": {**_DAYS, "value": low}, "high": {**_DAYS, "value": high}}
        predictions.append(entry)
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": _reference("Patient", subject, source),
        "encounter": _reference("Encounter", admission, source),
        "method": {
            "coding": [{"system": MODEL_SYSTEM, "code": str(record["model"]), "version": model_version}],
            "text": f"medlearn {task} model {record['model']} (version {model_version})",
        },
        "basis": [_reference("Encounter", admission, source), _reference("Patient", subject, source)],
        "prediction": predictions,
    }
    when = _iso(details.get("prediction_time"))
    if when:
        resource["occurrenceDateTime"] = when
    if record.get("warnings"):
        resource["note"] = [{"text": w} for w in record["warnings"]]
    return RiskAssessment.model_validate(resource).model_dump(mode="json", exclude_none=True)


def risk_assessment_bundle(records: list[dict[str, Any]], task: str, model_version: str) -> dict[str, Any]:
    """A FHIR ``Bundle`` (type ``collection``) of one RiskAssessment per predicted record (what
    ``medlearn predict --fhir`` prints). Skipped and refused records are left out; each record's
    ``details.source`` (the input's kind) decides how its patient is referenced."""
    from fhir.resources.R4B.bundle import Bundle

    entries = [
        {
            "resource": risk_assessment(
                r, task, model_version, source=r.get("details", {}).get("source", "fhir")
            )
        }
        for r in records
        if "label" in r or "value" in r
    ]
    return Bundle.model_validate(
        {"resourceType": "Bundle", "type": "collection", "entry": entries}
    ).model_dump(mode="json", exclude_none=True)
