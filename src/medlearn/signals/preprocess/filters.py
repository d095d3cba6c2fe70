"""Zero-phase filters and resampling along one time axis, for one record or a stack of them.

Axis convention: time is ``axis`` (default ``-1``, scipy's): a single lead ``(n_samples,)``, a batch of
equal-length records ``(n_records, n_samples)`` or ``(n_records, n_channels, n_samples)`` is filtered in
one vectorised call. A :class:`~medlearn.signals.io.Recording`'s ``(n_samples, n_channels)`` signal takes
``axis=0``. Frequencies are in Hz.

Filters are Butterworth second-order sections run forward and backward (``sosfiltfilt``): no phase
delay, so R-peaks and annotation samples stay aligned. Designs are cached per (kind, band, order, fs).
Signals too short for the default edge padding are padded less rather than rejected. Non-finite samples
propagate (a NaN poisons its whole lane): call :func:`~medlearn.signals.preprocess.nan.interpolate_nans`
first when the input may hold any.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import ndimage, signal

#: Largest down-sampling factor of a rational resampling ratio; keeps the polyphase filter short.
MAX_RESAMPLE_FACTOR = 1000


def _check_band(fs_hz: float, *frequencies_hz: float) -> None:
    nyquist = fs_hz / 2
    if fs_hz <= 0:
        raise ValueError(f"fs_hz must be > 0, got {fs_hz}")
    for frequency in frequencies_hz:
        if not 0 < frequency < nyquist:
            raise ValueError(
                f"cut-off {frequency} Hz must lie in (0, {nyquist:g}) Hz (Nyquist of fs_hz={fs_hz:g})"
            )


@lru_cache(maxsize=128)
def butter_sos(kind: str, cutoff_hz: float | tuple[float, float], order: int, fs_hz: float) -> np.ndarray:
    """Cached Butterworth design (``kind``: lowpass, highpass, bandpass, bandstop) as SOS."""
    cutoffs = cutoff_hz if isinstance(cutoff_hz, tuple) else (cutoff_hz,)
    _check_band(fs_hz, *cutoffs)
    return signal.butter(order, cutoff_hz, btype=kind, fs=fs_hz, output="sos")


@lru_cache(maxsize=128)
def _steady_state(sos_bytes: bytes, n_sections: int) -> np.ndarray:
    """``sosfilt_zi`` of a design, cached: it solves a linear system per section (about a quarter of a
    short record's filtering time), and a service filters every request with the same few designs."""
    zi = signal.sosfilt_zi(np.frombuffer(sos_bytes, dtype=np.float64).reshape(n_sections, 6))
    zi.setflags(write=False)
    return zi


def _odd_extension(x: np.ndarray, pad: int, axis: int) -> np.ndarray:
    """``x`` extended by ``pad`` samples at both ends by point reflection about its end samples (scipy's
    ``padtype="odd"``): the edges continue the signal's slope instead of jumping."""
    if pad == 0:
        return x
    first = np.take(x, [0], axis=axis)
    last = np.take(x, [-1], axis=axis)
    head = 2 * first - np.flip(np.take(x, np.arange(1, pad + 1), axis=axis), axis=axis)
    tail = 2 * last - np.flip(np.take(x, np.arange(-pad - 1, -1), axis=axis), axis=axis)
    return np.concatenate([head, x, tail], axis=axis)


def sos_filtfilt(x: np.ndarray, sos: np.ndarray, axis: int = -1) -> np.ndarray:
    """``sosfiltfilt`` along ``axis`` whose edge padding shrinks to fit short signals.

    The same computation as ``scipy.signal.sosfiltfilt`` (odd padding, forward and backward ``sosfilt``
    started from the steady state scaled by the edge sample; equal to it to rounding, tested), with the
    steady state cached per design.
    """
    x = np.asarray(x)
    n = x.shape[axis]
    if n < 2:
        return x.astype(np.result_type(x.dtype, np.float32), copy=True)
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    default_pad = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    pad = int(min(default_pad, n - 1))
    if not np.issubdtype(x.dtype, np.inexact):
        x = x.astype(np.float64)
    axis = axis % x.ndim
    shape = [1] * x.ndim
    shape[axis] = 2
    zi = _steady_state(sos.tobytes(), len(sos)).reshape([len(sos), *shape])
    extended = _odd_extension(x, pad, axis)
    y, _ = signal.sosfilt(sos, extended, axis=axis, zi=zi * np.take(extended, [0], axis=axis))
    y = np.flip(y, axis=axis)
    y, _ = signal.sosfilt(sos, y, axis=axis, zi=zi * np.take(y, [0], axis=axis))
    y = np.flip(y, axis=axis)
    return np.take(y, np.arange(pad, pad + n), axis=axis) if pad else y


def bandpass(
    x: np.ndarray, fs_hz: float, low_hz: float = 0.5, high_hz: float = 40.0, order: int = 2, axis: int = -1
) -> np.ndarray:
    """Keep ``low_hz``–``high_hz`` (zero phase; effective order doubles). ECG default: 0.5–40 Hz keeps
    the QRS and T waves and drops baseline wander, EMG and mains hum."""
    return sos_filtfilt(x, butter_sos("bandpass", (float(low_hz), float(high_hz)), order, float(fs_hz)), axis)


def highpass(
    x: np.ndarray, fs_hz: float, cutoff_hz: float = 0.5, order: int = 2, axis: int = -1
) -> np.ndarray:
    """Remove content below ``cutoff_hz`` (zero phase)."""
    return sos_filtfilt(x, butter_sos("highpass", float(cutoff_hz), order, float(fs_hz)), axis)


def lowpass(
    x: np.ndarray, fs_hz: float, cutoff_hz: float = 40.0, order: int = 4, axis: int = -1
) -> np.ndarray:
    """Remove content above ``cutoff_hz`` (zero phase)."""
    return sos_filtfilt(x, butter_sos("lowpass", float(cutoff_hz), order, float(fs_hz)), axis)


def notch(x: np.ndarray, fs_hz: float, freq_hz: float = 50.0, q: float = 30.0, axis: int = -1) -> np.ndarray:
    """Remove mains interference at ``freq_hz`` (50 Hz Europe, 60 Hz Americas); bandwidth = freq/q Hz."""
    _check_band(float(fs_hz), float(freq_hz))
    b, a = signal.iirnotch(float(freq_hz), float(q), fs=float(fs_hz))
    return sos_filtfilt(x, signal.tf2sos(b, a), axis)


def remove_baseline(
    x: np.ndarray, fs_hz: float, method: str = "highpass", cutoff_hz: float = 0.5, axis: int = -1
) -> np.ndarray:
    """Remove baseline wander (respiration, electrode motion).

    ``"highpass"`` (default): a zero-phase 0.5 Hz Butterworth high-pass — fast, linear. ``"median"``:
    subtract the classic two-stage median estimate (200 ms then 600 ms windows, de Chazal 2004) — slower,
    but keeps ST-segment levels that a high-pass bends.
    """
    if method == "highpass":
        return highpass(x, fs_hz, cutoff_hz, axis=axis)
    if method != "median":
        raise ValueError(f"method must be 'highpass' or 'median', not {method!r}")
    x = np.asarray(x, dtype=np.result_type(x, np.float32))
    size = [1] * x.ndim
    baseline = x
    for window_s in (0.2, 0.6):
        size[axis] = round(window_s * fs_hz) | 1
        baseline = ndimage.median_filter(baseline, size=tuple(size), mode="nearest")
    return x - baseline


def resample_factors(fs_in_hz: float, fs_out_hz: float) -> tuple[int, int]:
    """(up, down) with up/down ≈ fs_out/fs_in and down ≤ :data:`MAX_RESAMPLE_FACTOR`: exact for rates such
    as 360→250 Hz (25, 36); 173.61→256 Hz (Bonn) is approximated, to a relative error below 1e-5."""
    if fs_in_hz <= 0 or fs_out_hz <= 0:
        raise ValueError(f"sampling rates must be > 0, got {fs_in_hz} → {fs_out_hz}")
    ratio = Fraction(fs_out_hz / fs_in_hz).limit_denominator(MAX_RESAMPLE_FACTOR)
    return ratio.numerator, ratio.denominator


def resample(x: np.ndarray, fs_in_hz: float, fs_out_hz: float, axis: int = -1) -> np.ndarray:
    """Change the sampling rate with a polyphase anti-aliasing filter (``resample_poly``).

    Output length is ``ceil(n * up / down)`` with (up, down) from :func:`resample_factors`; the achieved
    rate is ``fs_in_hz * up / down``.
    """
    up, down = resample_factors(float(fs_in_hz), float(fs_out_hz))
    x = np.asarray(x)
    if up == down:
        return x.copy()
    fir = _anti_alias_fir(up, down)
    if np.issubdtype(x.dtype, np.inexact):
        fir = fir.astype(x.dtype)  # as resample_poly does with its own design
    return signal.resample_poly(x, up, down, axis=axis, window=fir)


@lru_cache(maxsize=64)
def _anti_alias_fir(up: int, down: int) -> np.ndarray:
    """``resample_poly``'s own low-pass design (Kaiser window, β = 5, 10 zero crossings per side of the
    larger factor), cached: designing it took a third of resampling a 30 s record."""
    max_rate = max(up, down)
    fir = signal.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    fir.setflags(write=False)
    return fir
