"""Signal-quality index: clean ECG high, flat lines / noise / clipping low, CinC '~' records below normal."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_data


@pytest.fixture(scope="module")
def clean_ecg() -> np.ndarray:
    from medlearn.signals.io import read_wfdb

    recording = read_wfdb(require_data("signals/mitdb") / "101", annotation_extension=None)
    return recording.slice(0, 60).channel("MLII").astype(np.float64)


def test_clean_mitdb_minute_scores_high_in_every_window(clean_ecg):
    from medlearn.signals.preprocess import signal_quality

    sqi = signal_quality(clean_ecg, 360.0)
    assert len(sqi.score) == 6 and sqi.window_samples == 3600
    assert sqi.start.tolist() == list(range(0, 21600, 3600))
    assert sqi.score.min() >= 0.9 and sqi.components["template"].min() >= 0.9
    assert sqi.components["flat_fraction"].max() == 0 and sqi.components["rate_ok"].min() == 1


def test_flat_line_and_gaussian_noise_score_zero(rng):
    from medlearn.signals.preprocess import signal_quality

    flat = signal_quality(np.zeros(3600 * 3), 360.0)
    noise = signal_quality(rng.normal(scale=0.5, size=3600 * 3), 360.0)
    assert flat.score.tolist() == [0.0, 0.0, 0.0] and flat.components["flat_fraction"].min() == 1.0
    assert noise.score.max() < 0.05 and noise.components["template"].max() < 0.5


def test_lead_off_half_window_and_clipping_lower_the_score(clean_ecg):
    from medlearn.signals.preprocess import signal_quality

    lead_off = clean_ecg[:3600].copy()
    lead_off[1800:] = 0.0
    clipped = np.clip(clean_ecg[:3600], -0.3, 0.3)  # amplifier saturation through every QRS
    assert signal_quality(lead_off, 360.0).score[0] <= 0.5
    saturated = signal_quality(clipped, 360.0)
    assert saturated.components["saturation"][0] > 0.05 and saturated.score[0] == 0.0


def test_windows_cover_the_tail_and_short_signals_are_one_window(clean_ecg):
    from medlearn.signals.preprocess import signal_quality

    tail = signal_quality(clean_ecg[: 3600 * 2 + 500], 360.0)
    assert tail.start.tolist() == [0, 3600, 4100]
    short = signal_quality(clean_ecg[:1800], 360.0)
    assert short.start.tolist() == [0] and short.window_samples == 1800 and short.score[0] > 0.9


def test_cinc2017_noisy_records_score_below_normal_ones_on_average():
    from medlearn.signals.io import load_cinc2017, read_wfdb
    from medlearn.signals.preprocess import signal_quality

    records = load_cinc2017(require_data("signals/cinc2017"))
    by_label = {label: [r for r in records if r.label == label][:40] for label in ("N", "~")}
    overall = {
        label: np.array([signal_quality(read_wfdb(r.path).channel(0), 300.0).overall for r in chosen])
        for label, chosen in by_label.items()
    }
    # measured on these 40 + 40: N mean 0.85 (median 1.0), ~ mean 0.28 (median 0.15)
    assert overall["N"].mean() > 0.8 and overall["~"].mean() < 0.5
    assert np.median(overall["N"]) > 0.95 and np.median(overall["~"]) < 0.4
