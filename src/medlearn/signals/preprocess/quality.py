"""ECG signal-quality index (SQI) per window: is this stretch of ECG worth analysing?

The score combines, per window (default 10 s):

- **template matching** (Orphanidou et al. 2015): the mean Pearson correlation of each beat with the
  window's median beat. Clean ECG repeats itself (~0.95 on CinC 2017 normal records); noise, motion
  artefact and detections on noise do not (~0.5 on the CinC "~" noisy records). Kurtosis, the other
  classic SQI, does not separate these: artefact spikes are as heavy-tailed as QRS complexes.
- **plausible rate**: the window's beat count must mean 30–220 bpm, else no usable rhythm was found.
- **flatline**: the fraction of 0.5 s blocks whose peak-to-peak amplitude is below ``flat_threshold``
  (lead off, disconnected electrode).
- **saturation**: the fraction of samples pinned at the window's extremes (amplifier clipping).

``score = template_ok · rate_ok · (1 − flat_fraction) · saturation_ok`` lies in [0, 1], where
``template_ok`` maps a correlation of 0.5 (what detections on noise reach) → 0 and 0.9 → 1, and
``saturation_ok`` falls from 1 at 1 % pinned samples to 0 at 5 %. Flat lines and pure noise score 0,
clean ECG ~1. Each component is returned too, so a monitor can say *why*.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medlearn.signals.preprocess.beats import segment_beats
from medlearn.signals.preprocess.filters import bandpass
from medlearn.signals.preprocess.nan import interpolate_nans
from medlearn.signals.preprocess.rpeaks import detect_rpeaks

MIN_BPM, MAX_BPM = 30.0, 220.0
FLAT_BLOCK_S = 0.5
SATURATION_ALLOWED = 0.01  # fraction of samples at the extremes before the score drops
SATURATION_ZERO = 0.05  # ... and where it reaches 0
TEMPLATE_FLOOR, TEMPLATE_FULL = 0.5, 0.9  # beat-template correlation scored 0 → 1 between these


@dataclass
class QualityIndex:
    """Per-window signal quality: ``score[i]`` covers samples ``start[i]`` to ``start[i]+window_samples``."""

    score: np.ndarray
    start: np.ndarray
    window_samples: int
    components: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def overall(self) -> float:
        """Mean score over windows (0.0 when there are none)."""
        return float(self.score.mean()) if len(self.score) else 0.0


def window_starts(n_samples: int, window: int) -> np.ndarray:
    """Starts of back-to-back windows covering all samples; the last one is aligned to the end (it may
    overlap the previous one) so that no tail goes unscored."""
    if n_samples <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_samples - window + 1, window, dtype=np.int64)
    return starts if starts[-1] + window == n_samples else np.r_[starts, n_samples - window]


def signal_quality(
    ecg: np.ndarray,
    fs_hz: float,
    window_s: float = 10.0,
    rpeaks: np.ndarray | None = None,
    flat_threshold: float = 0.02,
) -> QualityIndex:
    """Signal-quality index per window of a single-lead ECG (see the module docstring).

    Args:
        ecg: 1-D signal; NaNs are interpolated (and the flatline test sees what they became).
        fs_hz: sampling rate.
        window_s: window length; a signal shorter than one window is scored as a single window.
        rpeaks: R-peaks if already detected (saves a :func:`detect_rpeaks` call).
        flat_threshold: peak-to-peak amplitude, in the signal's units, below which a 0.5 s block counts
            as flat (0.02 = 20 µV for a signal in mV; scale it for other units).
    """
    x, _ = interpolate_nans(np.asarray(ecg, dtype=np.float64).reshape(-1))
    n = len(x)
    window = max(1, min(n, round(window_s * fs_hz)))
    starts = window_starts(n, window)
    if n < 2:
        zeros = np.zeros(len(starts))
        components = {"template": zeros, "rate_ok": zeros, "flat_fraction": zeros + 1, "saturation": zeros}
        return QualityIndex(zeros, starts, window, components)
    if rpeaks is None:
        rpeaks = detect_rpeaks(x, fs_hz)
    windows = x[starts[:, None] + np.arange(window)]  # (n_windows, window)
    components = {
        "template": _template_correlation(x, np.asarray(rpeaks, dtype=np.int64), fs_hz, starts, window),
        "rate_ok": _rate_ok(np.asarray(rpeaks), starts, window, fs_hz),
        "flat_fraction": _flat_fraction(windows, fs_hz, flat_threshold),
        "saturation": _saturation(windows),
    }
    saturation_ok = _ramp(-components["saturation"], -SATURATION_ZERO, -SATURATION_ALLOWED)
    template_ok = _ramp(components["template"], TEMPLATE_FLOOR, TEMPLATE_FULL)
    score = template_ok * components["rate_ok"] * (1.0 - components["flat_fraction"]) * saturation_ok
    return QualityIndex(score=score, start=starts, window_samples=window, components=components)


def _ramp(values: np.ndarray, zero_at: float, one_at: float) -> np.ndarray:
    """0 at or below ``zero_at``, 1 at or above ``one_at``, linear between."""
    return np.clip((values - zero_at) / (one_at - zero_at), 0.0, 1.0)


def _template_correlation(
    x: np.ndarray, rpeaks: np.ndarray, fs_hz: float, starts: np.ndarray, window: int
) -> np.ndarray:
    """Mean correlation of each window's beats (QRS ± 100/150 ms, 0.5–40 Hz) with their median beat."""
    result = np.zeros(len(starts))
    if len(rpeaks) < 3 or len(x) < int(0.3 * fs_hz):
        return result
    filtered = bandpass(x, fs_hz, 0.5, min(40.0, 0.45 * fs_hz))
    beats, kept = segment_beats(filtered, rpeaks, fs_hz, before_s=0.1, after_s=0.15)
    if len(kept) < 3:
        return result
    beats = beats - beats.mean(axis=1, keepdims=True)
    beats /= np.linalg.norm(beats, axis=1, keepdims=True) + 1e-12
    for i, start in enumerate(starts):
        lo, hi = np.searchsorted(kept, [start, start + window])
        if hi - lo < 3:
            continue
        window_beats = beats[lo:hi]
        template = np.median(window_beats, axis=0)
        template -= template.mean()
        template /= np.linalg.norm(template) + 1e-12
        result[i] = float((window_beats @ template).mean())
    return result


def _rate_ok(rpeaks: np.ndarray, starts: np.ndarray, window: int, fs_hz: float) -> np.ndarray:
    counts = np.searchsorted(rpeaks, starts + window) - np.searchsorted(rpeaks, starts)
    bpm = counts / (window / fs_hz) * 60.0
    return ((bpm >= MIN_BPM) & (bpm <= MAX_BPM)).astype(np.float64)


def _flat_fraction(windows: np.ndarray, fs_hz: float, flat_threshold: float) -> np.ndarray:
    block = max(1, min(windows.shape[1], round(FLAT_BLOCK_S * fs_hz)))
    n_blocks = windows.shape[1] // block
    blocks = windows[:, : n_blocks * block].reshape(len(windows), n_blocks, block)
    return (np.ptp(blocks, axis=2) < flat_threshold).mean(axis=1)


def _saturation(windows: np.ndarray) -> np.ndarray:
    """Fraction of samples within 0.1 % of the range from the window's max or min."""
    high = windows.max(axis=1, keepdims=True)
    low = windows.min(axis=1, keepdims=True)
    tolerance = 1e-3 * (high - low)
    pinned = (windows >= high - tolerance) | (windows <= low + tolerance)
    return np.where((high - low).ravel() > 0, pinned.mean(axis=1), 1.0)
