"""npz / MedMNIST, PNG stacks, NIfTI and Volume geometry."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medlearn.errors import InputError
from medlearn.imaging.io.nifti import read_nifti
from medlearn.imaging.io.npz import load_medmnist, load_npz
from medlearn.imaging.io.png import read_png_stack
from medlearn.imaging.io.volume import Volume
from tests.conftest import require_data

# --- npz ---------------------------------------------------------------------------------------------


def test_npz_wrong_keys_names_missing_and_present(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((2, 3, 3), np.uint8), y=np.array([0, 1]))
    with pytest.raises(InputError) as err:
        load_npz(path, ["images", "labels", "ids"])
    msg = str(err.value)
    assert msg.startswith(f"{path}: missing keys ['labels', 'ids']")
    assert "keys present: ['images', 'y']" in msg
    arrays = load_npz(path, ["images"])
    assert sorted(arrays) == ["images", "y"] and arrays["y"].tolist() == [0, 1]


def test_npz_not_a_zip_and_pickles_refused(tmp_path: Path) -> None:
    fake = tmp_path / "fake.npz"
    fake.write_bytes(b"\x93NUMPY not a zip")
    with pytest.raises(InputError, match=re.escape(f"{fake}: not an npz file")):
        load_npz(fake, [])
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match=re.escape(f"{pickled}: holds object")):
        load_npz(pickled, ["meta"])


def test_medmnist_real_file_split_sizes_and_classes() -> None:
    data = load_medmnist(require_data("imaging/pneumoniamnist.npz"))
    expected = {"train": (4708, 1214), "val": (524, 135), "test": (624, 234)}  # (n, n normal), README
    for split, (n, n_normal) in expected.items():
        images, labels = data[split]
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert int((labels == 0).sum()) == n_normal and set(np.unique(labels)) == {0, 1}
    assert 0 < data["test"][0].mean() < 255


def test_medmnist_missing_split(tmp_path: Path) -> None:
    path = tmp_path / "partial.npz"
    np.savez(path, train_images=np.zeros((3, 28, 28), np.uint8), train_labels=np.zeros((3, 1), np.uint8))
    with pytest.raises(InputError, match=r"missing keys \['val_images', 'val_labels', 'test_images'"):
        load_medmnist(path)


# --- PNG stacks --------------------------------------------------------------------------------------


def _write_stack(folder: Path, n: int, size: int = 64, mode: str = "L") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        Image.new(mode, (size, size), color=k * 10 if mode == "L" else (k, 0, 0)).save(folder / f"{k}.png")


def test_png_stack_numeric_order(tmp_path: Path) -> None:
    _write_stack(tmp_path / "m", 12)
    (tmp_path / "m" / ".DS_Store").write_bytes(b"\0")
    stack = read_png_stack(tmp_path / "m")
    assert stack.shape == (12, 64, 64) and stack.dtype == np.uint8
    assert stack[:, 0, 0].tolist() == [k * 10 for k in range(12)]  # 10.png after 9.png, not after 1.png


def test_png_stack_errors(tmp_path: Path) -> None:
    _write_stack(tmp_path / "gap", 4)
    (tmp_path / "gap" / "2.png").unlink()
    gap_msg = re.escape(f"{tmp_path / 'gap'}: slice numbering") + r".*missing \[2\]"
    with pytest.raises(InputError, match=gap_msg):
        read_png_stack(tmp_path / "gap")
    _write_stack(tmp_path / "rgb", 2, mode="RGB")
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'rgb' / '0.png'}: Pillow mode RGB")):
        read_png_stack(tmp_path / "rgb")
    _write_stack(tmp_path / "big", 2, size=32)
    with pytest.raises(InputError, match="size 32x32"):
        read_png_stack(tmp_path / "big")
    assert read_png_stack(tmp_path / "big", size=None).shape == (2, 32, 32)
    _write_stack(tmp_path / "named", 1)
    (tmp_path / "named" / "cover.png").write_bytes((tmp_path / "named" / "0.png").read_bytes())
    with pytest.raises(InputError, match="not a slice number"):
        read_png_stack(tmp_path / "named")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'empty'}: no .png files")):
        read_png_stack(tmp_path / "empty")


def test_png_stack_real_lidc_segmented_nodule() -> None:
    root = require_data("imaging/lidc-segmented-nodules-2d")
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows[:5] + [max(rows, key=lambda r: int(r["n_slices"]))]:  # includes a >10-slice mark
        stack = read_png_stack(root / row["image_dir"])
        assert stack.shape == (int(row["n_slices"]), 64, 64)
        assert 0 < np.count_nonzero(stack) < stack.size * 0.5  # segmented: mostly zero background


# --- NIfTI -------------------------------------------------------------------------------------------


def _lps_volume(rng: np.random.Generator) -> Volume:
    return Volume(
        hu=rng.normal(size=(5, 6, 7)).astype(np.float32),
        spacing_mm=(2.5, 0.8, 0.7),
        origin_mm=(-30.0, -20.0, -100.0),
        direction=(1, 0, 0, 0, 1, 0, 0, 0, 1),
        z_positions_mm=tuple(-100.0 + 2.5 * k for k in range(5)),
        series_uid=None,
        patient_id=None,
        source="mem",
    )


def test_nifti_from_dicom_geometry_roundtrip(tmp_path: Path, rng: np.random.Generator) -> None:
    vol = _lps_volume(rng)
    dz, dy, dx = vol.spacing_mm
    lps = np.eye(4)
    lps[:3, :3] = np.diag([dx, dy, dz])
    lps[:3, 3] = vol.origin_mm
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    data = np.transpose(vol.hu, (2, 1, 0))  # (i=col, j=row, k=slice)
    nib.save(nib.Nifti1Image(data, ras), tmp_path / "lps.nii.gz")
    # the same image stored the usual RAS way: flip i and j, move the origin to the opposite corner
    flip = np.eye(4)
    flip[0, 0], flip[1, 1], flip[0, 3], flip[1, 3] = -1, -1, data.shape[0] - 1, data.shape[1] - 1
    nib.save(nib.Nifti1Image(data[::-1, ::-1, :].copy(), ras @ flip), tmp_path / "ras.nii")
    for name in ("lps.nii.gz", "ras.nii"):
        got = read_nifti(tmp_path / name)
        np.testing.assert_array_equal(got.hu, vol.hu)
        assert got.spacing_mm == pytest.approx(vol.spacing_mm)
        assert got.origin_mm == pytest.approx(vol.origin_mm)
        assert got.direction == pytest.approx(vol.direction)
        assert got.z_positions_mm == pytest.approx(vol.z_positions_mm)


def test_nifti_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nii"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(InputError, match=re.escape(f"{bad}: not a readable NIfTI")):
        read_nifti(bad)
    four_d = tmp_path / "4d.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4)), four_d)
    with pytest.raises(InputError, match=r"expected a 3D image, got shape \(2, 2, 2, 3\)"):
        read_nifti(four_d)
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), good)
    truncated = tmp_path / "cut.nii.gz"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(InputError, match=re.escape(str(truncated))):
        read_nifti(truncated)


# --- Volume geometry ---------------------------------------------------------------------------------


def test_axis_aligned_world_voxel_is_exact(rng: np.random.Generator) -> None:
    vol = _lps_volume(rng)
    assert vol.voxel_to_world(0, 0, 0) == vol.origin_mm
    assert vol.world_to_voxel(-30.0 + 0.7 * 3, -20.0 + 0.8 * 2, -92.5)[0] == 3.0  # a slice z: exact index
    got = vol.world_to_voxel(-30.0 + 0.7 * 3, -20.0 + 0.8 * 2, -90.0)
    assert got == pytest.approx((4.0, 2.0, 3.0), abs=1e-12)
    assert vol.voxel_to_world(1.5, 2.0, 3.0) == pytest.approx((-27.9, -18.4, -96.25))
    assert vol.slice_index_of_z(-92.5) == 3 and vol.slice_index_of_z(-92.0) is None


def test_oblique_world_voxel_roundtrip(rng: np.random.Generator) -> None:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q[:, 2] = np.cross(q[:, 0], q[:, 1])  # right-handed: normal = row x column cosine
    base = _lps_volume(rng)
    vol = Volume(
        base.hu, base.spacing_mm, base.origin_mm, tuple(q.T.ravel()), base.z_positions_mm, None, None, "x"
    )
    for idx in rng.uniform(-2, 8, size=(10, 3)):
        world = vol.voxel_to_world(*idx)
        assert vol.world_to_voxel(*world) == pytest.approx(tuple(idx), abs=1e-9)
    step = np.subtract(vol.voxel_to_world(0, 0, 1), vol.origin_mm)  # one column = row cosine * 0.7 mm
    assert step == pytest.approx(q[:, 0] * 0.7)


def test_volume_validates_shapes() -> None:
    with pytest.raises(ValueError, match="z_positions_mm has 2 values for 3 slices"):
        Volume(
            np.zeros((3, 2, 2), np.float32),
            (1, 1, 1),
            (0, 0, 0),
            (1, 0, 0, 0, 1, 0, 0, 0, 1),
            (0, 1),
            None,
            None,
            "",
        )
