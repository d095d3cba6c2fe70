"""FHIR value parsing for :mod:`medlearn.ehr.io.fhir`: JSON field access, times, codes and references.

Owns the pure, state-free helpers: safe nested access (``_get``), string and number coercion
(``_str``, ``_num``), FHIR date/dateTime parsing to UTC-naive datetimes (:func:`parse_time`; date-only
values count as the end of the day), code-system URIs (:data:`SYSTEMS`) and code normalisation
(:func:`normalise_code`), and reference resolution (``_ref_id``). The conventions are described in the
docstring of :mod:`medlearn.ehr.io.fhir`.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
_DATETIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:?\d{2})?)?)?)?"
)
_ICD = frozenset({"ICD9CM", "ICD10CM", "ICD9PCS", "ICD10PCS", "ICD10"})


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
