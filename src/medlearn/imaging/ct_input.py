"""The real-CT path: a DICOM series plus a nodule outline → the lung-nodule model's input format.

The LIDC nodule models are trained on segmented, windowed 64×64 axial slices (see the data README:
only nodule pixels non-zero, nodule centred, original pixel scale kept, window undocumented). This module
reproduces that format from a CT as closely as the data allow:

1. read the series into HU (:func:`medlearn.imaging.io.dicom.read_dicom_series`);
2. take a mask: one radiologist's LIDC contours (filled, holes removed), or a sphere of the given
   diameter around a point, intersected with soft tissue (> −600 HU) so that lung parenchyma stays 0
   as in the segmented training images;
3. window HU → 0–255 with ``window_hu`` (default the lung window −1000..400 HU — an **approximation**:
   the training images' exact window is not documented; with it, the training images' median nodule
   pixel (≈210) corresponds to ≈150 HU, plausible for solid nodules);
4. zero everything outside the mask and cut a 64×64 box per slice with the mask's centroid at the
   centre, without resampling (the training images kept the scanner's pixel scale).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.engine.task import PredictInputs, PredictUnit
from medlearn.errors import InputError

CANVAS_PX = 64
SOFT_TISSUE_HU = -600.0


def series_facts(path: Path, series_uid: str | None = None) -> dict[str, str | None]:
    """What the DICOM header says a series is: ``modality`` (CT, MR, …) and ``body_part``
    (BodyPartExamined), upper-case, None when absent. A NIfTI file carries neither (``{}``). Read from
    the first image file of the series (headers only), after :func:`read_volume` accepted the series."""
    import pydicom

    path = Path(path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        return {}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    tags = ["Modality", "BodyPartExamined", "SeriesInstanceUID", "Rows"]
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True, specific_tags=tags)
        except Exception:  # not DICOM (an XML beside the slices): read_volume skipped it too
            continue
        if "Rows" not in ds or (series_uid and str(ds.get("SeriesInstanceUID", "")) != series_uid):
            continue
        return {
            "modality": str(ds.get("Modality", "") or "").strip().upper() or None,
            "body_part": str(ds.get("BodyPartExamined", "") or "").strip().upper() or None,
        }
    return {}


def window_to_uint8(hu: np.ndarray, window_hu: tuple[float, float]) -> np.ndarray:
    lo, hi = window_hu
    return (
        np.clip((np.asarray(hu, dtype=np.float32) - lo) / (hi - lo) * 255.0, 0, 255).round().astype(np.uint8)
    )


def mask_to_stack(
    hu: np.ndarray, mask: np.ndarray, window_hu: tuple[float, float]
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Masked, windowed 64×64 slices (n, 64, 64) uint8 for every slice the mask touches, and the
    placement (largest-area slice index, row0, col0) of the crop on the full CT for overlays."""
    slices = np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))
    if len(slices) == 0:
        raise InputError("the nodule mask is empty on this series (contour outside the image?)")
    _, rows, cols = np.nonzero(mask)
    row0 = int(round(rows.mean())) - CANVAS_PX // 2
    col0 = int(round(cols.mean())) - CANVAS_PX // 2
    stack = np.zeros((len(slices), CANVAS_PX, CANVAS_PX), dtype=np.uint8)
    for i, k in enumerate(slices):
        windowed = window_to_uint8(hu[k], window_hu) * mask[k]
        r_lo, c_lo = max(row0, 0), max(col0, 0)
        r_hi, c_hi = min(row0 + CANVAS_PX, hu.shape[1]), min(col0 + CANVAS_PX, hu.shape[2])
        stack[i, r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0] = windowed[r_lo:r_hi, c_lo:c_hi]
    largest = int(slices[np.argmax(mask[slices].reshape(len(slices), -1).sum(axis=1))])
    return stack, (largest, row0, col0)


