"""WFDB records (``.hea`` + ``.dat`` or ``.mat``; MIT-BIH, PhysioNet/CinC 2017, ...) → :class:`Recording`.

``wfdb`` reads the samples, but it is lenient with headers and terse with broken data (a negative
sampling rate parses as the default 250 Hz; a truncated ``.dat`` fails with a numpy broadcasting error).
So before reading, this module checks what ``wfdb`` does not:

- the record line's sampling rate (> 0 and plausible) and signal count (= the signal lines that follow);
- every data file the header names exists, and holds as many samples as the header declares — a short
  file is an InputError saying how many samples it holds (``allow_truncated=True`` reads those instead,
  with a ``quality`` note); a size that fits a different number of signals is reported as a lead-count
  mismatch; a ``.mat`` array whose row count differs from the header's signals is one too.

Multi-segment records (``name/n_segments`` record lines) are not supported yet.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.errors import InputError
from medlearn.signals.io._deps import require
from medlearn.signals.io.recording import (
    Annotations,
    Recording,
    channel_indices,
    check_fs,
    drop_out_of_range,
    repair_missing,
)

WFDB_SUFFIXES = (".hea", ".dat", ".mat")
DEFAULT_ANNOTATION_EXTENSION = "atr"
_WFDB_DEFAULT_FS_HZ = 250.0  # the WFDB specification's default when the record line omits it
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def record_base(path: str | Path) -> Path:
    """The record's path without extension (``.../101`` for ``101``, ``101.hea``, ``101.dat``)."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() in WFDB_SUFFIXES else path


def _sibling(base: Path, extension: str) -> Path:
    return base.parent / f"{base.name}.{extension}"


def _check_record_line(header: Path) -> tuple[int, float]:
    """Signal count and sampling rate from the header's record line, checked against its signal lines."""
    try:
        text = header.read_text(encoding="latin-1")
    except OSError as exc:
        raise InputError(f"{header}: cannot read the WFDB header ({exc.strerror})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{header}: empty WFDB header (no record line)")
    tokens = lines[0].split()
    if any(ord(c) < 32 and c not in "\t\n\r\f\v" for c in text):  # NUL, C0 controls: binary data
        raise InputError(f"{header}: not a text WFDB header (it holds control characters or binary data)")
    if "/" in tokens[0]:
        raise InputError(
            f"{header}: multi-segment WFDB records are not supported; read each segment's header"
        )
    if len(tokens) < 2 or not tokens[1].isdigit():
        raise InputError(f"{header}: record line {lines[0]!r} does not give the number of signals")
    n_signals = int(tokens[1])
    if n_signals == 0:
        raise InputError(f"{header}: the record line declares no signals (0); nothing to read")
    fs_hz = _WFDB_DEFAULT_FS_HZ
    if len(tokens) > 2:
        match = _NUMBER.match(tokens[2].split("/")[0])
        if match is None or match.end() != len(tokens[2].split("/")[0].split("(")[0]):
            raise InputError(f"{header}: sampling rate {tokens[2]!r} on the record line is not a number")
        fs_hz = check_fs(match.group(0), header)
    if len(lines) - 1 != n_signals:
        raise InputError(
            f"{header}: the record line declares {n_signals} signal(s) but "
            f"{len(lines) - 1} signal line(s) follow; fix the header"
        )
    return n_signals, fs_hz


