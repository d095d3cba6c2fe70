"""The synthetic chest-CT phantom: real DICOM on disk, read back through the normal reader."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from medlearn.imaging.io.dicom import read_dicom_series
from medlearn.imaging.phantom import (
    PhantomNodule,
    default_origin_mm,
    make_phantom_volume,
    write_phantom_study,
)


def test_written_series_reads_back_identically(tmp_path: Path) -> None:
    nodules = write_phantom_study(tmp_path / "p1", "PH-001", seed=3, n_nodules=3)
    expected, expected_nodules = make_phantom_volume(np.random.default_rng(3), n_nodules=3)
    assert nodules == expected_nodules and len(nodules) == 3
    vol = read_dicom_series(tmp_path / "p1")
    assert vol.hu.shape == (48, 96, 96) and vol.spacing_mm == (2.5, 1.0, 1.0)
    np.testing.assert_array_equal(vol.hu, expected.astype(np.float32))  # int16 -> +1024 -> -1024: lossless
    assert vol.origin_mm == default_origin_mm((48, 96, 96), (2.5, 1.0, 1.0)) == (-47.5, -47.5, -58.75)
    assert vol.patient_id == "PH-001" and vol.direction == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    assert np.diff(vol.z_positions_mm) == pytest.approx(np.full(47, 2.5))


def test_files_are_valid_ct_dicom_with_shuffled_names(tmp_path: Path) -> None:
    write_phantom_study(tmp_path / "p", "PH-002", seed=11)
    files = sorted((tmp_path / "p").glob("*.dcm"))
    assert len(files) == 48
    headers = [pydicom.dcmread(f) for f in files]  # no force=True needed: preamble + file meta present
    z_in_name_order = [float(ds.ImagePositionPatient[2]) for ds in headers]
    assert z_in_name_order != sorted(z_in_name_order) and z_in_name_order != sorted(z_in_name_order)[::-1]
    ds = headers[0]
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian and ds.SOPClassUID == CTImageStorage
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID and ds.Modality == "CT"
    assert (ds.RescaleIntercept, ds.RescaleSlope, ds.pixel_array.dtype) == (-1024, 1, np.int16)
    assert len({h.SOPInstanceUID for h in headers}) == 48
    assert len({(h.StudyInstanceUID, h.SeriesInstanceUID, h.FrameOfReferenceUID) for h in headers}) == 1
    by_z = sorted(headers, key=lambda h: float(h.ImagePositionPatient[2]))
    assert [int(h.InstanceNumber) for h in by_z] == list(range(48, 0, -1))  # head first, like scanners


def test_uids_deterministic_per_seed(tmp_path: Path) -> None:
    def uids(folder: Path) -> set[str]:
        return {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in folder.glob("*.dcm")}

    write_phantom_study(tmp_path / "a", "PH-003", seed=5, n_nodules=1)
    write_phantom_study(tmp_path / "b", "PH-003", seed=5, n_nodules=1)
    write_phantom_study(tmp_path / "c", "PH-003", seed=6, n_nodules=1)
    assert uids(tmp_path / "a") == uids(tmp_path / "b")
    assert not uids(tmp_path / "a") & uids(tmp_path / "c")
    names_a = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names_a == sorted(p.name for p in (tmp_path / "b").iterdir())


def test_nodule_centres_land_on_nodule_voxels(tmp_path: Path) -> None:
    for seed in range(4):
        nodules = write_phantom_study(tmp_path / f"s{seed}", f"PH-{seed}", seed=seed, n_nodules=2)
        vol = read_dicom_series(tmp_path / f"s{seed}")
        for nod in nodules:
            z, r, c = (int(round(v)) for v in vol.world_to_voxel(*nod.center_mm))
            assert 0 <= z < 48 and 0 <= r < 96 and 0 <= c < 96
            core = vol.hu[z, r - 1 : r + 2, c - 1 : c + 2]
            assert core.mean() > -100, (seed, nod)  # soft tissue (~+20..35) or calcified (>=150)
            # mostly lung (< -500 HU) in an annulus 3-6 mm beyond the core radius on the same slice
            # (not all: spicules, vessels and, for nodules near the pleura, the chest wall)
            yy, xx = np.mgrid[0:96, 0:96]
            _, rc, cc = vol.world_to_voxel(*nod.center_mm)
            dist = np.hypot(yy - rc, xx - cc)
            annulus = vol.hu[z][(dist > nod.diameter_mm / 2 + 3) & (dist < nod.diameter_mm / 2 + 6)]
            assert np.mean(annulus < -500) > 0.35, (seed, nod)


def test_tissue_intensities(rng: np.random.Generator) -> None:
    hu, _ = make_phantom_volume(rng, n_nodules=1)
    assert hu.dtype == np.int16 and hu.min() >= -1024 and hu.max() <= 3071
    assert np.median(hu[:, :4, :4]) == pytest.approx(-1000, abs=15)  # air corners
    assert np.median(hu[:, 48, 0]) < -900  # outside the body at the right edge, mid-depth
    lung = hu[24, 30:60, 20:30]  # inside the right lung (image left)
    assert np.median(lung) == pytest.approx(-850, abs=40) and 20 < lung.std() < 300
    body_edge = hu[:, 48, 44:52]  # the midline between the lungs: mediastinal soft tissue
    assert np.median(body_edge) == pytest.approx(40, abs=30)


def test_class_statistics_are_learnable_but_overlap() -> None:
    rng = np.random.default_rng(123)
    diam = {True: [], False: []}
    for k in range(12):
        _, nods = make_phantom_volume(rng, n_nodules=2, malignant=[k % 2 == 0, True], noise_sd_hu=0.0)
        for n in nods:
            diam[n.malignant].append(n.diameter_mm)
    assert len(diam[True]) == 18 and len(diam[False]) == 6
    assert all(8 <= d <= 20 for d in diam[True]) and all(4 <= d <= 10 for d in diam[False])
    assert np.mean(diam[True]) > np.mean(diam[False]) + 3
    with pytest.raises(ValueError, match="malignant has 1 entries for 2 nodules"):
        make_phantom_volume(rng, n_nodules=2, malignant=[True])


def test_malignant_margin_is_irregular() -> None:
    """Spicules reach well beyond the core sphere of a malignant nodule; a benign one stays within ~1 mm."""
    shape, spacing = (64, 96, 96), (1.0, 1.0, 1.0)
    origin = np.array(default_origin_mm(shape, spacing))
    for seed in range(3):
        base, _ = make_phantom_volume(np.random.default_rng(seed), shape, spacing, 0, noise_sd_hu=0.0)
        for malignant in (True, False):
            hu, (nod,) = make_phantom_volume(
                np.random.default_rng(seed), shape, spacing, 1, [malignant], noise_sd_hu=0.0
            )
            zz, yy, xx = np.nonzero(np.abs(hu.astype(int) - base) > 300)  # voxels the nodule changed
            world = np.c_[xx, yy, zz] * 1.0 + origin
            excess = np.linalg.norm(world - np.array(nod.center_mm), axis=1).max() - nod.diameter_mm / 2
            assert (excess > 4.0) if malignant else (excess < 1.2), (seed, malignant, excess)


def test_write_is_fast(tmp_path: Path) -> None:
    write_phantom_study(tmp_path / "warm", "W", seed=0)  # imports, first-call costs
    t0 = time.perf_counter()
    write_phantom_study(tmp_path / "timed", "T", seed=1)
    assert time.perf_counter() - t0 < 0.6  # ~0.1 s on a laptop; generous for loaded CI
    assert isinstance(PhantomNodule((0.0, 0.0, 0.0), 5.0, False), PhantomNodule)
