"""Build modified copies of the real demo folders in tmp_path (the shared data is never written)."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import polars as pl

#: The MIMIC-IV tables read_mimic4 requires.
MIMIC4_CORE = [
    f"hosp/{t}.csv.gz"
    for t in ("patients", "admissions", "diagnoses_icd", "procedures_icd", "prescriptions", "labevents")
]


def read_raw(path: Path) -> pl.DataFrame:
    """A source CSV exactly as written: every column a string."""
    return pl.read_csv(path, infer_schema=False)


def write_gz_csv(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=1) as fh:
        frame.write_csv(fh)


def copy_tables(
    src: Path,
    dst: Path,
    tables: Iterable[str],
    edit: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] | None = None,
) -> Path:
    """Copy ``tables`` (paths relative to ``src``) to ``dst``, passing the edited ones through polars."""
    edit = edit or {}
    for rel in tables:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel in edit:
            write_gz_csv(edit[rel](read_raw(src / rel)), target)
        else:
            shutil.copyfile(src / rel, target)
    return dst
