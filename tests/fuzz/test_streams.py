"""Streams keep going: malformed stdin lines are reported and skipped, a NaN stream is poor signal (never
asystole), pyEDFlib's chatter never reaches stdout, and a full disk is one clear error that leaves the
alarms already written as valid JSON lines. Inputs are built from MIT-BIH record 101 and an eegmmidb EDF
(copies under ``tmp_path``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medlearn.cli import app
from medlearn.signals.monitor import MAX_REPORTED_LINES, AlarmSink, stdin_chunks
from medlearn.signals.stream import Monitor
from tests.conftest import require_data

runner = CliRunner()


@pytest.fixture(scope="module")
def ecg() -> tuple[np.ndarray, float]:
    from medlearn.signals.io import read_wfdb

    rec = read_wfdb(require_data("signals/mitdb") / "101", annotation_extension=None)
    return rec.signal[: int(300 * rec.fs_hz), 0].astype(np.float64), rec.fs_hz


def _lines(values: np.ndarray) -> list[str]:
    return [f"{v:.4f}" for v in values]


def _run(monitor: Monitor, samples: np.ndarray) -> list:
    alarms = []
    for i in range(0, len(samples), 512):
        alarms += monitor.push(samples[i : i + 512])
    return alarms


# -- malformed lines on stdin --------------------------------------------------------------------------

BAD_LINES = {
    100: "hello",
    200: "",
    300: "1e999",
    400: "nan",
    500: "-inf",
    600: "0.1;0.2",
    700: "   ",
    800: "1e300",
}


def test_each_malformed_stdin_line_is_reported_once_and_skipped(ecg):
    signal, fs = ecg
    lines = _lines(signal[: int(40 * fs)])
    for number in sorted(BAD_LINES):
        lines.insert(number - 1, BAD_LINES[number])  # so that it becomes line ``number``
    result = runner.invoke(
        app, ["monitor", "--stdin", "--fs", str(fs), "--speed", "0", "--quiet"], input="\n".join(lines) + "\n"
    )
    assert result.exit_code == 0, result.output
    reports = [line for line in result.stderr.splitlines() if line.startswith("stdin line")]
    assert [int(r.split()[2].rstrip(":")) for r in reports] == sorted(BAD_LINES)
    assert all(r.endswith("; skipped") for r in reports)
    assert "'1e999' is not a finite number" in reports[2] and "empty line" in reports[1]
    assert "'1e300' is not a finite number of plausible size" in reports[7]
    assert all(json.loads(line) for line in result.stdout.splitlines())  # stdout: alarm lines only
    assert "asystole" not in result.stdout  # 5 missing samples in 40 s of sinus rhythm are no asystole


def test_a_flood_of_bad_lines_is_capped_and_totalled():
    errors = io.StringIO()
    text = io.StringIO("0.1\n" + "garbage\n" * 500 + "0.2\n")
    samples = np.concatenate(list(stdin_chunks(text, lead=0, errors=errors)))
    assert len(samples) == 502 and np.isnan(samples[1:-1]).all()  # the timeline keeps its length
    lines = errors.getvalue().splitlines()
    assert len(lines) == MAX_REPORTED_LINES + 2
    assert (
        lines[0]
        == "stdin line 2: 'garbage' is not a finite number of plausible size (a missing sample); skipped"
    )
    assert lines[-1] == "stdin: 500 malformed line(s) skipped in all"


def test_a_missing_lead_is_fatal_only_on_the_first_line():
    from medlearn.errors import InputError

    with pytest.raises(InputError, match="stdin line 1: 1 lead"):
        list(stdin_chunks(io.StringIO("0.1\n0.2\n"), lead=1, errors=io.StringIO()))
    errors = io.StringIO()
    got = np.concatenate(list(stdin_chunks(io.StringIO("0.1,0.5\n0.2\n0.3,0.6\n"), lead=1, errors=errors)))
    assert np.isnan(got[1]) and got[2] == 0.6
    assert errors.getvalue() == "stdin line 2: 1 lead(s), no lead 1; skipped\n"


# -- a NaN stream is poor signal, never asystole -------------------------------------------------------


def test_an_all_nan_stream_is_poor_signal_never_asystole():
    fs = 360.0
    alarms = _run(Monitor(fs), np.full(int(60 * fs), np.nan))
    assert [(a.type, a.state) for a in alarms] == [("poor_signal", "on")]
    assert alarms[0].value == 0.0


def test_a_lead_that_goes_nan_is_poor_signal_and_a_flat_line_still_asystole(ecg):
    signal, fs = ecg
    gone = np.concatenate([signal[: int(60 * fs)], np.full(int(40 * fs), np.nan)])
    types = {a.type for a in _run(Monitor(fs), gone)}
    assert "poor_signal" in types and "asystole" not in types
    flat = np.concatenate([signal[: int(60 * fs)], np.full(int(40 * fs), signal[int(60 * fs)])])
    assert any(a.type == "asystole" and a.state == "on" for a in _run(Monitor(fs), flat))


def test_one_absurd_sample_is_missing_not_a_flat_line(ecg):
    signal, fs = ecg
    stretch = signal[: int(60 * fs)].copy()
    stretch[int(30 * fs)] = 1e300  # squared in the filters it overflowed and faked 10 s of asystole
    assert _run(Monitor(fs), stretch) == []


def test_scattered_missing_samples_change_nothing(ecg):
    signal, fs = ecg
    stretch = signal[: int(120 * fs)].copy()
    clean = [(a.type, a.state) for a in _run(Monitor(fs), stretch)]
    rng = np.random.default_rng(0)
    stretch[rng.choice(len(stretch), size=len(stretch) // 100, replace=False)] = np.nan  # 1 % dropped
    assert [(a.type, a.state) for a in _run(Monitor(fs), stretch)] == clean


# -- pyEDFlib chatter stays off stdout -------------------------------------------------------------------


@pytest.fixture(scope="module")
def truncated_edf(tmp_path_factory) -> Path:
    edf = require_data("signals/eeg/eegmmidb/S001/S001R04.edf")
    data = edf.read_bytes()
    out = tmp_path_factory.mktemp("edf") / "truncated.edf"
    out.write_bytes(data[: len(data) // 2])
    return out


def test_pyedflib_c_chatter_never_reaches_stdout(truncated_edf, capfd):
    from medlearn.errors import InputError
    from medlearn.signals.io.edf import read_edf

    with pytest.raises(InputError, match="not a readable EDF"):
        read_edf(truncated_edf)
    captured = capfd.readouterr()
    assert captured.out == ""  # pyedflib's C library prints "filesize … != …" to fd 1 otherwise
    print("after")  # stdout works again, and nothing buffered inside leaks out later
    assert capfd.readouterr().out == "after\n"


def test_monitor_on_a_truncated_edf_prints_one_error_and_no_chatter(truncated_edf):
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "medlearn",
            "monitor",
            "--record",
            str(truncated_edf),
            "--speed",
            "0",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "truncated.edf" in result.stderr


# -- a full disk -------------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A 64 KiB tmpfs filled but for one page (root only; unmounted afterwards)."""
    if os.geteuid() != 0:
        pytest.skip("a full-disk test needs root to mount a small tmpfs")
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        filler = mount / "filler"
        with filler.open("wb") as fh, contextlib.suppress(OSError):
            for _ in range(64):
                fh.write(b"x" * 1024)
                fh.flush()
        os.truncate(filler, filler.stat().st_size - 4096)  # one 4 KiB page left
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _alarm(i: int) -> dict:
    return {"record_time_s": float(i), "wall_time": "2026-01-01T00:00:00.000+00:00", "type": "asystole"} | {
        "severity": "critical",
        "value": 4.0,
        "state": "on" if i % 2 == 0 else "off",
    }


