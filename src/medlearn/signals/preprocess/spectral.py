"""EEG band power (Welch), the standard hand-crafted feature of sleep staging and seizure detection."""

from __future__ import annotations

import numpy as np
from scipy import signal
from scipy.integrate import trapezoid

#: Classic EEG bands in Hz (lower edge inclusive, upper exclusive).
EEG_BANDS_HZ: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}


def spectral_band_power(
    x: np.ndarray,
    fs_hz: float,
    bands_hz: dict[str, tuple[float, float]] | None = None,
    segment_s: float = 2.0,
    relative: bool = False,
    axis: int = -1,
) -> np.ndarray:
    """Power per band from a Welch periodogram (Hann, ``segment_s`` segments, 50 % overlap).

    Time is ``axis``; the result has that axis replaced by a last axis of ``len(bands_hz)`` bands (in the
    dict's order), in signal units² (e.g. µV²), or as a fraction of the total 0.5–45 Hz power when
    ``relative``. Bands above Nyquist give 0.
    """
    bands_hz = bands_hz or EEG_BANDS_HZ
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    nperseg = max(8, min(x.shape[-1], round(segment_s * fs_hz)))
    freqs, psd = signal.welch(x, fs=fs_hz, nperseg=nperseg, axis=-1)
    powers = []
    for low, high in bands_hz.values():
        inside = (freqs >= low) & (freqs < high)
        powers.append(
            trapezoid(psd[..., inside], freqs[inside], axis=-1)
            if inside.sum() > 1
            else psd[..., inside].sum(axis=-1) * (freqs[1] - freqs[0])
        )
    result = np.stack(powers, axis=-1)
    if relative:
        inside = (freqs >= 0.5) & (freqs < 45.0)
        total = trapezoid(psd[..., inside], freqs[inside], axis=-1)[..., None]
        result = result / np.where(total > 0, total, np.inf)
    return result
