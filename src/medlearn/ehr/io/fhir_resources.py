"""FHIR resources → rows for :mod:`medlearn.ehr.io.fhir`: one bundle at a time into the shared state.

Owns the per-resource-type mapping: the accumulating state (``_State``, ``_Rows``, ``_Patient``),
the bundle walk (``_read_bundle``: reference index, Patient check, directory-only bundles, dropped
entered-in-error resources) and the mapping of Patient, Encounter, Condition, MedicationRequest,
MedicationAdministration, Observation (with its components), Procedure and Immunization to patient,
encounter and event rows, with every quirk counted for the notes. The mapping is described in the
docstring of :mod:`medlearn.ehr.io.fhir`; the frames are built there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from medlearn.ehr.io.fhir_values import SYSTEMS, _get, _num, _ref_id, _str, normalise_code, parse_time
from medlearn.ehr.io.schema import EVENT_SCHEMA
from medlearn.errors import InputError

#: Resource types that describe the care system, not a patient: bundles of only these are skipped.
DIRECTORY_TYPES = frozenset(
    {"Organization", "Practitioner", "PractitionerRole", "Location", "HealthcareService", "Endpoint"}
)
#: Clinical resource types read into events.
EVENT_TYPES = (
    "Condition",
    "MedicationRequest",
    "MedicationAdministration",
    "Observation",
    "Procedure",
    "Immunization",
)


@dataclass
class _Rows:
    """Column lists of one output table."""

    columns: dict[str, list[Any]]

    @classmethod
    def of(cls, schema: dict[str, pl.DataType]) -> _Rows:
        return cls({name: [] for name in schema})

    def add(self, **values: Any) -> None:
        for name, column in self.columns.items():
            column.append(values.get(name))

    def frame(self, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        return pl.DataFrame(self.columns, schema=schema)


@dataclass
class _Patient:
    sex: str | None
    birth: datetime | None
    death: datetime | None
    deceased_unknown: bool = False  # deceasedBoolean true without a time
    race: str | None = None  # US Core race (+ Hispanic or Latino ethnicity), see :func:`_race`


@dataclass
class _State:
    """Everything gathered across bundles before the frames are built."""

    events: _Rows = field(default_factory=lambda: _Rows.of({**EVENT_SCHEMA, "encounter_ref": pl.String()}))
    encounters: list[dict[str, Any]] = field(default_factory=list)
    patients: dict[str, _Patient] = field(default_factory=dict)
    codes: dict[tuple[str, str], str | None] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    unmapped: Counter = field(default_factory=Counter)
    unknown_systems: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    bundles: int = 0


def _read_bundle(path: Path, bundle: dict[str, Any], state: _State) -> None:
    resources: list[tuple[str | None, dict[str, Any]]] = []
    for entry in bundle.get("entry", []):
        resource = _get(entry, "resource")
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            resources.append((_str(_get(entry, "fullUrl")), resource))
        else:
            state.counts["entry_without_resource"] += 1
    types = Counter(resource["resourceType"] for _, resource in resources)
    if not types["Patient"]:
        if types and set(types) <= DIRECTORY_TYPES:
            held = ", ".join(f"{t} {n:,}" for t, n in sorted(types.items()))
            state.notes.append(
                f"{path.name}: bundle without a Patient holding only directory resources ({held}) skipped"
            )
            return
        held = ", ".join(f"{t} {n:,}" for t, n in sorted(types.items())) or "no resources"
        raise InputError(
            f"{path}: bundle has no Patient resource ({held}); each bundle must hold the "
            "Patient its resources belong to"
        )
    state.bundles += 1
    # reference index: fullUrl and Type/id → id, and the resources by id (for Medication references)
    index: dict[str, str] = {}
    by_ref: dict[str, dict[str, Any]] = {}
    for full_url, resource in resources:
        rid = _str(resource.get("id"))
        if rid is None:
            continue
        for key in filter(None, (full_url, f"{resource['resourceType']}/{rid}")):
            index[key] = rid
            by_ref[key] = resource
    patients = [r for _, r in resources if r["resourceType"] == "Patient"]
    for patient in patients:
        _patient(path, patient, state)
    only = _str(patients[0].get("id")) if len(patients) == 1 else None
    for _, resource in resources:
        kind = resource["resourceType"]
        if kind == "Patient" or kind in DIRECTORY_TYPES:
            continue
        if kind not in ("Encounter", *EVENT_TYPES):
            state.unmapped[kind] += 1
            continue
        subject = _ref_id(resource.get("subject") or resource.get("patient"), index) or only
        if subject is None:
            state.counts[f"no_subject:{kind}"] += 1
            continue
        if _entered_in_error(resource):
            state.counts[f"error:{kind}"] += 1
            continue
        if kind == "Encounter":
            _encounter(resource, subject, state)
        else:
            _event(kind, resource, subject, _ref_id(resource.get("encounter"), index), by_ref, state)


def _entered_in_error(resource: dict[str, Any]) -> bool:
    if resource.get("status") == "entered-in-error":
        return True
    verification = _get(resource, "verificationStatus", "coding", 0, "code")
    return verification in ("entered-in-error", "refuted")


def _time(raw: Any, what: str, state: _State) -> datetime | None:
    parsed = parse_time(raw)
    if parsed.status in ("date", "naive", "bad"):
        state.counts[f"time_{parsed.status}:{what}"] += 1
    return parsed.value


def _patient(path: Path, patient: dict[str, Any], state: _State) -> None:
    pid = _str(patient.get("id"))
    if pid is None:
        raise InputError(f"{path}: a Patient resource has no id")
    if pid in state.patients:
        state.counts["duplicate_patient"] += 1
        return
    sex = {"female": "F", "male": "M"}.get(_str(patient.get("gender")) or "")
    born = parse_time(patient.get("birthDate"), end_of_day=False)  # a date: the age counts from its start
    birth = born.value
    if born.status == "bad":
        state.counts["time_bad:Patient.birthDate"] += 1
    death = _time(patient.get("deceasedDateTime"), "Patient.deceasedDateTime", state)
    unknown = death is None and patient.get("deceasedBoolean") is True
    if unknown:
        state.counts["deceased_without_time"] += 1
    state.patients[pid] = _Patient(sex, birth, death, unknown, _race(patient))


US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
HISPANIC_OR_LATINO = "2135-2"  # CDC Race & Ethnicity code set (urn:oid:2.16.840.1.113883.6.238)


def _race(patient: dict[str, Any]) -> str | None:
    """The US Core race extension's ``text`` (else its ombCategory displays joined by ", "), with
    " / Hispanic or Latino" when the US Core ethnicity extension has that ombCategory; None without them."""
    race, hispanic = None, False
    for ext in patient.get("extension") or []:
        if not isinstance(ext, dict):
            continue
        parts = [p for p in ext.get("extension") or [] if isinstance(p, dict)]
        if ext.get("url") == US_CORE + "us-core-race":
            text = [_str(p.get("valueString")) for p in parts if p.get("url") == "text"]
            omb = [_str(_get(p, "valueCoding", "display")) for p in parts if p.get("url") == "ombCategory"]
            race = next((t for t in text if t), None) or ", ".join(o for o in omb if o) or None
        elif ext.get("url") == US_CORE + "us-core-ethnicity":
            hispanic = any(
                _str(_get(p, "valueCoding", "code")) == HISPANIC_OR_LATINO
                for p in parts
                if p.get("url") == "ombCategory"
            )
    if hispanic:
        return f"{race} / Hispanic or Latino" if race else "Hispanic or Latino"
    return race


def _encounter_class(resource: dict[str, Any]) -> str | None:
    cls = resource.get("class")
    if isinstance(cls, list):  # R5: a list of CodeableConcepts
        return _str(_get(cls, 0, "coding", 0, "code"))
    return _str(_get(cls, "code"))


def _encounter(resource: dict[str, Any], subject: str, state: _State) -> None:
    eid = _str(resource.get("id"))
    if eid is None:
        state.counts["encounter_without_id"] += 1
        return
    state.encounters.append(
        {
            "subject_id": subject,
            "admission_id": eid,
            "admit_time": _time(_get(resource, "period", "start"), "Encounter.period.start", state),
            "discharge_time": _time(_get(resource, "period", "end"), "Encounter.period.end", state),
            "admission_type": _encounter_class(resource),
        }
    )


def _codings(concept: Any, kind: str, state: _State) -> list[tuple[str, str, str | None]]:
    """(code_system, code, display) of each usable coding of a CodeableConcept."""
    out = []
    codings = _get(concept, "coding")
    for coding in codings if isinstance(codings, list) else []:
        uri, code = _str(_get(coding, "system")), _str(_get(coding, "code"))
        if uri is None or code is None:
            state.counts[f"coding_incomplete:{kind}"] += 1
            continue
        system = SYSTEMS.get(uri.rstrip("/"))
        if system == "ICD9CM" and kind == "Procedure":
            system = "ICD9PCS"  # ICD-9-CM volume 3 (procedures) shares the URI
        if system is None:
            state.unknown_systems[uri] += 1
            system = uri
        out.append((system, normalise_code(system, code), _str(_get(coding, "display"))))
    if not out:
        state.counts[f"uncoded:{kind}"] += 1
    return out


def _value(holder: dict[str, Any], state: _State) -> tuple[float | None, str | None, str | None, bool]:
    """(value_num, unit, value_text, has_value) of an Observation or one of its components."""
    quantity = holder.get("valueQuantity")
    if isinstance(quantity, dict):
        value = _num(quantity.get("value"))
        unit = _str(quantity.get("unit")) or _str(quantity.get("code"))
        comparator = _str(quantity.get("comparator"))
        if comparator is not None:
            state.counts["comparator"] += 1
            return None, unit, f"{comparator}{_str(quantity.get('value')) or ''}", True
        if value is None and quantity.get("value") is not None:
            state.counts["bad_quantity"] += 1
            return None, unit, _str(quantity.get("value")), True
        return value, unit, None, value is not None
    if "valueInteger" in holder:
        return _num(holder["valueInteger"]), None, _str(holder["valueInteger"]), True
    if isinstance(holder.get("valueBoolean"), bool):
        flag = holder["valueBoolean"]
        return float(flag), None, "true" if flag else "false", True
    if "valueString" in holder:
        return None, None, _str(holder["valueString"]), True
    concept = holder.get("valueCodeableConcept")
    if isinstance(concept, dict):
        text = (
            _str(concept.get("text"))
            or _str(_get(concept, "coding", 0, "display"))
            or _str(_get(concept, "coding", 0, "code"))
        )
        return None, None, text, True
    for key in ("valueDateTime", "valueTime"):
        if key in holder:
            return None, None, _str(holder[key]), True
    if any(key.startswith("value") for key in holder):
        state.counts["unsupported_value"] += 1
        return None, None, None, True
    return None, None, None, False


def _event(
    kind: str,
    resource: dict[str, Any],
    subject: str,
    encounter: str | None,
    by_ref: dict[str, dict[str, Any]],
    state: _State,
) -> None:
    value_num = unit = value_text = None
    if kind == "Condition":
        raw, where = resource.get("recordedDate"), "Condition.recordedDate"
        if raw is None:
            raw = resource.get("onsetDateTime") or _get(resource, "onsetPeriod", "start")
            where = "Condition.onset"
        time, concept = _time(raw, where, state), resource.get("code")
    elif kind in ("MedicationRequest", "MedicationAdministration"):
        concept = resource.get("medicationCodeableConcept")
        if concept is None:
            concept = _medication(resource, by_ref)
        if kind == "MedicationRequest":
            time = _time(resource.get("authoredOn"), "MedicationRequest.authoredOn", state)
            dose = _get(resource, "dosageInstruction", 0, "doseAndRate", 0, "doseQuantity")
        else:
            raw = resource.get("effectiveDateTime") or _get(resource, "effectivePeriod", "start")
            time = _time(raw, "MedicationAdministration.effective", state)
            dose = _get(resource, "dosage", "dose")
        if isinstance(dose, dict):
            value_num, unit = _num(dose.get("value")), _str(dose.get("unit")) or _str(dose.get("code"))
    elif kind == "Procedure":
        raw = resource.get("performedDateTime") or _get(resource, "performedPeriod", "start")
        time, concept = _time(raw, "Procedure.performed", state), resource.get("code")
    elif kind == "Immunization":
        time = _time(resource.get("occurrenceDateTime"), "Immunization.occurrenceDateTime", state)
        concept = resource.get("vaccineCode")
    else:  # Observation
        # known when issued (the result released to providers), never before its effective (specimen) time
        raw = (
            resource.get("effectiveDateTime")
            or _get(resource, "effectivePeriod", "start")
            or resource.get("effectiveInstant")
        )
        effective = _time(raw, "Observation.effective", state) if raw is not None else None
        issued = (
            _time(resource["issued"], "Observation.issued", state)
            if resource.get("issued") is not None
            else None
        )
        known = [t for t in (effective, issued) if t is not None]
        time = max(known) if known else None
        if issued is not None and effective is not None and issued > effective:
            state.counts["issued_after_effective"] += 1
        components = resource.get("component") if isinstance(resource.get("component"), list) else []
        for component in components:
            if not isinstance(component, dict):
                continue
            num, cunit, text, _ = _value(component, state)
            for system, code, display in _codings(component.get("code"), "Observation.component", state):
                _add(
                    state,
                    subject,
                    encounter,
                    time,
                    system,
                    code,
                    display,
                    num,
                    cunit,
                    text,
                    "Observation.component",
                )
        value_num, unit, value_text, has_value = _value(resource, state)
        if components and not has_value:
            return  # a panel (blood pressure): its components are the events
        concept = resource.get("code")
    for system, code, display in _codings(concept, kind, state):
        _add(state, subject, encounter, time, system, code, display, value_num, unit, value_text, kind)


def _medication(resource: dict[str, Any], by_ref: dict[str, dict[str, Any]]) -> Any:
    """The code of the Medication a ``medicationReference`` points to (in the bundle or contained)."""
    ref = _str(_get(resource, "medicationReference", "reference"))
    if ref is None:
        return None
    if ref.startswith("#"):
        contained = resource.get("contained") if isinstance(resource.get("contained"), list) else []
        target = next((c for c in contained if isinstance(c, dict) and c.get("id") == ref[1:]), None)
    else:
        target = by_ref.get(ref)
    return _get(target, "code")


def _add(
    state: _State,
    subject: str,
    encounter: str | None,
    time: datetime | None,
    system: str,
    code: str,
    display: str | None,
    value_num: float | None,
    unit: str | None,
    value_text: str | None,
    source_table: str,
) -> None:
    state.events.add(
        subject_id=subject,
        encounter_ref=encounter,
        time=time,
        code_system=system,
        code=code,
        value_num=value_num,
        unit=unit,
        value_text=value_text,
        source_table=source_table,
    )
    if state.codes.get((system, code)) is None:  # the first display seen
        state.codes[(system, code)] = display
    state.counts[f"events:{source_table}"] += 1
