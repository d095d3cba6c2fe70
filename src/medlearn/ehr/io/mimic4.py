"""MIMIC-IV (v2.x, PhysioNet layout ``hosp/*.csv.gz``, ``icu/*.csv.gz``) → the canonical tables.

Every table is scanned lazily with ``pl.scan_csv`` (polars streams ``.csv.gz`` when, as here, the full
schema is given), all columns as strings, then cast leniently (see :mod:`._tables`).

**Time = when the care team could know it** (docs/conventions.md#ehr-time). Each event's ``time`` is the
moment its information entered the record, not the moment it refers to:

==========================  =====================================================================
table                       ``time``
==========================  =====================================================================
``hosp/labevents``          ``storetime``, the result time (``charttime`` is the specimen time, on
                            average 1.7 h earlier); a lab without a ``storetime`` (never resulted:
                            "HOLD", discarded specimens) has a null time and never enters features.
                            ``lab_time="charttime"`` restores the specimen time: a leaky ablation
                            (about 3 % of the results inside a 24 h window were stored after it).
``hosp/diagnoses_icd``      the admission's discharge time: billing codes, assigned after discharge.
``hosp/procedures_icd``     the admission's discharge time too: billing codes like diagnoses; their
                            ``chartdate`` says when the procedure was done, not when it was coded.
``hosp/prescriptions``      ``starttime`` (the table has no order-entry time; the pharmacy's
                            ``entertime`` is not read).
``icu/icustays``            ``intime`` (ICU_ADMISSION) and ``outtime`` (ICU_DISCHARGE).
``icu/*events``             the later of the event time (``starttime``/``charttime``) and
                            ``storetime``, when the row was documented; null ``storetime`` → null time.
``hosp/drgcodes``,          not read (billing after discharge; were they read, at discharge time).
``hosp/hcpcsevents``
==========================  =====================================================================

Mapping (``source_table`` is the file's path under the root, without suffix):

- ``hosp/admissions`` + ``hosp/patients`` → admissions. ``age_years`` = ``anchor_age`` + (admission year
  − ``anchor_year``), capped at 90 (MIMIC-IV groups ages > 89 as 91); ``died_in_hospital`` =
  ``hospital_expire_flag``; ``death_time`` = ``deathtime``; ``race`` = ``race`` (``ethnicity`` in
  versions before 2.0).
  Admissions are screened (:func:`._tables.screen_admissions`): a repeated ``hadm_id`` keeps its first
  row, rows with no ``admittime`` or a ``dischtime`` before it are dropped, each reason counted in the notes.
- ``hosp/diagnoses_icd`` → ICD9CM/ICD10CM events, ``hosp/procedures_icd`` → ICD9PCS/ICD10PCS events.
- ``hosp/prescriptions`` → NDC (when present and not "0") else DRUG (drug name);
  ``value_num``/``value_text`` = ``dose_val_rx`` (``500,000`` parsed, ranges like ``1-2`` text only),
  ``unit`` = ``dose_unit_rx``.
- ``hosp/labevents`` → MIMIC4_LABITEM ``itemid``; ``value_num`` = ``valuenum``, ``value_text`` = ``value``
  (non-numeric results such as "NEG" or "ERROR" stay text), ``unit`` = ``valueuom``. Outpatient labs keep
  a null ``admission_id`` (features join MIMIC events by patient and time, so an outpatient result
  stored before the prediction time is legitimate information).
- ``icu/icustays`` → ICU_ADMISSION (first care unit) and ICU_DISCHARGE (last).
- ``icu/inputevents``, ``procedureevents``, ``outputevents``, ``datetimeevents``, ``chartevents`` →
  MIMIC4_ITEM ``itemid``; absent ICU tables are notes, not errors (the shared demo lacks ``chartevents``).
- ``codes``: ``d_labitems``, ``d_items``, ``d_icd_diagnoses``, ``d_icd_procedures`` and the drug name of
  each NDC.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from medlearn.ehr.io._tables import (
    EVERY_ROW,
    Checks,
    bad_count,
    find_table,
    make_events,
    medication_code,
    ndc,
    ndc_names,
    read_header,
    require_table,
    scan_table,
    screen_admissions,
    to_datetime,
    to_float,
)
from medlearn.ehr.io.schema import (
    ADMISSION_SCHEMA,
    CODES_SCHEMA,
    MAX_AGE_YEARS,
    EHRSource,
    conform,
)
from medlearn.engine.data import fingerprint_files
from medlearn.errors import InputError

#: 2: labs at storetime, procedures at discharge, ICU events at storetime; 3: screened admissions; 4: race
READER_VERSION = "4"
_ID = ["subject_id", "hadm_id"]
#: Required tables and the columns each must have.
REQUIRED: dict[str, list[str]] = {
    "hosp/patients": ["subject_id", "gender", "anchor_age", "anchor_year"],
    "hosp/admissions": [
        *_ID,
        "admittime",
        "dischtime",
        "deathtime",
        "admission_type",
        "hospital_expire_flag",
    ],
    "hosp/diagnoses_icd": [*_ID, "icd_code", "icd_version"],
    "hosp/procedures_icd": [*_ID, "chartdate", "icd_code", "icd_version"],
    "hosp/prescriptions": [*_ID, "starttime", "drug"],
    "hosp/labevents": [*_ID, "itemid", "charttime", "value", "valuenum", "valueuom"],
}
#: ICU event tables: (event time column, value column, unit column, numeric value column); each row is
#: timed at the later of its event time and its ``storetime`` (when present in the file).
ICU_EVENTS: dict[str, tuple[str, str, str, str | None]] = {
    "icu/inputevents": ("starttime", "amount", "amountuom", "amount"),
    "icu/procedureevents": ("starttime", "value", "valueuom", "value"),
    "icu/outputevents": ("charttime", "value", "valueuom", "value"),
    "icu/datetimeevents": ("charttime", "value", "valueuom", None),
    "icu/chartevents": ("charttime", "value", "valueuom", "valuenum"),
}
DICTIONARIES = ["hosp/d_labitems", "hosp/d_icd_diagnoses", "hosp/d_icd_procedures", "icu/d_items"]


def source_files(root: Path) -> list[Path]:
    """The files :func:`read_mimic4` reads (required ones must exist), for the fingerprint."""
    files = [require_table(root, table, "MIMIC-IV") for table in REQUIRED]
    optional = ["icu/icustays", *ICU_EVENTS, *DICTIONARIES]
    return files + [p for table in optional if (p := find_table(root, table)) is not None]


def fingerprint(root: Path, lab_time: str = "storetime") -> str:
    """Content hash of the files read, the reader version and options: the key of every cache."""
    return fingerprint_files(source_files(Path(root)), extra=f"mimic4:{READER_VERSION}:{lab_time}")


def read_mimic4(root: Path, lab_time: str = "storetime", *, defer_checks: bool = False) -> EHRSource:
    """Read a MIMIC-IV folder (the one holding ``hosp/``) into an :class:`EHRSource`.

    ``lab_time`` "storetime" (default) times a lab at its result; "charttime" at the specimen, which is
    a leaky ablation (the result did not exist yet).
    """
    root = Path(root)
    if lab_time not in ("charttime", "storetime"):
        raise InputError(f"{root}: lab_time must be 'charttime' or 'storetime', not {lab_time!r}")
    source_files(root)  # a missing required table fails here, before any scan
    paths = {table: require_table(root, table, "MIMIC-IV") for table in REQUIRED}
    checks, notes = Checks(), []
    admissions = _admissions(paths, checks)
    discharge = admissions.select("admission_id", "discharge_time").unique("admission_id", keep="first")
    frames = [
        _diagnoses(paths["hosp/diagnoses_icd"], discharge, checks),
        _procedures(paths["hosp/procedures_icd"], discharge, checks),
        _prescriptions(paths["hosp/prescriptions"], checks),
        _labs(paths["hosp/labevents"], lab_time, checks),
    ]
    frames += _icu(root, checks, notes)
    if not defer_checks:  # else read_source collects them with the cache write
        notes += checks.run()
    return EHRSource(
        name=root.name,
        root=root,
        events=pl.concat(frames, how="vertical"),
        admissions=admissions,
        fingerprint=fingerprint(root, lab_time),
        notes=notes,
        pending_checks=checks if defer_checks else None,
        codes=_codes(root, paths["hosp/prescriptions"]),
        kind="mimic4",
    )


def require_rows(path: Path, what: str) -> None:
    """An InputError naming ``path`` when the (gzipped) CSV has a header but no data row: an empty
    admissions table would otherwise surface later as an empty cohort with no word of which file is empty.
    Reads only up to the first data line; a file that cannot be read is left to the table scan to report."""
    import gzip

    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as raw:
            raw.readline()  # the header
            for line in raw:
                if line.strip():
                    return
    except (OSError, EOFError):
        return
    raise InputError(f"{path}: no {what} (the table has a header but no rows)")


def _admissions(paths: dict[str, Path], checks: Checks) -> pl.LazyFrame:
    adm_path, pat_path = paths["hosp/admissions"], paths["hosp/patients"]
    require_rows(adm_path, "admissions")
    adm = scan_table(adm_path, REQUIRED["hosp/admissions"], ["race", "ethnicity"], checks=checks)
    pat = scan_table(pat_path, REQUIRED["hosp/patients"], checks=checks)
    times = {
        "admittime": to_datetime("admittime"),
        "dischtime": to_datetime("dischtime"),
        "deathtime": to_datetime("deathtime"),
    }
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
    age = to_float("anchor_age") + (times["admittime"].dt.year() - to_float("anchor_year"))
    adm = screen_admissions(adm, checks, str(adm_path), "hadm_id", "admittime", "dischtime")
    joined = adm.join(pat.unique("subject_id", keep="first"), on="subject_id", how="left")
    checks.add(
        joined,
        str(pat_path),
        {
            f"{pat_path.name}: {{n}} admission(s) of subjects absent from patients (no age/sex)": pl.col(
                "gender"
            ).is_null()
            & pl.col("anchor_age").is_null(),
            f"{pat_path.name}: {{n}} admission(s) with age > 89 (de-identified) capped at 90": age > 89,
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
            pl.coalesce("race", "ethnicity").str.strip_chars().alias("race"),  # "ethnicity" before v2.0
        ),
        ADMISSION_SCHEMA,
    )


def _icd_system(kind: str) -> pl.Expr:
    """ICD9CM/ICD10CM (``kind`` "CM") or ICD9PCS/ICD10PCS from ``icd_version``; null when unknown."""
    version = pl.col("icd_version").str.strip_chars()
    return pl.when(version.is_in(["9", "10"])).then(pl.concat_str(pl.lit("ICD"), version, pl.lit(kind)))


def _diagnoses(path: Path, discharge: pl.LazyFrame, checks: Checks) -> pl.LazyFrame:
    diag = scan_table(path, REQUIRED["hosp/diagnoses_icd"], checks=checks).join(
        discharge, left_on="hadm_id", right_on="admission_id", how="left"
    )
    checks.add(
        diag,
        str(path),
        {
            f"{path.name}: {{n}} diagnosis row(s) without a known admission discharge time (time null)": pl.col(
                "discharge_time"
            ).is_null(),
            f"{path.name}: {{n}} row(s) with an icd_version other than 9/10 dropped": _icd_system(
                "CM"
            ).is_null(),
        },
    )
    events = make_events(
        diag,
        "hosp/diagnoses_icd",
        time=pl.col("discharge_time"),
        code_system=_icd_system("CM"),
        code=pl.col("icd_code"),
        admission=pl.col("hadm_id"),
    )
    return events.filter(pl.col("code_system").is_not_null())


def _procedures(path: Path, discharge: pl.LazyFrame, checks: Checks) -> pl.LazyFrame:
    """Procedure billing codes at the admission's discharge time (coded after discharge, like diagnoses)."""
    proc = scan_table(path, REQUIRED["hosp/procedures_icd"], checks=checks).join(
        discharge, left_on="hadm_id", right_on="admission_id", how="left"
    )
    checks.add(
        proc,
        str(path),
        {
            f"{path.name}: {{n}} procedure code(s) timed at their admission's discharge (billing codes; "
            "'chartdate' is when the procedure was done, not when it was coded)": EVERY_ROW,
            f"{path.name}: {{n}} procedure row(s) without a known admission discharge time (time null)": pl.col(
                "discharge_time"
            ).is_null(),
        },
    )
    return make_events(
        proc,
        "hosp/procedures_icd",
        time=pl.col("discharge_time"),
        code_system=_icd_system("PCS"),
        code=pl.col("icd_code"),
        admission=pl.col("hadm_id"),
    ).filter(pl.col("code_system").is_not_null())


