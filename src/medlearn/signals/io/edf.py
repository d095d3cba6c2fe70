"""EDF / EDF+ (/ BDF) files → :class:`Recording`, via pyEDFlib.

Mixed sampling rates: EDF lets every channel have its own rate (PSG: EEG at 100 Hz, respiration at
1 Hz). A :class:`Recording` has one rate, so only the channels at the **most common rate** are kept
(ties: the higher rate); the others are listed in a :class:`SignalQualityWarning` and in ``quality``.
Read them with ``channels=[...]`` naming only those, or resample them yourself — silently resampling a
1 Hz SpO2 to 256 Hz would invent signal.

Annotations: EDF+ embedded annotations (onset, duration, text) when the file has any. PhysioNet's
eegmmidb also ships ``<file>.edf.event`` WFDB annotations (aux text ``"T0 duration: 4.2"``); they are
read when the EDF has no annotations, or always with ``annotation_source="event"``. Prefer the EDF+
ones: ``wfdb.rdann`` drops the event at sample 0 of those files (29 of 30 events of S001R03), so the
two sources disagreeing is noted in ``quality``.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medlearn.errors import InputError
from medlearn.signals.io._deps import require
from medlearn.signals.io.recording import (
    Annotations,
    Recording,
    SignalQualityWarning,
    channel_indices,
    drop_out_of_range,
    repair_missing,
)

AnnotationSource = Literal["auto", "edf", "event"]
_EVENT_NOTE = re.compile(r"^\s*(\S+)(?:\s+duration:\s*([-+0-9.eE]+))?")
_STDOUT_LOCK = threading.RLock()
log = logging.getLogger(__name__)


class _LibraryStdoutCaptured(contextlib.ContextDecorator):
    """Capture what pyEDFlib prints to the process stdout (its C library ``printf``s, e.g. ``filesize
    1298448 != 20640*125+16896`` on a truncated file, and its Python ``print``s) and log it at DEBUG:
    stdout carries ``--json`` results and the monitor's alarm lines, which such chatter would corrupt.
    File descriptor 1 is pointed at a temporary file for the duration, and C's buffers are flushed
    before it is restored, so nothing printed inside reaches the real stdout later."""

    def _recreate_cm(self) -> _LibraryStdoutCaptured:  # a fresh state per decorated call
        return type(self)()

    def __enter__(self) -> _LibraryStdoutCaptured:
        _STDOUT_LOCK.acquire()
        self._buffer = io.StringIO()
        self._python = contextlib.redirect_stdout(self._buffer)
        self._capture: Any = None
        self._saved: int | None = None
        try:
            sys.stdout.flush()
            self._capture = tempfile.TemporaryFile()
            self._saved = os.dup(1)
            os.dup2(self._capture.fileno(), 1)
        except (
            OSError,
            ValueError,
            AttributeError,
        ):  # no usable fd 1 (embedded, pythonw): Python prints only
            self._restore()
        self._python.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._python.__exit__(*exc)
            text = self._buffer.getvalue() + self._restore()
            if text.strip():
                log.debug("pyedflib printed: %s", text.strip())
        finally:
            _STDOUT_LOCK.release()

    def _restore(self) -> str:
        """Point fd 1 back at the real stdout; return what the library printed to it meanwhile."""
        text = ""
        if self._saved is not None:
            _flush_c_stdout()
            os.dup2(self._saved, 1)
            os.close(self._saved)
            self._saved = None
        if self._capture is not None:
            self._capture.seek(0)
            text = self._capture.read().decode("utf-8", "replace")
            self._capture.close()
            self._capture = None
        return text


def _flush_c_stdout() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C runtime to flush (Windows): nothing buffered there
        pass


@_LibraryStdoutCaptured()
def read_edf(
    path: str | Path,
    *,
    channels: Sequence[str | int] | None = None,
    annotation_source: AnnotationSource = "auto",
) -> Recording:
    """Read an EDF/EDF+/BDF file into a :class:`Recording` in physical units (e.g. uV).

    Args:
        path: the ``.edf`` (or ``.bdf``) file.
        channels: labels (as in the file, stripped) or indices to keep; by default every signal channel.
        annotation_source: ``"auto"`` (EDF+ annotations, else a ``.event`` file beside the EDF), ``"edf"``
            or ``"event"`` (InputError when that source is absent).
    """
    pyedflib = require("pyedflib", "to read EDF files")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        reader = pyedflib.EdfReader(str(path))
    except Exception as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise InputError(f"{path}: not a readable EDF/EDF+ file ({reason})") from None
    try:
        labels = [label.strip() for label in reader.getSignalLabels()]
        rates = [float(rate) for rate in reader.getSampleFrequencies()]
        selected = (
            channel_indices(labels, list(channels), path)
            if channels is not None
            else list(range(len(labels)))
        )
        if not selected:
            raise InputError(f"{path}: no signal channels")
        keep, notes = _one_rate(selected, labels, rates, path)
        fs_hz = rates[keep[0]]
        try:
            signal = np.stack([reader.readSignal(i) for i in keep], axis=1)
        except Exception as exc:
            raise InputError(f"{path}: samples could not be read ({exc})") from None
        headers = [reader.getSignalHeader(i) for i in keep]
        recording = Recording(
            signal=signal,
            fs_hz=fs_hz,
            channel_names=[labels[i] for i in keep],
            units=[h["dimension"].strip() for h in headers],
            source=path,
            start_time=reader.getStartdatetime(),
            gains=[_gain(h) for h in headers],
            quality=notes,
            metadata={key: [h[key] for h in headers] for key in ("prefilter", "transducer")},
        )
        edf_annotations = _edf_annotations(reader, fs_hz, path)
    finally:
        reader.close()
    recording.annotations = _choose_annotations(edf_annotations, path, recording, annotation_source)
    return repair_missing(recording)


def _one_rate(
    selected: list[int], labels: list[str], rates: list[float], path: Path
) -> tuple[list[int], list[str]]:
    """The selected channels at the most common rate (ties: the higher), and a note on the others."""
    counts = Counter(rates[i] for i in selected)
    fs_hz = max(counts, key=lambda rate: (counts[rate], rate))
    keep = [i for i in selected if rates[i] == fs_hz]
    dropped = [f"{labels[i]} ({rates[i]:g} Hz)" for i in selected if rates[i] != fs_hz]
    if not dropped:
        return keep, []
    note = (
        f"kept the {len(keep)} channel(s) at {fs_hz:g} Hz; dropped {len(dropped)} at other rates: "
        f"{', '.join(dropped)} (read them with channels=[...])"
    )
    warnings.warn(f"{path}: {note}", SignalQualityWarning, stacklevel=3)
    return keep, [note]


def _gain(header: dict) -> float:
    """ADC units per physical unit, as WFDB's ``adc_gain`` (1.0 when the ranges are degenerate)."""
    physical = float(header["physical_max"]) - float(header["physical_min"])
    digital = float(header["digital_max"]) - float(header["digital_min"])
    return digital / physical if physical else 1.0


