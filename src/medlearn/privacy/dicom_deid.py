"""De-identify one DICOM dataset with the PS3.15 Basic Application Level Confidentiality Profile.

Applied, in this order:

1. **Burned-in text check** (before anything changes): ``BurnedInAnnotation == YES``, or no explicit
   ``NO`` on an object that usually carries text in its pixels (secondary captures, ultrasound,
   encapsulated documents, endoscopy/photographs). The profile does not touch pixels, so these are
   reported (and written only without ``--skip-burned-in``), never passed silently.
2. **Private attributes removed** (the table's "private attributes: X"), at every nesting level.
3. **Table E.1-1** (:mod:`medlearn.privacy.dicom_profile`) at every nesting level:
   ``X`` removed, ``Z`` emptied, ``D`` replaced by a keyed dummy, ``U`` replaced by a keyed UID (the same
   original UID gets the same new UID in every file, so series, studies and references stay linked).
   Where the table leaves a choice (``X/Z``, ``X/D``, ``X/Z/D``, ``Z/D``) the first, most removing action is
   taken, except for ``PatientID`` (a keyed pseudonym, so a patient's studies stay together) and the
   dates below. Sequences marked ``D`` or ``X/Z/U*`` are kept and their items cleaned (``U*``: their UIDs
   remapped), so e.g. ``ReferencedImageSequence`` still points at the remapped images.
4. **Retain Longitudinal Temporal Information with Modified Dates Option** (DCM 113107): dates and
   date-times the table lists are shifted by a keyed per-patient number of whole days, so every interval
   within a patient is kept; times of day are unchanged by a whole-day shift and kept. Birth date and time
   follow the basic profile (emptied/removed), as the option's column says.
5. The method is recorded: ``PatientIdentityRemoved = YES``, ``LongitudinalTemporalInformationModified =
   MODIFIED``, ``DeidentificationMethod`` and codes 113100 and 113107 appended to
   ``DeidentificationMethodCodeSequence`` (earlier de-identification steps, e.g. TCIA's, are kept).

Pixel data is never read or changed: ``PixelData`` is not in the table and its bytes are written as read.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from medlearn.privacy.dicom_profile import EDITION, ProfileTable
from medlearn.privacy.keys import Keyring

if TYPE_CHECKING:  # pydicom is imported lazily (the privacy extra)
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

#: Tags whose dates the 113107 option does not retain (Table E.1-1's option column leaves them to the
#: basic profile): PatientBirthDate, PatientBirthTime, GPSTimeStamp.
NO_SHIFT = frozenset({0x00100030, 0x00100032, 0x00160077})
PATIENT_ID = 0x00100020
PATIENT_NAME = 0x00100010

#: SOP classes whose pixels commonly hold burned-in text: secondary captures, ultrasound, encapsulated
#: documents, visible-light photographs/endoscopy, video.
BURNED_IN_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture (and its multi-frame variants)
    "1.2.840.10008.5.1.4.1.1.6.",  # Ultrasound Image / Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame
    "1.2.840.10008.5.1.4.1.1.104.",  # Encapsulated PDF / CDA / STL ...
    "1.2.840.10008.5.1.4.1.1.77.1.",  # VL endoscopy, microscopy, photographic
)
BURNED_IN_MODALITIES = frozenset({"US", "OT", "XC", "ES", "DOC", "GM", "SC"})

_BYTES_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)

METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)


@dataclass
class DicomOutcome:
    """What was done to one dataset (counts only: the report must not repeat identifying values)."""

    removed: int = 0
    emptied: int = 0
    replaced: int = 0
    uids_remapped: int = 0
    dates_shifted: int = 0
    private_removed: int = 0
    burned_in: str | None = None
    warnings: list[str] = field(default_factory=list)


def burned_in_reason(ds: Dataset) -> str | None:
    """Why ``ds`` may carry identifying text in its pixels, or None."""
    flag = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    if flag == "YES":
        return "BurnedInAnnotation is YES"
    if flag == "NO":
        return None
    sop = str(ds.get("SOPClassUID", ""))
    if any(sop == p.rstrip(".") or sop.startswith(p) for p in BURNED_IN_SOP_PREFIXES):
        return f"SOP class {sop} (secondary capture, ultrasound, document or photograph) without BurnedInAnnotation NO"
    modality = str(ds.get("Modality", "")).strip().upper()
    if modality in BURNED_IN_MODALITIES:
        return f"modality {modality} without BurnedInAnnotation NO"
    return None


def patient_key(ds: Dataset) -> str:
    """The original identity a date offset and pseudonym hang on: PatientID, else PatientName, else the
    study UID (so files of one study still move together)."""
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID"):
        value = str(ds.get(keyword, "") or "").strip()
        if value:
            return f"{keyword}:{value}"
    return "unknown"


def patient_pseudonym(keys: Keyring, ds: Dataset) -> str:
    """Keyed replacement for PatientID/PatientName (16 characters: fits LO, SH and PN)."""
    return "ANON" + keys.token("dicom-patient", patient_key(ds), 12)


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value (``YYYYMMDD``; also the old ``YYYY.MM.DD``) by ``days``; None if unparseable."""
    text = value.strip().replace(".", "")
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    try:
        return (day + dt.timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return None


def shift_dt(value: str, days: int) -> str | None:
    """Shift a DT value (``YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]``) by ``days``, keeping its precision and
    everything after the date; partial dates move to the year/month the shift lands in."""
    text = value.strip()
    match = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(.*)", text)
    if not match:
        return None
    year, month, day_of_month, rest = match.groups()
    try:
        anchor = dt.date(int(year), int(month or 7), int(day_of_month or (15 if month else 1)))
        moved = anchor + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    if day_of_month:
        return moved.strftime("%Y%m%d") + rest
    if month:
        return moved.strftime("%Y%m") + rest
    return moved.strftime("%Y") + rest


def _dummy(vr: str, keys: Keyring, original: str) -> str | int | bytes:
    """A ``D`` replacement consistent with the VR: keyed for strings (the same original gives the same
    dummy, which keeps e.g. a container id linkable without revealing it)."""
    token = "ANON" + keys.token("dicom-dummy", original, 12)
    if vr in ("LO", "SH", "LT", "ST", "UT", "UC", "PN", "AE"):
        return token
    if vr == "CS":
        return "ANONYMIZED"
    if vr in ("IS", "DS"):
        return "0"
    if vr in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"):
        return 0
    if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return b"\x00\x00"
    if vr == "DA":
        return "19000101"
    if vr == "DT":
        return "19000101000000"
    if vr == "TM":
        return "000000"
    if vr == "AS":
        return "000Y"
    if vr == "UR":
        return ""
    return token


class DicomDeidentifier:
    """Apply the profile to pydicom datasets with one key (see the module docstring).

    Args:
        table: Table E.1-1 (from :func:`medlearn.privacy.dicom_profile.basic_profile`).
        keys: the keyed replacements.
    """

    def __init__(self, table: ProfileTable, keys: Keyring):
        self.table = table
        self.keys = keys
        self._pseudonym = ""  # the current dataset's patient pseudonym (set per call)

    def method_text(self) -> list[str]:
        """``DeidentificationMethod`` values (LO: at most 64 characters each)."""
        return [f"PS3.15 E.1-1 Basic Profile ({EDITION} table), medlearn deid", "Modified Dates (113107)"]

    def __call__(self, ds: Dataset) -> DicomOutcome:
        """De-identify ``ds`` in place (file meta included) and say what was done."""
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        outcome = DicomOutcome(burned_in=burned_in_reason(ds))
        days = self.keys.day_offset("dicom", patient_key(ds))
        pseudonym = patient_pseudonym(self.keys, ds)
        self._pseudonym = pseudonym
        before = sum(1 for _ in ds.iterall())
        ds.remove_private_tags()
        outcome.private_removed = before - sum(1 for _ in ds.iterall())
        self._clean(ds, days, outcome)
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            self._clean(meta, days, outcome)
        ds.PatientID = pseudonym
        ds.PatientName = pseudonym
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        previous = [str(v) for v in ds.get("DeidentificationMethod", []) or []]
        if isinstance(ds.get("DeidentificationMethod"), str):
            previous = [ds.DeidentificationMethod]
        ds.DeidentificationMethod = previous + self.method_text()
        codes = list(ds.get("DeidentificationMethodCodeSequence", []) or [])
        for value, meaning in METHOD_CODES:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            codes.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(codes)
        if outcome.burned_in:
            outcome.warnings.append(f"may carry burned-in identifying text: {outcome.burned_in}")
        return outcome

    def _clean(self, ds: Dataset, days: int, outcome: DicomOutcome) -> None:
        for elem in list(ds):
            tag = int(elem.tag)
            action = self.table.action(tag)
            vr = elem.VR
            if action is None:
                if vr == "SQ":
                    for item in elem.value or []:
                        self._clean(item, days, outcome)
                continue
            if tag == PATIENT_ID or tag == PATIENT_NAME:
                elem.value = self._pseudonym  # the patient's keyed pseudonym, at every nesting level
                outcome.replaced += 1
                continue
            if vr in ("DA", "DT") and tag not in NO_SHIFT and action != "U":
                self._shift(ds, elem, days, outcome)
                continue
            if vr == "TM" and tag not in NO_SHIFT and action != "U":
                continue  # 113107: a whole-day shift leaves the time of day as it is
            if vr == "SQ":
                if action in ("D", "X/Z/U*", "U"):
                    for item in elem.value or []:
                        self._clean(item, days, outcome)
                    outcome.replaced += 1
                elif action == "Z":
                    elem.value = []
                    outcome.emptied += 1
                else:
                    del ds[tag]
                    outcome.removed += 1
                continue
            if vr == "UI" and ("U" in action or action == "D"):  # a UI dummy is a keyed UID too
                self._remap_uids(elem, outcome)
                continue
            first = action[0]
            if first == "X":
                del ds[tag]
                outcome.removed += 1
            elif first == "Z":
                elem.value = b"" if vr in _BYTES_VRS else ("" if vr in _STRING_VRS else None)
                outcome.emptied += 1
            else:  # D
                if elem.value in (None, "", b""):
                    continue
                elem.value = _dummy(vr, self.keys, str(elem.value))
                outcome.replaced += 1

    def _remap_uids(self, elem: DataElement, outcome: DicomOutcome) -> None:
        value = elem.value
        if value in (None, ""):
            return
        if isinstance(value, str):
            elem.value = self.keys.uid(value)
        else:
            elem.value = [self.keys.uid(str(v)) for v in value]
        outcome.uids_remapped += 1

    def _shift(self, ds: Dataset, elem: DataElement, days: int, outcome: DicomOutcome) -> None:
        shift = shift_da if elem.VR == "DA" else shift_dt
        raw = elem.value
        if raw in (None, ""):
            return
        values = [raw] if isinstance(raw, str) else [str(v) for v in raw]
        shifted = [shift(str(v), days) for v in values]
        if any(s is None for s in shifted):
            del ds[elem.tag]  # an unreadable date cannot be shifted: remove it (X), never keep it
            outcome.removed += 1
            outcome.warnings.append(f"{elem.keyword or elem.tag}: unreadable {elem.VR} value removed")
            return
        elem.value = shifted[0] if len(shifted) == 1 else shifted
        outcome.dates_shifted += 1
