"""The DICOM-series nodule task on phantom studies: reading, cutting, preprocessing, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlearn.engine.data import Preprocessing
from medlearn.errors import InputError
from medlearn.imaging.demo import write_phantom_dataset
from medlearn.registry import task_class


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantoms")
    write_phantom_dataset(root, n_patients=6)
    return root


def test_units_are_nodules_grouped_by_patient(phantom_root):
    table = task_class("ct_nodule_malignancy")().load(phantom_root)
    assert len(table) == 12
    assert sorted(set(table.groups)) == [f"PHANTOM-{i:03d}" for i in range(6)]
    assert table.targets.sum() == 6  # the demo writes one benign and one malignant nodule per patient
    assert len(table.fingerprint) == 32


def test_preprocessing_gives_a_windowed_cube_centred_on_the_nodule(phantom_root):
    task = task_class("ct_nodule_malignancy")()
    table = task.load(phantom_root)
    pre = Preprocessing(task.preprocessing_spec("cnn3d"))
    for raw in table.raw[:4]:
        cube = pre(raw)
        assert cube.shape == (1, 32, 32, 32) and cube.dtype == np.float32
        assert 0.0 <= cube.min() and cube.max() <= 1.0
        centre = cube[0, 14:18, 14:18, 14:18].mean()
        lung_hu_window_value = (-850 + 1000) / 1400
        assert centre > lung_hu_window_value + 0.3  # nodule tissue, not lung parenchyma


def test_fingerprint_changes_when_a_dicom_file_changes(phantom_root, tmp_path):
    import shutil

    task = task_class("ct_nodule_malignancy")()
    copy = tmp_path / "copy"
    shutil.copytree(phantom_root, copy)
    before = task.load(copy).fingerprint
    victim = next((copy / "PHANTOM-000").glob("*.dcm"))
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # one pixel
    victim.write_bytes(bytes(data))
    assert task.load(copy).fingerprint != before


def test_missing_table_and_bad_rows_name_the_file(phantom_root, tmp_path):
    task = task_class("ct_nodule_malignancy")()
    with pytest.raises(InputError, match="no nodules.csv"):
        task.load(tmp_path)
    (tmp_path / "nodules.csv").write_text("patient_id,series,x_mm,y_mm,z_mm,label\nP1,P1,1,2,3,maybe\n")
    with pytest.raises(InputError, match=r"nodules.csv: line 2: label"):
        task.load(tmp_path)
    (tmp_path / "nodules.csv").write_text("patient_id,series,x_mm,label\nP1,P1,1,0\n")
    with pytest.raises(InputError, match=r"missing column\(s\) y_mm, z_mm"):
        task.load(tmp_path)


def test_a_nodule_outside_the_series_is_an_error(phantom_root):
    from medlearn.imaging.io.dicom import read_dicom_series

    task = task_class("ct_nodule_malignancy")()
    volume = read_dicom_series(phantom_root / "PHANTOM-000")
    with pytest.raises(InputError, match="outside the series"):
        task.cut_box(volume, (0.0, 0.0, 500.0))


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    from medlearn.imaging.demo import run_demo

    outputs = run_demo(tmp_path / "demo", n_patients=12, epochs=2)
    assert outputs.metrics["split"] == "test" and outputs.metrics["unit"] == "nodule"
    assert (tmp_path / "demo" / "predict" / "predictions.json").is_file()
    assert list((tmp_path / "demo" / "predict").glob("*_gradcam.png"))


def test_a_nifti_series_gives_the_same_units_as_its_dicom(phantom_root, tmp_path):
    """A hospital export as NIfTI (RAS) works in nodules.csv in place of the DICOM folder."""
    import csv

    import nibabel as nib

    from medlearn.imaging.io.dicom import read_dicom_series

    vol = read_dicom_series(phantom_root / "PHANTOM-001")
    dz, dy, dx = vol.spacing_mm
    lps = np.eye(4)
    lps[:3, :3] = np.diag([dx, dy, dz])
    lps[:3, 3] = vol.origin_mm
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    nib.save(nib.Nifti1Image(np.transpose(vol.hu, (2, 1, 0)), ras), tmp_path / "p1.nii.gz")
    with (phantom_root / "nodules.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["patient_id"] == "PHANTOM-001"]
    with (tmp_path / "nodules.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([{**r, "series": "p1.nii.gz"} for r in rows])
    task = task_class("ct_nodule_malignancy")()
    from_nifti = task.load(tmp_path)
    from_dicom = [task.cut_box(vol, (float(r["x_mm"]), float(r["y_mm"]), float(r["z_mm"]))) for r in rows]
    for a, b in zip(from_nifti.raw, from_dicom):
        np.testing.assert_allclose(a["hu"], b["hu"])
        assert a["spacing_mm"] == pytest.approx(b["spacing_mm"])
