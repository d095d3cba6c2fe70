"""Broken signal files: one InputError naming the file and the problem, never a traceback from wfdb,
pyEDFlib or numpy; repairable problems (NaN samples) are repaired, flagged and warned about."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from medlearn.errors import InputError
from tests.conftest import require_data


@pytest.fixture(scope="module")
def mitdb() -> Path:
    return require_data("signals/mitdb")


@pytest.fixture(scope="module")
def cinc() -> Path:
    return require_data("signals/cinc2017")


def copy_record(folder: Path, name: str, dest: Path, extensions=("hea", "dat", "atr")) -> Path:
    for extension in extensions:
        shutil.copy(folder / f"{name}.{extension}", dest / f"{name}.{extension}")
    return dest / name


def edit_header(record: Path, old: str, new: str) -> None:
    header = record.parent / f"{record.name}.hea"
    text = header.read_text()
    assert old in text
    header.write_text(text.replace(old, new, 1))


def test_missing_file_is_named(tmp_path):
    from medlearn.signals.io import read_recording, read_wfdb

    with pytest.raises(InputError, match=r"nothing\.hea: WFDB header missing"):
        read_wfdb(tmp_path / "nothing")
    with pytest.raises(InputError, match=r"gone\.edf: file does not exist"):
        read_recording(tmp_path / "gone.edf")


def test_missing_dat_beside_its_header(mitdb, tmp_path):
    from medlearn.signals.io import read_wfdb

    record = copy_record(mitdb, "101", tmp_path, ("hea",))
    with pytest.raises(InputError) as err:
        read_wfdb(record)
    assert str(err.value) == (
        f"{tmp_path / '101.dat'}: missing; 101.hea names it as a data file (copy it beside the header)"
    )


def test_truncated_dat_raises_with_sample_counts_or_reads_what_is_there_on_request(mitdb, tmp_path):
    from medlearn.signals.io import read_wfdb

    record = copy_record(mitdb, "101", tmp_path)
    data = tmp_path / "101.dat"
    data.write_bytes(data.read_bytes()[:300_000])  # 100000 frames of 2 x 12-bit samples
    with pytest.raises(InputError, match=r"101\.dat: truncated — holds 100000 of the 650000 samples"):
        read_wfdb(record)
    partial = read_wfdb(record, allow_truncated=True)
    assert partial.n_samples == 100_000 and "read 100000 of 650000" in partial.quality[0]
    full = read_wfdb(mitdb / "101")
    assert np.array_equal(partial.signal, full.signal[:100_000])
    assert partial.annotations.sample.max() < 100_000 and "outside the signal" in partial.quality[1]


@pytest.mark.parametrize("fs", ["0", "-360", "1e9", "abc"])
def test_implausible_header_sampling_rate(mitdb, tmp_path, fs):
    from medlearn.signals.io import read_wfdb

    record = copy_record(mitdb, "101", tmp_path)
    edit_header(record, "101 2 360 650000", f"101 2 {fs} 650000")
    with pytest.raises(InputError, match=r"101\.hea: sampling rate .* (not plausible|not a number)"):
        read_wfdb(record)


def test_record_line_signal_count_differs_from_its_signal_lines(mitdb, tmp_path):
    from medlearn.signals.io import read_wfdb

    record = copy_record(mitdb, "101", tmp_path)
    edit_header(record, "101 2 360", "101 3 360")
    with pytest.raises(InputError, match=r"declares 3 signal\(s\) but 2 signal line\(s\) follow"):
        read_wfdb(record)


def test_header_with_fewer_leads_than_the_data_is_a_lead_count_mismatch(mitdb, tmp_path):
    from medlearn.signals.io import read_wfdb

    record = copy_record(mitdb, "101", tmp_path)
    header = tmp_path / "101.hea"
    lines = header.read_text().splitlines()
    header.write_text("\n".join(["101 1 360 650000", lines[1], *lines[3:]]) + "\n")
    with pytest.raises(InputError, match=r"holds 2 signal\(s\) of 650000 samples but 101\.hea declares 1"):
        read_wfdb(record)


def test_mat_record_with_more_rows_than_the_header_declares(cinc, tmp_path):
    from scipy.io import savemat

    from medlearn.signals.io import read_wfdb

    shutil.copy(cinc / "A00003.hea", tmp_path)
    savemat(tmp_path / "A00003.mat", {"val": np.zeros((2, 9000), dtype=np.int16)}, format="4")
    with pytest.raises(InputError, match=r"A00003\.mat: .*declares 1"):
        read_wfdb(tmp_path / "A00003.mat")


def test_nan_samples_are_interpolated_flagged_and_warned(cinc, tmp_path):
    from medlearn.signals.io import SignalQualityWarning, read_wfdb

    record = copy_record(cinc, "A00003", tmp_path, ("hea", "mat"))
    raw = bytearray((tmp_path / "A00003.mat").read_bytes())
    for sample in range(1000, 1010):  # WFDB format 16 marks an invalid sample with -32768
        raw[24 + 2 * sample : 26 + 2 * sample] = (-32768).to_bytes(2, "little", signed=True)
    (tmp_path / "A00003.mat").write_bytes(bytes(raw))
    with pytest.warns(SignalQualityWarning, match=r"10 missing \(NaN\) sample\(s\) linearly interpolated"):
        rec = read_wfdb(record)
    assert np.isfinite(rec.signal).all() and rec.missing_mask[:, 0].sum() == 10
    assert np.flatnonzero(rec.missing_mask[:, 0]).tolist() == list(range(1000, 1010))
    clean = read_wfdb(cinc / "A00003").signal[:, 0]
    expected = np.linspace(clean[999], clean[1010], 12)[1:-1]
    assert np.allclose(rec.signal[1000:1010, 0], expected, atol=1e-6)


def test_garbage_edf_text_and_mat_files(tmp_path):
    from medlearn.signals.io import read_mat_segment, read_recording, read_text_segment

    (tmp_path / "bad.edf").write_bytes(b"0       not an EDF header at all")
    with pytest.raises(InputError, match=r"bad\.edf: not a readable EDF/EDF\+ file"):
        read_recording(tmp_path / "bad.edf")
    (tmp_path / "bad.txt").write_text("12\n13\nfourteen\n")
    with pytest.raises(InputError, match=r"bad\.txt: not a column of numbers"):
        read_text_segment(tmp_path / "bad.txt", 173.61)
    from scipy.io import savemat

    savemat(tmp_path / "two.mat", {"a": np.zeros(10), "b": np.ones(10)})
    with pytest.raises(InputError, match=r"two\.mat: holds 2 numeric arrays \(a, b\); name one with"):
        read_mat_segment(tmp_path / "two.mat", 200.0)
    assert read_mat_segment(tmp_path / "two.mat", 200.0, variable="b").signal.shape == (10, 1)


def test_headerless_segments_need_a_sampling_rate_and_unknown_suffixes_are_named(tmp_path):
    from medlearn.signals.io import read_recording, read_text_segment

    (tmp_path / "z.txt").write_text("1\n2\n3\n")
    with pytest.raises(InputError, match=r"z\.txt: a \.txt segment has no header; pass its sampling rate"):
        read_recording(tmp_path / "z.txt")
    with pytest.raises(InputError, match=r"z\.txt: sampling rate -1 Hz is not plausible"):
        read_text_segment(tmp_path / "z.txt", -1)
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    with pytest.raises(InputError, match=r"x\.wav: unknown signal file type '\.wav'"):
        read_recording(tmp_path / "x.wav")


def test_truncated_edf_is_named_with_pyedflib_reason(tmp_path):
    from medlearn.signals.io import read_edf

    source = require_data("signals/eeg/eegmmidb/S001") / "S001R03.edf"
    (tmp_path / "cut.edf").write_bytes(source.read_bytes()[:1_000_000])
    with pytest.raises(InputError, match=r"cut\.edf: not a readable EDF/EDF\+ file \(.*Filesize"):
        read_edf(tmp_path / "cut.edf")
