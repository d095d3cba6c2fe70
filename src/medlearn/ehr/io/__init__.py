"""EHR readers: MIMIC-IV, MIMIC-III, eICU, MEDS and FHIR → one canonical, lazily scanned event table.

Entry points::

    source = read_source(root)           # detects the layout, reads once, then serves a parquet cache
    events = source.events               # pl.LazyFrame with EVENT_SCHEMA
    write_meds(source, "out/meds")       # any source as a MEDS dataset

The cache lives under ``$MEDLEARN_CACHE/ehr/<fingerprint[:16]>/`` (``events.parquet``,
``admissions.parquet``, ``codes.parquet``, ``source.json``), keyed by the content hash of the input
files plus the reader's version and options, never by path: a changed file never serves a stale
cache, and a moved copy of the same data reuses it. ``source.json`` is written last and marks a
complete cache. See :mod:`medlearn.ehr.io.schema` for the table contracts and time conventions.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any

import polars as pl

from medlearn.ehr.io._tables import admission_notes, collect_all_checked
from medlearn.ehr.io.schema import ADMISSION_SCHEMA, CODES_SCHEMA, EVENT_SCHEMA, EHRSource, validate_schema
from medlearn.errors import InputError
from medlearn.paths import cache_dir

log = logging.getLogger(__name__)

#: kind → (module, reader function) — looked up at call time so the modules load only when used.
READERS: dict[str, tuple[str, str]] = {
    "mimic4": ("medlearn.ehr.io.mimic4", "read_mimic4"),
    "mimic3": ("medlearn.ehr.io.mimic3", "read_mimic3"),
    "eicu": ("medlearn.ehr.io.eicu", "read_eicu"),
    "meds": ("medlearn.ehr.io.meds", "read_meds"),
    "fhir": ("medlearn.ehr.io.fhir", "read_fhir"),
}
LAYOUTS = (
    "mimic4: a folder with hosp/ (admissions.csv.gz, patients.csv.gz, ...); "
    "mimic3: a folder with ADMISSIONS.csv.gz; eicu: a folder with patient.csv[.gz]; "
    "meds: a folder with metadata/dataset.json and data/*.parquet; "
    "fhir: a folder of FHIR R4 Bundle *.json files, or one such file"
)


def detect_kind(root: Path) -> str:
    """The layout of ``root``: "mimic4", "mimic3", "eicu", "meds" or "fhir" (InputError when none matches)."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: folder does not exist")
    if not root.is_dir():
        if root.suffix.lower() == ".json":
            return "fhir"  # one FHIR bundle
        raise InputError(f"{root}: is a file; an EHR source is a folder ({LAYOUTS})")
    names = {p.name.lower() for p in root.iterdir()}
    if (root / "hosp").is_dir():
        return "mimic4"
    if names & {"admissions.csv.gz", "admissions.csv"}:
        return "mimic3"
    if names & {"patient.csv", "patient.csv.gz"}:
        return "eicu"
    if (root / "metadata" / "dataset.json").is_file():
        return "meds"
    if any(name.endswith(".json") for name in names):
        return "fhir"
    raise InputError(f"{root}: not a recognised EHR folder; expected one of these layouts: {LAYOUTS}")


def _module(kind: str) -> Any:
    if kind not in READERS:
        raise InputError(f"unknown EHR source kind {kind!r}; known kinds: {', '.join(READERS)}")
    return importlib.import_module(READERS[kind][0])


def read_source(root: Path | str, kind: str | None = None, cache: bool = True, **options: Any) -> EHRSource:
    """Read an EHR folder into an :class:`EHRSource`.

    ``kind`` forces a layout (else :func:`detect_kind`); ``options`` go to the reader (e.g. MIMIC-IV's
    ``lab_time="charttime"`` ablation). With ``cache`` (default) the first call writes the canonical tables to
    parquet and later calls on the same content read only the parquet (the CSVs are hashed, not parsed).
    """
    root = Path(root).expanduser()
    kind = kind or detect_kind(root)
    module = _module(kind)
    if not root.is_dir() and not (kind == "fhir" and root.is_file()):
        raise InputError(f"{root}: folder does not exist")
    if cache:
        cached = _load_cache(_cache_dir(module.fingerprint(root, **options)), root)
        if cached is not None:
            return _logged(cached)
    reader = getattr(module, READERS[kind][1])
    if cache and "defer_checks" in inspect.signature(reader).parameters:
        options["defer_checks"] = True  # its quality counts are collected in the cache-writing pass
    source = reader(root, **options)
    return _logged(cached_source(source) if cache else source)


