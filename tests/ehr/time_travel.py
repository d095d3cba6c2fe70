"""Truncated copies of the real EHR folders: what a hospital's record held at one unit's prediction time.

For one unit (an admission and its prediction time ``cutoff``), :class:`Truncator` subclasses write a copy
of the raw files, in the source's own format, that keeps only that patient's rows the care team could
know before the cutoff, drops the patient's later admissions, and alters the unit's own outcome fields
(discharge time, death, discharge location) while keeping them after the cutoff so that the unit stays
in the cohort. "Known" is defined here from the raw columns, independently of the readers under test:

- MIMIC-IV: a lab at ``storetime``; ICU rows at the later of their time and ``storetime``; diagnosis and
  procedure billing codes at their admission's discharge; prescriptions at ``starttime``; a row with
  no such time is never known.
- MIMIC-III: diagnoses and procedures at discharge; prescriptions at the end of their ``startdate``.
- eICU: only the unit's own hospital stay (the order of a patient's hospital stays is not recorded, so
  none of the others is known to be earlier), all its unit stays (a later unit stay's rows may hold
  results known before the cutoff; the type of a unit entered after it is altered); labs at the later of
  the result and its revision; orders
  at the later of entry and start, and the cancelled flag cleared (when an order was cancelled is not
  recorded, so the flag may be news from after the cutoff); other tables at their offset.
- FHIR: Observations at the later of ``issued`` and the effective time; Conditions at ``recordedDate``
  (else onset); requests at ``authoredOn``; the rest at the time they happened; encounters starting at
  or after the cutoff are later admissions.

Other patients' rows are dropped too: nothing of theirs can inform this unit, and it keeps each copy
small. A leak-free pipeline predicts the same for the unit from the copy as from the full data.
"""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

TIME = "%Y-%m-%d %H:%M:%S"
#: The unit's discharge is moved to this long after the cutoff (any time after it keeps the unit).
NEW_STAY_AFTER_CUTOFF = timedelta(days=1, hours=7, minutes=13)
ALTERED = "ALTERED-OUTCOME"


@dataclass(frozen=True)
class Unit:
    """One predicted admission: its patient, admission id and prediction time (from ``predict``)."""

    subject_id: str
    admission_id: str
    cutoff: datetime

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Unit:
        subject, admission = record["unit"].split("/", 1)
        return cls(subject, admission, datetime.fromisoformat(record["details"]["prediction_time"]))


def read_raw(path: Path) -> pl.DataFrame:
    """A source CSV exactly as written (every column a string; blank lines dropped)."""
    frame = pl.read_csv(path, infer_schema=False)
    return frame.filter(~pl.all_horizontal(pl.all().is_null()))


