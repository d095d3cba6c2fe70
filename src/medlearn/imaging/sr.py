"""DICOM Structured Reports of lung nodules (TID 1500 measurement reports, built and read with highdicom).

Three jobs, each on a CT series given as its pydicom datasets (headers are enough):

- :func:`lidc_marks_sr`: the radiologists' marks of an LIDC-IDRI XML as a TID 1500 report, one volumetric
  ROI group (TID 1411) per reader mark: its contours on the slices of the series as closed polylines
  (SCOORD on the slice each was drawn on), the longest in-plane diameter and the reader's LIDC ratings.
  This is how a PACS holds reader marks; ``medlearn pacs`` reads the nodules back from it.
- :func:`nodule_locations`: the nodules of a stored TID 1500 report (planar or volumetric ROI groups whose
  regions are SCOORD on images of the series, or SCOORD3D): centre in patient mm (the mean of all contour
  points, the definition of the shared data's ``nodule_annotations.csv``) and diameter when measured.
- :func:`prediction_sr`: a model's predictions as a TID 1500 report a viewer shows: per nodule a planar
  ROI group (TID 1410) with the location (a CIRCLE of the nodule's diameter, or a POINT, on the slice
  nearest its centre), the probability (DCM 111047 "Probability of cancer" for a malignancy model, DCM
  122157 "Probability" otherwise), the operating point (DCM 122411 "Threshold Value") and the decision
  (SCT 278201002 "Classification"), and the model as the algorithm (TID 4019: name and version) and as
  the device observer. Its series is described as :data:`RESULT_DESCRIPTION`, which
  :func:`nodule_locations` never reads back as input.

Coordinates: SCOORD graphic data are (column, row) with (0, 0) at the top-left corner of the top-left
pixel (DICOM PS3.3 C.18.6.1.2), so a pixel index ``i`` (LIDC's ``xCoord``/``yCoord``) is ``i + 0.5``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.errors import InputError

#: Manufacturer written into every DICOM object medlearn makes.
MANUFACTURER = "medlearn"
#: SeriesDescription prefix of medlearn's prediction reports (never read back as nodule input).
RESULT_DESCRIPTION = "medlearn prediction"
#: Coding scheme of medlearn's own codes (class names other than benign/malignant).
LOCAL_SCHEME = "99MEDLEARN"
#: Series numbers of what medlearn stores (kept away from a scanner's usual 1..99).
MARKS_SERIES_NUMBER = 900
SR_SERIES_NUMBER = 901
SC_SERIES_NUMBER = 902


@dataclass(frozen=True)
class NoduleLocation:
    """A nodule found in a report or an XML: where it is and how big, and what it is called there."""

    label: str
    """Tracking identifier (LIDC: ``session<N>/<noduleID>``)."""
    center_mm: tuple[float, float, float]
    """Patient coordinates (DICOM LPS, mm)."""
    diameter_mm: float | None = None
    source: str = ""
    """Where it was read from (the report's SOPInstanceUID or the XML path)."""
    details: dict[str, Any] = field(default_factory=dict)


# -- geometry ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plane:
    """Pixel ↔ patient mm of one image (ImagePositionPatient, ImageOrientationPatient, PixelSpacing)."""

    origin: np.ndarray
    row_dir: np.ndarray  # direction of increasing column index
    col_dir: np.ndarray  # direction of increasing row index
    spacing: tuple[float, float]  # (between rows, between columns)

    @classmethod
    def of(cls, ds: Any) -> _Plane:
        try:
            iop = np.array([float(v) for v in ds.ImageOrientationPatient])
            ipp = np.array([float(v) for v in ds.ImagePositionPatient])
            dr, dc = (float(v) for v in ds.PixelSpacing)
        except (AttributeError, TypeError, ValueError):
            raise InputError(
                f"image {ds.get('SOPInstanceUID', '?')}: no ImagePositionPatient/ImageOrientationPatient/"
                "PixelSpacing, so its pixels cannot be placed in patient space"
            ) from None
        return cls(ipp, iop[:3], iop[3:], (dr, dc))

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    def to_mm(self, col_row: np.ndarray) -> np.ndarray:
        """Pixel-index (column, row) points → patient mm."""
        pts = np.atleast_2d(np.asarray(col_row, dtype=np.float64))
        return (
            self.origin
            + pts[:, :1] * self.spacing[1] * self.row_dir[None]
            + pts[:, 1:2] * self.spacing[0] * self.col_dir[None]
        )

    def to_px(self, mm: Sequence[float]) -> tuple[float, float, float]:
        """Patient mm → (column, row) pixel index and the distance (mm) from the image plane."""
        d = np.asarray(mm, dtype=np.float64) - self.origin
        return (
            float(d @ self.row_dir / self.spacing[1]),
            float(d @ self.col_dir / self.spacing[0]),
            float(d @ self.normal),
        )


def nearest_image(images: Sequence[Any], point_mm: Sequence[float]) -> Any:
    """The image of a series whose plane is nearest a patient-mm point."""
    if not images:
        raise InputError("no images to place the nodule on")
    return min(images, key=lambda ds: abs(_Plane.of(ds).to_px(point_mm)[2]))


def _scoord(points_px: np.ndarray) -> np.ndarray:
    return np.asarray(points_px, dtype=np.float32) + 0.5


def _longest_diameter_mm(points_px: np.ndarray, plane: _Plane) -> float:
    pts = plane.to_mm(points_px)
    if len(pts) < 2:
        return 0.0
    diff = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((diff**2).sum(-1)).max())


