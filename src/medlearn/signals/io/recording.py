"""The in-memory form of every biosignal file: :class:`Recording` (+ its :class:`Annotations`).

Conventions, shared by all readers:

- ``signal`` is float32, shape ``(n_samples, n_channels)``, in **physical units** (``units[i]``, e.g. mV,
  uV; ``"adu"`` for raw ADC integers whose scale the file does not give). Time is axis 0 here; the
  :mod:`medlearn.signals.preprocess` functions take ``axis=0`` for it (their default is the last axis).
- ``annotations.sample`` indexes rows of ``signal`` (sample 0 = first row), whatever the file format
  stores (EDF+ onsets in seconds are converted with ``fs_hz``).
- Missing samples (NaN in the file, e.g. WFDB's invalid-sample value) are **linearly interpolated**
  (edges: nearest valid value; an all-NaN channel becomes zeros), flagged in ``missing_mask`` and
  described in ``quality`` with a :class:`SignalQualityWarning`: downstream filters would otherwise
  spread one NaN over a whole record, and dropping samples would break the time axis.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.errors import InputError
from medlearn.signals.preprocess.nan import interpolate_nans

#: Highest sampling rate accepted from a header: above it the value is a typo or a corrupt field.
MAX_FS_HZ = 100_000.0


class SignalQualityWarning(UserWarning):
    """A recording was read, but part of it was repaired or dropped (see ``Recording.quality``)."""


def check_fs(fs_hz: Any, where: str | Path) -> float:
    """``fs_hz`` as a float, or an InputError naming ``where`` when it is not in (0, MAX_FS_HZ] Hz."""
    try:
        value = float(fs_hz)
    except (TypeError, ValueError):
        raise InputError(f"{where}: sampling rate {fs_hz!r} is not a number") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_FS_HZ:
        raise InputError(
            f"{where}: sampling rate {fs_hz!r} Hz is not plausible "
            f"(it must be > 0 and <= {MAX_FS_HZ:g} Hz); fix the header"
        )
    return value


@dataclass
class Annotations:
    """Time-stamped labels of a recording: beat symbols (WFDB ``N``, ``V``, ...), events (EDF+ ``T0``).

    ``sample`` (int64) indexes the recording's rows; ``symbol`` and ``aux_note`` are string arrays of the
    same length (``aux_note`` is ``""`` where the file has none, e.g. WFDB rhythm notes such as ``"(AFIB"``
    live there); ``duration_s`` is given for EDF+ events and ``None`` for point annotations.
    """

    sample: np.ndarray
    symbol: np.ndarray
    aux_note: np.ndarray
    duration_s: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        self.sample = np.asarray(self.sample, dtype=np.int64).reshape(-1)
        self.symbol = np.asarray(self.symbol, dtype=str).reshape(-1)
        self.aux_note = np.asarray(self.aux_note, dtype=str).reshape(-1)
        n = len(self.sample)
        if self.duration_s is not None:
            self.duration_s = np.asarray(self.duration_s, dtype=np.float64).reshape(-1)
        lengths = {len(self.symbol), len(self.aux_note), n}
        if self.duration_s is not None:
            lengths.add(len(self.duration_s))
        if lengths != {n}:
            raise ValueError(f"annotation fields differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.sample)

    def select(self, mask: np.ndarray) -> Annotations:
        """The annotations where ``mask`` (bool or index array) holds."""
        return replace(
            self,
            sample=self.sample[mask],
            symbol=self.symbol[mask],
            aux_note=self.aux_note[mask],
            duration_s=None if self.duration_s is None else self.duration_s[mask],
        )

    def window(self, start: int, stop: int) -> Annotations:
        """Annotations in samples ``[start, stop)``, re-indexed so that ``start`` becomes sample 0."""
        kept = self.select((self.sample >= start) & (self.sample < stop))
        kept.sample = kept.sample - start
        return kept


@dataclass
class Recording:
    """One multichannel biosignal in physical units (see the module docstring for the conventions).

    ``gains`` are ADC units per physical unit (WFDB ``adc_gain``; EDF digital/physical range ratio), kept so
    that a writer or a quantisation-aware model can recover the stored integers. ``start_time`` is the
    wall-clock time of sample 0 when the header gives one; ``start_offset_s`` is sample 0's offset from
    the file's first sample (non-zero after :meth:`slice`). ``quality`` lists what a reader repaired or
    dropped; ``metadata`` holds header comments and format details.
    """

    signal: np.ndarray
    fs_hz: float
    channel_names: list[str]
    units: list[str]
    source: Path
    annotations: Annotations | None = None
    start_time: datetime | None = None
    start_offset_s: float = 0.0
    gains: list[float] | None = None
    missing_mask: np.ndarray | None = None
    quality: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source = Path(self.source)
        self.fs_hz = check_fs(self.fs_hz, self.source)
        signal = np.asarray(self.signal, dtype=np.float32)
        if signal.ndim == 1:
            signal = signal[:, None]
        if signal.ndim != 2:
            raise InputError(
                f"{self.source}: signal has shape {signal.shape}; expected (n_samples, n_channels)"
            )
        self.signal = signal
        self.channel_names = [str(name) for name in self.channel_names]
        self.units = [str(unit) for unit in self.units]
        if len(self.channel_names) != signal.shape[1] or len(self.units) != signal.shape[1]:
            raise InputError(
                f"{self.source}: {signal.shape[1]} channel(s) in the data but "
                f"{len(self.channel_names)} name(s) and {len(self.units)} unit(s) in the header"
            )

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs_hz

    def channel(self, key: str | int) -> np.ndarray:
        """One channel as a 1-D view, by name (e.g. ``"MLII"``) or index."""
        return self.signal[:, self.channel_index(key)]

    def channel_index(self, key: str | int) -> int:
        """Index of a channel given by name or index (InputError listing the names when unknown)."""
        return channel_indices(self.channel_names, [key], self.source)[0]

    def slice(self, start_s: float = 0.0, stop_s: float | None = None) -> Recording:
        """The part from ``start_s`` to ``stop_s`` seconds (annotations re-indexed, offset updated)."""
        start = max(0, round(start_s * self.fs_hz))
        stop = self.n_samples if stop_s is None else min(self.n_samples, round(stop_s * self.fs_hz))
        stop = max(stop, start)
        return replace(
            self,
            signal=self.signal[start:stop],
            annotations=None if self.annotations is None else self.annotations.window(start, stop),
            start_offset_s=self.start_offset_s + start / self.fs_hz,
            missing_mask=None if self.missing_mask is None else self.missing_mask[start:stop],
            quality=list(self.quality),
            metadata=dict(self.metadata),
        )


def channel_indices(names: list[str], keys: Sequence[str | int], source: str | Path) -> list[int]:
    """Indices of channels given by name or index; InputError naming ``source`` and listing the names."""
    indices = []
    for key in keys:
        if isinstance(key, (int, np.integer)):
            if not -len(names) <= key < len(names):
                raise InputError(f"{source}: channel index {key} out of range ({len(names)} channels)")
            indices.append(int(key) % len(names))
        elif key in names:
            indices.append(names.index(key))
        else:
            raise InputError(f"{source}: no channel {key!r}; channels: {', '.join(names)}")
    return indices


def repair_missing(recording: Recording) -> Recording:
    """Interpolate NaN samples in place (see the module docstring); note and warn when any were found."""
    filled, mask = interpolate_nans(recording.signal, axis=0)
    if mask is None:
        return recording
    recording.signal = filled.astype(np.float32, copy=False)
    recording.missing_mask = mask
    counts = mask.sum(axis=0)
    parts = [f"{name}: {int(n)}" for name, n in zip(recording.channel_names, counts) if n]
    note = (
        f"{int(counts.sum())} missing (NaN) sample(s) linearly interpolated "
        f"({', '.join(parts)}); see missing_mask"
    )
    recording.quality.append(note)
    warnings.warn(f"{recording.source}: {note}", SignalQualityWarning, stacklevel=3)
    return recording


def drop_out_of_range(annotations: Annotations, n_samples: int, recording_note: list[str]) -> Annotations:
    """Annotations inside ``[0, n_samples)``; the count of dropped ones is appended to ``recording_note``."""
    inside = (annotations.sample >= 0) & (annotations.sample < n_samples)
    if not inside.all():
        recording_note.append(
            f"{int((~inside).sum())} annotation(s) outside the signal ({annotations.source}) dropped"
        )
        return annotations.select(inside)
    return annotations