def write_like(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` as ``path``'s format: gzipped CSV for ``.csv.gz``, plain CSV otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb", compresslevel=1) as fh:
            frame.write_csv(fh)
    else:
        frame.write_csv(path)


def when(column: str) -> pl.Expr:
    """A MIMIC timestamp column parsed (null when empty or malformed)."""
    return (
        pl.col(column).str.strip_chars().str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False)
    )


def later(*exprs: pl.Expr) -> pl.Expr:
    """The latest of ``exprs``, null when any is null (an unknown time is never "known before")."""
    return pl.when(pl.all_horizontal([e.is_not_null() for e in exprs])).then(pl.max_horizontal(*exprs))


class Truncator:
    """Loads a source's raw tables once; :meth:`write` makes one unit's truncated copy."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def write(self, unit: Unit, out: Path) -> Path:
        raise NotImplementedError


class Mimic4Truncator(Truncator):
    ICU_TIMES = {
        "icu/inputevents": "starttime",
        "icu/procedureevents": "starttime",
        "icu/outputevents": "charttime",
        "icu/datetimeevents": "charttime",
        "icu/chartevents": "charttime",
    }

    def __init__(self, root: Path):
        super().__init__(root)
        tables = [
            "hosp/patients",
            "hosp/admissions",
            "hosp/diagnoses_icd",
            "hosp/procedures_icd",
            "hosp/prescriptions",
            "hosp/labevents",
            "icu/icustays",
            *self.ICU_TIMES,
        ]
        self.tables = {t: read_raw(p) for t in tables if (p := self.root / f"{t}.csv.gz").is_file()}

    def write(self, unit: Unit, out: Path) -> Path:
        mine = {t: f.filter(pl.col("subject_id") == unit.subject_id) for t, f in self.tables.items()}
        c = unit.cutoff
        adm = mine["hosp/admissions"]
        billed = adm.filter(when("dischtime") < c)["hadm_id"].to_list()  # codes known at discharge
        adm = adm.filter(when("admittime") < c)  # later admissions removed
        mine["hosp/admissions"] = alter_mimic_outcome(adm, unit)
        mine["hosp/patients"] = mine["hosp/patients"].with_columns(pl.lit(None, pl.String).alias("dod"))
        for table in ("hosp/diagnoses_icd", "hosp/procedures_icd"):
            mine[table] = mine[table].filter(pl.col("hadm_id").is_in(billed))
        mine["hosp/prescriptions"] = mine["hosp/prescriptions"].filter(when("starttime") < c)
        mine["hosp/labevents"] = mine["hosp/labevents"].filter(
            later(when("charttime"), when("storetime")) < c
        )
        if "icu/icustays" in mine:
            stays = mine["icu/icustays"].filter(when("intime") < c)
            ongoing = when("outtime") >= c
            mine["icu/icustays"] = stays.with_columns(
                pl.when(ongoing)
                .then(pl.lit((c + NEW_STAY_AFTER_CUTOFF).strftime(TIME)))
                .otherwise("outtime")
                .alias("outtime"),
                pl.when(ongoing).then(pl.lit(ALTERED)).otherwise("last_careunit").alias("last_careunit"),
            )
        for table, column in self.ICU_TIMES.items():
            if table in mine:
                mine[table] = mine[table].filter(later(when(column), when("storetime")) < c)
        for table, frame in mine.items():
            write_like(frame, out / f"{table}.csv.gz")
        return out


def alter_mimic_outcome(admissions: pl.DataFrame, unit: Unit) -> pl.DataFrame:
    """The unit's discharge moved (still after the cutoff), its death flipped, its discharge location
    renamed; the other admissions unchanged."""
    row = admissions.filter(pl.col("hadm_id") == unit.admission_id).row(0, named=True)
    discharge = (unit.cutoff + NEW_STAY_AFTER_CUTOFF).strftime(TIME)
    died = not row["deathtime"]  # flip: a survivor now dies at the new discharge, a death is undone
    new = {
        "dischtime": discharge,
        "deathtime": discharge if died else None,
        "hospital_expire_flag": "1" if died else "0",
        "discharge_location": ALTERED,
    }
    mask = pl.col("hadm_id") == unit.admission_id
    return admissions.with_columns(
        [
            pl.when(mask).then(pl.lit(v, pl.String)).otherwise(pl.col(k)).alias(k)
            for k, v in new.items()
            if k in admissions.columns
        ]
    )


class Mimic3Truncator(Truncator):
    NAMES = ("ADMISSIONS", "PATIENTS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS")

    def __init__(self, root: Path):
        super().__init__(root)
        self.tables = {t: read_raw(self.root / f"{t}.csv.gz") for t in self.NAMES}

    def write(self, unit: Unit, out: Path) -> Path:
        mine = {t: f.filter(pl.col("subject_id") == unit.subject_id) for t, f in self.tables.items()}
        c = unit.cutoff
        adm = mine["ADMISSIONS"]
        billed = adm.filter(when("dischtime") < c)["hadm_id"].to_list()
        mine["ADMISSIONS"] = alter_mimic_outcome(adm.filter(when("admittime") < c), unit)
        mine["PATIENTS"] = mine["PATIENTS"].with_columns(
            [pl.lit(None, pl.String).alias(k) for k in ("dod", "dod_hosp", "dod_ssn")]
        )
        for table in ("DIAGNOSES_ICD", "PROCEDURES_ICD"):
            mine[table] = mine[table].filter(pl.col("hadm_id").is_in(billed))
        day_end = pl.col("startdate").str.slice(0, 10).str.strptime(
            pl.Datetime("us"), "%Y-%m-%d", strict=False
        ) + pl.duration(hours=23, minutes=59, seconds=59)
        mine["PRESCRIPTIONS"] = mine["PRESCRIPTIONS"].filter(day_end < c)
        for table, frame in mine.items():
            write_like(frame, out / f"{table}.csv.gz")
        return out


class EicuTruncator(Truncator):
    """Offsets are minutes from each unit stay's admission; ``hospital minute = offset − hospitaladmitoffset``
    of that unit stay, and the cutoff is at ``prediction_hours`` · 60 hospital minutes."""

    #: table → (offset columns whose latest is when the row became known).
    KNOWN = {
        "lab": ("labresultoffset", "labresultrevisedoffset"),
        "medication": ("drugorderoffset", "drugstartoffset"),
        "diagnosis": ("diagnosisoffset",),
        "admissionDx": ("admitdxenteredoffset",),
        "treatment": ("treatmentoffset",),
        "physicalExam": ("physicalexamoffset",),
    }

    def __init__(self, root: Path, prediction_hours: float):
        super().__init__(root)
        self.cutoff_minutes = prediction_hours * 60
        self.patient = read_raw(self.root / "patient.csv")
        self.tables = {t: read_raw(p) for t in self.KNOWN if (p := self.root / f"{t}.csv").is_file()}

    def write(self, unit: Unit, out: Path) -> Path:
        cut = self.cutoff_minutes
        num = lambda c: pl.col(c).cast(pl.Float64, strict=False)  # noqa: E731
        stays = self.patient.filter(pl.col("patienthealthsystemstayid") == unit.admission_id)
        # every unit stay of the hospital stay is kept: a later one's rows may hold results known before
        # the cutoff (a lab drawn on the ward before the transfer); what the cutoff hides of a unit stay
        # begun after it (its unit type) is altered below with the outcomes
        shift = {r["patientunitstayid"]: float(r["hospitaladmitoffset"]) for r in stays.to_dicts()}

        def in_hospital_minutes(m: float) -> pl.Expr:
            return (pl.lit(m) + num("hospitaladmitoffset")).round(0).cast(pl.Int64).cast(pl.String)

        unit_ends_later = num("unitdischargeoffset") - num("hospitaladmitoffset") >= cut
        unit_starts_later = -num("hospitaladmitoffset") >= cut
        died = stays["hospitaldischargestatus"][0] != "Expired"  # flip
        stays = stays.with_columns(
            in_hospital_minutes(cut + NEW_STAY_AFTER_CUTOFF.total_seconds() / 60).alias(
                "hospitaldischargeoffset"
            ),
            (num("hospitaldischargeyear") + 3).cast(pl.Int64).cast(pl.String).alias("hospitaldischargeyear"),
            pl.lit("12:34:00").alias("hospitaldischargetime24"),
            pl.lit("Expired" if died else "Alive").alias("hospitaldischargestatus"),
            pl.lit(ALTERED).alias("hospitaldischargelocation"),
            pl.when(unit_ends_later)
            .then(in_hospital_minutes(cut + 600))
            .otherwise(pl.col("unitdischargeoffset"))
            .alias("unitdischargeoffset"),
            pl.when(unit_ends_later)
            .then(pl.lit(ALTERED))
            .otherwise(pl.col("unitdischargestatus"))
            .alias("unitdischargestatus"),
            pl.when(unit_ends_later)
            .then(pl.lit(ALTERED))
            .otherwise(pl.col("unitdischargelocation"))
            .alias("unitdischargelocation"),
            pl.when(unit_starts_later).then(pl.lit(ALTERED)).otherwise(pl.col("unittype")).alias("unittype"),
        )
        write_like(stays, out / "patient.csv")
        if (self.root / "hospital.csv").is_file():
            shutil.copyfile(self.root / "hospital.csv", out / "hospital.csv")
        for table, frame in self.tables.items():
            frame = frame.filter(pl.col("patientunitstayid").is_in(list(shift)))
            hadm = pl.col("patientunitstayid").replace_strict(shift, default=None, return_dtype=pl.Float64)
            known = pl.max_horizontal([num(c) for c in self.KNOWN[table]]) - hadm
            frame = frame.filter(known < cut)
            if table == "medication":
                frame = frame.with_columns(pl.lit("No").alias("drugordercancelled"))
            if "activeupondischarge" in frame.columns:  # known at discharge only
                frame = frame.with_columns(pl.lit(None, pl.String).alias("activeupondischarge"))
            write_like(frame, out / f"{table}.csv")
        return out


def eicu_stays_as_patients(root: Path, out: Path) -> Path:
    """A copy of the eICU folder where every hospital stay is its own patient."""
    out.mkdir(parents=True, exist_ok=True)
    for path in Path(root).glob("*.csv"):
        shutil.copyfile(path, out / path.name)
    patient = read_raw(Path(root) / "patient.csv")
    write_like(
        patient.with_columns(
            pl.concat_str("uniquepid", pl.lit("#"), "patienthealthsystemstayid").alias("uniquepid")
        ),
        out / "patient.csv",
    )
    return out


# --------------------------------------------------------------------------------------------- FHIR


def fhir_time(value: str | None) -> datetime | None:
    """A FHIR dateTime as naive UTC (the readers' clock); a date-only value as the end of that day."""
    if not value:
        return None
    if len(value) == 10:
        return datetime.fromisoformat(value) + timedelta(hours=23, minutes=59, seconds=59)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def fhir_known(resource: dict[str, Any]) -> datetime | None:
    """When a resource's information became known (None: not an event, or no time)."""
    kind = resource.get("resourceType")
    if kind == "Observation":
        times = [
            fhir_time(
                resource.get("effectiveDateTime")
                or (resource.get("effectivePeriod") or {}).get("start")
                or resource.get("effectiveInstant")
            ),
            fhir_time(resource.get("issued")),
        ]
        times = [t for t in times if t is not None]
        return max(times) if times else None
    if kind == "Condition":
        return fhir_time(
            resource.get("recordedDate")
            or resource.get("onsetDateTime")
            or (resource.get("onsetPeriod") or {}).get("start")
        )
    if kind == "MedicationRequest":
        return fhir_time(resource.get("authoredOn"))
    if kind == "MedicationAdministration":
        return fhir_time(
            resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start")
        )
    if kind == "Procedure":
        return fhir_time(
            resource.get("performedDateTime") or (resource.get("performedPeriod") or {}).get("start")
        )
    if kind == "Immunization":
        return fhir_time(resource.get("occurrenceDateTime"))
    if kind == "Encounter":
        return fhir_time((resource.get("period") or {}).get("start"))
    if kind in ("Claim", "ExplanationOfBenefit", "DiagnosticReport", "CarePlan", "CareTeam"):
        return fhir_time(
            resource.get("created")
            or resource.get("issued")
            or (resource.get("billablePeriod") or {}).get("start")
            or (resource.get("period") or {}).get("start")
            or resource.get("effectiveDateTime")
        )
    return None


def truncate_fhir(bundle: dict[str, Any], unit: Unit) -> dict[str, Any]:
    """The bundle as known at the unit's cutoff, with the unit's encounter's end and the death altered."""
    kept = []
    for entry in bundle["entry"]:
        resource = json.loads(json.dumps(entry["resource"]))
        known = fhir_known(resource)
        if known is not None and known >= unit.cutoff:
            continue
        if resource["resourceType"] == "Encounter" and resource.get("id") == unit.admission_id:
            end = unit.cutoff + NEW_STAY_AFTER_CUTOFF
            resource["period"]["end"] = end.strftime("%Y-%m-%dT%H:%M:%S+00:00")
            if "hospitalization" in resource:
                resource["hospitalization"]["dischargeDisposition"] = {"text": ALTERED}
        if resource["resourceType"] == "Patient":
            died = "deceasedDateTime" not in resource  # flip: now dies in hospital after the cutoff
            resource.pop("deceasedDateTime", None)
            resource.pop("deceasedBoolean", None)
            if died:
                resource["deceasedDateTime"] = (unit.cutoff + timedelta(hours=20)).strftime(
                    "%Y-%m-%dT%H:%M:%S+00:00"
                )
        kept.append({**entry, "resource": resource})
    return {**bundle, "entry": kept}
