"""One entry point for any biosignal file: :func:`read_recording` picks the reader from the suffix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medlearn.errors import InputError
from medlearn.signals.io.recording import Recording

KNOWN = ".hea/.dat (WFDB), .mat (WFDB with a .hea beside it, else a MATLAB segment), .edf/.bdf, .txt"


def read_recording(path: str | Path, *, fs_hz: float | None = None, **options: Any) -> Recording:
    """Read ``path`` with the reader its suffix calls for; ``options`` go to that reader.

    A path without suffix is a WFDB record name when ``<path>.hea`` exists. ``fs_hz`` is required for
    header-less segments (``.txt``, a ``.mat`` without ``.hea``) and ignored otherwise.
    """
    from medlearn.signals.io import edf, segments, wfdb_reader

    path = Path(path)
    suffix = path.suffix.lower()
    base = wfdb_reader.record_base(path)
    has_header = (base.parent / f"{base.name}.hea").is_file()
    if suffix in (".hea", ".dat") or (suffix in ("", ".mat") and has_header):
        return wfdb_reader.read_wfdb(path, **options)
    if suffix in (".edf", ".bdf"):
        return edf.read_edf(path, **options)
    if suffix in (".txt", ".mat"):
        if fs_hz is None:
            raise InputError(
                f"{path}: a {suffix} segment has no header; pass its sampling rate "
                "(medlearn predict --fs HZ; fs_hz=... in Python)"
            )
        reader = segments.read_text_segment if suffix == ".txt" else segments.read_mat_segment
        return reader(path, fs_hz, **options)
    if not path.exists():
        raise InputError(f"{path}: file does not exist")
    raise InputError(f"{path}: unknown signal file type {suffix or '(no suffix)'!r}; known: {KNOWN}")