def _prescriptions(path: Path, checks: Checks) -> pl.LazyFrame:
    rx = scan_table(
        path, REQUIRED["hosp/prescriptions"], ["ndc", "dose_val_rx", "dose_unit_rx"], checks=checks
    )
    time, dose = to_datetime("starttime"), to_float("dose_val_rx", thousands=True)
    checks.add(
        rx,
        str(path),
        {
            f"{path.name}: {{n}} malformed 'starttime' timestamp(s) set to null": bad_count(
                "starttime", time
            ),
            f"{path.name}: {{n}} prescription(s) without NDC (or NDC '0') coded by drug name": ndc().is_null(),
            f"{path.name}: {{n}} non-numeric dose(s) (e.g. ranges '1-2') kept in value_text": bad_count(
                "dose_val_rx", dose
            ),
        },
    )
    system, code = medication_code()
    return make_events(
        rx,
        "hosp/prescriptions",
        time=time,
        code_system=system,
        code=code,
        admission=pl.col("hadm_id"),
        value_num=dose,
        unit=pl.col("dose_unit_rx"),
        value_text=pl.col("dose_val_rx"),
    )


def _labs(path: Path, lab_time: str, checks: Checks) -> pl.LazyFrame:
    labs = scan_table(
        path, REQUIRED["hosp/labevents"] + ([lab_time] if lab_time == "storetime" else []), checks=checks
    )
    time, value = to_datetime(lab_time), to_float("valuenum")
    if lab_time == "storetime":  # never before the specimen (no row of the demo is, but a copy might be)
        time = pl.when(time.is_not_null()).then(pl.max_horizontal(time, to_datetime("charttime")))
    counts = {
        f"{path.name}: {{n}} malformed '{lab_time}' timestamp(s) set to null": bad_count(
            lab_time, to_datetime(lab_time)
        ),
        f"{path.name}: {{n}} non-numeric lab result(s) (e.g. 'NEG', '<0.5', 'ERROR') kept in value_text "
        "with value_num null": pl.col("valuenum").is_null() & pl.col("value").is_not_null(),
        f"{path.name}: {{n}} malformed 'valuenum' value(s) set to null": bad_count("valuenum", value),
        f"{path.name}: {{n}} 'value' text(s) redacted as '___' by de-identification (value_text '___'; "
        "value_num from valuenum where present)": pl.col("value") == "___",
        f"{path.name}: {{n}} lab event(s) outside any admission (no hadm_id: outpatient), "
        "admission_id null": pl.col("hadm_id").is_null(),
    }
    if lab_time == "storetime":
        counts[
            f"{path.name}: {{n}} lab(s) without a storetime (never resulted, e.g. held or discarded "
            "specimens): time null, never used as a feature"
        ] = pl.col("storetime").is_null()
    checks.add(labs, str(path), counts)
    return make_events(
        labs,
        "hosp/labevents",
        time=time,
        code_system="MIMIC4_LABITEM",
        code=pl.col("itemid"),
        admission=pl.col("hadm_id"),
        value_num=value,
        unit=pl.col("valueuom"),
        value_text=pl.col("value"),
    )


