"""Parse LIDC-IDRI radiologist read XML (``LidcReadMessage``, namespace ``http://www.nih.gov``).

Each of up to 4 reading sessions (one radiologist each) lists ``unblindedReadNodule`` marks. Only marks of
nodules >= 3 mm carry ``characteristics`` (malignancy 1–5 etc.) and full contours; marks < 3 mm (a single
point) and ``nonNodule`` entries are skipped. Contours are in pixel indices of the referenced slice
(``xCoord`` = column, ``yCoord`` = row) and trace the nodule's outer boundary, so boundary pixels belong to
the mask. A contour with ``inclusion`` FALSE cuts a hole (e.g. an air pocket) out of the same slice.
Slices are matched by ``imageZposition`` (patient z, mm), which equals ImagePositionPatient z in LIDC.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.errors import InputError
from medlearn.imaging.io.volume import Volume

LIDC_NAMESPACE = "http://www.nih.gov"
CHARACTERISTICS = (
    "subtlety",
    "internalStructure",
    "calcification",
    "sphericity",
    "margin",
    "lobulation",
    "spiculation",
    "texture",
    "malignancy",
)
#: How close (mm) a contour's imageZposition must be to a slice's z to belong to it.
Z_MATCH_MM = 0.01


@dataclass(frozen=True, eq=False)
class RoiContour:
    """One closed contour on one slice."""

    z_mm: float
    """imageZposition: patient z (mm) of the slice."""
    sop_uid: str
    """SOPInstanceUID of the slice the contour was drawn on."""
    inclusion: bool
    """True: the contour bounds nodule tissue; False: it bounds a hole to subtract."""
    points_xy_px: np.ndarray
    """float ``(n, 2)`` pixel indices, column ``x`` then row ``y``."""


@dataclass(frozen=True, eq=False)
class ReaderMark:
    """One radiologist's mark of one nodule >= 3 mm."""

    reading_session: int
    """0-based index of the readingSession in the XML file (one radiologist per session)."""
    reader_nodule_id: str
    """noduleID as written by the reader (``Nodule 001``, ``IL057_127364``, ``0``, ...)."""
    series_uid: str
    characteristics: dict[str, int]
    """The LIDC ratings present (keys from :data:`CHARACTERISTICS`)."""
    rois: tuple[RoiContour, ...]

    @property
    def malignancy(self) -> int | None:
        """Reader's malignancy rating, 1 (highly unlikely) … 5 (highly suspicious); not pathology."""
        return self.characteristics.get("malignancy")

    @property
    def n_roi_slices(self) -> int:
        """Number of distinct slices carrying a contour (inclusion and exclusion share a slice)."""
        return len({round(r.z_mm, 3) for r in self.rois})

    def _all_points(self) -> np.ndarray:
        pts = [np.c_[r.points_xy_px, np.full(len(r.points_xy_px), r.z_mm)] for r in self.rois]
        return np.vstack(pts) if pts else np.empty((0, 3))

    def centroid_px(self) -> tuple[float, float]:
        """``(x, y)`` pixel mean of all contour points of all ROIs, exclusion contours included.

        This equal-weight point mean is the definition ``nodule_annotations.csv`` uses (an
        inclusion-only mean or a mean of per-slice centroids differ by up to 0.6 px on LIDC-IDRI-0002).
        """
        pts = self._all_points()
        return (float(pts[:, 0].mean()), float(pts[:, 1].mean()))

    def centroid_z_mm(self) -> float:
        """Patient z (mm) averaged over all contour points, as the CSV's ``centroid_z_mm``."""
        return float(self._all_points()[:, 2].mean())

    def z_range_mm(self) -> tuple[float, float]:
        """Lowest and highest contour z (patient mm)."""
        zs = [r.z_mm for r in self.rois]
        return (min(zs), max(zs))


def _text(elem: ET.Element | None) -> str | None:
    return elem.text.strip() if elem is not None and elem.text is not None else None


def _parse_roi(path: Path, roi: ET.Element, ns: str) -> RoiContour:
    z_text, sop = _text(roi.find(f"{ns}imageZposition")), _text(roi.find(f"{ns}imageSOP_UID"))
    inclusion = (_text(roi.find(f"{ns}inclusion")) or "TRUE").upper() == "TRUE"
    try:
        points = np.array(
            [
                [float(_text(e.find(f"{ns}xCoord")) or "nan"), float(_text(e.find(f"{ns}yCoord")) or "nan")]
                for e in roi.findall(f"{ns}edgeMap")
            ],
            dtype=np.float64,
        ).reshape(-1, 2)
        z_mm = float(z_text) if z_text is not None else float("nan")
    except ValueError as exc:
        raise InputError(f"{path}: malformed roi coordinates ({exc})") from exc
    if not np.isfinite(z_mm) or points.size == 0 or not np.all(np.isfinite(points)):
        raise InputError(f"{path}: roi without imageZposition or edgeMap points (SOP {sop})")
    return RoiContour(z_mm=z_mm, sop_uid=sop or "", inclusion=inclusion, points_xy_px=points)


