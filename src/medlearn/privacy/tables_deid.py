"""De-identify EHR tables (MIMIC-III, MIMIC-IV and eICU CSV layouts) with polars.

Each column gets exactly one treatment, decided from its name (the datasets' documented column names)
and, for columns the layouts do not name, from its values; the report lists the treatment of every column:

- **pseudonym**: identifiers of patients, admissions, stays, orders, providers and rows (MIMIC
  ``subject_id hadm_id stay_id icustay_id ... *_id``; eICU ``uniquepid patienthealthsystemstayid
  patientunitstayid hospitalid wardid`` and its row ids). HMAC-SHA256 under the user's key in a domain
  per kind of id (``order_provider_id`` and ``provider_id`` share one), so a value gets the same pseudonym
  in every table and every run with that key. Digit-only ids stay digit-only (15 digits).
- **date shift**: every date/date-time column (the layouts' names, or text that parses as ISO
  ``YYYY-MM-DD[ HH:MM:SS]``) moves by the patient's keyed offset in whole days, so every interval
  within a patient (``dischtime - admittime``, ages at events) is kept exactly and times of day too. The
  patient is ``subject_id`` (MIMIC) or ``uniquepid`` (eICU). A table with dates but no patient column
  has its dates removed (they cannot be shifted consistently). Year columns (MIMIC-IV ``anchor_year``,
  eICU ``hospitaldischargeyear``) move by the offset in years, rounded, so ``anchor_age`` stays
  consistent. eICU's own times are minute offsets from the unit admission: they need no shift.
- **scrubbed**: free-text columns (the layouts' comment/text columns, or long text with spaces) go through
  :class:`~medlearn.privacy.text_scrub.TextScrubber` (names after titles, phone numbers, dates, ids).
- **UID**: DICOM UIDs (``*_uid`` columns, or values shaped like UIDs) get the same keyed UID as in the
  DICOM headers, so an annotation table still points at its de-identified series.
- **kept**: codes (``itemid icd_code ndc ...``), values, units, categories, the datasets' demographics.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

from medlearn.errors import InputError
from medlearn.privacy.keys import Keyring
from medlearn.privacy.text_scrub import TextScrubber

#: Columns whose values identify a patient: the date offset hangs on them (first found wins).
PATIENT_COLUMNS = ("subject_id", "uniquepid")

#: Identifier columns and their pseudonym domain (columns that hold the same kind of id share a domain).
ID_DOMAINS: dict[str, str] = {
    # MIMIC-III / MIMIC-IV
    "subject_id": "subject_id",
    "hadm_id": "hadm_id",
    "stay_id": "stay_id",
    "icustay_id": "icustay_id",
    "transfer_id": "transfer_id",
    "row_id": "row_id",
    "emar_id": "emar_id",
    "poe_id": "poe_id",
    "discontinue_of_poe_id": "poe_id",
    "discontinued_by_poe_id": "poe_id",
    "pharmacy_id": "pharmacy_id",
    "labevent_id": "labevent_id",
    "specimen_id": "specimen_id",
    "micro_specimen_id": "micro_specimen_id",
    "microevent_id": "microevent_id",
    "provider_id": "provider_id",
    "admit_provider_id": "provider_id",
    "enter_provider_id": "provider_id",
    "order_provider_id": "provider_id",
    "caregiver_id": "caregiver_id",
    "cgid": "caregiver_id",
    "orderid": "orderid",
    "linkorderid": "orderid",
    "note_id": "note_id",
    # eICU
    "uniquepid": "uniquepid",
    "patienthealthsystemstayid": "patienthealthsystemstayid",
    "patientunitstayid": "patientunitstayid",
    "hospitalid": "hospitalid",
    "wardid": "wardid",
}

#: ``*_id``/``*id`` columns that are codes from a dictionary, not identifiers of people or events.
CODE_COLUMNS = frozenset(
    {"itemid", "spec_itemid", "test_itemid", "org_itemid", "ab_itemid", "labtypeid", "icd_code", "drg_code"}
)

#: Date and date-time columns of the MIMIC layouts (values ``YYYY-MM-DD[ HH:MM:SS]``).
DATETIME_COLUMNS = frozenset(
    {
        "admittime", "dischtime", "deathtime", "edregtime", "edouttime", "dod", "dob", "dod_hosp", "dod_ssn",
        "charttime", "chartdate", "storetime", "storedate", "starttime", "stoptime", "endtime", "startdate",
        "enddate", "intime", "outtime", "transfertime", "ordertime", "entertime", "verifiedtime",
        "scheduletime", "expirationdate", "comments_date", "cancel_date",
    }
)  # fmt: skip

#: Year columns shifted by the patient's offset in years.
YEAR_COLUMNS = frozenset({"anchor_year", "hospitaldischargeyear"})

#: Free-text columns of the layouts (scrubbed).
TEXT_COLUMNS = frozenset(
    {
        "comments", "text", "note", "notes", "diagnosis", "description", "event_txt", "field_value",
        "product_description_other", "physicalexamtext", "admitdxtext", "diagnosisstring", "treatmentstring",
        "labresulttext", "reason_for_no_barcode",
    }
)  # fmt: skip

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_DIGITS = re.compile(r"^\d+$")
_DICOM_UID = re.compile(r"^[0-9]+(?:\.[0-9]+){3,}$")


def read_table(path: Path) -> Any:
    """Read a CSV(.gz) with every column as text, so values we do not change are written back as read."""
    import polars as pl

    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                data = fh.read()
            frame = pl.read_csv(data, infer_schema_length=0)
        else:
            frame = pl.read_csv(path, infer_schema_length=0)
    except (OSError, EOFError, pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV table ({' '.join(str(exc).split())[:200]})") from None
    if frame.width == 0:
        raise InputError(f"{path}: the table has no columns")
    return frame


def write_table(frame: Any, path: Path) -> None:
    """Write ``frame`` as CSV, gzip-compressed when the name ends in ``.gz`` (as the input was)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            frame.write_csv(fh)
    else:
        frame.write_csv(path)


