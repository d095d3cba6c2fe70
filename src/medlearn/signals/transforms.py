"""Registered preprocessing steps for biosignal units (stored in bundles as a JSON spec).

A raw unit is a :class:`SignalUnit`: channels × samples plus the sampling rate it was recorded at,
because a user's file for ``predict`` may come at another rate than the training data. The chain
filters and resamples at the unit's own rate, then ``fix_length`` turns it into the fixed-shape array
the model takes (channels, samples). The robust z-score and the reseedable augmentation base are the
engine's (:mod:`medlearn.engine.transforms`); what is here is what only signals need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medlearn.engine.transforms import Augmentation, robust_scale, robust_zscore

__all__ = [
    "AddRRChannel",
    "BandpassFilter",
    "FixLength",
    "Resample",
    "SignalAugment",
    "SignalUnit",
    "Standardize",
    "as_unit",
    "robust_scale",
]


@dataclass
class SignalUnit:
    """``signal`` float32 (channels, samples) in physical units, sampled at ``fs_hz``."""

    signal: np.ndarray
    fs_hz: float

    @property
    def seconds(self) -> float:
        return self.signal.shape[-1] / self.fs_hz


def as_unit(raw: SignalUnit | np.ndarray, fs_hz: float | None = None) -> SignalUnit:
    if isinstance(raw, SignalUnit):
        return raw
    if fs_hz is None:
        raise TypeError("a bare array needs its sampling rate")
    return SignalUnit(np.atleast_2d(np.asarray(raw, np.float32)), fs_hz)


class BandpassFilter:
    """Zero-phase band-pass (and optional notch) at the unit's own rate; ``high_hz`` is capped below
    Nyquist so a low-rate recording still passes through."""

    def __init__(self, low_hz: float = 0.5, high_hz: float = 40.0, notch_hz: float | None = None):
        self.low_hz, self.high_hz, self.notch_hz = low_hz, high_hz, notch_hz

    def __call__(self, raw: SignalUnit) -> SignalUnit:
        from medlearn.signals.preprocess import bandpass, notch

        unit = as_unit(raw)
        high = min(self.high_hz, 0.45 * unit.fs_hz)
        x = bandpass(unit.signal.astype(np.float64), unit.fs_hz, self.low_hz, high, axis=-1)
        if self.notch_hz is not None and self.notch_hz < unit.fs_hz / 2:
            x = notch(x, unit.fs_hz, self.notch_hz, axis=-1)
        return SignalUnit(x.astype(np.float32), unit.fs_hz)


class Resample:
    """To ``fs_hz`` (polyphase, anti-aliased); a unit already at that rate passes unchanged."""

    def __init__(self, fs_hz: float):
        self.fs_hz = fs_hz

    def __call__(self, raw: SignalUnit) -> SignalUnit:
        from medlearn.signals.preprocess import resample

        unit = as_unit(raw)
        if abs(unit.fs_hz - self.fs_hz) < 1e-9:
            return unit
        return SignalUnit(
            resample(unit.signal, unit.fs_hz, self.fs_hz, axis=-1).astype(np.float32), self.fs_hz
        )


class Standardize:
    """Per-channel robust z-score (median, scaled IQR): amplitude differs between devices and leads,
    and one artefact spike must not shrink the whole record as it would with the standard deviation.

    With ``scale`` (fitted on the training set) every unit is divided by the same number instead, which
    keeps amplitude as a feature: an ictal EEG segment is several times larger than an interictal one.
    """

    def __init__(self, clip: float = 20.0, scale: float | None = None):
        self.clip, self.scale = clip, scale

    def __call__(self, raw: SignalUnit) -> SignalUnit:
        unit = as_unit(raw)
        z = robust_zscore(unit.signal.astype(np.float64), self.scale, self.clip)
        return SignalUnit(z.astype(np.float32), unit.fs_hz)


class AddRRChannel:
    """Append the RR-interval trace as a channel: at every sample, the interval (s) between the beats
    around it, centred on 0.8 s and scaled by 0.3 s. AF is first of all an irregular RR series; a CNN at
    100 Hz can find that itself only from many examples, so the detector's beats are handed to it."""

    def __call__(self, raw: SignalUnit) -> SignalUnit:
        from medlearn.signals.preprocess import detect_rpeaks

        unit = as_unit(raw)
        n = unit.signal.shape[-1]
        peaks = detect_rpeaks(unit.signal[0], unit.fs_hz)
        trace = np.zeros(n, np.float32)
        if len(peaks) >= 3:
            rr = np.diff(peaks) / unit.fs_hz
            trace = np.interp(np.arange(n), peaks[1:], rr).astype(np.float32)
            trace = np.clip((trace - 0.8) / 0.3, -5, 5)
        return SignalUnit(np.concatenate([unit.signal, trace[None]], axis=0), unit.fs_hz)


class FixLength:
    """Centre-crop or zero-pad (after the signal) to ``seconds``: the model's fixed input length.

    Padding goes after the signal so the record's start (where monitors and CinC records begin) stays
    at sample 0; the value 0 is the channel's median after :class:`Standardize`.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, raw: SignalUnit) -> np.ndarray:
        unit = as_unit(raw)
        n = int(round(self.seconds * unit.fs_hz))
        x = unit.signal
        if x.shape[-1] >= n:
            start = (x.shape[-1] - n) // 2
            return np.ascontiguousarray(x[..., start : start + n], dtype=np.float32)
        out = np.zeros(x.shape[:-1] + (n,), np.float32)
        out[..., : x.shape[-1]] = x
        return out


class SignalAugment(Augmentation):
    """Training-time augmentation of fixed-length signals: amplitude scaling, baseline offset, additive
    noise and a random circular time shift (rhythm labels do not depend on where the record starts)."""

    def __init__(self, seed: int, scale: float = 0.15, noise: float = 0.05, shift: bool = True):
        self.scale, self.noise, self.shift = scale, noise, shift
        super().__init__(seed)

    def augment(self, x: np.ndarray) -> np.ndarray:
        rng = self.rng
        out = x * (1 + rng.uniform(-self.scale, self.scale)) + rng.normal(0, self.noise, x.shape)
        if self.shift:
            out = np.roll(out, int(rng.integers(0, x.shape[-1])), axis=-1)
        return out
