"""``medlearn deid`` through the real console script: bad input gives one line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_data
from tests.test_cli_errors import assert_one_line_error

MEDLEARN = str(Path(sys.executable).with_name("medlearn"))


def run(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "MEDLEARN_DEID_KEY"}
    environment.update(env or {})
    return subprocess.run(
        [MEDLEARN, *map(str, args)], capture_output=True, text=True, timeout=120, env=environment
    )


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "deid.key"
    path.write_text("00112233445566778899aabbccddeeff" * 2 + "\n")
    return path


def test_missing_input_is_one_line(tmp_path: Path, key_file: Path):
    proc = run("deid", tmp_path / "absent", "--out", tmp_path / "out", "--key-file", key_file)
    assert_one_line_error(proc, "absent", "no such file or folder")


def test_missing_key_is_one_line_and_writes_nothing(tmp_path: Path):
    source = require_data("imaging/dicom/CT_small.dcm")
    proc = run("deid", source, "--out", tmp_path / "out.dcm")
    assert_one_line_error(proc, "no de-identification key", "--key-file")
    assert not (tmp_path / "out.dcm").exists()


def test_bad_key_file_is_one_line(tmp_path: Path):
    source = require_data("imaging/dicom/CT_small.dcm")
    short = tmp_path / "short.key"
    short.write_text("abcd")
    assert_one_line_error(
        run("deid", source, "--out", tmp_path / "o.dcm", "--key-file", short), "short.key", "bytes"
    )


def test_existing_output_needs_force_and_key_from_environment_works(tmp_path: Path, key_file: Path):
    source = require_data("imaging/dicom")
    out = tmp_path / "out"
    first = run("deid", source, "--out", out, "--key-file", key_file, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["dicom"] == 2
    assert_one_line_error(run("deid", source, "--out", out, "--key-file", key_file), str(out), "--force")
    again = run(
        "deid", source, "--out", out, "--force", env={"MEDLEARN_DEID_KEY": key_file.read_text().strip()}
    )
    assert again.returncode == 0, again.stderr
    assert (out / "deid_report.json").exists()


def test_unreadable_dicom_is_one_line_naming_the_file(tmp_path: Path, key_file: Path):
    broken = tmp_path / "in" / "broken.dcm"
    broken.parent.mkdir()
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff")
    assert_one_line_error(
        run("deid", tmp_path / "in", "--out", tmp_path / "out", "--key-file", key_file), "broken.dcm"
    )


def test_output_inside_input_is_refused(tmp_path: Path, key_file: Path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("subject_id\n1\n")
    proc = run("deid", tmp_path / "in", "--out", tmp_path / "in" / "out", "--key-file", key_file)
    assert_one_line_error(proc, "outside the input")