def _edf_annotations(reader: Any, fs_hz: float, path: Path) -> Annotations | None:
    onset_s, duration_s, text = reader.readAnnotations()
    if len(onset_s) == 0:
        return None
    return Annotations(
        sample=np.round(np.asarray(onset_s, dtype=np.float64) * fs_hz),
        symbol=np.asarray([str(t).strip() for t in text], dtype=str),
        aux_note=np.full(len(onset_s), "", dtype=str),
        duration_s=np.asarray(duration_s, dtype=np.float64),
        source=f"{path.name} (EDF+)",
    )


def _event_annotations(path: Path, fs_hz: float) -> Annotations | None:
    """``<path>.event`` (PhysioNet WFDB annotations of an EDF); symbol and duration parsed from aux text."""
    event = path.parent / f"{path.name}.event"
    if not event.is_file():
        return None
    wfdb = require("wfdb", "to read .event annotation files")
    try:
        ann = wfdb.rdann(str(path), "event")
    except Exception as exc:
        raise InputError(
            f"{event}: WFDB annotations could not be read ({type(exc).__name__}: {exc})"
        ) from None
    notes = [(note or "").rstrip("\x00") for note in (ann.aux_note or [""] * len(ann.sample))]
    parsed = [_EVENT_NOTE.match(note) for note in notes]
    symbols = [m.group(1) if m else sym for m, sym in zip(parsed, ann.symbol)]
    durations = [float(m.group(2)) if m and m.group(2) else np.nan for m in parsed]
    samples = np.asarray(ann.sample, dtype=np.float64)
    if ann.fs and abs(float(ann.fs) - fs_hz) > 1e-6:
        samples = np.round(samples * fs_hz / float(ann.fs))
    return Annotations(
        sample=samples, symbol=symbols, aux_note=notes, duration_s=durations, source=event.name
    )


def _choose_annotations(
    edf: Annotations | None, path: Path, recording: Recording, source: AnnotationSource
) -> Annotations | None:
    if source not in ("auto", "edf", "event"):
        raise InputError(f"{path}: annotation_source must be 'auto', 'edf' or 'event', not {source!r}")
    event = _event_annotations(path, recording.fs_hz) if source in ("auto", "event") else None
    if source == "edf" and edf is None:
        raise InputError(f"{path}: the file has no EDF+ annotations")
    if source == "event" and event is None:
        raise InputError(f"{path.parent / (path.name + '.event')}: annotation file missing")
    chosen = event if source == "event" or edf is None else edf
    if (
        edf is not None
        and event is not None
        and (len(edf) != len(event) or not np.isin(event.sample, edf.sample).all())
    ):
        recording.quality.append(
            f"EDF+ annotations ({len(edf)}) and {event.source} ({len(event)}) disagree; using {chosen.source}"
        )
    return None if chosen is None else drop_out_of_range(chosen, recording.n_samples, recording.quality)