def parse_lidc_xml(path: Path) -> list[ReaderMark]:
    """All reader marks with characteristics (nodules >= 3 mm), in file order."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: LIDC XML file does not exist")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputError(f"{path}: not an XML file ({exc})") from exc
    if root.tag not in (f"{{{LIDC_NAMESPACE}}}LidcReadMessage", "LidcReadMessage"):
        raise InputError(
            f"{path}: not an LIDC-IDRI CT read (root element {root.tag}, expected LidcReadMessage)"
        )
    ns = f"{{{LIDC_NAMESPACE}}}" if root.tag.startswith("{") else ""
    series_uid = _text(root.find(f"{ns}ResponseHeader/{ns}SeriesInstanceUid"))
    if not series_uid:
        raise InputError(f"{path}: ResponseHeader has no SeriesInstanceUid")
    marks: list[ReaderMark] = []
    for session_idx, session in enumerate(root.findall(f"{ns}readingSession")):
        for nodule in session.findall(f"{ns}unblindedReadNodule"):
            chars_elem = nodule.find(f"{ns}characteristics")
            if chars_elem is None:
                continue
            chars: dict[str, int] = {}
            for child in chars_elem:
                key, value = child.tag.removeprefix(ns), _text(child)
                if value:
                    try:
                        chars[key] = int(value)
                    except ValueError as exc:
                        raise InputError(f"{path}: characteristic {key}={value!r} is not an integer") from exc
            if not chars:
                continue
            rois = tuple(_parse_roi(path, roi, ns) for roi in nodule.findall(f"{ns}roi"))
            if not rois:
                continue
            marks.append(
                ReaderMark(
                    reading_session=session_idx,
                    reader_nodule_id=_text(nodule.find(f"{ns}noduleID")) or "",
                    series_uid=series_uid,
                    characteristics=chars,
                    rois=rois,
                )
            )
    return marks


def _fill_contour(points_xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool ``(rows, cols)``: pixels inside the closed contour plus the contour pixels themselves."""
    from matplotlib.path import Path as MplPath

    rows, cols = shape
    region = np.zeros(shape, dtype=bool)
    closed = np.vstack([points_xy, points_xy[:1]])
    # Boundary: rasterise every segment (LIDC edge maps are usually 8-connected, but not always).
    for (x0, y0), (x1, y1) in zip(closed[:-1], closed[1:]):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        xs = np.rint(np.linspace(x0, x1, n + 1)).astype(int)
        ys = np.rint(np.linspace(y0, y1, n + 1)).astype(int)
        ok = (xs >= 0) & (xs < cols) & (ys >= 0) & (ys < rows)
        region[ys[ok], xs[ok]] = True
    if len(points_xy) >= 3:
        x_lo, y_lo = np.maximum(np.floor(points_xy.min(axis=0)).astype(int), 0)
        x_hi = min(int(np.ceil(points_xy[:, 0].max())), cols - 1)
        y_hi = min(int(np.ceil(points_xy[:, 1].max())), rows - 1)
        if x_hi >= x_lo and y_hi >= y_lo:
            yy, xx = np.mgrid[y_lo : y_hi + 1, x_lo : x_hi + 1]
            inside = MplPath(closed).contains_points(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)
            region[y_lo : y_hi + 1, x_lo : x_hi + 1] |= inside
    return region


def _check_series(mark: ReaderMark, volume: Volume) -> None:
    if volume.series_uid and mark.series_uid and volume.series_uid != mark.series_uid:
        raise InputError(
            f"{volume.source}: volume is series {volume.series_uid} but the LIDC mark "
            f"{mark.reader_nodule_id!r} belongs to series {mark.series_uid}"
        )


def mark_mask(mark: ReaderMark, volume: Volume) -> np.ndarray:
    """bool ``(z, y, x)`` mask of the mark on ``volume``: filled inclusion contours minus exclusions.

    Contours on slices absent from the volume (z not within 0.01 mm of a slice) are ignored, so a mark
    only partly inside a slab gives a partial mask; see :func:`rois_inside`. A hole's own contour pixels
    are removed too (each contour's region is its interior plus its boundary).
    """
    _check_series(mark, volume)
    _, rows, cols = volume.shape
    include = np.zeros(volume.shape, dtype=bool)
    exclude = np.zeros(volume.shape, dtype=bool)
    for roi in mark.rois:
        k = volume.slice_index_of_z(roi.z_mm, Z_MATCH_MM)
        if k is None:
            continue
        target = include if roi.inclusion else exclude
        target[k] |= _fill_contour(roi.points_xy_px, (rows, cols))
    return include & ~exclude


def rois_inside(mark: ReaderMark, volume: Volume) -> int:
    """Number of the mark's distinct ROI slices whose z matches a volume slice within 0.01 mm."""
    zs = {round(r.z_mm, 3) for r in mark.rois}
    return sum(volume.slice_index_of_z(z, Z_MATCH_MM) is not None for z in zs)
