"""EDF/EDF+ (eegmmidb, a synthetic mixed-rate file) and the header-less EEG segments (Bonn, Delhi)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_data


@pytest.fixture(scope="module")
def eegmmidb() -> Path:
    return require_data("signals/eeg/eegmmidb/S001")


def test_eegmmidb_run_has_64_channels_at_160_hz_in_microvolts(eegmmidb):
    from medlearn.signals.io import read_recording

    rec = read_recording(eegmmidb / "S001R03.edf")
    assert rec.signal.shape == (20_000, 64) and rec.fs_hz == 160.0 and rec.duration_s == 125.0
    assert rec.channel_names[:3] == ["Fc5.", "Fc3.", "Fc1."] and set(rec.units) == {"uV"}
    assert str(rec.start_time) == "2009-08-12 16:15:00"
    low, high = np.percentile(rec.signal, [1, 99])
    assert -400 < low < 0 < high < 400  # plausible scalp EEG in µV (the repaired file, not CRLF noise)


def test_eegmmidb_events_come_from_edf_plus_and_disagree_with_the_event_file(eegmmidb):
    from medlearn.signals.io import read_edf

    rec = read_edf(eegmmidb / "S001R03.edf")
    ann = rec.annotations
    assert len(ann) == 30 and set(ann.symbol) == {"T0", "T1", "T2"}
    assert list(ann.sample[:3]) == [0, 672, 1328] and ann.duration_s[0] == pytest.approx(4.2)
    assert "EDF+ annotations (30) and S001R03.edf.event (29) disagree" in rec.quality[0]

    from_event = read_edf(eegmmidb / "S001R03.edf", annotation_source="event").annotations
    # wfdb.rdann drops the event at sample 0; the 29 others match the EDF+ ones exactly
    assert len(from_event) == 29 and np.array_equal(from_event.sample, ann.sample[1:])
    assert np.array_equal(from_event.symbol, ann.symbol[1:])
    assert np.allclose(from_event.duration_s, ann.duration_s[1:])
    assert from_event.aux_note[0] == "T2 duration: 4.1"


def test_channels_at_a_minority_rate_are_dropped_with_a_warning(tmp_path):
    import pyedflib

    from medlearn.signals.io import SignalQualityWarning, read_edf

    path = tmp_path / "mixed.edf"
    rates = [100, 100, 1]
    writer = pyedflib.EdfWriter(str(path), len(rates), file_type=pyedflib.FILETYPE_EDFPLUS)
    headers = [
        {
            "label": label,
            "dimension": unit,
            "sample_frequency": rate,
            "physical_min": -500.0,
            "physical_max": 500.0,
            "digital_min": -32768,
            "digital_max": 32767,
        }
        for label, unit, rate in zip(["EEG Fpz", "EEG Pz", "SpO2"], ["uV", "uV", "%"], rates)
    ]
    writer.setSignalHeaders(headers)
    t = np.arange(10 * 100) / 100
    writer.writeSamples([100 * np.sin(2 * np.pi * 10 * t), 50 * np.cos(2 * np.pi * 3 * t), np.full(10, 97.0)])
    writer.writeAnnotation(2.5, 1.0, "arousal")
    writer.close()

    with pytest.warns(SignalQualityWarning, match=r"dropped 1 at other rates: SpO2 \(1 Hz\)"):
        rec = read_edf(path)
    assert rec.channel_names == ["EEG Fpz", "EEG Pz"] and rec.fs_hz == 100.0 and rec.n_samples == 1000
    assert np.allclose(rec.signal[:, 0], 100 * np.sin(2 * np.pi * 10 * t), atol=0.05)
    assert list(rec.annotations.symbol) == ["arousal"] and list(rec.annotations.sample) == [250]
    spo2 = read_edf(path, channels=["SpO2"])
    assert spo2.fs_hz == 1.0 and np.allclose(spo2.signal[:, 0], 97.0, atol=0.05) and spo2.units == ["%"]


def test_bonn_text_segment_is_4097_raw_integers():
    from medlearn.signals.io import read_recording

    root = require_data("signals/eeg/bonn")
    rec = read_recording(root / "E_S" / "S001.txt", fs_hz=173.61)
    assert rec.signal.shape == (4097, 1) and rec.units == ["adu"] and rec.fs_hz == 173.61
    assert np.array_equal(rec.signal[:, 0], np.rint(rec.signal[:, 0]))  # integers, kept as stored
    upper = read_recording(root / "C_N" / "N001.TXT", fs_hz=173.61)  # set C's upper-case names
    assert upper.signal.shape == (4097, 1)


def test_delhi_mat_segment_is_one_1024_sample_channel():
    from medlearn.signals.io import read_mat_segment

    root = require_data("signals/eeg/delhi-nsc")
    rec = read_mat_segment(root / "ictal" / "ictal1.mat", 200.0)
    assert rec.signal.shape == (1024, 1) and rec.duration_s == pytest.approx(5.12) and rec.quality == []