def _logged(source: EHRSource) -> EHRSource:
    """``source``, after one INFO line per reason an admission was dropped or kept out of training (with
    its count) in the run log: the same lines the report's data-quality section lists first. They go to
    the ``medlearn.ehr.io`` logger, and to the run's status lines on stderr (unless ``--quiet``) when that
    logger does not show INFO (the CLI logs warnings only)."""
    from medlearn.engine.progress import info

    for note in admission_notes(source.notes):
        log.info("%s: %s", source.root, note)
        if not log.isEnabledFor(logging.INFO):
            info(f"{source.root}: {note}")
    return source


def _cache_dir(fingerprint: str) -> Path:
    return cache_dir("ehr", fingerprint[:16])


def _load_cache(folder: Path, root: Path) -> EHRSource | None:
    marker = folder / "source.json"
    if not marker.is_file():
        return None
    try:
        cached = json.loads(marker.read_text())
    except ValueError:
        return None  # a torn write: rebuild
    codes = folder / "codes.parquet"
    return EHRSource(
        name=cached["name"],
        root=root,
        events=pl.scan_parquet(folder / "events.parquet"),
        admissions=pl.scan_parquet(folder / "admissions.parquet"),
        fingerprint=cached["fingerprint"],
        notes=list(cached["notes"]),
        codes=pl.scan_parquet(codes) if codes.is_file() else None,
        kind=cached["kind"],
        admission_order_known=bool(cached.get("admission_order_known", True)),
    )


def cached_source(source: EHRSource) -> EHRSource:
    """``source`` backed by its parquet cache, written on first use (atomically, file by file)."""
    folder = _cache_dir(source.fingerprint)
    cached = _load_cache(folder, source.root)
    if cached is not None:
        return cached
    validate_schema(source.events, EVENT_SCHEMA, f"{source.root} (events)")
    validate_schema(source.admissions, ADMISSION_SCHEMA, f"{source.root} (admissions)")
    # sorted by subject then time (stable): timelines and per-subject windows read contiguous rows
    tables = {
        "events": source.events.sort("subject_id", "time", nulls_last=False, maintain_order=True),
        "admissions": source.admissions.sort("subject_id", "admit_time", "admission_id"),
    }
    if source.codes is not None:
        tables["codes"] = source.codes.unique(["code_system", "code"], keep="first", maintain_order=True)
        validate_schema(tables["codes"], CODES_SCHEMA, f"{source.root} (codes)")
    # One collect for the tables and the pending quality counts: the CSVs they share are parsed once.
    checks = source.pending_checks
    check_queries = checks.queries() if checks is not None else []
    wheres = (checks.wheres() if checks is not None else []) + [f"{source.root} ({name})" for name in tables]
    frames = collect_all_checked(check_queries + list(tables.values()), wheres)
    notes = source.notes + (checks.notes_from(frames[: len(check_queries)]) if checks is not None else [])
    for name, frame in zip(tables, frames[len(check_queries) :]):
        tmp = folder / f"{name}.parquet.tmp-{os.getpid()}"
        frame.write_parquet(tmp, compression="lz4")
        os.replace(tmp, folder / f"{name}.parquet")
    meta = {
        "name": source.name,
        "kind": source.kind,
        "fingerprint": source.fingerprint,
        "notes": notes,
        "admission_order_known": source.admission_order_known,
    }
    tmp = folder / f"source.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, folder / "source.json")
    loaded = _load_cache(folder, source.root)
    assert loaded is not None
    return loaded


def cached_events(source: EHRSource) -> pl.LazyFrame:
    """The event table of ``source`` from its parquet cache (written on first use)."""
    return cached_source(source).events


def write_meds(source: EHRSource, out: Path | str, force: bool = False) -> Path:
    """Write ``source`` as a MEDS dataset (see :mod:`medlearn.ehr.io.meds`)."""
    from medlearn.ehr.io.meds import write_meds as _write

    return _write(source, Path(out), force=force)


__all__ = [
    "ADMISSION_SCHEMA",
    "EVENT_SCHEMA",
    "EHRSource",
    "READERS",
    "cached_events",
    "cached_source",
    "detect_kind",
    "read_source",
    "validate_schema",
    "write_meds",
]
