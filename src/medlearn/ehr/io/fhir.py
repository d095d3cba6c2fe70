"""FHIR R4 bundles (a folder of Bundle ``.json`` files, or one file) → the canonical tables.

Bundles are parsed with the standard library ``json`` (a patient bundle is a few hundred kB) and the
tables are built as polars frames with the exact schemas, returned lazily like the other readers.
One bundle per patient (Synthea, the SMART sample data) and bundles holding several patients both
work. Bundles without a Patient that hold only directory resources (Organization, Practitioner,
Location …; Synthea's ``hospitalInformation*.json`` / ``practitionerInformation*.json``) are skipped
with a note; any other bundle without a Patient is an error.

Mapping (``source_table`` is the resource type):

- ``Patient`` → ``subject_id`` = ``Patient.id``; sex from ``gender`` (female/male → F/M, else null);
  ``birthDate`` for the age; ``deceasedDateTime`` for the death time.
- ``Encounter`` → one admission row per encounter, **every class kept**: ``admission_id`` =
  ``Encounter.id``, ``admit_time``/``discharge_time`` = ``period.start``/``period.end`` (an open period,
  i.e. a patient still in hospital, has a null discharge), ``admission_type`` = the ``class`` code
  (v3 ActCode: ``IMP`` inpatient, ``EMER`` emergency, ``AMB`` ambulatory, …; the inpatient ones are
  :data:`INPATIENT_CLASSES`), ``died_in_hospital`` = the patient's ``deceasedDateTime`` lies within the
  period (then ``death_time`` is set), ``age_years`` = (admit − birthDate) in years of 365.2425 days,
  capped at 90.
- ``Condition`` → its codings at ``recordedDate`` (when the diagnosis became known), else
  ``onsetDateTime`` / ``onsetPeriod.start``: an onset can be back-dated to before it was recorded,
  and ``time`` is when the information became available.
- ``MedicationRequest`` (``authoredOn``) / ``MedicationAdministration`` (``effectiveDateTime`` or
  ``effectivePeriod.start``) → ``medicationCodeableConcept`` (or the referenced ``Medication``'s code);
  ``value_num``/``unit`` = the dose quantity when given.
- ``Observation`` → at ``effectiveDateTime`` (``effectivePeriod.start``, ``effectiveInstant``, else
  ``issued``); ``value_num``/``unit`` from ``valueQuantity`` (``valueInteger``, ``valueBoolean`` as
  1/0 too), ``value_text`` from ``valueString`` / ``valueCodeableConcept`` (its text, else the first
  display or code) / ``valueDateTime``; a quantity with a ``comparator`` ("<0.5") stays text with
  ``value_num`` null. Each ``component`` (e.g. the systolic and diastolic parts of blood pressure
  55284-4) is its own event (``source_table`` "Observation.component") with its own code; the parent is
  kept only when it has a value of its own or no components.
- ``Procedure`` → at ``performedDateTime`` or ``performedPeriod.start``.
- ``Immunization`` → CVX at ``occurrenceDateTime``.
- Other resource types (Claim, ExplanationOfBenefit, CarePlan, DiagnosticReport — whose results are the
  Observations already read —, AllergyIntolerance, ImagingStudy, …) are counted in a note, not read.

Codes: one event per coding of a resource's code (a Condition coded in SNOMED and ICD-10-CM gives two
events, so each vocabulary can be matched); ``code_system`` from the coding's ``system`` URI
(:data:`SYSTEMS`: SNOMED, LOINC, RXNORM, ICD10CM, ICD9CM, ICD9PCS, ICD10PCS, CVX, NDC, CPT …; an
unknown URI is kept as the code system and noted). ICD codes lose their dot (MIMIC style, ``E119``),
hyphenated NDCs are padded to the 11-digit 5-4-2 form MIMIC uses. ``codes`` holds each coding's
``display``.

References: ``urn:uuid:<id>`` (transaction bundles), ``Encounter/<id>``, absolute URLs and ``#contained``
ids are resolved; an event keeps ``admission_id`` null when it names no encounter or one absent from
every bundle read (counted). Resources marked ``entered-in-error`` (and refuted Conditions) are dropped.

Times: FHIR ``dateTime`` values with an offset (``2011-09-02T10:35:11.367+02:00``, ``Z``) are converted
to UTC and stored without a time zone, to the microsecond; a time without an offset (invalid FHIR) is
kept as given and counted. **Date-only values count as the END of that day**, 23:59:59 (partial dates
``YYYY-MM`` / ``YYYY``: the end of that month / year), as in the MIMIC readers: the event is only certain
once the day is over. ``birthDate`` is the exception: the age uses the start of the birth day. An
unparsable time becomes null (the row is kept) and is counted.
"""

