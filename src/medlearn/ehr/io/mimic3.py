"""MIMIC-III (v1.4 layout, ``ADMISSIONS.csv.gz`` … in one folder) → the canonical tables.

File and column names are matched case-insensitively: PhysioNet ships upper-case headers, the shared
demo (via PyHealth) lower-case ones. Tables are scanned lazily (see :mod:`._tables`).

Mapping:

- ``ADMISSIONS`` + ``PATIENTS`` → admissions. ``age_years`` = (``admittime`` − ``dob``) in years of
  365.2425 days; MIMIC-III shifts the DOB of patients older than 89 so that they appear ~300 years old:
  ages are capped at 90 and the count is noted.
  Admissions are screened (:func:`._tables.screen_admissions`): a repeated ``hadm_id`` keeps its first
  row, rows with no ``admittime`` or a ``dischtime`` before it are dropped, each reason counted in the notes.
- ``DIAGNOSES_ICD`` → ICD9CM and ``PROCEDURES_ICD`` → ICD9PCS, both at the admission's **discharge time**:
  MIMIC-III stores neither a diagnosis time nor a procedure date (codes are assigned for billing at
  discharge), so nothing earlier in the stay may use them.
- ``PRESCRIPTIONS`` → NDC (when present and not "0") else DRUG (drug name). ``startdate`` is date-only
  (``YYYY-MM-DD 00:00:00``): the event counts at **23:59:59 of that day**, when it is certain. Dose and
  unit as in MIMIC-IV (``dose_val_rx``, ``dose_unit_rx``); ``stay_id`` = ``icustay_id``.
- ``LABEVENTS`` (+ ``D_LABITEMS``) when present → MIMIC3_LABITEM at ``charttime``; the shared demo has no
  lab table, which is a note.

**Time = when the care team could know it** (docs/conventions.md#ehr-time), as far as MIMIC-III says:

- diagnoses and procedures: billing codes, at discharge (above);
- prescriptions: the end of the ``startdate`` day (the table has no time of day and no entry time);
- ``LABEVENTS`` has **no result time** (MIMIC-III, unlike MIMIC-IV, stores no ``storetime`` for labs):
  ``charttime`` is the specimen time and the result came later (in MIMIC-IV, 1.7 h later on average),
  so a lab drawn shortly before the prediction time may be used before its result existed. This is a
  known optimistic bias of MIMIC-III lab features; none arises with the shared demo (no LABEVENTS);
- ``ICUSTAYS`` and ``CHARTEVENTS`` are not read; were ``CHARTEVENTS`` read, its ``STORETIME`` (when the
  value was validated and stored) would be the time, as for MIMIC-IV's ICU tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from medlearn.ehr.io._tables import (
    Checks,
    bad_count,
    find_table,
    make_events,
    medication_code,
    ndc,
    ndc_names,
    require_table,
    scan_table,
    screen_admissions,
    to_datetime,
    to_end_of_day,
    to_float,
)
from medlearn.ehr.io.mimic4 import require_rows
from medlearn.ehr.io.schema import ADMISSION_SCHEMA, CODES_SCHEMA, MAX_AGE_YEARS, EHRSource, conform
from medlearn.engine.data import fingerprint_files

READER_VERSION = "3"  # 2: screened admissions (duplicate ids, impossible times); 3: race (ETHNICITY)
_ID = ["subject_id", "hadm_id"]
REQUIRED: dict[str, list[str]] = {
    "ADMISSIONS": [*_ID, "admittime", "dischtime", "deathtime", "admission_type", "hospital_expire_flag"],
    "PATIENTS": ["subject_id", "gender", "dob"],
    "DIAGNOSES_ICD": [*_ID, "icd9_code"],
    "PROCEDURES_ICD": [*_ID, "icd9_code"],
    "PRESCRIPTIONS": [*_ID, "startdate", "drug"],
}
LABS = [*_ID, "itemid", "charttime", "value", "valuenum", "valueuom"]
_DAYS_PER_YEAR = 365.2425


def source_files(root: Path) -> list[Path]:
    """The files :func:`read_mimic3` reads (required ones must exist), for the fingerprint."""
    files = [require_table(root, table, "MIMIC-III", upper_too=True) for table in REQUIRED]
    optional = [
        find_table(root, t, upper_too=True)
        for t in ("LABEVENTS", "D_LABITEMS", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES")
    ]
    return files + [p for p in optional if p is not None]


def fingerprint(root: Path) -> str:
    """Content hash of the files read, the reader version and options: the key of every cache."""
    return fingerprint_files(source_files(Path(root)), extra=f"mimic3:{READER_VERSION}")


def _scan(
    root: Path, table: str, required: list[str], optional: Sequence[str] = (), checks: Checks | None = None
) -> tuple[Path, pl.LazyFrame]:
    path = require_table(root, table, "MIMIC-III", upper_too=True)
    return path, scan_table(path, required, optional, lower=True, checks=checks)


def read_mimic3(root: Path, *, defer_checks: bool = False) -> EHRSource:
    """Read a MIMIC-III folder (the one holding ``ADMISSIONS.csv.gz``) into an :class:`EHRSource`."""
    root = Path(root)
    source_files(root)  # a missing required table fails here, before any scan
    checks, notes = Checks(), []
    admissions = _admissions(root, checks)
    discharge = admissions.select("admission_id", "discharge_time").unique("admission_id", keep="first")
    frames = []
    for table, system in (("DIAGNOSES_ICD", "ICD9CM"), ("PROCEDURES_ICD", "ICD9PCS")):
        path, frame = _scan(root, table, REQUIRED[table], checks=checks)
        frame = frame.join(discharge, left_on="hadm_id", right_on="admission_id", how="left")
        checks.add(
            frame,
            str(path),
            {
                f"{path.name}: {{n}} row(s) without a known admission discharge time (time null)": pl.col(
                    "discharge_time"
                ).is_null()
            },
        )
        frames.append(
            make_events(
                frame,
                table.lower(),
                time=pl.col("discharge_time"),
                code_system=system,
                code=pl.col("icd9_code"),
                admission=pl.col("hadm_id"),
            )
        )
    frames.append(_prescriptions(root, checks))
    labs = find_table(root, "LABEVENTS", upper_too=True)
    if labs is None:
        notes.append("LABEVENTS.csv.gz absent: no laboratory results")
    else:
        frames.append(_labs(labs, checks))
    for table in ("ICUSTAYS", "CHARTEVENTS"):
        if find_table(root, table, upper_too=True) is None:
            notes.append(f"{table}.csv.gz absent: not read (this reader uses the hospital tables only)")
    if not defer_checks:  # else read_source collects them with the cache write
        notes += checks.run()
    return EHRSource(
        name=root.name,
        root=root,
        events=pl.concat(frames, how="vertical"),
        admissions=admissions,
        fingerprint=fingerprint(root),
        notes=notes,
        pending_checks=checks if defer_checks else None,
        codes=_codes(root),
        kind="mimic3",
    )


def _admissions(root: Path, checks: Checks) -> pl.LazyFrame:
    adm_path, adm = _scan(root, "ADMISSIONS", REQUIRED["ADMISSIONS"], ["ethnicity"], checks=checks)
    require_rows(adm_path, "admissions")
    pat_path, pat = _scan(root, "PATIENTS", REQUIRED["PATIENTS"], checks=checks)
    times = {c: to_datetime(c) for c in ("admittime", "dischtime", "deathtime")}
    checks.add(
        adm,
        str(adm_path),
        {
            f"{adm_path.name}: {{n}} malformed '{col}' timestamp(s) set to null": bad_count(col, expr)
            for col, expr in times.items()
        }
        | {
            f"{adm_path.name}: {{n}} admission(s) with deathtime after dischtime (kept as given)": times[
                "deathtime"
            ]
            > times["dischtime"],
        },
    )
    adm = screen_admissions(adm, checks, str(adm_path), "hadm_id", "admittime", "dischtime")
    joined = adm.join(pat.unique("subject_id", keep="first"), on="subject_id", how="left")
    age = (times["admittime"] - to_datetime("dob")).dt.total_seconds() / (86400 * _DAYS_PER_YEAR)
    checks.add(
        joined,
        str(pat_path),
        {
            f"{pat_path.name}: {{n}} admission(s) with age > 89 (DOB shifted to ~300 y by de-identification) "
            "capped at 90": age > 89,
            f"{pat_path.name}: {{n}} malformed or missing 'dob' (age null)": to_datetime("dob").is_null(),
        },
    )
    flag = to_float("hospital_expire_flag")
    return conform(
        joined.select(
            pl.col("subject_id"),
            pl.col("hadm_id").alias("admission_id"),
            times["admittime"].alias("admit_time"),
            times["dischtime"].alias("discharge_time"),
            times["deathtime"].alias("death_time"),
            pl.when(flag.is_not_null()).then(flag == 1).alias("died_in_hospital"),
            pl.col("admission_type"),
            age.clip(upper_bound=MAX_AGE_YEARS).alias("age_years"),
            pl.when(pl.col("gender").is_in(["F", "M"])).then(pl.col("gender")).alias("sex"),
            pl.col("ethnicity").str.strip_chars().alias("race"),
        ),
        ADMISSION_SCHEMA,
    )


def _prescriptions(root: Path, checks: Checks) -> pl.LazyFrame:
    path, rx = _scan(
        root,
        "PRESCRIPTIONS",
        REQUIRED["PRESCRIPTIONS"],
        ["ndc", "dose_val_rx", "dose_unit_rx", "icustay_id"],
        checks=checks,
    )
    time, dose = to_end_of_day("startdate"), to_float("dose_val_rx", thousands=True)
    checks.add(
        rx,
        str(path),
        {
            f"{path.name}: {{n}} malformed 'startdate' value(s) set to null": bad_count("startdate", time),
            f"{path.name}: {{n}} prescription(s) without NDC (or NDC '0') coded by drug name": ndc().is_null(),
            f"{path.name}: {{n}} non-numeric dose(s) kept in value_text": bad_count("dose_val_rx", dose),
        },
    )
    system, code = medication_code()
    return make_events(
        rx,
        "prescriptions",
        time=time,
        code_system=system,
        code=code,
        admission=pl.col("hadm_id"),
        stay=pl.col("icustay_id"),
        value_num=dose,
        unit=pl.col("dose_unit_rx"),
        value_text=pl.col("dose_val_rx"),
    )


def _labs(path: Path, checks: Checks) -> pl.LazyFrame:
    labs = scan_table(path, LABS, lower=True, checks=checks)
    time, value = to_datetime("charttime"), to_float("valuenum")
    checks.add(
        labs,
        str(path),
        {
            f"{path.name}: {{n}} malformed 'charttime' timestamp(s) set to null": bad_count(
                "charttime", time
            ),
            f"{path.name}: {{n}} non-numeric lab result(s) kept in value_text with value_num null": pl.col(
                "valuenum"
            ).is_null()
            & pl.col("value").is_not_null(),
        },
    )
    return make_events(
        labs,
        "labevents",
        time=time,
        code_system="MIMIC3_LABITEM",
        code=pl.col("itemid"),
        admission=pl.col("hadm_id"),
        value_num=value,
        unit=pl.col("valueuom"),
        value_text=pl.col("value"),
    )


def _codes(root: Path) -> pl.LazyFrame:
    frames = [pl.LazyFrame(schema=CODES_SCHEMA)]
    for table, system, key, label in (
        ("D_LABITEMS", "MIMIC3_LABITEM", "itemid", "label"),
        ("D_ICD_DIAGNOSES", "ICD9CM", "icd9_code", "long_title"),
        ("D_ICD_PROCEDURES", "ICD9PCS", "icd9_code", "long_title"),
    ):
        if (p := find_table(root, table, upper_too=True)) is not None:
            frame = scan_table(p, [key, label], lower=True)
            frames.append(
                conform(
                    frame.select(
                        pl.lit(system).alias("code_system"),
                        pl.col(key).alias("code"),
                        pl.col(label).alias("description"),
                    ),
                    CODES_SCHEMA,
                )
            )
    frames.append(ndc_names(_scan(root, "PRESCRIPTIONS", ["drug"], ["ndc"])[1]))
    return pl.concat([conform(f, CODES_SCHEMA) for f in frames])
