"""FHIR R4 bundles (a folder of Bundle ``.json`` files, or one file) → the canonical tables.

Bundles are parsed with the standard library ``json`` (a patient bundle is a few hundred kB) and the
tables are built as polars frames with the exact schemas, returned lazily like the other readers.
One bundle per patient (Synthea, the SMART sample data) and bundles holding several patients both
work. Bundles without a Patient that hold only directory resources (Organization, Practitioner,
Location …; Synthea's ``hospitalInformation*.json`` / ``practitionerInformation*.json``) are skipped
with a note; any other bundle without a Patient is an error.

Mapping (``source_table`` is the resource type):

- ``Patient`` → ``subject_id`` = ``Patient.id``; sex from ``gender`` (female/male → F/M, else null);
  ``birthDate`` for the age; ``deceasedDateTime`` for the death time; ``race`` from the US Core race
  extension (its ``text``, else its OMB categories' displays), " / Hispanic or Latino" appended when the US
  Core ethnicity extension's OMB category is 2135-2.
- ``Encounter`` → one admission row per encounter, **every class kept**: ``admission_id`` =
  ``Encounter.id``, ``admit_time``/``discharge_time`` = ``period.start``/``period.end`` (an open period,
  i.e. a patient still in hospital, has a null discharge), ``admission_type`` = the ``class`` code
  (v3 ActCode: ``IMP`` inpatient, ``EMER`` emergency, ``AMB`` ambulatory, …; the inpatient ones are
  :data:`INPATIENT_CLASSES`), ``died_in_hospital`` = the patient's ``deceasedDateTime`` lies within the
  period (then ``death_time`` is set), ``age_years`` = (admit − birthDate) in years of 365.2425 days,
  capped at 90. A repeated Encounter id keeps its first copy; an encounter without
  ``period.start``, or ending before it, is dropped; each reason is counted in the notes.
- ``Condition`` → its codings at ``recordedDate`` (when the diagnosis became known), else
  ``onsetDateTime`` / ``onsetPeriod.start``: an onset can be back-dated to before it was recorded,
  and ``time`` is when the information became available.
- ``MedicationRequest`` (``authoredOn``) / ``MedicationAdministration`` (``effectiveDateTime`` or
  ``effectivePeriod.start``) → ``medicationCodeableConcept`` (or the referenced ``Medication``'s code);
  ``value_num``/``unit`` = the dose quantity when given.
- ``Observation`` → at ``issued``, when the result was released to providers (the later of ``issued``
  and the effective time ``effectiveDateTime`` / ``effectivePeriod.start`` / ``effectiveInstant``,
  which is when the specimen was taken or the sign observed; the effective time alone when ``issued``
  is absent); ``value_num``/``unit`` from ``valueQuantity`` (``valueInteger``, ``valueBoolean`` as
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

**Time = when the care team could know it** (docs/conventions.md#ehr-time): an Observation at
``issued``, a Condition at ``recordedDate``, a MedicationRequest at ``authoredOn``; the others
(MedicationAdministration, Procedure, Immunization) at the time they happened, which is when they
were witnessed. ``Encounter.period.end`` and ``Patient.deceasedDateTime`` are outcomes (admissions only).

Times: FHIR ``dateTime`` values with an offset (``2011-09-02T10:35:11.367+02:00``, ``Z``) are converted
to UTC and stored without a time zone, to the microsecond; a time without an offset (invalid FHIR) is
kept as given and counted. **Date-only values count as the END of that day**, 23:59:59 (partial dates
``YYYY-MM`` / ``YYYY``: the end of that month / year), as in the MIMIC readers: the event is only certain
once the day is over. ``birthDate`` is the exception: the age uses the start of the birth day. An
unparsable time becomes null (the row is kept) and is counted.

Layout: this module owns the public reader (:func:`read_fhir`), the bundle files (:func:`source_files`,
:func:`fingerprint`, :func:`load_bundle`) and the assembly of the tables and notes;
:mod:`medlearn.ehr.io.fhir_resources` maps each resource type to rows and
:mod:`medlearn.ehr.io.fhir_values` parses times, codes, values and references. Their public names are
re-exported here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from medlearn.ehr.io._tables import DROPPED_ADMISSIONS, NOT_IN_TRAINING
from medlearn.ehr.io.fhir_resources import (  # noqa: F401  (DIRECTORY_TYPES, EVENT_TYPES re-exported)
    DIRECTORY_TYPES,
    EVENT_TYPES,
    _read_bundle,
    _Rows,
    _State,
)
from medlearn.ehr.io.fhir_values import SYSTEMS, normalise_code, parse_time
from medlearn.ehr.io.schema import (
    ADMISSION_SCHEMA,
    CODES_SCHEMA,
    EVENT_SCHEMA,
    MAX_AGE_YEARS,
    EHRSource,
)
from medlearn.engine.data import fingerprint_files
from medlearn.errors import InputError

#: 2: Observations at issued; 3: encounters without a start or ending before it dropped; 4: race
READER_VERSION = "4"
#: Encounter class codes (v3 ActCode) of inpatient stays: the encounters length of stay is about.
INPATIENT_CLASSES = ("IMP", "ACUTE", "NONAC")
_DAYS_PER_YEAR = 365.2425


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


# --------------------------------------------------------------------------------------------- reader


def read_fhir(root: Path) -> EHRSource:
    """Read a folder of FHIR R4 bundle ``.json`` files (or one bundle file) into an :class:`EHRSource`."""
    root = Path(root)
    files = source_files(root)
    state = _State()
    for path in files:
        _read_bundle(path, load_bundle(path), state)
    if state.bundles == 0:
        raise InputError(
            f"{root}: no bundle with a Patient among {len(files)} file(s) "
            "(only Organization/Practitioner bundles)"
        )
    admissions = _admissions(state)
    events = _events(state, {enc["admission_id"] for enc in state.encounters})
    codes = pl.DataFrame(
        {
            "code_system": [s for s, _ in state.codes],
            "code": [c for _, c in state.codes],
            "description": list(state.codes.values()),
        },
        schema=CODES_SCHEMA,
    )
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


def _admissions(state: _State) -> pl.DataFrame:
    rows = _Rows.of(ADMISSION_SCHEMA)
    seen: set[str] = set()
    for enc in state.encounters:
        if enc["admission_id"] in seen:
            state.counts["duplicate_encounter"] += 1
            continue
        seen.add(enc["admission_id"])
        admit, discharge = enc["admit_time"], enc["discharge_time"]
        if admit is None:
            state.counts["encounter_without_start"] += 1
            continue
        if discharge is not None and discharge < admit:
            state.counts["encounter_end_before_start"] += 1
            continue
        if discharge is None:
            state.counts["encounter_open"] += 1
        patient = state.patients.get(enc["subject_id"])
        if patient is None:
            state.counts["unknown_subject_encounter"] += 1
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
        rows.add(
            **enc,
            death_time=death,
            died_in_hospital=died,
            age_years=age,
            sex=patient.sex if patient is not None else None,
            race=patient.race if patient is not None else None,
        )
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
    notes = [
        f"{state.bundles:,} patient bundle(s): {len(state.patients):,} patient(s), "
        f"{admissions.height:,} encounter(s) ({by_class or 'none'}); admission_type is the "
        f"Encounter.class code and only {'/'.join(INPATIENT_CLASSES)} are inpatient stays "
        f"({inpatient:,})"
    ]
    if state.unmapped:
        held = ", ".join(f"{t} {n:,}" for t, n in sorted(state.unmapped.items()))
        notes.append(f"resource types not read (no event mapping): {held}")
    return notes


_MESSAGES = {
    "entry_without_resource": "{n} bundle entr(ies) without a resource skipped",
    "unknown_subject": "{n} event(s) of a patient id with no Patient resource in the bundles (kept)",
    "unknown_subject_encounter": "{n} encounter(s) of a patient id with no Patient resource (no age/sex)",
    "duplicate_patient": "{n} Patient id(s) seen in more than one bundle (the first is used)",
    "duplicate_encounter": f"{{n}} repeated Encounter(s) {DROPPED_ADMISSIONS} (the first of each id is kept)",
    "encounter_without_start": f"{{n}} Encounter(s) without a usable period.start {DROPPED_ADMISSIONS} "
    "(cannot be placed in time)",
    "encounter_end_before_start": f"{{n}} Encounter(s) with period.end before period.start {DROPPED_ADMISSIONS} "
    "(impossible times)",
    "encounter_open": "{n} Encounter(s) with an open period (no usable period.end) kept (ongoing stays can be "
    f"predicted for) but {NOT_IN_TRAINING} (no length of stay)",
    "encounter_without_id": "{n} Encounter(s) without an id skipped",
    "deceased_without_time": "{n} patient(s) deceased without a deceasedDateTime (died_in_hospital null)",
    "comparator": "{n} quantity value(s) with a comparator (e.g. '<0.5') kept in value_text, value_num null",
    "bad_quantity": "{n} non-numeric valueQuantity value(s) kept in value_text, value_num null",
    "unsupported_value": "{n} Observation value(s) of an unsupported type (Range, Ratio, …) left null",
    "age_capped": "{n} admission(s) with age > 89 capped at 90",
    "issued_after_effective": "{n} Observation(s) issued after their effective time: timed at 'issued'",
    "no_encounter": "{n} event(s) naming no encounter: admission_id null",
    "unknown_encounter": "{n} event(s) naming an encounter absent from the bundles: admission_id null",
}


#: Note templates for per-kind counters ``"<prefix>:<what>"``.
_PREFIX_MESSAGES = {
    "time_date": "{n} date-only '{what}' value(s) counted at 23:59:59 of that day",
    "time_naive": "{n} '{what}' time(s) without a UTC offset kept as given",
    "time_bad": "{n} malformed '{what}' timestamp(s) set to null",
    "no_subject": "{n} {what} resource(s) naming no patient skipped",
    "error": "{n} {what} resource(s) entered-in-error (or refuted) dropped",
    "coding_incomplete": "{n} {what} coding(s) without a system or code dropped",
    "uncoded": "{n} {what} resource(s) with no usable coding dropped",
}


def _count_notes(state: _State) -> list[str]:
    notes = []
    for key, n in sorted(state.counts.items()):
        if not n or key.startswith("events:"):
            continue
        prefix, _, what = key.partition(":")
        template = _MESSAGES.get(key) or _PREFIX_MESSAGES.get(prefix)
        if template is not None:
            notes.append(template.format(n=f"{n:,}", what=what))
    for uri, n in sorted(state.unknown_systems.items()):
        notes.append(f"{n:,} coding(s) of the unrecognised system {uri!r} kept with the URI as code_system")
    return notes


def inpatient(admissions: pl.LazyFrame) -> pl.LazyFrame:
    """The inpatient encounters (class in :data:`INPATIENT_CLASSES`) of an admission table."""
    return admissions.filter(pl.col("admission_type").is_in(list(INPATIENT_CLASSES)))


__all__ = [
    "INPATIENT_CLASSES",
    "SYSTEMS",
    "fingerprint",
    "inpatient",
    "load_bundle",
    "normalise_code",
    "parse_time",
    "read_fhir",
    "source_files",
]