def _id_domain(name: str, columns: set[str]) -> str | None:
    if name in CODE_COLUMNS:
        return None
    if name in ID_DOMAINS:
        return ID_DOMAINS[name]
    if name.endswith("_id"):
        return name
    if "patientunitstayid" in columns and name.endswith("id"):  # eICU row ids: labid, diagnosisid, ...
        return name
    return None


def _looks_like_dates(values: list[str]) -> bool:
    return bool(values) and all(_ISO_DATE.match(v) for v in values)


def _looks_like_text(values: list[str]) -> bool:
    if not values:
        return False
    mean_length = sum(len(v) for v in values) / len(values)
    with_space = sum(" " in v.strip() for v in values) / len(values)
    return mean_length >= 20 and with_space >= 0.3


def classify_columns(frame: Any) -> dict[str, str]:
    """Column -> ``uid``, ``pseudonym:<domain>``, ``date``, ``year``, ``text`` or ``kept``."""
    columns = {c.lower() for c in frame.columns}
    has_patient_data = bool(columns & (set(PATIENT_COLUMNS) | {"hadm_id", "stay_id", "patientunitstayid"}))
    kinds: dict[str, str] = {}
    for column in frame.columns:
        name = column.lower()
        sample = frame[column].drop_nulls().head(500).to_list()
        domain = _id_domain(name, columns)
        if name.endswith("_uid") or (sample and all(_DICOM_UID.match(v.strip()) for v in sample)):
            kinds[column] = "uid"
        elif domain is not None:
            kinds[column] = f"pseudonym:{domain}"
        elif name in YEAR_COLUMNS:
            kinds[column] = "year"
        elif name in DATETIME_COLUMNS or _looks_like_dates(sample):
            kinds[column] = "date"
        elif has_patient_data and (name in TEXT_COLUMNS or _looks_like_text(sample)):
            kinds[column] = "text"
        else:
            kinds[column] = "kept"
    return kinds


def pseudonym_value(keys: Keyring, domain: str, value: str) -> str:
    """One id's pseudonym: 15 digits for a digit-only id (``10001217`` and ``10001217.0`` alike), else
    ``P`` and 16 hex digits (``002-34851``, ``10001217-41``)."""
    text = value.strip()
    if text.endswith(".0") and _DIGITS.match(text[:-2]):
        text = text[:-2]
    if _DIGITS.match(text):
        return str(keys.pseudonym_int(domain, str(int(text))))
    return "P" + keys.token(domain, text, 16)