def _icu(root: Path, checks: Checks, notes: list[str]) -> list[pl.LazyFrame]:
    if not (root / "icu").is_dir():
        notes.append("icu/ absent: no ICU stays or ICU events")
        return []
    frames = []
    stays_path = find_table(root, "icu/icustays")
    if stays_path is None:
        notes.append("icu/icustays.csv.gz absent: no ICU stay boundaries")
    else:
        columns = [*_ID, "stay_id", "intime", "outtime", "first_careunit", "last_careunit"]
        stays = scan_table(stays_path, columns, checks=checks)
        for col, system, unit in (
            ("intime", "ICU_ADMISSION", "first_careunit"),
            ("outtime", "ICU_DISCHARGE", "last_careunit"),
        ):
            message = f"{stays_path.name}: {{n}} malformed '{col}' timestamp(s) set to null"
            checks.add(stays, str(stays_path), {message: bad_count(col, to_datetime(col))})
            frames.append(
                make_events(
                    stays,
                    "icu/icustays",
                    time=to_datetime(col),
                    code_system=system,
                    code=pl.col(unit),
                    admission=pl.col("hadm_id"),
                    stay=pl.col("stay_id"),
                )
            )
    for table, (time_col, value_col, unit_col, num_col) in ICU_EVENTS.items():
        path = find_table(root, table)
        if path is None:
            what = "no ICU vitals" if table == "icu/chartevents" else "no such ICU events"
            notes.append(f"{table}.csv.gz absent: {what}")
            continue
        extra = [num_col] if num_col and num_col != value_col else []
        columns = [*_ID, "stay_id", "itemid", time_col, value_col, unit_col, *extra]
        stored = "storetime" in read_header(path)
        frame = scan_table(path, columns + (["storetime"] if stored else []), checks=checks)
        time = to_datetime(time_col)
        counts = {
            f"{path.name}: {{n}} malformed '{time_col}' timestamp(s) set to null": bad_count(time_col, time)
        }
        if stored:  # documented at storetime: the later of the two is when the care team could know it
            store = to_datetime("storetime")
            counts[f"{path.name}: {{n}} row(s) stored after their '{time_col}': timed at 'storetime'"] = (
                store > time
            )
            counts[f"{path.name}: {{n}} row(s) without a storetime: time null, never used as a feature"] = (
                store.is_null()
            )
            time = pl.when(store.is_not_null() & time.is_not_null()).then(pl.max_horizontal(time, store))
        else:
            notes.append(
                f"{path.name}: no 'storetime' column; rows timed at '{time_col}' (may precede "
                "their documentation)"
            )
        checks.add(frame, str(path), counts)
        frames.append(
            make_events(
                frame,
                table,
                time=time,
                code_system="MIMIC4_ITEM",
                code=pl.col("itemid"),
                admission=pl.col("hadm_id"),
                stay=pl.col("stay_id"),
                value_num=to_float(num_col) if num_col else None,
                unit=pl.col(unit_col),
                value_text=pl.col(value_col),
            )
        )
    return frames


