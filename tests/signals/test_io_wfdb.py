"""WFDB records → Recording: MIT-BIH (.dat format 212 + .atr) and PhysioNet/CinC 2017 (.mat + .hea)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_data


@pytest.fixture(scope="module")
def mitdb() -> Path:
    return require_data("signals/mitdb")


@pytest.fixture(scope="module")
def cinc() -> Path:
    return require_data("signals/cinc2017")


@pytest.fixture(scope="module")
def record_101(mitdb):
    from medlearn.signals.io import read_wfdb

    return read_wfdb(mitdb / "101")


def test_mitdb_record_has_both_leads_in_millivolts_at_360_hz(record_101, mitdb):
    rec = record_101
    assert rec.signal.shape == (650_000, 2) and rec.signal.dtype == np.float32
    assert rec.fs_hz == 360.0 and rec.channel_names == ["MLII", "V1"] and rec.units == ["mV", "mV"]
    assert rec.gains == [200.0, 200.0] and rec.source == mitdb / "101"
    assert rec.quality == [] and rec.missing_mask is None
    assert rec.metadata["comments"][0] == "75 F 1011 654 x1"
    # physical = (stored - baseline) / gain: the header's first value of MLII is 955 with baseline 1024
    assert rec.signal[0, 0] == pytest.approx((955 - 1024) / 200.0)
    assert rec.duration_s == pytest.approx(650_000 / 360)


def test_mitdb_annotations_keep_symbols_samples_and_rhythm_notes(record_101):
    ann = record_101.annotations
    assert len(ann) == 1874 and ann.source == "101.atr"
    assert list(ann.symbol[:3]) == ["+", "N", "N"] and list(ann.sample[:3]) == [7, 83, 396]
    assert ann.aux_note[0] == "(N" and ann.aux_note[1] == ""
    assert ann.sample.dtype == np.int64 and np.all(np.diff(ann.sample) >= 0)


def test_the_same_record_reads_from_its_name_header_or_data_file(mitdb, record_101):
    from medlearn.signals.io import read_recording, read_wfdb

    for path in (mitdb / "101.hea", mitdb / "101.dat", str(mitdb / "101")):
        assert np.array_equal(read_wfdb(path, annotation_extension=None).signal, record_101.signal)
    assert np.array_equal(read_recording(mitdb / "101.dat").signal, record_101.signal)


def test_channel_selection_by_name_and_unknown_channel_lists_the_names(mitdb, record_101):
    from medlearn.errors import InputError
    from medlearn.signals.io import read_wfdb

    v1 = read_wfdb(mitdb / "101", channels=["V1"])
    assert v1.channel_names == ["V1"] and np.array_equal(v1.signal[:, 0], record_101.channel("V1"))
    with pytest.raises(InputError, match=r"no channel 'V5'; channels: MLII, V1"):
        read_wfdb(mitdb / "101", channels=["V5"])


def test_cinc2017_mat_record_reads_through_the_wfdb_reader(cinc):
    from medlearn.signals.io import read_recording, read_wfdb

    rec = read_recording(cinc / "A00003.mat")
    assert rec.signal.shape == (18_000, 1) and rec.fs_hz == 300.0
    assert rec.channel_names == ["ECG"] and rec.units == ["mV"] and rec.gains == [1000.0]
    assert rec.annotations is None and str(rec.start_time) == "2000-04-01 12:04:05"
    assert np.allclose(rec.signal[:3, 0], [0.056, 0.073, 0.085])
    assert np.array_equal(read_wfdb(cinc / "A00003").signal, rec.signal)


def test_slice_reindexes_annotations_and_records_the_offset(record_101):
    part = record_101.slice(10.0, 20.0)
    assert part.n_samples == 3600 and part.start_offset_s == pytest.approx(10.0)
    assert np.array_equal(part.signal, record_101.signal[3600:7200])
    inside = record_101.annotations.sample[
        (record_101.annotations.sample >= 3600) & (record_101.annotations.sample < 7200)
    ]
    assert np.array_equal(part.annotations.sample, inside - 3600)


def test_load_cinc2017_lists_every_record_with_its_v3_label(cinc):
    from medlearn.signals.io import load_cinc2017

    records = load_cinc2017(cinc)
    labels, counts = np.unique([r.label for r in records], return_counts=True)
    assert dict(zip(labels, counts)) == {"N": 1488, "O": 708, "A": 222, "~": 82}
    assert records[0].record == "A00003" and records[0].path == cinc / "A00003"


def test_load_cinc2017_rejects_an_unknown_label(tmp_path):
    from medlearn.errors import InputError
    from medlearn.signals.io import load_cinc2017

    (tmp_path / "REFERENCE.csv").write_text("A00001,N\nA00002,X\n")
    with pytest.raises(InputError, match=r"REFERENCE.csv:2: expected 'record,label'"):
        load_cinc2017(tmp_path)


def test_mitdb_beats_map_to_aami_classes_and_drop_non_beat_symbols(mitdb):
    from medlearn.signals.io import load_mitdb_beats

    recording, beats = load_mitdb_beats(mitdb / "208")
    classes, counts = np.unique(beats.aami, return_counts=True)
    # 208: 1586 N, 2 S, 992 V, 373 F, 2 Q (unclassifiable) — the published beat table of the record
    assert dict(zip(classes, counts)) == {"F": 373, "N": 1586, "Q": 2, "S": 2, "V": 992}
    assert len(beats) < len(recording.annotations)  # rhythm (+) and noise (~) marks are not beats
    assert set(beats.symbol) <= set("NLRejAaJSVEF/fQ")


def test_aami_classes_is_vectorised_and_blank_for_non_beats():
    from medlearn.signals.io import aami_classes

    assert list(aami_classes(["N", "L", "A", "J", "E", "F", "/", "+", "~", "x"])) == [
        "N",
        "N",
        "S",
        "S",
        "V",
        "F",
        "Q",
        "",
        "",
        "",
    ]


def test_importing_signals_io_and_preprocess_does_not_load_the_readers_libraries():
    code = (
        "import sys, medlearn.signals.io, medlearn.signals.preprocess; heavy = ('wfdb', 'pyedflib', "
        "'neurokit2', 'scipy.signal'); print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
