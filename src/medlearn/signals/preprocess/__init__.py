"""Biosignal preprocessing: zero-phase filters, resampling, R-peaks, signal quality, beats, band power.

Arrays in, arrays out; time is the **last axis** unless a function takes ``axis`` (pass ``axis=0`` for a
``Recording.signal``). Everything is scipy-based and vectorised over samples (and over records where
the shape allows), so a whole batch of equal-length records is one call. Names load lazily.

    clean = bandpass(ecg, fs_hz, 0.5, 40)                 # (..., n_samples)
    rpeaks = detect_rpeaks(ecg, fs_hz)                     # int64 sample indices
    sqi = signal_quality(ecg, fs_hz, rpeaks=rpeaks)        # per-10-s-window score in [0, 1]
    beats, kept = segment_beats(clean, rpeaks, fs_hz)      # (n_beats, n_window)
"""

from __future__ import annotations

from medlearn.lazy import lazy_getattr

_EXPORTS = {
    "bandpass": "filters",
    "highpass": "filters",
    "lowpass": "filters",
    "notch": "filters",
    "remove_baseline": "filters",
    "resample": "filters",
    "resample_factors": "filters",
    "interpolate_nans": "nan",
    "detect_rpeaks": "rpeaks",
    "RPeakScores": "rpeaks",
    "rpeak_scores": "rpeaks",
    "QualityIndex": "quality",
    "signal_quality": "quality",
    "heart_rate": "beats",
    "segment_beats": "beats",
    "EEG_BANDS_HZ": "spectral",
    "spectral_band_power": "spectral",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