# -- LIDC XML → SR ----------------------------------------------------------------------------------


def lidc_marks(xml: Path, images: Sequence[Any]) -> list[NoduleLocation]:
    """The reader marks (nodules >= 3 mm) of an LIDC XML that touch the series of ``images``: centre (the
    mean of all their contour points, as ``nodule_annotations.csv``), longest in-plane diameter, ratings."""
    from medlearn.imaging.io.lidc_xml import parse_lidc_xml

    by_z = _images_by_z(images)
    out = []
    for mark in parse_lidc_xml(xml):
        inside = [(r, by_z.get(round(r.z_mm, 2))) for r in mark.rois]
        if not any(ds is not None for _, ds in inside):
            continue
        ref = next(ds for _, ds in inside if ds is not None)
        plane = _Plane.of(ref)
        cx, cy = mark.centroid_px()
        center = plane.to_mm([[cx, cy]])[0] + plane.normal * (mark.centroid_z_mm() - plane.origin[2])
        diameter = max(_longest_diameter_mm(r.points_xy_px, plane) for r in mark.rois if r.inclusion)
        out.append(
            NoduleLocation(
                f"session{mark.reading_session}/{mark.reader_nodule_id}",
                (float(center[0]), float(center[1]), float(center[2])),
                round(diameter, 2),
                str(xml),
                {"characteristics": dict(mark.characteristics), "mark": mark},
            )
        )
    return out


def _images_by_z(images: Sequence[Any]) -> dict[float, Any]:
    return {round(float(ds.ImagePositionPatient[2]), 2): ds for ds in images if "ImagePositionPatient" in ds}


def lidc_marks_sr(
    xml: Path,
    images: Sequence[Any],
    series_number: int = MARKS_SERIES_NUMBER,
) -> Any:
    """A TID 1500 Comprehensive 3D SR holding the LIDC reader marks of ``xml`` on the series ``images``
    (pydicom datasets of one CT series): one volumetric ROI group per mark, its inclusion contours on
    the series' slices as closed polylines, its longest diameter (SCT 81827009, mm) and its LIDC ratings
    (malignancy 1–5 etc., coded in the LIDC scheme ``99LIDC``). The report joins the images' study.

    Raises:
        InputError: no mark of the XML touches the series.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    images = list(images)
    by_z = _images_by_z(images)
    groups = []
    for location in lidc_marks(xml, images):
        mark = location.details["mark"]
        regions = []
        for roi in mark.rois:
            ds = by_z.get(round(roi.z_mm, 2))
            if ds is None or not roi.inclusion or len(roi.points_xy_px) < 1:
                continue
            pts = _scoord(roi.points_xy_px)
            kind = hd.sr.GraphicTypeValues.POLYLINE if len(pts) >= 3 else hd.sr.GraphicTypeValues.POINT
            if len(pts) >= 3:
                pts = np.vstack([pts, pts[:1]])  # closed: first point repeated
            else:
                pts = pts.mean(axis=0, keepdims=True)
            regions.append(hd.sr.ImageRegion(kind, pts, _source_for_region(ds)))
        if not regions:
            continue
        ratings = [
            hd.sr.QualitativeEvaluation(
                hd.sr.CodedConcept(f"LIDC-{name}", "99LIDC", f"LIDC {name}"),
                hd.sr.CodedConcept(f"LIDC-{name}-{value}", "99LIDC", f"{name} {value}"),
            )
            for name, value in sorted(mark.characteristics.items())
        ]
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=location.label),
                referenced_regions=regions,
                finding_type=codes.SCT.Nodule,
                finding_sites=[hd.sr.FindingSite(codes.SCT.Lung)],
                session=f"reading session {mark.reading_session}",
                measurements=[
                    hd.sr.Measurement(
                        name=codes.SCT.Diameter,
                        value=float(location.diameter_mm or 0.0),
                        unit=codes.UCUM.Millimeter,
                    )
                ],
                qualitative_evaluations=ratings,
            )
        )
    if not groups:
        raise InputError(f"{xml}: no reader mark (>= 3 mm) has a contour on this series")
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="LIDC-IDRI^Readers"),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=_ct_chest(),
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=images,
        content=report,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="LIDC-IDRI reader marks",
    )
    return sr


def _ct_chest() -> Any:
    """LOINC 24627-2 CT Chest, the procedure reported."""
    import highdicom as hd

    return hd.sr.CodedConcept("24627-2", "LN", "CT Chest")


def _source_for_region(ds: Any) -> Any:
    import highdicom as hd

    return hd.sr.SourceImageForRegion(str(ds.SOPClassUID), str(ds.SOPInstanceUID))


# -- SR → nodule locations --------------------------------------------------------------------------


def is_prediction_sr(ds: Any) -> bool:
    """Whether a stored SR is one of medlearn's prediction reports (never read back as nodule input)."""
    return str(ds.get("SeriesDescription", "")).startswith(RESULT_DESCRIPTION)


