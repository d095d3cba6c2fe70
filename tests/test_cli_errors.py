"""Bad input through the real console script: one line on stderr naming the file/key, exit code 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_data

MEDLEARN = str(Path(sys.executable).with_name("medlearn"))


def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MEDLEARN, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr  # status lines may precede it
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_unknown_config_key(tmp_path):
    proc = run("train", "lung_nodule", "--set", "train.epohcs=2", "--out", tmp_path / "o")
    assert_one_line_error(proc, "train.epohcs", "unknown key")


def test_missing_config_file(tmp_path):
    assert_one_line_error(run("train", tmp_path / "nope.yaml"), "nope.yaml", "not found")


def test_missing_data_root(tmp_path):
    proc = run("train", "lung_nodule", "--set", f"data.root={tmp_path / 'absent'}", "--out", tmp_path / "o")
    assert_one_line_error(proc, "absent", "does not exist")


def test_npz_with_wrong_keys_names_the_file_and_keys(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 28, 28), np.uint8))
    proc = run("train", "cxr_pneumonia", "--data", bad, "--out", tmp_path / "o")
    assert_one_line_error(proc, "bad.npz", "train_images")


def test_not_a_bundle(tmp_path):
    assert_one_line_error(run("info", tmp_path), str(tmp_path), "not a medlearn bundle")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    require_data("imaging/lidc-segmented-nodules-2d")
    out = tmp_path_factory.mktemp("b") / "run"
    proc = run(
        "train",
        "lung_nodule_seed_cnn",
        "--out",
        out,
        "--quiet",
        "--set",
        "train.epochs=1",
        "--set",
        "train.max_train_batches=2",
        "--set",
        "eval.n_bootstrap=20",
    )
    assert proc.returncode == 0, proc.stderr
    return out / "bundle"


def test_predict_on_a_non_dicom_file(bundle, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image")
    assert_one_line_error(run("predict", bundle, junk, "--nodule", "0,0,0", "--diameter", "10"), "notes.txt")


def test_predict_on_a_truncated_dicom(bundle, tmp_path):
    src = require_data("imaging/dicom/CT_small.dcm")
    cut = tmp_path / "cut.dcm"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run("predict", bundle, cut, "--nodule", "0,0,0", "--diameter", "10"), "cut.dcm")


def test_predict_ct_without_annotations_says_what_is_needed(bundle):
    ct = require_data("imaging/lidc-idri-dicom-c2c/LIDC-IDRI-0001")
    assert_one_line_error(run("predict", bundle, ct), "--annotations", "--nodule")


def test_predict_with_unknown_reader_lists_the_readers(bundle):
    ct = require_data("imaging/lidc-idri-dicom-c2c/LIDC-IDRI-0001")
    xml = next(ct.rglob("*.xml"))
    assert_one_line_error(
        run("predict", bundle, ct, "--annotations", xml, "--reader", "nobody"), "--reader nobody", "IL057"
    )


def test_predict_a_series_with_a_missing_slice(bundle, tmp_path):
    series = next(p for p in require_data("imaging/lidc-idri-dicom-c2c/LIDC-IDRI-0001").rglob("*.dcm")).parent
    copy = tmp_path / "gap"
    shutil.copytree(series, copy)
    files = sorted(copy.glob("*.dcm"), key=lambda p: float(p.stem))
    files[len(files) // 2].unlink()
    proc = run("predict", bundle, copy, "--nodule", "55.5,85.6,-116", "--diameter", "10")
    assert_one_line_error(proc, "gap", "spacing")


def test_predict_with_a_flag_the_task_does_not_take_lists_what_it_takes(bundle, tmp_path):
    film = tmp_path / "film.png"
    film.write_bytes(b"")  # never read: the options are checked first
    proc = run("predict", bundle, film, "--fs", "200", "--nodule", "1,2,3", "--diameter", "5")
    assert_one_line_error(
        proc,
        "--fs does not apply to task lung_nodule_malignancy",
        "it takes: annotations, reader, nodule, diameter, series",
    )


def test_predict_nodule_without_diameter_is_refused_by_the_task(bundle):
    ct = require_data("imaging/lidc-idri-dicom-c2c/LIDC-IDRI-0001")
    assert_one_line_error(
        run("predict", bundle, ct, "--nodule", "55.5,85.6,-116"), "--nodule needs --diameter"
    )
    assert_one_line_error(
        run("predict", bundle, ct, "--nodule", "55.5,85.6", "--diameter", "10"),
        "--nodule: expected x,y,z in patient millimetres",
    )