from __future__ import annotations

import calendar
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from medlearn.engine.data import fingerprint_files
from medlearn.errors import InputError
from medlearn.ehr.io.schema import (
    ADMISSION_SCHEMA,
    CODES_SCHEMA,
    EVENT_SCHEMA,
    MAX_AGE_YEARS,
    EHRSource,
)

READER_VERSION = "1"
#: Coding system URI → the canonical ``code_system`` name.
SYSTEMS: dict[str, str] = {
    "http://snomed.info/sct": "SNOMED",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM",
    "http://hl7.org/fhir/sid/icd-9-cm": "ICD9CM",
    "http://hl7.org/fhir/sid/icd-10": "ICD10",
    "http://www.cms.gov/Medicare/Coding/ICD10": "ICD10PCS",
    "http://hl7.org/fhir/sid/icd-10-pcs": "ICD10PCS",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "http://hl7.org/fhir/sid/ndc": "NDC",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "urn:oid:2.16.840.1.113883.6.96": "SNOMED",
    "urn:oid:2.16.840.1.113883.6.1": "LOINC",
    "urn:oid:2.16.840.1.113883.6.88": "RXNORM",
}
#: Encounter class codes (v3 ActCode) of inpatient stays: the encounters length of stay is about.
INPATIENT_CLASSES = ("IMP", "ACUTE", "NONAC")
#: Resource types that describe the care system, not a patient: bundles of only these are skipped.
DIRECTORY_TYPES = frozenset({"Organization", "Practitioner", "PractitionerRole", "Location",
                             "HealthcareService", "Endpoint"})
#: Clinical resource types read into events.
EVENT_TYPES = ("Condition", "MedicationRequest", "MedicationAdministration", "Observation", "Procedure",
               "Immunization")
_DAYS_PER_YEAR = 365.2425
_DATETIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:?\d{2})?)?)?)?"
)
_ICD = frozenset({"ICD9CM", "ICD10CM", "ICD9PCS", "ICD10PCS", "ICD10"})


# --------------------------------------------------------------------------------------------- files


def source_files(root: Path) -> list[Path]:
    """The bundle files :func:`read_fhir` reads: ``root`` itself, or the ``*.json`` files in it."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"{root}: does not exist (expected a FHIR bundle .json file or a folder of them)")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".json")
    if not files:
        raise InputError(f"{root}: no FHIR bundle files (*.json) in this folder")
    return files


def fingerprint(root: Path) -> str:
    """Content hash of the bundle files and the reader version: the key of every cache."""
    return fingerprint_files(source_files(Path(root)), extra=f"fhir:{READER_VERSION}")


def load_bundle(path: Path) -> dict[str, Any]:
    """Parse one file and check it is a FHIR Bundle (InputError naming the file and line otherwise)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); a FHIR bundle is UTF-8 JSON") from exc
    if not text.strip():
        raise InputError(f"{path}: file is empty (expected a FHIR Bundle)")
    try:
        bundle = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InputError(f"{path}: invalid JSON at {where} ({exc.msg})") from exc
    except RecursionError as exc:
        raise InputError(f"{path}: JSON nested too deeply") from exc
    if not isinstance(bundle, dict):
        raise InputError(f"{path}: not a FHIR Bundle (the JSON is a {type(bundle).__name__}, not an object)")
    kind = bundle.get("resourceType")
    if kind != "Bundle":
        what = f"resourceType is {kind!r}" if kind is not None else "no resourceType"
        raise InputError(f"{path}: not a FHIR Bundle ({what})")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InputError(f"{path}: Bundle.entry is a {type(entries).__name__}, expected a list")
    return bundle


# --------------------------------------------------------------------------------------------- values