def sphere_mask(volume, center_mm: tuple[float, float, float], diameter_mm: float) -> np.ndarray:
    """Voxels within ``diameter_mm / 2`` of a patient-mm point, restricted to soft tissue (> −600 HU)."""
    if diameter_mm <= 0:
        raise InputError(f"--diameter {diameter_mm}: must be positive (mm)")
    zc, rc, cc = volume.world_to_voxel(*center_mm)
    dz, dy, dx = volume.spacing_mm
    z, r, c = np.ogrid[: volume.shape[0], : volume.shape[1], : volume.shape[2]]
    dist2 = ((z - zc) * dz) ** 2 + ((r - rc) * dy) ** 2 + ((c - cc) * dx) ** 2
    mask = (dist2 <= (diameter_mm / 2) ** 2) & (volume.hu > SOFT_TISSUE_HU)
    if not mask.any():
        raise InputError(
            f"{volume.source}: no soft tissue within {diameter_mm} mm of {center_mm} "
            f"(voxel {zc:.1f},{rc:.1f},{cc:.1f}); "
            "check that --nodule is in patient millimetres (x,y,z) and inside the series"
        )
    return mask


def _select_marks(marks: list, annotations: Path, reader: str | None, series_uid: str | None) -> list:
    if series_uid:
        marks = [m for m in marks if not m.series_uid or m.series_uid == series_uid]
    if not marks:
        raise InputError(f"{annotations}: no nodule marks (>= 3 mm, with characteristics) for this series")
    if reader is None:
        return marks
    chosen = [m for m in marks if reader in (m.reader_nodule_id, str(m.reading_session))]
    if not chosen:
        known = ", ".join(f"{m.reading_session}:{m.reader_nodule_id}" for m in marks)
        raise InputError(f"--reader {reader}: not in {annotations} (session:mark ids: {known})")
    return chosen


def _context(
    volume, placement: tuple[int, int, int], window_hu: tuple[float, float]
) -> tuple[np.ndarray, int, int]:
    k, row0, col0 = placement
    return window_to_uint8(volume.hu[k], window_hu), row0, col0


def units_from_ct(
    path: Path,
    annotations: Path | None,
    reader: str | None,
    nodule_mm: tuple[float, float, float] | None,
    diameter_mm: float | None,
    series_uid: str | None,
    window_hu: tuple[float, float],
) -> PredictInputs:
    """Units for ``medlearn predict BUNDLE DICOM_DIR --annotations XML [--reader ID]`` or ``--nodule --diameter``.

    Without ``reader`` every reader mark becomes a unit; marks with no ROI slice inside the series are
    listed as skipped, marks partly inside get a warning.
    """
    from medlearn.imaging.io.any_volume import read_volume
    from medlearn.imaging.io.lidc_xml import mark_mask, parse_lidc_xml, rois_inside

    if annotations is None and nodule_mm is None:
        raise InputError(f"{path}: a CT series needs --annotations LIDC_XML or --nodule x,y,z --diameter MM")
    volume = read_volume(path, series_uid)
    facts = {k: v for k, v in series_facts(path, volume.series_uid).items() if v is not None}
    result = PredictInputs(units=[])
    if nodule_mm is not None:
        mask = sphere_mask(volume, nodule_mm, float(diameter_mm or 0))
        stack, placement = mask_to_stack(volume.hu, mask, window_hu)
        uid = f"{volume.patient_id or path.name}@{','.join(f'{v:g}' for v in nodule_mm)}"
        result.units.append(
            PredictUnit(
                uid,
                stack,
                {"input": str(path), "mask": f"sphere {diameter_mm} mm", "n_slices": len(stack), **facts},
                context=_context(volume, placement, window_hu),
            )
        )
        return result
    marks = _select_marks(parse_lidc_xml(annotations), annotations, reader, volume.series_uid)
    for mark in marks:
        uid = f"{volume.patient_id or path.name}/session{mark.reading_session}/{mark.reader_nodule_id}"
        inside, total = rois_inside(mark, volume), mark.n_roi_slices
        if inside == 0:
            z0, z1 = mark.z_range_mm()
            result.skipped.append(
                {
                    "input": str(path),
                    "unit": uid,
                    "reason": f"nodule outside the series (ROI z {z0:g}..{z1:g} mm)",
                }
            )
            continue
        stack, placement = mask_to_stack(volume.hu, mark_mask(mark, volume), window_hu)
        unit = PredictUnit(
            uid,
            stack,
            {
                "input": str(path),
                "reader_malignancy": mark.malignancy,
                "roi_slices_inside": inside,
                "roi_slices": total,
                **facts,
            },
            context=_context(volume, placement, window_hu),
        )
        if inside < total:
            unit.warnings.append(
                f"only {inside} of {total} ROI slices are inside this series; the model sees a partial nodule"
            )
        result.units.append(unit)
    return result