def nodule_locations(sr: Any, images: Sequence[Any]) -> list[NoduleLocation]:
    """The nodules of a TID 1500 report on the series of ``images``: one per planar or volumetric ROI
    group whose regions lie on those images (SCOORD) or in their frame of reference (SCOORD3D). The
    centre is the mean of the regions' points (a circle's or ellipse's centre), the diameter the group's
    SCT "Diameter" measurement (mm, or cm converted), else the longest distance between its points."""
    from pydicom.sr.codedict import codes

    by_uid = {str(ds.SOPInstanceUID): ds for ds in images}
    frames = {str(ds.get("FrameOfReferenceUID", "")) for ds in images} - {""}
    report = _measurement_report(sr)
    groups = [*report.get_planar_roi_measurement_groups(), *report.get_volumetric_roi_measurement_groups()]
    out = []
    for i, group in enumerate(groups, start=1):
        regions = group.roi
        regions = [] if regions is None else list(regions) if isinstance(regions, list | tuple) else [regions]
        points: list[np.ndarray] = []
        for region in regions:
            pts = _region_points_mm(region, by_uid, frames)
            if pts is not None:
                points.append(pts)
        if not points:
            continue
        allpts = np.vstack(points)
        center = allpts.mean(axis=0)
        diameter = None
        for m in group.get_measurements(name=codes.SCT.Diameter):
            unit = str(m.unit.value)
            diameter = float(m.value) * {"mm": 1.0, "cm": 10.0}.get(unit, float("nan"))
            if not math.isfinite(diameter):
                diameter = None
        if diameter is None and len(allpts) > 1:
            diff = allpts[:, None, :] - allpts[None, :, :]
            diameter = round(float(np.sqrt((diff**2).sum(-1)).max()), 2) or None
        out.append(
            NoduleLocation(
                group.tracking_identifier or f"nodule {i}",
                (float(center[0]), float(center[1]), float(center[2])),
                diameter,
                str(sr.get("SOPInstanceUID", "")),
            )
        )
    return out


def _measurement_report(sr: Any) -> Any:
    """The TID 1500 content of an SR dataset (Comprehensive 3D, Comprehensive or Enhanced SR)."""
    import highdicom as hd
    from pydicom.dataset import Dataset

    root = Dataset()
    try:
        for keyword in ("ConceptNameCodeSequence", "ContentSequence", "ValueType", "ContinuityOfContent"):
            setattr(root, keyword, sr[keyword].value)
        if "ContentTemplateSequence" in sr:  # optional for a root: a report may not name its template
            root.ContentTemplateSequence = sr.ContentTemplateSequence
        else:
            template = Dataset()
            template.MappingResource, template.TemplateIdentifier = "DCMR", "1500"
            root.ContentTemplateSequence = [template]
        return hd.sr.MeasurementReport.from_sequence([root], copy=False)
    except (
        Exception
    ) as exc:  # a KeyError for a missing attribute, highdicom's ValueError for another template
        raise InputError(
            f"SR {sr.get('SOPInstanceUID', '?')}: not a TID 1500 measurement report ({exc})"
        ) from None