def _patient_key(value: str) -> str:
    text = value.strip()
    return text[:-2] if text.endswith(".0") and _DIGITS.match(text[:-2]) else text


def deidentify_frame(frame: Any, keys: Keyring) -> tuple[Any, dict[str, Any]]:
    """De-identify one table; returns the new frame and the per-column report (counts, never values)."""
    import polars as pl

    blank = frame.select(pl.all_horizontal(pl.all().is_null())).to_series()
    dropped_blank = int(blank.sum())
    if dropped_blank:  # eICU demo's patient.csv/hospital.csv carry all-empty lines
        frame = frame.filter(~blank)
    kinds = classify_columns(frame)
    patient = next((c for c in frame.columns if c.lower() in PATIENT_COLUMNS), None)
    report: dict[str, Any] = {"rows": frame.height, "patient_column": patient, "columns": {}}
    if dropped_blank:
        report["blank_rows_dropped"] = dropped_blank
    offset = None
    if patient is not None:
        patients = frame[patient].drop_nulls().unique().to_list()
        offsets = {p: keys.day_offset("ehr", _patient_key(p)) for p in patients}
        offset = pl.col(patient).replace_strict(offsets, default=None, return_dtype=pl.Int64)
    updates = []
    for column, kind in kinds.items():
        values = frame[column]
        non_null = int(values.is_not_null().sum())
        if kind.startswith("pseudonym:"):
            domain = kind.split(":", 1)[1]
            mapping = {v: pseudonym_value(keys, domain, v) for v in values.drop_nulls().unique().to_list()}
            updates.append(pl.col(column).replace_strict(mapping, default=None, return_dtype=pl.String))
            report["columns"][column] = f"pseudonym (HMAC-SHA256, domain {domain}); {non_null} values"
        elif kind == "uid":
            mapping = {v: keys.uid(v) for v in values.drop_nulls().unique().to_list()}
            updates.append(pl.col(column).replace_strict(mapping, default=None, return_dtype=pl.String))
            report["columns"][column] = f"DICOM UID remapped (as in the DICOM files); {non_null} values"
        elif kind in ("date", "year") and offset is None:
            updates.append(pl.lit(None, dtype=pl.String).alias(column))
            report["columns"][column] = (
                f"removed: {kind}s but no patient column to shift them by; {non_null} values"
            )
        elif kind == "date":
            day = pl.col(column).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
            shifted = (day + pl.duration(days=offset)).dt.strftime("%Y-%m-%d") + pl.col(column).str.slice(10)
            updates.append(shifted.alias(column))
            report["columns"][column] = f"date shifted per {patient} (whole days, keyed); {non_null} values"
        elif kind == "year":
            years = (offset.cast(pl.Float64) / 365.25).round(0).cast(pl.Int64)
            moved = (pl.col(column).str.strip_chars().cast(pl.Int64, strict=False) + years).cast(pl.String)
            updates.append(moved.alias(column))
            report["columns"][column] = (
                f"year shifted per {patient} (offset in years, rounded); {non_null} values"
            )
        elif kind == "text":
            scrubber = TextScrubber()
            originals = values.drop_nulls().unique().to_list()
            mapping = {v: scrubber(v) for v in originals}
            changed = sum(1 for v in originals if mapping[v] != v)
            updates.append(pl.col(column).replace_strict(mapping, default=None, return_dtype=pl.String))
            report["columns"][column] = (
                f"free text scrubbed; {changed} of {len(originals)} distinct values changed"
            )
        else:
            report["columns"][column] = "kept"
    before_nulls = frame
    if updates:
        frame = frame.with_columns(updates)
    for column, kind in kinds.items():
        if kind in ("date", "year") and offset is not None:
            lost = int(before_nulls[column].is_not_null().sum()) - int(frame[column].is_not_null().sum())
            if lost:  # unparseable values or rows without a patient: removed, never kept unshifted
                report["columns"][column] += f"; {lost} values removed (unparseable or no patient id)"
    return frame, report


def deidentify_table_file(source: Path, target: Path, keys: Keyring) -> dict[str, Any]:
    """Read ``source``, de-identify it and write ``target`` (same format); the report entry."""
    frame = read_table(source)
    out, report = deidentify_frame(frame, keys)
    write_table(out, target)
    return report
