"""DICOM series reading on the real LIDC-IDRI slabs and pydicom's shipped test files."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from medlearn.errors import InputError
from medlearn.imaging.io.dicom import find_series, read_dicom_series
from tests.conftest import require_data, skip_or_fail_in_ci

LIDC = "imaging/lidc-idri-dicom-c2c"
# patient, n slices, slice spacing, pixel spacing, z of first and last slice (README "imaging")
PATIENTS = [
    ("LIDC-IDRI-0001", 16, 2.5, 0.703125, -132.5, -95.0),
    ("LIDC-IDRI-0002", 12, 1.25, 0.681641, -94.5, -80.75),
    ("LIDC-IDRI-0003", 11, 2.5, 0.820312, -204.0, -179.0),
]


def _series_dir(patient: str) -> Path:
    (series,) = (require_data(LIDC) / patient).glob("*/*")
    return series


def _pydicom_file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        skip_or_fail_in_ci(f"pydicom test file {name} not installed (it ships with the pydicom wheel)")
    return Path(path)


def _copy_slices(src: Path, dst: Path, rng: np.random.Generator, skip_z: float | None = None) -> list[Path]:
    """Copy the .dcm files of ``src`` to ``dst`` under random hex names (never writes under src)."""
    dst.mkdir(parents=True)
    out = []
    for f in sorted(src.glob("*.dcm")):
        if skip_z is not None and float(f.stem) == skip_z:
            continue
        target = dst / f"{int(rng.integers(16**10)):010x}.dcm"
        shutil.copyfile(f, target)
        out.append(target)
    return out


@pytest.mark.parametrize(("patient", "n", "dz", "px", "z0", "z1"), PATIENTS)
def test_lidc_patient_level_folder(patient: str, n: int, dz: float, px: float, z0: float, z1: float) -> None:
    vol = read_dicom_series(require_data(LIDC) / patient)  # patient folder: the series is 2 levels down
    assert vol.hu.dtype == np.float32 and vol.hu.shape == (n, 512, 512)
    assert vol.spacing_mm == pytest.approx((dz, px, px), abs=1e-6)
    assert vol.z_positions_mm == pytest.approx(tuple(z0 + dz * k for k in range(n)), abs=1e-4)
    assert vol.origin_mm[2] == pytest.approx(z0)
    assert vol.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert vol.patient_id == patient and vol.series_uid == _series_dir(patient).name
    # HU: outside-FOV padding at -2048/-3024, air/lung near -1000..-500, soft tissue near 0, bone to 3071
    assert vol.hu.min() in (-2048.0, -3024.0) and 1000 <= vol.hu.max() <= 3071
    padding = vol.hu < -1100  # the corners outside the circular reconstruction field of view
    assert np.mean(padding) == pytest.approx(1 - np.pi / 4, abs=0.01) and np.all(padding[:, :16, :16])
    inside = vol.hu[~padding]
    assert 0.4 < np.mean(inside < -500) < 0.7  # air around the body + lungs
    assert 0.25 < np.mean((inside > -150) & (inside < 150)) < 0.5  # soft tissue


def test_hu_is_raw_times_slope_plus_intercept_per_slice() -> None:
    series = _series_dir("LIDC-IDRI-0001")
    vol = read_dicom_series(series)
    ds = pydicom.dcmread(series / "-110.000000.dcm")
    k = vol.z_positions_mm.index(-110.0)
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(vol.hu[k], expected.astype(np.float32))


def test_slice_order_from_positions_not_names_or_instance_number(tmp_path: Path) -> None:
    series = _series_dir("LIDC-IDRI-0003")
    copies = _copy_slices(series, tmp_path / "shuffled", np.random.default_rng(7))
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(copies)]
    z_by_name = [float(ds.ImagePositionPatient[2]) for ds in headers]
    assert z_by_name != sorted(z_by_name)  # the names really are out of order
    vol = read_dicom_series(tmp_path / "shuffled")
    ref = read_dicom_series(series)
    assert vol.z_positions_mm == ref.z_positions_mm == tuple(sorted(ref.z_positions_mm))
    np.testing.assert_array_equal(vol.hu, ref.hu)
    # InstanceNumber runs the other way (60 at z=-179, 70 at z=-204): the bottom slice comes first
    np.testing.assert_array_equal(vol.hu[0], pydicom.dcmread(series / "-204.000000.dcm").pixel_array - 1024.0)


def test_xml_beside_slices_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    series = _series_dir("LIDC-IDRI-0002")
    with caplog.at_level(logging.INFO, logger="medlearn.imaging.io.dicom"):
        found = find_series(series)
    assert list(found) == [series.name] and len(found[series.name]) == 12
    assert all(p.suffix == ".dcm" for p in found[series.name])
    messages = [r.getMessage() for r in caplog.records]
    assert any("skipped non-DICOM file" in m and m.endswith("71.xml") for m in messages)


def test_data_root_with_three_patients_asks_for_series() -> None:
    with pytest.raises(InputError, match="3 series found") as err:
        read_dicom_series(require_data(LIDC))
    for patient, n, *_ in PATIENTS:
        assert f"{_series_dir(patient).name} ({n} slices)" in str(err.value)


def test_ct_small_single_file() -> None:
    path = require_data("imaging/dicom/CT_small.dcm")
    vol = read_dicom_series(path)
    ds = pydicom.dcmread(path)
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)
    assert vol.hu.shape == (1, 128, 128)
    np.testing.assert_array_equal(vol.hu[0], ds.pixel_array.astype(np.float32) - 1024.0)
    assert vol.hu.min() == 128 - 1024 and vol.hu.max() == 2191 - 1024
    assert vol.spacing_mm == pytest.approx((5.0, 0.661468, 0.661468))  # z from SliceThickness
    assert vol.origin_mm == pytest.approx((-158.135803, -179.035797, -75.699997))
    shipped = read_dicom_series(_pydicom_file("CT_small.dcm"))
    np.testing.assert_array_equal(shipped.hu, vol.hu)


def test_single_file_without_position_warns(tmp_path: Path) -> None:
    ds = pydicom.dcmread(require_data("imaging/dicom/CT_small.dcm"))
    del ds.ImagePositionPatient
    ds.save_as(tmp_path / "noipp.dcm")
    with pytest.warns(UserWarning, match="SliceThickness 5"):
        vol = read_dicom_series(tmp_path / "noipp.dcm")
    assert vol.spacing_mm[0] == 5.0 and vol.hu.shape == (1, 128, 128)


def test_two_series_in_study_folder(tmp_path: Path) -> None:
    series = _series_dir("LIDC-IDRI-0003")
    study = tmp_path / "study"
    _copy_slices(series, study / "a", np.random.default_rng(1))
    new_uid = generate_uid(entropy_srcs=["test-two-series"])
    (study / "b").mkdir()
    for f in sorted(series.glob("*.dcm"))[:5]:  # 5 contiguous slices, rewritten as another series
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = new_uid
        ds.save_as(study / "b" / f.name)
    with pytest.raises(InputError, match=r"2 series found.*--series UID") as err:
        read_dicom_series(study)
    assert f"{series.name} (11 slices)" in str(err.value) and f"{new_uid} (5 slices)" in str(err.value)
    assert str(err.value).startswith(str(study))
    vol = read_dicom_series(study, series_uid=new_uid)
    assert vol.series_uid == new_uid and vol.hu.shape[0] == 5
    assert read_dicom_series(study, series_uid=series.name).hu.shape[0] == 11
    with pytest.raises(InputError, match="series 1.2.3 not found"):
        read_dicom_series(study, series_uid="1.2.3")


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    copies = _copy_slices(_series_dir("LIDC-IDRI-0002"), tmp_path / "s", np.random.default_rng(2))
    victim = copies[4]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=re.escape(str(victim)) + ".*truncated"):
        read_dicom_series(tmp_path / "s")


def test_non_dicom_inputs(tmp_path: Path) -> None:
    readme = tmp_path / "README.txt"
    readme.write_text("not an image\n")
    with pytest.raises(InputError, match=re.escape(f"{readme}: not a DICOM file")):
        read_dicom_series(readme)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}: no DICOM image files found")):
        read_dicom_series(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        read_dicom_series(tmp_path / "missing")


def test_missing_middle_slice_is_a_gap(tmp_path: Path) -> None:
    _copy_slices(_series_dir("LIDC-IDRI-0001"), tmp_path / "s", np.random.default_rng(3), skip_z=-115.0)
    with pytest.raises(InputError, match="inconsistent slice spacing") as err:
        read_dicom_series(tmp_path / "s")
    assert str(err.value).startswith(str(tmp_path / "s"))
    assert "-117.500->-112.500 (5.000 mm)" in str(err.value)


def test_duplicate_position_and_mixed_pixel_spacing(tmp_path: Path) -> None:
    copies = _copy_slices(_series_dir("LIDC-IDRI-0002"), tmp_path / "dup", np.random.default_rng(4))
    shutil.copyfile(copies[0], tmp_path / "dup" / "zz_copy.dcm")
    with pytest.raises(InputError, match="duplicate slice positions"):
        read_dicom_series(tmp_path / "dup")
    copies = _copy_slices(_series_dir("LIDC-IDRI-0002"), tmp_path / "mixed", np.random.default_rng(5))
    ds = pydicom.dcmread(copies[3])
    ds.PixelSpacing = [0.5, 0.5]
    ds.save_as(copies[3])
    with pytest.raises(InputError, match="slices differ in PixelSpacing"):
        read_dicom_series(tmp_path / "mixed")


@pytest.mark.parametrize(
    "name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm"]
)
def test_compressed_transfer_syntaxes_decode(name: str) -> None:
    # JPEG-LS via pylibjpeg-libjpeg, JPEG 2000 via Pillow's openjpeg, RLE via pydicom itself
    ref = pydicom.dcmread(_pydicom_file("MR_small.dcm")).pixel_array
    vol = read_dicom_series(_pydicom_file(name))
    assert pydicom.dcmread(_pydicom_file(name)).file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(vol.hu[0], ref.astype(np.float32))  # MR: no rescale, raw intensity


def test_missing_decoder_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydicom.pixels import get_decoder

    path = _pydicom_file("MR_small_jpeg_ls_lossless.dcm")
    decoder = get_decoder(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", {"pylibjpeg": ("pylibjpeg>=2.0", "pylibjpeg-libjpeg>=2.1")})
    with pytest.raises(InputError, match=re.escape(str(path)) + ".*pip install pylibjpeg pylibjpeg-libjpeg"):
        read_dicom_series(path)


@pytest.mark.filterwarnings("ignore:.*(ImageOrientationPatient|ImagePositionPatient|SliceThickness)")
def test_undecodable_compressed_file() -> None:
    path = _pydicom_file("JPEG-lossy.dcm")  # 12-bit JPEG Extended that libjpeg rejects
    with pytest.raises(InputError, match=re.escape(str(path)) + ": could not decode JPEG Extended"):
        read_dicom_series(path)
