"""``medlearn deid INPUT --out OUTPUT``: de-identify a file or a folder tree into a mirrored output.

Each file is recognised by its content and name: DICOM (``DICM`` preamble or ``.dcm``), EHR tables
(``.csv``, ``.csv.gz``) and FHIR JSON (``.json`` holding a ``resourceType``). Anything else is skipped
and listed in the report, never copied (it could hold anything: LIDC's XML reads repeat the original UIDs).
The input is only read. Path components that identify are renamed like the values inside: a DICOM UID
folder gets the remapped UID, a folder named after the PatientID gets the pseudonym, and a file name
holding a FHIR patient's name or id is replaced by a keyed token, so the tree keeps its shape without
leaking what the headers no longer say.

``deid_report.json`` (in the output folder; ``<output>.deid_report.json`` beside an output file) lists
per file what was done (per column for tables), the burned-in-annotation warnings, the skipped files, the
profile and the key's fingerprint. Files are named by their *output* paths (skipped ones with their UID
folders remapped), so the report holds no original value and can travel with the output.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlearn.errors import ConfigError, InputError, OutputExistsError
from medlearn.privacy.keys import Keyring

REPORT_NAME = "deid_report.json"
_UID_NAME = re.compile(r"^[0-9]+(?:\.[0-9]+){3,}$")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass
class DeidRun:
    """The outcome of one ``deid`` run (also written as ``deid_report.json``)."""

    report: dict[str, Any]
    report_path: Path
    written: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    burned_in: list[dict[str, str]] = field(default_factory=list)


def single_file_report(out: Path) -> Path:
    """The report of a one-file run: ``<output name>.deid_report.json`` beside it, so several one-file
    runs into one folder keep their own reports."""
    return out.with_name(out.name + "." + REPORT_NAME)


def classify(path: Path) -> str | None:
    """``dicom``, ``table``, ``fhir`` or None (not handled) for one file."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "table"
    if name.endswith(".json"):
        return "fhir"
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if head[128:132] == b"DICM" or name.endswith(".dcm"):
        return "dicom"
    return None


