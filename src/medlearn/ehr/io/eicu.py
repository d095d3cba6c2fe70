"""eICU-CRD (v2.0 layout: ``patient.csv[.gz]``, ``lab.csv[.gz]`` … in one folder) → the canonical tables.

Ids: ``subject_id`` = ``uniquepid``, ``admission_id`` = ``patienthealthsystemstayid`` (the hospital stay),
``stay_id`` = ``patientunitstayid`` (the ICU stay).

**Clock.** eICU stores no dates, only minute offsets from each unit stay's admission, plus the
hospital admission's time of day (``hospitaladmittime24``) and discharge year. We anchor each hospital
stay at ``hospitaldischargeyear``-01-01 + ``hospitaladmittime24`` (truncated to the minute, the
offsets' resolution); unit admission = that anchor − ``hospitaladmitoffset`` minutes; every event =
unit admission + its offset in minutes. Thus durations, the order of events and unit stays within a
hospital stay, and the times of day are exact (the computed discharge time of day matches
``hospitaldischargetime24`` on every demo row), but calendar dates are not, and hospital stays of one
patient discharged in the same year overlap in time: eICU does not say which came first. The source
is therefore marked ``admission_order_known=False``: features join eICU events by hospital stay
(``admission_id``), never by patient and time, and count no "earlier" admissions.

**Time = when the care team could know it** (docs/conventions.md#ehr-time):

- ``lab``: the stored value is the latest revision, so a result counts from ``labresultrevisedoffset``
  (the later of it and ``labresultoffset``; ``labresultoffset`` alone when the revision is missing);
- ``medication``: the later of ``drugorderoffset`` and ``drugstartoffset`` (in the demo 59 % of orders
  were entered after the start they record). Orders flagged ``drugordercancelled`` are **kept** like
  any order: when the cancellation happened is not recorded, so dropping them would use a fact that
  may only have been known after the prediction time (their count is noted);
- ``diagnosis`` (``diagnosisoffset``), ``admissionDx`` (``admitdxenteredoffset``), ``treatment``
  (``treatmentoffset``), ``physicalExam`` (``physicalexamoffset``): entry times, used as they are;
- unit admission/discharge from the unit's offsets; the hospital discharge time, status and location
  are outcomes (``admissions`` only).

Mapping: admissions from ``patient`` (first unit visit of each hospital stay): admission/discharge
from ``hospitaladmitoffset``/``hospitaldischargeoffset``, ``died_in_hospital`` = status "Expired" (null
when missing) with ``death_time`` = discharge time, ``admission_type`` = ``hospitaladmitsource``, age
"> 89" → 90, sex Female/Male → F/M. Events: ICU_ADMISSION/ICU_DISCHARGE (``unittype``) per unit stay;
``diagnosis`` → EICU_DX (``diagnosisstring``, ``value_text`` = ``icd9code``); ``admissionDx`` →
EICU_ADMITDX (``admitdxpath``); ``lab`` → EICU_LAB (``labname``; ``value_num`` = ``labresult``, else the
text when it is a number; unit = ``labmeasurenamesystem`` else ``…interface``); ``medication`` → EICU_MED
(``drugname``) else EICU_HICL (``drughiclseqno``, pandas' ``.0`` removed); ``treatment`` →
EICU_TREATMENT; ``physicalExam`` → EICU_PHYSEXAM (path, numeric text parsed); ``vitalPeriodic`` /
``vitalAperiodic``, when present (not in the shared subset), → EICU_VITAL (one event per vital-sign cell,
:mod:`.eicu_vitals`). ``patient.csv``/
``hospital.csv`` blank lines (read by polars as all-null rows) are dropped. A repeated
``patientunitstayid`` keeps its first row; hospital stays with no usable admission time or a discharge
offset before the admission offset are dropped; each reason is counted in the notes.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from medlearn.ehr.io._tables import (
    EVERY_ROW,
    Checks,
    drop_duplicate_ids,
    drop_impossible_times,
    find_table,
    make_events,
    require_table,
    scan_table,
    to_float,
)
from medlearn.ehr.io.eicu_vitals import vital_events, vital_tables
from medlearn.ehr.io.mimic4 import require_rows
from medlearn.ehr.io.schema import ADMISSION_SCHEMA, MAX_AGE_YEARS, EHRSource, conform
from medlearn.engine.data import fingerprint_files

READER_VERSION = "4"  # 2: labs at their revision, orders at entry, cancelled kept; 3: screened stays; 4: race
PATIENT = [
    "patientunitstayid",
    "patienthealthsystemstayid",
    "uniquepid",
    "gender",
    "age",
    "hospitalid",
    "hospitaladmittime24",
    "hospitaladmitoffset",
    "hospitaladmitsource",
    "hospitaldischargeyear",
    "hospitaldischargeoffset",
    "hospitaldischargestatus",
    "unitdischargeoffset",
    "unittype",
    "unitvisitnumber",
]
#: Event tables: (offset column, code system, code column, required columns besides the stay id).
#: Lab and medication rows are timed at the later of the offset column and :data:`KNOWN_AFTER`'s.
TABLES: dict[str, tuple[str, str, str, list[str]]] = {
    "diagnosis": ("diagnosisoffset", "EICU_DX", "diagnosisstring", ["icd9code"]),
    "admissionDx": ("admitdxenteredoffset", "EICU_ADMITDX", "admitdxpath", ["admitdxtext"]),
    "lab": ("labresultoffset", "EICU_LAB", "labname", ["labresult", "labresulttext", "labmeasurenamesystem"]),
    "medication": ("drugstartoffset", "EICU_MED", "drugname", ["drughiclseqno", "dosage"]),
    "treatment": ("treatmentoffset", "EICU_TREATMENT", "treatmentstring", []),
    "physicalExam": ("physicalexamoffset", "EICU_PHYSEXAM", "physicalexampath", ["physicalexamtext"]),
}
_OPTIONAL = {"lab": ["labmeasurenameinterface"], "medication": ["drugordercancelled"]}
#: A second offset after which a row's information is known: the lab's revision, the order's entry.
KNOWN_AFTER = {"lab": "labresultrevisedoffset", "medication": "drugorderoffset"}


def source_files(root: Path) -> list[Path]:
    """The files :func:`read_eicu` reads (``patient`` must exist), for the fingerprint."""
    found = [find_table(root, t) for t in ("hospital", *TABLES)]
    return [require_table(root, "patient", "eICU")] + [p for p in found if p is not None] + vital_tables(root)


def fingerprint(root: Path) -> str:
    """Content hash of the files read, the reader version and options: the key of every cache."""
    return fingerprint_files(source_files(Path(root)), extra=f"eicu:{READER_VERSION}")


def _minutes(column: str) -> pl.Expr:
    return pl.duration(minutes=to_float(column).round(0).cast(pl.Int64))


def read_eicu(root: Path, *, defer_checks: bool = False) -> EHRSource:
    """Read an eICU folder (the one holding ``patient.csv``) into an :class:`EHRSource`."""
    root = Path(root)
    source_files(root)  # a missing required table fails here, before any scan
    path = require_table(root, "patient", "eICU")
    require_rows(path, "unit stays")
    checks, notes = Checks(), []
    patient = drop_duplicate_ids(
        scan_table(path, PATIENT, ["ethnicity"], checks=checks),
        checks,
        str(path),
        "patientunitstayid",
        "unit stays",
    )
    anchor = (
        pl.concat_str(
            pl.col("hospitaldischargeyear").str.strip_chars(),
            pl.lit("-01-01 "),
            pl.col("hospitaladmittime24").str.strip_chars(),
        )
        .str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
        .dt.truncate("1m")
    )
    stays = patient.with_columns(unit_admit=anchor - _minutes("hospitaladmitoffset")).with_columns(
        hosp_discharge=pl.col("unit_admit") + _minutes("hospitaldischargeoffset"),
        unit_discharge=pl.col("unit_admit") + _minutes("unitdischargeoffset"),
        hosp_admit=anchor,
    )
    checks.add(
        stays,
        str(path),
        {
            f"{path.name}: {{n}} unit stay(s) without a usable hospitaldischargeyear/hospitaladmittime24/"
            "offset (times null)": pl.col("unit_admit").is_null(),
        },
    )
    same_year = patient.group_by("uniquepid", "hospitaldischargeyear").agg(
        pl.col("patienthealthsystemstayid").n_unique().alias("n")
    )
    checks.add(
        same_year,
        str(path),
        {
            f"{path.name}: {{n}} patient-year(s) with several hospital stays discharged in the same year: eICU "
            "gives no order between hospital stays, their anchored times overlap (do not use history across "
            "hospital stays)": pl.col("n") > 1
        },
    )
    admissions = _admissions(stays, checks, str(path))
    keys = stays.select("patientunitstayid", "uniquepid", "patienthealthsystemstayid", "unit_admit")
    ids = {
        "subject": pl.col("uniquepid"),
        "admission": pl.col("patienthealthsystemstayid"),
        "stay": pl.col("patientunitstayid"),
    }
    frames = [
        make_events(stays, "patient", time=pl.col(column), code_system=system, code=pl.col("unittype"), **ids)
        for column, system in (("unit_admit", "ICU_ADMISSION"), ("unit_discharge", "ICU_DISCHARGE"))
    ]
    for table, (offset, system, code, columns) in TABLES.items():
        table_path = find_table(root, table)
        if table_path is None:
            notes.append(f"{table}.csv absent: no {system} events")
            continue
        later = [KNOWN_AFTER[table]] if table in KNOWN_AFTER else []
        frame = scan_table(
            table_path,
            ["patientunitstayid", offset, code, *columns],
            [*_OPTIONAL.get(table, []), *later],
            checks=checks,
        )
        checks.add(
            frame.join(keys, on="patientunitstayid", how="anti"),
            str(table_path),
            {f"{table_path.name}: {{n}} row(s) of unit stays absent from patient.csv dropped": EVERY_ROW},
        )
        known = to_float(offset)
        if later:  # the later of the two offsets (the event's own one when the other is missing)
            checks.add(
                frame,
                str(table_path),
                {
                    f"{table_path.name}: {{n}} row(s) timed at '{later[0]}' (after '{offset}')": to_float(
                        later[0]
                    )
                    > known
                },
            )
            known = pl.max_horizontal(known, to_float(later[0]))
        frame = frame.join(keys, on="patientunitstayid", how="inner").with_columns(
            time=pl.col("unit_admit") + pl.duration(minutes=known.round(0).cast(pl.Int64))
        )
        frames.append(_events(table, table_path.name, frame, system, code, checks, str(table_path), ids))
    frames += vital_events(root, keys, checks, ids)  # vitalPeriodic/vitalAperiodic when present
    if (hospital := find_table(root, "hospital")) is not None:
        known = scan_table(hospital, ["hospitalid"], checks=checks)
        checks.add(
            patient.join(known, on="hospitalid", how="anti"),
            str(hospital),
            {f"{hospital.name}: {{n}} unit stay(s) with a hospitalid absent from hospital.csv": EVERY_ROW},
        )
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
        kind="eicu",
        admission_order_known=False,
    )


def _admissions(stays: pl.LazyFrame, checks: Checks, where: str) -> pl.LazyFrame:
    first = stays.sort(to_float("unitvisitnumber"), nulls_last=True).unique(
        "patienthealthsystemstayid", keep="first"
    )
    age_text = pl.col("age").str.strip_chars()
    age = pl.when(age_text == "> 89").then(pl.lit(MAX_AGE_YEARS)).otherwise(to_float(age_text))
    status = pl.col("hospitaldischargestatus").str.strip_chars()
    died = pl.when(status == "Expired").then(True).when(status == "Alive").then(False)
    checks.add(
        first,
        where,
        {
            f"{Path(where).name}: {{n}} hospital stay(s) with age '> 89' set to 90": age_text == "> 89",
            f"{Path(where).name}: {{n}} hospital stay(s) without hospitaldischargestatus "
            "(died_in_hospital null)": died.is_null(),
        },
    )
    first = drop_impossible_times(
        first,
        checks,
        where,
        pl.col("hosp_admit"),
        pl.col("hosp_discharge"),
        "hospital admission time (hospitaldischargeyear + hospitaladmittime24)",
        "hospital discharge time (hospitaldischargeoffset)",
    )
    sex = pl.col("gender").str.strip_chars().replace_strict({"Female": "F", "Male": "M"}, default=None)
    return conform(
        first.select(
            pl.col("uniquepid").alias("subject_id"),
            pl.col("patienthealthsystemstayid").alias("admission_id"),
            pl.col("hosp_admit").alias("admit_time"),
            pl.col("hosp_discharge").alias("discharge_time"),
            pl.when(died).then(pl.col("hosp_discharge")).alias("death_time"),
            died.alias("died_in_hospital"),
            pl.col("hospitaladmitsource").alias("admission_type"),
            age.clip(upper_bound=MAX_AGE_YEARS).alias("age_years"),
            sex.alias("sex"),
            pl.col("ethnicity").str.strip_chars().alias("race"),
        ).sort("subject_id", "admit_time", "admission_id"),
        ADMISSION_SCHEMA,
    )


def _events(
    table: str,
    name: str,
    frame: pl.LazyFrame,
    system: str,
    code: str,
    checks: Checks,
    where: str,
    ids: dict[str, pl.Expr],
) -> pl.LazyFrame:
    time = pl.col("time")
    if table == "lab":
        number = pl.coalesce(to_float("labresult"), to_float("labresulttext"))
        checks.add(
            frame,
            where,
            {
                f"{name}: {{n}} result(s) with labresult empty but a numeric labresulttext: value taken from "
                "the text": pl.col("labresult").is_null() & to_float("labresulttext").is_not_null(),
                f"{name}: {{n}} non-numeric result(s) (e.g. '<2', '>200') "
                "kept in value_text with value_num null": number.is_null()
                & pl.col("labresulttext").is_not_null(),
            },
        )
        return make_events(
            frame,
            table,
            time=time,
            code_system=system,
            code=pl.col(code),
            value_num=number,
            unit=pl.coalesce("labmeasurenamesystem", "labmeasurenameinterface"),
            value_text=pl.col("labresulttext"),
            **ids,
        )
    if table == "medication":
        cancelled = pl.col("drugordercancelled").str.strip_chars().str.to_lowercase() == "yes"
        hicl = pl.col("drughiclseqno").str.strip_chars().str.replace(r"\.0$", "")
        checks.add(
            frame,
            where,
            {
                f"{name}: {{n}} cancelled order(s) kept as orders (the cancellation time is not recorded, so it "
                "may postdate the prediction time)": cancelled.fill_null(False)
            },
        )
        checks.add(
            frame,
            where,
            {
                f"{name}: {{n}} order(s) without drugname coded by drughiclseqno (EICU_HICL)": pl.col(
                    code
                ).is_null()
                & hicl.is_not_null(),
                f"{name}: {{n}} order(s) with neither drugname nor drughiclseqno dropped": pl.col(
                    code
                ).is_null()
                & hicl.is_null(),
            },
        )
        return make_events(
            frame,
            table,
            time=time,
            code_system=pl.when(pl.col(code).is_null()).then(pl.lit("EICU_HICL")).otherwise(pl.lit(system)),
            code=pl.coalesce(pl.col(code), hicl),
            value_text=pl.col("dosage"),
            **ids,
        )
    texts = {"diagnosis": "icd9code", "admissionDx": "admitdxtext", "physicalExam": "physicalexamtext"}
    text = texts.get(table)
    value = to_float(text) if table == "physicalExam" else None
    return make_events(
        frame,
        table,
        time=time,
        code_system=system,
        code=pl.col(code),
        value_num=value,
        value_text=pl.col(text) if text else None,
        **ids,
    )
