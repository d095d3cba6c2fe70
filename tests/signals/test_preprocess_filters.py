"""Filters, resampling and NaN repair on synthetic signals with known spectra."""

from __future__ import annotations

import numpy as np
import pytest

FS = 360.0
T = np.arange(int(10 * FS)) / FS


def sine(freq_hz: float, amplitude: float = 1.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq_hz * T)


def amplitude_at(x: np.ndarray, freq_hz: float, fs_hz: float = FS) -> float:
    """Amplitude of the ``freq_hz`` component (rectangular window, bins fall on whole Hz over 10 s)."""
    spectrum = np.abs(np.fft.rfft(x)) * 2 / len(x)
    return float(spectrum[round(freq_hz * len(x) / fs_hz)])


def test_bandpass_keeps_the_passband_and_removes_drift_and_hum():
    from medlearn.signals.preprocess import bandpass

    out = bandpass(sine(0.1, 2) + sine(10) + sine(60, 0.5) + sine(100), FS, 0.5, 40)
    assert amplitude_at(out, 10) == pytest.approx(1.0, abs=0.01)
    # 2.0 → < 0.1 at 0.1 Hz (what is left are the edge transients of a 10 s signal)
    assert amplitude_at(out, 0.1) < 0.1 and amplitude_at(out, 100) < 0.01 and amplitude_at(out, 60) < 0.1


def test_notch_removes_mains_only():
    from medlearn.signals.preprocess import notch

    out = notch(sine(50) + sine(20), FS, 50.0, q=30)
    assert amplitude_at(out, 50) < 0.03 and amplitude_at(out, 20) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("method", ["highpass", "median"])
def test_remove_baseline_removes_slow_wander(method):
    from medlearn.signals.preprocess import remove_baseline

    out = remove_baseline(sine(0.2, 3) + 1.5 + sine(15), FS, method=method)
    middle = slice(int(FS), -int(FS))
    assert abs(out[middle].mean()) < 0.05 and amplitude_at(out, 0.2) < 0.3


def test_filters_run_along_the_chosen_axis_of_a_batch_exactly_as_one_by_one(rng):
    from medlearn.signals.preprocess import bandpass, notch, resample

    batch = rng.normal(size=(3, 2, 1000))  # (records, channels, samples)
    one_by_one = np.stack([[bandpass(lead, FS) for lead in record] for record in batch])
    assert np.allclose(bandpass(batch, FS), one_by_one)
    recording_layout = batch[0].T  # (n_samples, n_channels), as Recording.signal
    assert np.allclose(notch(recording_layout, FS, axis=0).T, notch(batch[0], FS))
    assert np.allclose(resample(recording_layout, FS, 250, axis=0).T, resample(batch[0], FS, 250))


def test_resample_keeps_frequency_and_duration():
    from medlearn.signals.preprocess import resample, resample_factors

    out = resample(sine(5), FS, 250.0)
    assert resample_factors(FS, 250.0) == (25, 36) and len(out) == 2500
    assert amplitude_at(out, 5, 250.0) == pytest.approx(1.0, abs=0.02)
    bonn_up, bonn_down = resample_factors(173.61, 256.0)
    assert abs(173.61 * bonn_up / bonn_down - 256.0) / 256.0 < 1e-5


def test_short_and_tiny_signals_do_not_crash():
    from medlearn.signals.preprocess import bandpass

    assert bandpass(np.ones(5), FS).shape == (5,)
    assert bandpass(np.ones(1), FS).shape == (1,)


def test_cutoff_above_nyquist_is_a_clear_value_error():
    from medlearn.signals.preprocess import bandpass

    with pytest.raises(ValueError, match=r"cut-off 200.0 Hz must lie in \(0, 180\) Hz"):
        bandpass(sine(10), FS, 0.5, 200.0)


def test_interpolate_nans_fills_gaps_and_edges_and_reports_them():
    from medlearn.signals.preprocess import interpolate_nans

    x = np.array([[np.nan, 1.0, np.nan, 3.0, np.inf], [np.nan] * 5])
    filled, mask = interpolate_nans(x, axis=1)
    assert filled.tolist() == [[1.0, 1.0, 2.0, 3.0, 3.0], [0.0] * 5]
    assert mask.sum() == 8 and not np.isnan(x[0, 1])
    clean = np.arange(4.0)
    same, none = interpolate_nans(clean)
    assert same is clean and none is None


@pytest.mark.parametrize(
    ("shape", "axis"), [((9000,), -1), ((3, 2, 500), -1), ((500, 3), 0), ((4, 12), 1), ((7,), -1), ((2,), -1)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_cached_filtfilt_and_resampling_equal_scipys_own(rng, shape, axis, dtype):
    """sos_filtfilt caches the steady state and resample the anti-alias design: same numbers as scipy."""
    from scipy import signal

    from medlearn.signals.preprocess.filters import butter_sos, resample, resample_factors, sos_filtfilt

    x = (rng.standard_normal(shape) * 100).astype(dtype)
    sos = butter_sos("bandpass", (0.5, 40.0), 2, 300.0)
    pad = min(15, x.shape[axis] - 1)
    expected = signal.sosfiltfilt(sos, x, axis=axis, padlen=pad)
    got = sos_filtfilt(x, sos, axis)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    exact = dtype != np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-12 if exact else 1e-6, atol=1e-9 if exact else 1e-4)
    for fs_out_hz in (100.0, 250.0, 360.0):
        up, down = resample_factors(300.0, fs_out_hz)
        np.testing.assert_array_equal(
            resample(x, 300.0, fs_out_hz, axis=axis), signal.resample_poly(x, up, down, axis=axis)
        )
