"""Heart rate from R-peaks, beat windows cut by fancy indexing, and EEG band power."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_data


def test_heart_rate_is_one_value_per_rr_interval():
    from medlearn.signals.preprocess import heart_rate

    assert heart_rate(np.array([0, 360, 540, 900]), 360.0).tolist() == [60.0, 120.0, 60.0]
    assert heart_rate(np.array([10]), 360.0).shape == (0,)


def test_segment_beats_drops_edge_beats_and_returns_the_kept_peaks():
    from medlearn.signals.preprocess import segment_beats

    ecg = np.arange(1000.0)
    beats, kept = segment_beats(ecg, np.array([5, 100, 500, 995]), fs_hz=100.0, before_s=0.1, after_s=0.2)
    assert kept.tolist() == [100, 500] and beats.shape == (2, 30)
    assert beats[0, 0] == 90.0 and beats[0, -1] == 119.0 and beats[1, 10] == 500.0


def test_segment_beats_of_a_multichannel_signal_puts_beats_first():
    from medlearn.signals.preprocess import segment_beats

    ecg = np.stack([np.arange(1000.0), -np.arange(1000.0)])  # (n_channels, n_samples)
    beats, kept = segment_beats(ecg, np.array([200, 600]), fs_hz=100.0, before_s=0.05, after_s=0.05)
    assert kept.tolist() == [200, 600] and beats.shape == (2, 2, 10)
    assert np.array_equal(beats[1, 1], -beats[1, 0])


def test_real_beats_align_on_their_r_peak():
    from medlearn.signals.io import load_mitdb_beats
    from medlearn.signals.preprocess import bandpass, detect_rpeaks, heart_rate, segment_beats

    recording, reference = load_mitdb_beats(require_data("signals/mitdb") / "112")
    ecg = bandpass(recording.slice(0, 120).channel("MLII"), recording.fs_hz)
    rpeaks = detect_rpeaks(ecg, recording.fs_hz)
    beats, kept = segment_beats(ecg, rpeaks, recording.fs_hz, before_s=0.25, after_s=0.45)
    assert beats.shape == (len(kept), 252) and len(kept) >= len(rpeaks) - 2
    template = np.median(beats, axis=0)
    assert abs(int(np.argmax(np.abs(template))) - 90) <= 3  # the R wave sits at before_s = 90 samples
    expected_bpm = 60 * len(reference.sample[reference.sample < 120 * 360]) / 120
    assert np.median(heart_rate(rpeaks, recording.fs_hz)) == pytest.approx(expected_bpm, rel=0.05)


def test_band_power_finds_the_alpha_rhythm():
    from medlearn.signals.preprocess import EEG_BANDS_HZ, spectral_band_power

    fs = 160.0
    t = np.arange(int(30 * fs)) / fs
    eeg = np.stack([20 * np.sin(2 * np.pi * 10 * t), 20 * np.sin(2 * np.pi * 2 * t)])  # alpha, delta
    power = spectral_band_power(eeg, fs)
    assert power.shape == (2, len(EEG_BANDS_HZ))
    assert np.argmax(power[0]) == list(EEG_BANDS_HZ).index("alpha")
    assert np.argmax(power[1]) == list(EEG_BANDS_HZ).index("delta")
    assert power[0].sum() == pytest.approx(20**2 / 2, rel=0.05)  # a sine's power is A²/2
    relative = spectral_band_power(eeg, fs, relative=True)
    assert relative[0, list(EEG_BANDS_HZ).index("alpha")] > 0.95