def _check_data_files(header_info: Any, base: Path, header: Path) -> None:
    """InputError for a missing data file or a lead-count mismatch; :class:`_Truncated` (carrying the
    samples per signal present) for a data file shorter than the header declares."""
    signal_module = require("wfdb.io._signal", "to read WFDB records")
    sig_len = header_info.sig_len
    for file_name in dict.fromkeys(header_info.file_name):
        data = base.parent / file_name
        if not data.is_file():
            raise InputError(
                f"{data}: missing; {header.name} names it as a data file (copy it beside the header)"
            )
        members = [i for i, name in enumerate(header_info.file_name) if name == file_name]
        bytes_per_sample = signal_module.BYTES_PER_SAMPLE.get(str(header_info.fmt[members[0]]), 0)
        if not sig_len or not bytes_per_sample:
            continue  # length not declared, or a compressed (FLAC) format: nothing to compare
        offset = (header_info.byte_offset[members[0]] or 0) if header_info.byte_offset else 0
        per_frame = sum((header_info.samps_per_frame[i] or 1) for i in members) * bytes_per_sample
        payload = data.stat().st_size - offset
        frames = int(payload // per_frame) if per_frame else 0
        if per_frame == len(members) * bytes_per_sample:  # one sample per signal per frame
            _check_lead_count(data, header, payload, sig_len, len(members), bytes_per_sample)
        if data.suffix.lower() == ".mat":
            _check_mat_rows(data, header, len(members))
        if frames < sig_len:
            raise _Truncated(
                f"{data}: truncated — holds {frames} of the {sig_len} samples per signal that "
                f"{header.name} declares ({int(payload)} data bytes, expected "
                f"{math.ceil(sig_len * per_frame)})",
                frames,
            )


def _check_lead_count(
    data: Path, header: Path, payload: float, sig_len: int, n_members: int, bytes_per_sample: float
) -> None:
    """InputError when the data size fits another whole number of signals than the header declares."""
    per_signal = sig_len * bytes_per_sample
    fits = payload / per_signal
    rounded = round(fits)
    if rounded >= 1 and rounded != n_members and abs(fits - rounded) * per_signal < max(bytes_per_sample, 2):
        raise InputError(
            f"{data}: holds {rounded} signal(s) of {sig_len} samples but {header.name} declares "
            f"{n_members} in this file; the header's lead count does not match the data"
        )


def _check_mat_rows(data: Path, header: Path, n_members: int) -> None:
    scipy_io = require("scipy.io", "to read .mat records")
    try:
        arrays = [shape for _, shape, _ in scipy_io.whosmat(str(data))]
    except Exception:  # not a MATLAB container: the byte-size check above is all we can do
        return
    if len(arrays) == 1 and len(arrays[0]) == 2 and arrays[0][0] != n_members:
        raise InputError(
            f"{data}: the array has {arrays[0][0]} row(s) (signals) but {header.name} declares "
            f"{n_members}; the header's lead count does not match the data"
        )


class _Truncated(InputError):
    def __init__(self, message: str, frames: int) -> None:
        super().__init__(message)
        self.frames = frames


def _start_time(record: Any) -> datetime | None:
    if record.base_date is not None and record.base_time is not None:
        return datetime.combine(record.base_date, record.base_time)
    return None


def read_wfdb(
    path: str | Path,
    *,
    annotation_extension: str | None = DEFAULT_ANNOTATION_EXTENSION,
    channels: Sequence[str | int] | None = None,
    allow_truncated: bool = False,
) -> Recording:
    """Read a WFDB record given as its name (``.../101``) or any of its ``.hea``/``.dat``/``.mat`` files.

    Args:
        path: record name or file; a CinC 2017 ``A00001.mat`` (with ``A00001.hea`` beside it) reads too.
        annotation_extension: annotation file to attach (``"atr"`` → ``101.atr``). With the default a
            missing file means no annotations; any other named extension must exist. ``None`` skips them.
        channels: names or indices to keep (all by default), in the order given.
        allow_truncated: read the samples a short data file does hold instead of raising (noted in
            ``quality``): useful to salvage a partial download, never silent.
    """
    wfdb = require("wfdb", "to read WFDB records")
    base = record_base(path)
    header = _sibling(base, "hea")
    if not header.is_file():
        hint = (
            " (a plain MATLAB array: use read_mat_segment(path, fs_hz))"
            if Path(path).suffix.lower() == ".mat" and Path(path).is_file()
            else ""
        )
        raise InputError(f"{header}: WFDB header missing{hint}")
    _, fs_hz = _check_record_line(header)
    try:
        info = wfdb.rdheader(str(base))
    except Exception as exc:
        raise InputError(f"{header}: malformed WFDB header ({exc})") from None
    notes: list[str] = []
    sampto = None  # all declared samples
    try:
        _check_data_files(info, base, header)
    except _Truncated as exc:
        if not allow_truncated:
            raise InputError(f"{exc} (pass allow_truncated=True to read the samples present)") from None
        sampto = exc.frames
        notes.append(f"data truncated: read {sampto} of {info.sig_len} declared samples")
    indices = None
    if channels is not None:
        names = list(info.sig_name or [])
        indices = channel_indices(names, list(channels), header)
    try:
        record = wfdb.rdrecord(str(base), sampto=sampto, channels=indices, return_res=32)
    except Exception as exc:
        raise InputError(f"{header}: WFDB record could not be read ({type(exc).__name__}: {exc})") from None
    recording = Recording(
        signal=record.p_signal,
        fs_hz=fs_hz,
        channel_names=list(record.sig_name),
        units=list(record.units),
        source=base,
        start_time=_start_time(record),
        gains=[float(g) for g in record.adc_gain],
        quality=notes,
        metadata={"comments": list(record.comments or []), "format": list(record.fmt or [])},
    )
    if annotation_extension:
        recording.annotations = _read_annotations(wfdb, base, annotation_extension, recording)
    return repair_missing(recording)


def _read_annotations(wfdb: Any, base: Path, extension: str, recording: Recording) -> Annotations | None:
    file = _sibling(base, extension)
    if not file.is_file():
        if extension == DEFAULT_ANNOTATION_EXTENSION:
            return None
        raise InputError(f"{file}: annotation file missing")
    try:
        ann = wfdb.rdann(str(base), extension)
    except Exception as exc:
        raise InputError(
            f"{file}: WFDB annotations could not be read ({type(exc).__name__}: {exc})"
        ) from None
    if ann.fs and abs(float(ann.fs) - recording.fs_hz) > 1e-6:
        recording.quality.append(
            f"{file.name}: annotation rate {ann.fs} Hz differs from the record's "
            f"{recording.fs_hz} Hz; sample indices used as stored"
        )
    aux = [(note or "").rstrip("\x00") for note in (ann.aux_note or [""] * len(ann.sample))]
    annotations = Annotations(
        sample=np.asarray(ann.sample),
        symbol=np.asarray(ann.symbol, dtype=str),
        aux_note=np.asarray(aux, dtype=str),
        source=file.name,
    )
    return drop_out_of_range(annotations, recording.n_samples, recording.quality)