def _get(obj: Any, *keys: str | int) -> Any:
    """``obj[k1][k2]…`` or None when any level is missing or of the wrong type."""
    for key in keys:
        if isinstance(key, int):
            if not isinstance(obj, list) or len(obj) <= key:
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[key] if isinstance(key, int) else obj.get(key)
    return obj


def _str(value: Any) -> str | None:
    """A non-empty string (numbers as text), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _num(value: Any) -> float | None:
    """A finite float from a JSON number (or numeric string), else None."""
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if out == out and abs(out) != float("inf") else None


@dataclass
class _Time:
    value: datetime | None
    status: str  # "ok", "date" (date-only → end of day), "naive" (no offset), "bad", "missing"


def parse_time(raw: Any, end_of_day: bool = True) -> _Time:
    """A FHIR date/dateTime/instant as a UTC-naive microsecond datetime.

    Date-only values (and partial dates) become the END of that day / month / year (23:59:59) unless
    ``end_of_day`` is False (then the start; used for ``birthDate``).
    """
    if raw is None:
        return _Time(None, "missing")
    if not isinstance(raw, str):
        return _Time(None, "bad")
    match = _DATETIME.fullmatch(raw.strip())
    if match is None:
        return _Time(None, "bad")
    year, month, day, hour, minute, second, frac, offset = match.groups()
    try:
        if hour is None:  # date only, or a partial date
            y, m = int(year), int(month) if month else (12 if end_of_day else 1)
            d = int(day) if day else (calendar.monthrange(y, m)[1] if end_of_day else 1)
            start = datetime(y, m, d)
            if not end_of_day:
                return _Time(start, "date")
            return _Time(start + timedelta(hours=23, minutes=59, seconds=59), "date")
        micro = int((frac or "0")[:6].ljust(6, "0"))
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro)
        if offset is None:
            return _Time(value, "naive")
        if offset != "Z":
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            value = value - sign * delta  # local time − offset = UTC
        return _Time(value, "ok")
    except (ValueError, OverflowError):
        return _Time(None, "bad")


def normalise_code(system: str, code: str) -> str:
    """ICD codes without their dot (MIMIC style); hyphenated NDCs as 11 digits (5-4-2)."""
    if system in _ICD:
        return code.replace(".", "")
    if system == "NDC" and code.count("-") == 2:
        labeler, product, package = code.split("-")
        if (labeler + product + package).isdigit():
            return labeler.zfill(5) + product.zfill(4) + package.zfill(2)
    return code


def _ref_id(ref: Any, index: dict[str, str]) -> str | None:
    """The resource id a FHIR reference points to (``urn:uuid:x``, ``Type/x``, ``http://…/Type/x``)."""
    ref = _str(_get(ref, "reference")) if isinstance(ref, dict) else _str(ref)
    if ref is None or "?" in ref:  # absent, or a conditional reference: no id to resolve
        return None
    if ref in index:
        return index[ref]
    if ref.startswith(("urn:uuid:", "urn:oid:")):
        return ref.split(":", 2)[2]
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    return parts[-1] or None


# --------------------------------------------------------------------------------------------- reader


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


def read_fhir(root: Path) -> EHRSource:
    """Read a folder of FHIR R4 bundle ``.json`` files (or one bundle file) into an :class:`EHRSource`."""
    root = Path(root)
    files = source_files(root)
    state = _State()
    for path in files:
        _read_bundle(path, load_bundle(path), state)
    if state.bundles == 0:
        raise InputError(f"{root}: no bundle with a Patient among {len(files)} file(s) "
                         "(only Organization/Practitioner bundles)")
    admissions = _admissions(state)
    events = _events(state, set(admissions["admission_id"].to_list()))
    codes = pl.DataFrame(
        {"code_system": [s for s, _ in state.codes], "code": [c for _, c in state.codes],
         "description": list(state.codes.values())}, schema=CODES_SCHEMA)
    return EHRSource(
        name=root.stem if root.is_file() else root.name,
        root=root,
        events=events.lazy(),
        admissions=admissions.lazy(),
        fingerprint=fingerprint(root),
        notes=_summary(state, admissions) + state.notes + _count_notes(state),
        codes=codes.lazy(),
        kind="fhir",
    )


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
            state.notes.append(f"{path.name}: bundle without a Patient holding only directory resources "
                               f"({held}) skipped")
            return
        held = ", ".join(f"{t} {n:,}" for t, n in sorted(types.items())) or "no resources"
        raise InputError(f"{path}: bundle has no Patient resource ({held}); each bundle must hold the "
                         "Patient its resources belong to")
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
    state.patients[pid] = _Patient(sex, birth, death, unknown)


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
    state.encounters.append({
        "subject_id": subject,
        "admission_id": eid,
        "admit_time": _time(_get(resource, "period", "start"), "Encounter.period.start", state),
        "discharge_time": _time(_get(resource, "period", "end"), "Encounter.period.end", state),
        "admission_type": _encounter_class(resource),
    })


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
        text = (_str(concept.get("text")) or _str(_get(concept, "coding", 0, "display"))
                or _str(_get(concept, "coding", 0, "code")))
        return None, None, text, True
    for key in ("valueDateTime", "valueTime"):
        if key in holder:
            return None, None, _str(holder[key]), True
    if any(key.startswith("value") for key in holder):
        state.counts["unsupported_value"] += 1
        return None, None, None, True
    return None, None, None, False


def _event(kind: str, resource: dict[str, Any], subject: str, encounter: str | None,
           by_ref: dict[str, dict[str, Any]], state: _State) -> None:
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
        raw = (resource.get("effectiveDateTime") or _get(resource, "effectivePeriod", "start")
               or resource.get("effectiveInstant") or resource.get("issued"))
        time = _time(raw, "Observation.effective", state)
        components = resource.get("component") if isinstance(resource.get("component"), list) else []
        for component in components:
            if not isinstance(component, dict):
                continue
            num, cunit, text, _ = _value(component, state)
            for system, code, display in _codings(component.get("code"), "Observation.component", state):
                _add(state, subject, encounter, time, system, code, display, num, cunit, text,
                     "Observation.component")
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


def _add(state: _State, subject: str, encounter: str | None, time: datetime | None, system: str, code: str,
         display: str | None, value_num: float | None, unit: str | None, value_text: str | None,
         source_table: str) -> None:
    state.events.add(subject_id=subject, encounter_ref=encounter, time=time, code_system=system, code=code,
                     value_num=value_num, unit=unit, value_text=value_text, source_table=source_table)
    if state.codes.get((system, code)) is None:  # the first display seen
        state.codes[(system, code)] = display
    state.counts[f"events:{source_table}"] += 1


def _admissions(state: _State) -> pl.DataFrame:
    rows = _Rows.of(ADMISSION_SCHEMA)
    seen: set[str] = set()
    for enc in state.encounters:
        if enc["admission_id"] in seen:
            state.counts["duplicate_encounter"] += 1
            continue
        seen.add(enc["admission_id"])
        patient = state.patients.get(enc["subject_id"])
        if patient is None:
            state.counts["unknown_subject_encounter"] += 1
        admit, discharge = enc["admit_time"], enc["discharge_time"]
        died = death = age = None
        if patient is not None:
            if patient.death is not None and admit is not None:
                died = admit <= patient.death and (discharge is None or patient.death <= discharge)
                death = patient.death if died else None
            elif patient.death is None and not patient.deceased_unknown:
                died = False
            if patient.birth is not None and admit is not None:
                age = (admit - patient.birth).total_seconds() / (86400 * _DAYS_PER_YEAR)
                if age > 89:
                    state.counts["age_capped"] += 1
                age = min(age, MAX_AGE_YEARS)
        rows.add(**enc, death_time=death, died_in_hospital=died, age_years=age,
                 sex=patient.sex if patient is not None else None)
    return rows.frame(ADMISSION_SCHEMA)


def _events(state: _State, encounter_ids: set[str]) -> pl.DataFrame:
    refs = state.events.columns.pop("encounter_ref")
    admission = []
    for ref in refs:
        if ref is None:
            state.counts["no_encounter"] += 1
            admission.append(None)
        elif ref in encounter_ids:
            admission.append(ref)
        else:
            state.counts["unknown_encounter"] += 1
            admission.append(None)
    state.events.columns["admission_id"] = admission
    state.counts["unknown_subject"] = sum(s not in state.patients for s in state.events.columns["subject_id"])
    return state.events.frame(EVENT_SCHEMA)


def _summary(state: _State, admissions: pl.DataFrame) -> list[str]:
    classes = Counter(admissions["admission_type"].to_list())
    by_class = ", ".join(f"{c or 'no class'} {n:,}" for c, n in sorted(classes.items(), key=lambda x: -x[1]))
    inpatient = sum(n for c, n in classes.items() if c in INPATIENT_CLASSES)
    notes = [f"{state.bundles:,} patient bundle(s): {len(state.patients):,} patient(s), "
             f"{admissions.height:,} encounter(s) ({by_class or 'none'}); admission_type is the "
             f"Encounter.class code and only {'/'.join(INPATIENT_CLASSES)} are inpatient stays "
             f"({inpatient:,})"]
    if state.unmapped:
        held = ", ".join(f"{t} {n:,}" for t, n in sorted(state.unmapped.items()))
        notes.append(f"resource types not read (no event mapping): {held}")
    return notes


_MESSAGES = {
    "entry_without_resource": "{n} bundle entr(ies) without a resource skipped",
    "unknown_subject": "{n} event(s) of a patient id with no Patient resource in the bundles (kept)",
    "unknown_subject_encounter": "{n} encounter(s) of a patient id with no Patient resource (no age/sex)",
    "duplicate_patient": "{n} Patient id(s) seen in more than one bundle (the first is used)",
    "duplicate_encounter": "{n} Encounter id(s) seen more than once (the first is used)",
    "encounter_without_id": "{n} Encounter(s) without an id skipped",
    "deceased_without_time": "{n} patient(s) deceased without a deceasedDateTime (died_in_hospital null)",
    "comparator": "{n} quantity value(s) with a comparator (e.g. '<0.5') kept in value_text, value_num null",
    "bad_quantity": "{n} non-numeric valueQuantity value(s) kept in value_text, value_num null",
    "unsupported_value": "{n} Observation value(s) of an unsupported type (Range, Ratio, …) left null",
    "age_capped": "{n} admission(s) with age > 89 capped at 90",
    "no_encounter": "{n} event(s) naming no encounter: admission_id null",
    "unknown_encounter": "{n} event(s) naming an encounter absent from the bundles: admission_id null",
}


def _count_notes(state: _State) -> list[str]:
    notes = []
    for key, n in sorted(state.counts.items()):
        if not n or key.startswith("events:"):
            continue
        prefix, _, what = key.partition(":")
        if key in _MESSAGES:
            notes.append(_MESSAGES[key].format(n=f"{n:,}"))
        elif prefix == "time_date":
            notes.append(f"{n:,} date-only '{what}' value(s) counted at 23:59:59 of that day")
        elif prefix == "time_naive":
            notes.append(f"{n:,} '{what}' time(s) without a UTC offset kept as given")
        elif prefix == "time_bad":
            notes.append(f"{n:,} malformed '{what}' timestamp(s) set to null")
        elif prefix == "no_subject":
            notes.append(f"{n:,} {what} resource(s) naming no patient skipped")
        elif prefix == "error":
            notes.append(f"{n:,} {what} resource(s) entered-in-error (or refuted) dropped")
        elif prefix == "coding_incomplete":
            notes.append(f"{n:,} {what} coding(s) without a system or code dropped")
        elif prefix == "uncoded":
            notes.append(f"{n:,} {what} resource(s) with no usable coding dropped")
    for uri, n in sorted(state.unknown_systems.items()):
        notes.append(f"{n:,} coding(s) of the unrecognised system {uri!r} kept with the URI as code_system")
    return notes


def inpatient(admissions: pl.LazyFrame) -> pl.LazyFrame:
    """The inpatient encounters (class in :data:`INPATIENT_CLASSES`) of an admission table."""
    return admissions.filter(pl.col("admission_type").is_in(list(INPATIENT_CLASSES)))


__all__ = ["INPATIENT_CLASSES", "SYSTEMS", "fingerprint", "inpatient", "load_bundle", "normalise_code",
           "parse_time", "read_fhir", "source_files"]