def _check_paths(source: Path, out: Path, force: bool) -> None:
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    src, dst = source.resolve(), out.resolve()
    if dst == src or (source.is_dir() and src in dst.parents):
        raise ConfigError(f"--out {out}: must be outside the input {source} (the input is never modified)")
    if source.is_dir():
        if out.exists() and not out.is_dir():
            raise OutputExistsError(f"{out}: exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not force:
            raise OutputExistsError(f"{out}: output directory is not empty; pass --force to overwrite it")
    else:
        if out.is_dir():
            raise OutputExistsError(f"{out}: is a directory; give an output file for the input file {source}")
        if out.exists() and not force:
            raise OutputExistsError(f"{out}: file exists; pass --force to overwrite it")
        report = single_file_report(out)
        if report.exists() and not force:
            raise OutputExistsError(f"{report}: file exists; pass --force to overwrite it")


class Deidentifier:
    """Walks the input and dispatches each file to its de-identifier (all sharing one key).

    Args:
        keys: the keyed replacements.
        skip_burned_in: do not write DICOM files flagged for burned-in text (they are listed instead).
    """

    def __init__(self, keys: Keyring, skip_burned_in: bool = False):
        self.keys = keys
        self.skip_burned_in = skip_burned_in
        self._dicom = None
        self._fhir = None
        self._renames: dict[str, str] = {}  # identifying folder names seen in DICOM headers -> pseudonyms

    # -- per kind ------------------------------------------------------------------------------------
    def dicom(self, source: Path, rel: Path, out_root: Path | None, out_file: Path | None) -> dict[str, Any]:
        try:
            import pydicom
            from pydicom.errors import InvalidDicomError
        except ModuleNotFoundError:
            from medlearn.errors import MissingDependencyError

            raise MissingDependencyError(
                "DICOM de-identification needs pydicom: pip install 'medlearn[privacy]'"
            ) from None
        from medlearn.privacy.dicom_deid import DicomDeidentifier, patient_pseudonym
        from medlearn.privacy.dicom_profile import basic_profile

        if self._dicom is None:
            self._dicom = DicomDeidentifier(basic_profile(), self.keys)
        try:
            ds = pydicom.dcmread(source)
            ds.PixelData if "PixelData" in ds else None  # noqa: B018 - fails early on a truncated file
        except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(
                f"{source}: not a readable DICOM file ({' '.join(str(exc).split())[:160]})"
            ) from None
        if "SOPInstanceUID" not in ds:  # an empty or truncated dataset: nothing a viewer could open
            raise InputError(
                f"{source}: not a readable DICOM object (no SOPInstanceUID; truncated or not DICOM)"
            )
        pseudonym = patient_pseudonym(self.keys, ds)
        name = str(ds.get("PatientName", "") or "").strip()
        renames = {str(ds.get("PatientID", "") or "").strip(): pseudonym}
        renames.update({n: pseudonym for n in (name, name.replace("^", "_"), name.replace("^", " ")) if n})
        renames.pop("", None)
        self._renames.update(renames)
        outcome = self._dicom(ds)
        entry: dict[str, Any] = {
            "path": str(self.rename(rel, renames)),  # the output's name: the report holds no original value
            "kind": "dicom",
            "modality": str(ds.get("Modality", "")),
            "sop_class": str(ds.get("SOPClassUID", "")),
            "removed": outcome.removed,
            "emptied": outcome.emptied,
            "replaced": outcome.replaced,
            "uids_remapped": outcome.uids_remapped,
            "dates_shifted": outcome.dates_shifted,
            "private_removed": outcome.private_removed,
        }
        if outcome.warnings:
            entry["warnings"] = outcome.warnings
        if outcome.burned_in:
            entry["burned_in"] = outcome.burned_in
            if self.skip_burned_in:
                entry["written"] = None
                return entry
        target = out_file if out_file is not None else out_root / self.rename(rel, renames)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=False)
        entry["written"] = str(target.relative_to(out_root)) if out_root is not None else str(target)
        return entry

    def table(self, source: Path, rel: Path, out_root: Path | None, out_file: Path | None) -> dict[str, Any]:
        from medlearn.privacy.tables_deid import deidentify_table_file

        target = out_file if out_file is not None else out_root / rel
        entry = {"path": str(rel), "kind": "table", **deidentify_table_file(source, target, self.keys)}
        entry["written"] = str(rel) if out_root is not None else str(target)
        return entry

    def fhir(
        self, source: Path, rel: Path, out_root: Path | None, out_file: Path | None
    ) -> dict[str, Any] | None:
        from medlearn.privacy.fhir_deid import FhirDeidentifier, known_identifiers, resources_of

        try:
            document = json.loads(source.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(document, dict) or "resourceType" not in document:
            return None  # JSON, but not FHIR: skipped
        if self._fhir is None:
            self._fhir = FhirDeidentifier(self.keys)
        renames = {k: "" for k in known_identifiers(resources_of(document))}
        new_document, report = self._fhir(document)
        target = out_file if out_file is not None else out_root / self.rename(rel, renames, fhir=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(new_document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written = str(target.relative_to(out_root)) if out_root is not None else str(target)
        return {
            "path": str(self.rename(rel, renames, fhir=True)),
            "kind": "fhir",
            **report,
            "written": written,
        }

    # -- paths ---------------------------------------------------------------------------------------
    def rename(self, rel: Path, renames: dict[str, str], fhir: bool = False) -> Path:
        """The output path of ``rel``: UID folders remapped, identifying names replaced (see module doc)."""
        parts = []
        for i, part in enumerate(rel.parts):
            last = i == len(rel.parts) - 1
            stem, suffix = (
                (part.split(".", 1)[0], "." + part.split(".", 1)[1]) if last and "." in part else (part, "")
            )
            if _UID_NAME.match(part) and not last:
                parts.append(self.keys.uid(part))
            elif part in renames and renames[part]:
                parts.append(renames[part])
            elif (
                fhir
                and last
                and (
                    _UUID.search(stem) or any(k and k.lower() in stem.lower() for k in renames if len(k) >= 3)
                )
            ):
                parts.append("fhir-" + self.keys.token("path", stem, 16).lower() + suffix)
            else:
                parts.append(part)
        return Path(*parts)

    # -- the run -------------------------------------------------------------------------------------
    def run(self, source: Path, out: Path, force: bool = False) -> DeidRun:
        """De-identify ``source`` (file or folder) into ``out``; writes and returns the report."""
        from medlearn import __version__
        from medlearn.engine.progress import track
        from medlearn.privacy.dicom_profile import EDITION

        _check_paths(source, out, force)
        if source.is_dir():
            files = sorted(p for p in source.rglob("*") if p.is_file())
            kinds = {p: classify(p) for p in files}
            if not any(kinds.values()):
                raise InputError(
                    f"{source}: nothing to de-identify ({len(files)} files, none DICOM, CSV or FHIR JSON)"
                )
            out.mkdir(parents=True, exist_ok=True)
            out_root, report_path = out, out / REPORT_NAME
        else:
            files = [source]
            kinds = {source: classify(source)}
            out.parent.mkdir(parents=True, exist_ok=True)
            out_root, report_path = None, single_file_report(out)
        entries: list[dict[str, Any]] = []
        skipped_rel: list[tuple[Path, str]] = []
        for path in track(files, "de-identifying", total=len(files)):
            rel = path.relative_to(source) if source.is_dir() else Path(path.name)
            kind = kinds[path]
            out_file = None if source.is_dir() else out
            entry = None
            if kind == "dicom":
                entry = self.dicom(path, rel, out_root, out_file)
            elif kind == "table":
                entry = self.table(path, rel, out_root, out_file)
            elif kind == "fhir":
                entry = self.fhir(path, rel, out_root, out_file)
            if entry is None:
                reason = (
                    "JSON without a FHIR resourceType"
                    if kind == "fhir"
                    else "not DICOM, a CSV table or FHIR JSON"
                )
                if not source.is_dir():
                    raise InputError(f"{source}: {reason}; nothing to de-identify")
                skipped_rel.append((rel, reason))
                continue
            entries.append(entry)
        # named with every rename learnt from the DICOM files (a skipped XML beside a series moves with it)
        skipped = [{"path": str(self.rename(rel, self._renames)), "reason": why} for rel, why in skipped_rel]
        burned = [{"path": e["path"], "reason": e["burned_in"]} for e in entries if e.get("burned_in")]
        report = {
            "medlearn_version": __version__,
            "output": str(out),
            "key_fingerprint": self.keys.fingerprint,
            "dicom_profile": {
                "standard": "DICOM PS3.15 Annex E, Table E.1-1",
                "edition": EDITION,
                "codes": {
                    "113100": "Basic Application Confidentiality Profile",
                    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
                },
                "private_attributes": "removed",
            },
            "date_shift_days": {"min": self.keys.min_shift_days, "max": self.keys.max_shift_days},
            "counts": {
                "dicom": sum(e["kind"] == "dicom" for e in entries),
                "tables": sum(e["kind"] == "table" for e in entries),
                "fhir": sum(e["kind"] == "fhir" for e in entries),
                "skipped": len(skipped),
                "burned_in_flagged": len(burned),
            },
            "burned_in": burned,
            "skipped": skipped,
            "files": entries,
        }
        report_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        written = sum(1 for e in entries if e.get("written"))
        return DeidRun(
            report=report, report_path=report_path, written=written, skipped=skipped, burned_in=burned
        )


def deidentify(
    source: Path, out: Path, keys: Keyring, force: bool = False, skip_burned_in: bool = False
) -> DeidRun:
    """De-identify ``source`` into ``out`` with ``keys`` (the Python twin of ``medlearn deid``)."""
    return Deidentifier(keys, skip_burned_in=skip_burned_in).run(Path(source), Path(out), force=force)
