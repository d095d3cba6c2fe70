"""LIDC-IDRI radiologist XML: reproduce nodule_annotations.csv from the 3 real XMLs, and mask filling."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from medlearn.errors import InputError
from medlearn.imaging.io.dicom import read_dicom_series
from medlearn.imaging.io.lidc_xml import (
    CHARACTERISTICS,
    ReaderMark,
    RoiContour,
    mark_mask,
    parse_lidc_xml,
    rois_inside,
)
from medlearn.imaging.io.volume import Volume
from tests.conftest import require_data

LIDC = "imaging/lidc-idri-dicom-c2c"


@pytest.fixture(scope="module")
def lidc() -> dict[str, tuple[list[ReaderMark], Volume]]:
    """Per patient: parsed marks and the slab volume (read once, ~0.2 s for all three)."""
    out = {}
    for xml in sorted(require_data(LIDC).glob("*/*/*/*.xml")):
        out[xml.parts[-4]] = (parse_lidc_xml(xml), read_dicom_series(xml.parent))
    return out


@pytest.fixture(scope="module")
def csv_rows() -> list[dict[str, str]]:
    with open(require_data(LIDC) / "nodule_annotations.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_parser_reproduces_nodule_annotations_csv(lidc, csv_rows) -> None:  # type: ignore[no-untyped-def]
    marks = {
        (m.series_uid, m.reading_session, m.reader_nodule_id): (m, vol)
        for patient_marks, vol in lidc.values()
        for m in patient_marks
    }
    assert len(marks) == len(csv_rows) == 19  # 4 + 2 + 13 marks of nodules >= 3 mm
    for row in csv_rows:
        mark, vol = marks[(row["series_uid"], int(row["reading_session"]), row["reader_nodule_id"])]
        for key in CHARACTERISTICS:
            assert mark.characteristics[key] == int(row[key]), (row["reader_nodule_id"], key)
        assert mark.malignancy == int(row["malignancy"])
        assert mark.n_roi_slices == int(row["n_roi_slices"])
        assert mark.z_range_mm() == (float(row["z_min_mm"]), float(row["z_max_mm"]))
        cx, cy = mark.centroid_px()
        # the CSV rounds to 0.1 px: equal-weight mean of all points matches to rounding
        assert abs(cx - float(row["centroid_x_px"])) <= 0.051
        assert abs(cy - float(row["centroid_y_px"])) <= 0.051
        assert mark.centroid_z_mm() == pytest.approx(float(row["centroid_z_mm"]), abs=0.006)
        x_mm, y_mm, _ = vol.voxel_to_world(0, cy, cx)
        expected_mm = (float(row["centroid_x_mm"]), float(row["centroid_y_mm"]))
        assert (x_mm, y_mm) == pytest.approx(expected_mm, abs=0.01)
        assert rois_inside(mark, vol) == int(row["roi_slices_in_included_slab"])


def test_exclusion_contours_count_once_per_slice(lidc) -> None:  # type: ignore[no-untyped-def]
    (mark,) = [m for m in lidc["LIDC-IDRI-0002"][0] if m.reader_nodule_id == "MI014_11691"]
    assert len(mark.rois) == 30 and mark.n_roi_slices == 28
    assert sum(not r.inclusion for r in mark.rois) == 2
    assert all(r.points_xy_px.ndim == 2 and r.points_xy_px.shape[1] == 2 for r in mark.rois)


@pytest.mark.parametrize("patient", ["LIDC-IDRI-0001", "LIDC-IDRI-0003"])
def test_mark_mask_of_fully_inside_nodules(lidc, patient: str) -> None:  # type: ignore[no-untyped-def]
    marks, vol = lidc[patient]
    inside = [m for m in marks if rois_inside(m, vol) == m.n_roi_slices > 0]
    assert len(inside) == 4  # 0001_g1 and 0003_g2: all 4 readers
    for mark in inside:
        mask = mark_mask(mark, vol)
        assert mask.shape == vol.hu.shape and mask.dtype == bool
        assert int(mask.any(axis=(1, 2)).sum()) == mark.n_roi_slices
        volume_mm3 = mask.sum() * float(np.prod(vol.spacing_mm))
        assert 2_000 < volume_mm3 < 15_000  # ~16-30 mm equivalent diameter: the large LIDC nodules
        zz, rr, cc = np.nonzero(mask)
        cx, cy = mark.centroid_px()
        assert abs(cc.mean() - cx) < 2.0 and abs(rr.mean() - cy) < 2.0
        assert -500 < float(vol.hu[mask].mean()) < 50  # nodule tissue + lung at the outer boundary
        # the mask sits on the nodule: far denser than the lung ring 2-6 voxels around it (~ -800 HU)
        crop = (slice(None), slice(rr.min() - 8, rr.max() + 9), slice(cc.min() - 8, cc.max() + 9))
        hu, m = vol.hu[crop], mask[crop]
        ring = binary_dilation(m, iterations=6) & ~binary_dilation(m, iterations=2)
        assert float(np.median(hu[ring])) < -750
        assert float(np.median(hu[m])) > float(np.median(hu[ring])) + 250


def test_partial_and_outside_marks(lidc) -> None:  # type: ignore[no-untyped-def]
    marks, vol = lidc["LIDC-IDRI-0002"]
    for mark in marks:  # 0002_g1: 7 of 23-28 ROI slices inside the 12-slice slab
        assert rois_inside(mark, vol) == 7
        assert int(mark_mask(mark, vol).any(axis=(1, 2)).sum()) == 7
    outside = [m for m in lidc["LIDC-IDRI-0003"][0] if rois_inside(m, lidc["LIDC-IDRI-0003"][1]) == 0]
    assert len(outside) == 9 and not any(mark_mask(m, lidc["LIDC-IDRI-0003"][1]).any() for m in outside)


def _toy_volume() -> Volume:
    return Volume(
        hu=np.zeros((2, 20, 20), np.float32),
        spacing_mm=(2.0, 1.0, 1.0),
        origin_mm=(0.0, 0.0, 10.0),
        direction=(1, 0, 0, 0, 1, 0, 0, 0, 1),
        z_positions_mm=(10.0, 12.0),
        series_uid="1.2",
        patient_id=None,
        source="toy",
    )


def _square(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def test_mask_fills_boundary_and_subtracts_holes() -> None:
    mark = ReaderMark(
        reading_session=0,
        reader_nodule_id="toy",
        series_uid="1.2",
        characteristics={"malignancy": 3},
        rois=(
            RoiContour(z_mm=12.0, sop_uid="a", inclusion=True, points_xy_px=_square(2, 3, 12, 13)),
            RoiContour(z_mm=12.0, sop_uid="a", inclusion=False, points_xy_px=_square(5, 6, 8, 9)),
            RoiContour(z_mm=99.0, sop_uid="b", inclusion=True, points_xy_px=_square(0, 0, 5, 5)),
        ),
    )
    mask = mark_mask(mark, _toy_volume())
    assert not mask[0].any() and mask[1].sum() == 11 * 11 - 4 * 4  # boundary pixels included in both
    assert mask[1, 3, 2] and mask[1, 13, 12] and not mask[1, 7, 6] and not mask[1, 2, 2]
    assert rois_inside(mark, _toy_volume()) == 1 and mark.n_roi_slices == 2 and mark.malignancy == 3
    other = ReaderMark(0, "x", "9.9", {}, mark.rois)
    with pytest.raises(InputError, match="toy: volume is series 1.2"):
        mark_mask(other, _toy_volume())


def test_bad_xml_inputs(tmp_path: Path) -> None:
    text = tmp_path / "notes.xml"
    text.write_text("this is not xml <")
    with pytest.raises(InputError, match=re.escape(f"{text}: not an XML file")):
        parse_lidc_xml(text)
    other = tmp_path / "other.xml"
    other.write_text('<?xml version="1.0"?><IdriReadMessage xmlns="http://www.nih.gov"/>')
    with pytest.raises(InputError, match=re.escape(f"{other}: not an LIDC-IDRI CT read")):
        parse_lidc_xml(other)
    with pytest.raises(InputError, match="does not exist"):
        parse_lidc_xml(tmp_path / "missing.xml")
