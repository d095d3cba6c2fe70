"""Beat-level views of an ECG: heart rate from R-peaks and fixed windows around each beat."""

from __future__ import annotations

import numpy as np


def heart_rate(rpeaks: np.ndarray, fs_hz: float) -> np.ndarray:
    """Instantaneous heart rate in beats per minute, one value per RR interval (``len(rpeaks) - 1``).

    Value ``i`` belongs to the beat ``rpeaks[i + 1]`` (the interval ending there). Nothing is smoothed or
    clipped, so ectopic beats and missed detections show up as they are; for a per-sample trace use
    ``np.interp(np.arange(n_samples), rpeaks[1:], heart_rate(rpeaks, fs_hz))``.
    """
    rpeaks = np.asarray(rpeaks, dtype=np.float64).reshape(-1)
    if len(rpeaks) < 2:
        return np.zeros(0, dtype=np.float64)
    rr_s = np.diff(rpeaks) / fs_hz
    with np.errstate(divide="ignore"):
        return np.where(rr_s > 0, 60.0 / rr_s, np.nan)


def beat_window(fs_hz: float, before_s: float, after_s: float) -> np.ndarray:
    """Sample offsets ``[-round(before_s·fs), round(after_s·fs))`` of a beat window around its R-peak."""
    return np.arange(-round(before_s * fs_hz), round(after_s * fs_hz))


def segment_beats(
    ecg: np.ndarray, rpeaks: np.ndarray, fs_hz: float, before_s: float = 0.25, after_s: float = 0.45
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a window around every R-peak: ``(beats, kept_rpeaks)``.

    Time is the last axis of ``ecg``: ``(n_samples,)`` gives ``beats`` of shape ``(n_beats, n_window)``,
    ``(n_channels, n_samples)`` gives ``(n_beats, n_channels, n_window)``. The window spans ``before_s``
    before to ``after_s`` after each peak (defaults: P wave to T wave at rest). Beats whose window would
    cross either end of the signal are dropped — padding would invent signal — and ``kept_rpeaks`` says
    which remain. One fancy-indexing gather, no per-beat loop.
    """
    ecg = np.asarray(ecg)
    offsets = beat_window(fs_hz, before_s, after_s)
    rpeaks = np.asarray(rpeaks, dtype=np.int64).reshape(-1)
    n_samples = ecg.shape[-1]
    inside = (rpeaks + offsets[0] >= 0) & (rpeaks + offsets[-1] < n_samples) if len(offsets) else rpeaks < 0
    kept = rpeaks[inside]
    gathered = ecg[..., kept[:, None] + offsets]  # (..., n_beats, n_window)
    return np.moveaxis(gathered, -2, 0), kept