def _codes(root: Path, prescriptions: Path) -> pl.LazyFrame:
    """Descriptions of codes: dictionaries when present, plus each NDC's drug name."""
    frames = []
    if (p := find_table(root, "hosp/d_labitems")) is not None:
        labs = scan_table(p, ["itemid", "label"], ["fluid"])
        label = pl.concat_str("label", pl.lit(" ("), "fluid", pl.lit(")")).fill_null(pl.col("label"))
        frames.append(
            labs.select(
                pl.lit("MIMIC4_LABITEM").alias("code_system"),
                pl.col("itemid").alias("code"),
                label.alias("description"),
            )
        )
    if (p := find_table(root, "icu/d_items")) is not None:
        items = scan_table(p, ["itemid", "label"])
        frames.append(
            items.select(
                pl.lit("MIMIC4_ITEM").alias("code_system"),
                pl.col("itemid").alias("code"),
                pl.col("label").alias("description"),
            )
        )
    for table, kind in (("hosp/d_icd_diagnoses", "CM"), ("hosp/d_icd_procedures", "PCS")):
        if (p := find_table(root, table)) is not None:
            icd = scan_table(p, ["icd_code", "icd_version", "long_title"])
            frames.append(
                icd.select(
                    _icd_system(kind).alias("code_system"),
                    pl.col("icd_code").alias("code"),
                    pl.col("long_title").alias("description"),
                )
            )
    frames.append(ndc_names(scan_table(prescriptions, ["drug"], ["ndc"])))
    return pl.concat([conform(f, CODES_SCHEMA) for f in frames]).filter(
        pl.col("code_system").is_not_null() & pl.col("code").is_not_null()
    )


__all__ = ["fingerprint", "read_mimic4", "source_files"]
