"""The canonical EHR representation every reader maps to: one event table and one admission table.

Why one long event table: MIMIC-IV, MIMIC-III, eICU, MEDS and FHIR all reduce to "subject, when, what,
value"; features, vocabularies and leakage checks are then written once. Both tables are polars
``LazyFrame`` s so nothing is loaded until a query asks for it.

Event table (:data:`EVENT_SCHEMA`), one row per observation:

- ``subject_id`` the patient (MIMIC ``subject_id``, eICU ``uniquepid``), as a string.
- ``admission_id`` the hospital stay (MIMIC ``hadm_id``, eICU ``patienthealthsystemstayid``); null for
  events outside any admission (e.g. MIMIC-IV outpatient labs).
- ``stay_id`` the ICU stay (MIMIC-IV ``stay_id``, MIMIC-III ``icustay_id``, eICU ``patientunitstayid``).
- ``time`` when the information became available, microsecond ``Datetime`` without time zone (the
  sources' shifted local times). Conventions shared by all readers:

  * **the time the care team could know it**, not the time the information refers to: a lab at its
    result (MIMIC-IV ``storetime``, eICU's revision offset, FHIR ``Observation.issued``), an ICU
    charting row when it was stored, an order when it was entered; each reader's docstring lists the
    column used for each table and why (docs/conventions.md#ehr-time);
  * **date-only times** (MIMIC-III prescription ``startdate``, FHIR dates) count as the END of that day,
    23:59:59: the event is only certain once the day is over;
  * **MIMIC diagnosis and procedure codes** are billing codes assigned after discharge: their ``time``
    is the admission's discharge time, so no feature built before a prediction time inside the
    admission can see them; using them is an explicit leaky ablation;
  * a malformed timestamp becomes null (the row is kept) and is counted in :attr:`EHRSource.notes`.

- ``code_system`` / ``code`` what was observed:

  ===================  ==========================================================================
  code_system          code
  ===================  ==========================================================================
  ICD9CM, ICD10CM      diagnosis code, MIMIC style without dot (``4139``)
  ICD9PCS, ICD10PCS    procedure code
  MIMIC4_LABITEM       MIMIC-IV ``labevents.itemid`` (labels in ``codes`` from ``d_labitems``)
  MIMIC3_LABITEM       MIMIC-III ``LABEVENTS.ITEMID`` (when the table is present)
  MIMIC4_ITEM          MIMIC-IV ICU ``itemid`` (input/output/procedure/datetime/chart events)
  NDC, DRUG            medication: NDC when present (and not "0"), else the drug name
  ICU_ADMISSION        ICU stay start; code = care unit.  ICU_DISCHARGE: stay end, last care unit
  EICU_DX              eICU ``diagnosisstring`` (``value_text`` = its ``icd9code`` list)
  EICU_ADMITDX         eICU ``admitdxpath``
  EICU_LAB             eICU ``labname``
  EICU_MED, EICU_HICL  eICU ``drugname``; ``drughiclseqno`` when the name is missing
  EICU_TREATMENT       eICU ``treatmentstring``
  EICU_PHYSEXAM        eICU ``physicalexampath``
  EICU_VITAL           eICU ``vitalPeriodic``/``vitalAperiodic`` column (``heartrate``, ``systemicmean`` …)
  ===================  ==========================================================================

- ``value_num`` (Float64, in ``unit``), ``unit`` (as the source spells it), ``value_text`` (the raw
  value: non-numeric results such as ``"<0.5"`` or ``"ERROR"`` stay here with ``value_num`` null).
- ``source_table`` the file the row came from (``hosp/labevents``), for data-quality reports.

Joining events to a unit: by patient and time where the order of a patient's admissions is known
(MIMIC, FHIR, MEDS); by admission where it is not (:attr:`EHRSource.admission_order_known`, eICU).

Admission table (:data:`ADMISSION_SCHEMA`), one row per hospital stay: times in the same clock as the
events, ``died_in_hospital`` (null when the source does not say), ``age_years`` at admission (ages
above 89 are de-identified in every source; capped at 90), ``sex`` "F"/"M"/null and ``race`` — race and/or
ethnicity as the source spells it (MIMIC-IV ``admissions.race``, ``ethnicity`` before v2.0; MIMIC-III
``ADMISSIONS.ETHNICITY``; eICU ``patient.ethnicity``; FHIR the US Core race extension's text, with
" / Hispanic or Latino" appended when the US Core ethnicity extension says so), null when absent.
:mod:`medlearn.ehr.subgroups` collapses it into a few documented groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from medlearn.errors import InputError

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "subject_id": pl.String(),
    "admission_id": pl.String(),
    "stay_id": pl.String(),
    "time": pl.Datetime("us"),
    "code_system": pl.String(),
    "code": pl.String(),
    "value_num": pl.Float64(),
    "unit": pl.String(),
    "value_text": pl.String(),
    "source_table": pl.String(),
}

ADMISSION_SCHEMA: dict[str, pl.DataType] = {
    "subject_id": pl.String(),
    "admission_id": pl.String(),
    "admit_time": pl.Datetime("us"),
    "discharge_time": pl.Datetime("us"),
    "death_time": pl.Datetime("us"),
    "died_in_hospital": pl.Boolean(),
    "admission_type": pl.String(),
    "age_years": pl.Float64(),
    "sex": pl.String(),
    "race": pl.String(),
}

#: Human-readable labels of codes (lab names, ICD titles, drug names behind NDCs).
CODES_SCHEMA: dict[str, pl.DataType] = {
    "code_system": pl.String(),
    "code": pl.String(),
    "description": pl.String(),
}

#: Ages above this are de-identified by every source (MIMIC-III shifts them to ~300 years).
MAX_AGE_YEARS = 90.0


@dataclass
class EHRSource:
    """One dataset read into the canonical tables.

    ``fingerprint`` is the content hash of the files read plus the reader's version and options; caches
    are keyed by it. ``notes`` are data-quality remarks found while reading, in plain English (e.g.
    ``"icu/chartevents.csv.gz absent: no ICU vitals"``), for the data-quality report.
    """

    name: str
    root: Path
    events: pl.LazyFrame
    admissions: pl.LazyFrame
    fingerprint: str
    notes: list[str] = field(default_factory=list)
    codes: pl.LazyFrame | None = None
    kind: str = ""
    #: whether the order of one patient's admissions is known. False for eICU (its hospital stays carry
    #: no dates, so their anchored times overlap): features then join events by admission, never by
    #: patient and time, and count no earlier admissions.
    admission_order_known: bool = True
    #: data-quality counts not collected yet (a ``_tables.Checks``): :func:`read_source` collects them in
    #: the same pass that writes the cache, so each CSV is parsed once; they then join ``notes``.
    pending_checks: Any = None


def empty_frame(schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """A zero-row LazyFrame with exactly ``schema``."""
    return pl.LazyFrame(schema=schema)


def conform(frame: pl.LazyFrame, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Select ``schema``'s columns in order, cast to its dtypes (absent ones become typed nulls)."""
    have = frame.collect_schema().names()
    return frame.select(
        [
            (pl.col(name).cast(dtype) if name in have else pl.lit(None, dtype)).alias(name)
            for name, dtype in schema.items()
        ]
    )


def validate_schema(
    frame: pl.LazyFrame | pl.DataFrame, schema: dict[str, Any], where: str | Path, allow_extra: bool = False
) -> None:
    """Raise :class:`InputError` naming ``where`` and the column when ``frame`` does not match ``schema``.

    Checks names and dtypes without collecting data; extra columns are an error unless ``allow_extra``.
    """
    actual = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    for name, dtype in schema.items():
        if name not in actual:
            raise InputError(f"{where}: missing required column '{name}'")
        if actual[name] != dtype:
            raise InputError(f"{where}: column '{name}' has type {actual[name]}, expected {dtype}")
    extra = [name for name in actual.names() if name not in schema]
    if extra and not allow_extra:
        raise InputError(f"{where}: unexpected column(s) {', '.join(repr(n) for n in extra)}")