def test_a_full_disk_is_one_error_and_the_written_alarms_stay_valid(tiny_disk):
    from medlearn.errors import MedlearnError

    path = tiny_disk / "alarms.jsonl"
    sink = AlarmSink(path)
    with pytest.raises(MedlearnError, match="No space left on device") as error:
        for i in range(1000):
            sink.write(_alarm(i))
    sink.close()
    text = path.read_text()
    assert text.endswith("\n")
    written = [json.loads(line) for line in text.splitlines()]
    assert len(written) == sink.written > 20  # a page holds some 28 of these lines
    assert f"the {sink.written} alarm(s) before it are complete JSON lines" in str(error.value)
    assert written[-1] == _alarm(sink.written - 1)


def test_monitor_cli_on_a_full_disk(tiny_disk, ecg):
    signal, fs = ecg
    flat, beats = np.full(int(8 * fs), signal[0]), signal[: int(12 * fs)]
    stream = np.concatenate([beats] + [np.concatenate([flat, beats])] * 24)  # an asystole on/off pair each
    out = tiny_disk / "alarms.jsonl"
    result = runner.invoke(
        app,
        ["monitor", "--stdin", "--fs", str(fs), "--speed", "0", "--alarms", str(out), "--quiet"],
        input="\n".join(_lines(stream)) + "\n",
    )
    assert result.exit_code == 2, result.output
    assert "cannot write alarm" in result.stderr and "No space left on device" in result.stderr
    assert "Traceback" not in result.output
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) > 20 and out.read_text().endswith("\n")
    assert f"the {len(written)} alarm(s) before it are complete JSON lines" in " ".join(result.stderr.split())