def _region_points_mm(region: Any, by_uid: dict[str, Any], frames: set[str]) -> np.ndarray | None:
    """A region's points in patient mm: a circle or ellipse as its centre (and, for the diameter, the
    extreme points it gives), other shapes as their vertices; None when the region is not on the series."""
    data = np.asarray(region.value, dtype=np.float64)
    kind = str(region.graphic_type.value)
    if str(region.ValueType) == "SCOORD":  # on an image, named by the IMAGE item it is SELECTED FROM
        try:
            ref = str(region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        except (AttributeError, IndexError):
            return None
        ds = by_uid.get(ref)
        if ds is None:
            return None
        mm = _Plane.of(ds).to_mm(data.reshape(-1, 2) - 0.5)
    else:  # SCOORD3D, in a frame of reference
        if frames and str(region.get("ReferencedFrameOfReferenceUID", "")) not in frames:
            return None
        mm = data.reshape(-1, 3)
    if kind == "CIRCLE":  # centre, then a point on the circle
        return np.vstack([mm[0], mm[1], 2 * mm[0] - mm[1]])
    if kind == "ELLIPSE":  # the ends of the major then the minor axis
        return mm
    if kind == "POLYLINE" and len(mm) > 1 and np.allclose(mm[0], mm[-1]):
        return mm[:-1]
    return mm


# -- predictions → SR -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelIdentity:
    """The model a report names: config name, short manifest hash, ``<model>@<created>``, and the class
    whose probability it gives (a binary model's positive class)."""

    name: str
    version: str
    model: str
    positive: str = "malignant"


def _class_code(name: str) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    known = {"malignant": codes.SCT.Malignant, "benign": codes.SCT.Benign}
    return known.get(name.lower()) or hd.sr.CodedConcept(name[:16], LOCAL_SCHEME, name)


def prediction_sr(
    records: Sequence[dict[str, Any]],
    locations: Sequence[NoduleLocation],
    images: Sequence[Any],
    identity: ModelIdentity,
    series_number: int = SR_SERIES_NUMBER,
) -> Any:
    """A TID 1500 Comprehensive 3D SR of binary predictions on one CT series, one planar ROI group per
    record (``records[i]`` is the prediction at ``locations[i]``): the nodule as a CIRCLE of its diameter
    (a POINT without one) on the slice nearest its centre, the probability, threshold and decision, the
    model (algorithm identification and device observer). Its evidence is the whole series.

    Raises:
        InputError: a record is not a binary prediction (no probability).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    images = list(images)
    algorithm = hd.sr.AlgorithmIdentification(
        name=identity.name, version=identity.version, parameters=[identity.model]
    )
    groups = []
    for record, location in zip(records, locations, strict=True):
        if "probability" not in record:
            raise InputError(
                f"{identity.name}: the PACS report holds binary predictions (probability and decision); "
                f"this model gives {sorted(k for k in record if k in ('probabilities', 'value'))}"
            )
        ds = nearest_image(images, location.center_mm)
        col, row, _ = _Plane.of(ds).to_px(location.center_mm)
        center = _scoord(np.array([[col, row]]))
        if location.diameter_mm:
            radius_px = location.diameter_mm / 2 / float(ds.PixelSpacing[1])
            region = hd.sr.ImageRegion(
                hd.sr.GraphicTypeValues.CIRCLE,
                np.vstack([center, center + np.array([[radius_px, 0.0]], dtype=np.float32)]),
                _source_for_region(ds),
            )
        else:
            region = hd.sr.ImageRegion(hd.sr.GraphicTypeValues.POINT, center, _source_for_region(ds))
        malignancy = identity.positive.lower() == "malignant"
        probability_name = codes.DCM.ProbabilityOfCancer if malignancy else codes.DCM.Probability
        measurements = [
            hd.sr.Measurement(
                name=probability_name,
                value=float(record["probability"]),
                unit=codes.UCUM.NoUnits,
                algorithm_id=algorithm,
            ),
            hd.sr.Measurement(
                name=codes.DCM.ThresholdValue,
                value=float(record.get("threshold", 0.5)),
                unit=codes.UCUM.NoUnits,
                algorithm_id=algorithm,
            ),
        ]
        if location.diameter_mm:
            measurements.append(
                hd.sr.Measurement(
                    name=codes.SCT.Diameter, value=float(location.diameter_mm), unit=codes.UCUM.Millimeter
                )
            )
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=hd.UID(), identifier=str(record.get("unit") or location.label)[:64]
                ),
                referenced_region=region,
                finding_type=codes.SCT.Nodule,
                algorithm_id=algorithm,
                finding_sites=[hd.sr.FindingSite(codes.SCT.Lung)],
                measurements=measurements,
                qualitative_evaluations=[
                    hd.sr.QualitativeEvaluation(codes.SCT.Classification, _class_code(str(record["label"])))
                ],
            )
        )
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[identity.name, identity.version]),
            name=identity.name[:64],
            manufacturer_name=MANUFACTURER,
            model_name=identity.model[:64],
            serial_number=identity.version,
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=_ct_chest(),
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=images,
        content=report,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=f"{RESULT_DESCRIPTION} {identity.name} {identity.version}"[:64],
    )
