"""Read a DICOM CT/MR series from a folder (series, study or patient level) into a :class:`Volume`.

Why not trust file names or InstanceNumber: exports rename files (LIDC names them by z, PACS by hash) and
InstanceNumber often runs head-to-feet. Slices are ordered by ImagePositionPatient projected on the slice
normal, and the stack is checked for gaps, duplicates and mixed geometry, because a silently missing slice
shifts every later slice's z and corrupts any mm-based label.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from medlearn.errors import InputError
from medlearn.imaging.io.volume import Volume

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install pylibjpeg pylibjpeg-libjpeg"
#: Relative deviation from the median slice spacing that counts as a gap (a missing or extra slice).
GAP_TOLERANCE = 0.10
#: Two slices closer than this along the normal (mm) are duplicates.
DUPLICATE_MM = 0.01
_GEOMETRY_TOL = 1e-4
#: Header values longer than this are not read (pydicom ``defer_size``): a header claiming a 4 GB private
#: element must not be allocated before anything is checked.
DEFER_BYTES = 1 << 20
#: The largest volume read (voxels, float32: 4 GiB); Rows × Columns × slices beyond is refused before any
#: array is allocated (a damaged or hostile header can claim 65535 × 65535).
MAX_VOXELS = 1 << 30
#: Uncompressed transfer syntaxes, whose pixel data must hold Rows × Columns × BitsAllocated / 8 bytes.
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


def _read_header(path: Path) -> Dataset | None:
    """Header of ``path`` without pixel data; ``None`` when it is not a DICOM file (no DICM preamble)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=DEFER_BYTES)
    except InvalidDicomError:
        return None
    except Exception as exc:  # garbage after a DICM preamble: pydicom raises many types
        raise InputError(f"{path}: unreadable DICOM header ({type(exc).__name__}: {exc})") from exc
    _check_lengths(path, ds)
    return ds


def find_series(path: Path) -> dict[str, list[Path]]:
    """Group the DICOM image files under ``path`` (searched recursively) by SeriesInstanceUID.

    Only headers are read. Non-DICOM files (LIDC ``.xml``, READMEs) and DICOM objects without an image
    (DICOMDIR, SR, RTSTRUCT) are skipped and logged at INFO. File lists are sorted by path.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: does not exist")
    if path.is_file():
        ds = _read_header(path)
        if ds is None:
            raise InputError(f"{path}: not a DICOM file (no DICM preamble)")
        uid = ds.get("SeriesInstanceUID")
        if not uid or "Rows" not in ds:
            raise InputError(f"{path}: DICOM file holds no image (no SeriesInstanceUID or Rows)")
        return {str(uid): [path]}
    groups: dict[str, list[Path]] = defaultdict(list)
    n_files = 0
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        n_files += 1
        ds = _read_header(file)
        if ds is None:
            logger.info("skipped non-DICOM file %s", file)
            continue
        uid = ds.get("SeriesInstanceUID")
        if not uid or "Rows" not in ds:
            logger.info("skipped DICOM file without an image (SOP class %s): %s", ds.get("SOPClassUID"), file)
            continue
        groups[str(uid)].append(file)
    if not groups:
        raise InputError(f"{path}: no DICOM image files found (searched {n_files} files recursively)")
    return dict(groups)


def _read_full(path: Path, stop_before_pixels: bool) -> Dataset:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=DEFER_BYTES)
    except Exception as exc:  # the file was readable a moment ago in find_series; now it is not
        raise InputError(f"{path}: unreadable DICOM file ({type(exc).__name__}: {exc})") from exc
    _check_lengths(path, ds)
    return ds


def _check_lengths(path: Path, ds: Dataset) -> None:
    """No element may claim more bytes than the file holds (a damaged or hostile header: its value would
    be read, or allocated, at that size). Elements of undefined length (sequences, encapsulated pixel data)
    are delimited by items, not by a length."""
    size = path.stat().st_size
    for tag in ds.keys():
        element = ds.get_item(tag)  # raw, not converted: deferred values stay unread
        length = getattr(element, "length", 0) or 0
        if length != 0xFFFFFFFF and length > size:
            raise InputError(
                f"{path}: element {element.tag} claims {length:,} bytes but the file holds {size:,} "
                "(damaged DICOM header)"
            )


def _select_series(path: Path, series: dict[str, list[Path]], series_uid: str | None) -> str:
    listing = "; ".join(f"{uid} ({len(files)} slices)" for uid, files in sorted(series.items()))
    if series_uid is not None:
        if series_uid not in series:
            raise InputError(f"{path}: series {series_uid} not found; series present: {listing}")
        return series_uid
    if len(series) > 1:
        raise InputError(
            f"{path}: {len(series)} series found, pick one with --series UID (series_uid=...): {listing}"
        )
    return next(iter(series))


def _floats(ds: Dataset, keyword: str, path: Path | None = None) -> tuple[float, ...] | None:
    """``keyword``'s numbers, or None when absent; a value that is not a number is an InputError naming
    ``path`` (or the file the dataset was read from) and the keyword."""
    try:
        value = ds.get(keyword)
    except Exception as exc:  # a malformed value pydicom cannot convert (e.g. a DS of "abc")
        where = path if path is not None else getattr(ds, "filename", "DICOM file")
        raise InputError(f"{where}: {keyword} is unreadable ({type(exc).__name__})") from None
    if value is None or value == "":
        return None
    seq = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        return tuple(float(v) for v in seq)
    except (TypeError, ValueError):
        where = path if path is not None else getattr(ds, "filename", "DICOM file")
        raise InputError(f"{where}: {keyword} {str(value)[:60]!r} is not a number") from None


def _scalar(ds: Dataset, keyword: str, default: float | None, path: Path | None = None) -> float | None:
    values = _floats(ds, keyword, path)
    return values[0] if values else default


def _check_size(folder: Path, files: list[Path], datasets: list[Dataset]) -> tuple[int, int]:
    """Rows and Columns, checked before any pixel array is allocated: positive, a volume of at most
    :data:`MAX_VOXELS`, and (uncompressed files) no more pixel bytes than each file holds."""
    ds0 = datasets[0]
    try:
        rows, cols = int(ds0.Rows), int(ds0.Columns)
        bits = int(ds0.get("BitsAllocated") or 16)
        samples = int(ds0.get("SamplesPerPixel") or 1)
    except (AttributeError, TypeError, ValueError):
        raise InputError(f"{files[0]}: Rows, Columns or BitsAllocated missing or not a number") from None
    if rows < 1 or cols < 1 or bits < 1 or samples < 1:
        raise InputError(f"{files[0]}: image size Rows {rows} × Columns {cols} ({bits} bits) is not an image")
    if rows * cols * len(files) > MAX_VOXELS:
        raise InputError(
            f"{folder}: {len(files)} slices of {rows} × {cols} pixels is more than the {MAX_VOXELS:,} voxels "
            "a volume may hold (a damaged header?)"
        )
    needed = rows * cols * samples * ((bits + 7) // 8)
    for file, ds in zip(files, datasets):
        ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
        size = file.stat().st_size
        if ts in _UNCOMPRESSED and needed > size:
            raise InputError(
                f"{file}: Rows {rows} × Columns {cols} × {bits} bits need {needed:,} bytes of pixel data but "
                f"the file holds {size:,} bytes (truncated file or damaged header)"
            )
    return rows, cols


def _check_spacing(where: Path, name: str, values: tuple[float, ...]) -> None:
    """A spacing (mm) must be a finite positive number: 0 would collapse every mm-based measure."""
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise InputError(
            f"{where}: {name} {list(values)} mm is not a spacing (each value must be a finite number > 0)"
        )


def _pixels(ds: Dataset, path: Path) -> np.ndarray:
    """Decoded stored values of one slice; every failure becomes an :class:`InputError` naming the file."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    ts_name = getattr(ts, "name", str(ts))
    try:
        arr = ds.pixel_array
    except NotImplementedError as exc:
        raise InputError(
            f"{path}: no decoder for transfer syntax {ts_name}; {INSTALL_HINT} (JPEG 2000 also needs "
            f"pylibjpeg-openjpeg) ({exc})"
        ) from exc
    except RuntimeError as exc:
        msg = str(exc)
        if "missing dependencies" in msg or "not supported" in msg:
            raise InputError(
                f"{path}: no decoder available for {ts_name} pixel data; {INSTALL_HINT} (JPEG 2000 also "
                f"needs pylibjpeg-openjpeg)"
            ) from exc
        reason = msg.splitlines()[-1].strip()
        raise InputError(f"{path}: could not decode {ts_name} pixel data: {reason}") from exc
    except ValueError as exc:
        raise InputError(f"{path}: truncated or corrupt pixel data ({exc})") from exc
    except AttributeError as exc:
        raise InputError(f"{path}: DICOM file has no pixel data") from exc
    except Exception as exc:  # plugin-specific decode errors
        raise InputError(f"{path}: could not decode pixel data ({type(exc).__name__}: {exc})") from exc
    if arr.ndim != 2:
        raise InputError(
            f"{path}: expected one grayscale frame, got pixel array of shape {arr.shape} "
            "(multi-frame or colour images are not supported)"
        )
    return arr


def _check_same(folder: Path, files: list[Path], datasets: list[Dataset], keyword: str) -> None:
    """All slices must share ``keyword`` (Rows, PixelSpacing, ...) or the stack is not one volume."""
    ref = _floats(datasets[0], keyword)
    for file, ds in zip(files[1:], datasets[1:]):
        value = _floats(ds, keyword)
        same = (value is None and ref is None) or (
            value is not None
            and ref is not None
            and len(value) == len(ref)
            and np.allclose(value, ref, atol=_GEOMETRY_TOL)
        )
        if not same:
            raise InputError(
                f"{folder}: slices differ in {keyword}: {ref} in {files[0].name} but {value} in {file.name}; "
                "the folder mixes images that do not form one volume"
            )


def _stack_geometry(
    folder: Path, files: list[Path], datasets: list[Dataset]
) -> tuple[list[int], np.ndarray, float, np.ndarray, list[tuple[float, float, float]]]:
    """Slice order, normal-projected positions (mm), z spacing (mm), direction (3x3) and IPPs in order."""
    iop = _floats(datasets[0], "ImageOrientationPatient", files[0])
    if iop is None or len(iop) != 6:
        warnings.warn(f"{folder}: no ImageOrientationPatient; assuming axial (1,0,0,0,1,0)", stacklevel=3)
        iop = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    row_cos, col_cos = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row_cos, col_cos)
    direction = np.stack([row_cos, col_cos, normal])
    ipps = [_floats(ds, "ImagePositionPatient", f) for ds, f in zip(datasets, files)]
    if any(p is not None and not np.all(np.isfinite(p)) for p in ipps):
        raise InputError(f"{folder}: an ImagePositionPatient is not finite (NaN or inf)")
    n_missing = sum(p is None or len(p) != 3 for p in ipps)
    if n_missing == 0:
        proj = np.array([np.dot(p, normal) for p in ipps])  # type: ignore[arg-type]
        order = [int(i) for i in np.argsort(proj, kind="stable")]
        positions = proj[order]
        sorted_ipps = [tuple(ipps[i]) for i in order]  # type: ignore[arg-type]
    elif n_missing == len(ipps):
        thickness = (
            _scalar(datasets[0], "SpacingBetweenSlices", None, files[0])
            or _scalar(datasets[0], "SliceThickness", None, files[0])
            or 1.0
        )
        _check_spacing(files[0], "SpacingBetweenSlices/SliceThickness", (thickness,))
        warnings.warn(
            f"{folder}: no ImagePositionPatient; slices ordered by InstanceNumber and spaced by "
            f"SliceThickness {thickness} mm, patient coordinates are relative to the first slice",
            stacklevel=3,
        )
        order = sorted(
            range(len(files)), key=lambda i: (_scalar(datasets[i], "InstanceNumber", 0.0), files[i].name)
        )
        positions = np.arange(len(order), dtype=np.float64) * thickness
        sorted_ipps = [tuple(float(v) for v in normal * z) for z in positions]  # type: ignore[misc]
    else:
        raise InputError(f"{folder}: {n_missing} of {len(ipps)} slices lack ImagePositionPatient")

    if len(order) == 1:
        ds0 = datasets[0]
        dz = _scalar(ds0, "SpacingBetweenSlices", None, files[0]) or _scalar(
            ds0, "SliceThickness", None, files[0]
        )
        if dz is None or not np.isfinite(dz) or dz <= 0:
            warnings.warn(f"{files[0]}: single slice without SliceThickness; assuming 1 mm", stacklevel=3)
            dz = 1.0
        return order, positions, float(dz), direction, sorted_ipps  # type: ignore[return-value]

    diffs = np.diff(positions)
    dup = np.flatnonzero(diffs < DUPLICATE_MM)
    if dup.size:
        pairs = ", ".join(
            f"{files[order[i]].name} & {files[order[i + 1]].name} at {positions[i]:.3f}" for i in dup[:5]
        )
        raise InputError(
            f"{folder}: duplicate slice positions (mm along the normal): {pairs}; "
            "the folder may hold two reconstructions of one series"
        )
    median = float(np.median(diffs))
    bad = np.flatnonzero(np.abs(diffs - median) > GAP_TOLERANCE * median)
    if bad.size:
        gaps = ", ".join(f"{positions[i]:.3f}->{positions[i + 1]:.3f} ({diffs[i]:.3f} mm)" for i in bad[:5])
        raise InputError(
            f"{folder}: inconsistent slice spacing: median {median:.3f} mm but {gaps}; "
            f"slices missing or mixed (positions {positions[0]:.3f}..{positions[-1]:.3f} mm)"
        )
    steps = np.diff(np.array(sorted_ipps), axis=0)
    in_plane = steps - np.outer(steps @ normal, normal)
    if np.max(np.abs(in_plane)) > 0.01 * median + 1e-3:
        warnings.warn(
            f"{folder}: slice origins shift in-plane between slices (gantry tilt?); the volume is not "
            "resampled, so patient coordinates far from the first slice are approximate",
            stacklevel=3,
        )
    return order, positions, median, direction, sorted_ipps


def read_dicom_series(path: Path, series_uid: str | None = None) -> Volume:
    """Read one series into a :class:`Volume` with ``hu`` = stored·RescaleSlope + RescaleIntercept.

    ``path`` may be a single DICOM file (a 1-slice volume), or a folder at series, study or patient level
    (searched recursively). With several series present, ``series_uid`` is required.
    """
    path = Path(path)
    series = find_series(path)
    uid = _select_series(path, series, series_uid)
    files = series[uid]
    # what error messages name: the series folder, or the file itself for a single-file series
    folder = files[0] if len(files) == 1 else Path(os.path.commonpath([str(f.parent) for f in files]))
    # headers first (geometry checks), pixels one slice at a time: peak memory = the float32 volume
    datasets = [_read_full(file, stop_before_pixels=True) for file in files]
    for keyword in ("Rows", "Columns", "PixelSpacing", "ImageOrientationPatient"):
        _check_same(folder, files, datasets, keyword)

    order, _, dz, direction, sorted_ipps = _stack_geometry(folder, files, datasets)
    pixel_spacing = _floats(datasets[0], "PixelSpacing", files[0])
    if pixel_spacing is None or len(pixel_spacing) != 2:
        warnings.warn(f"{folder}: no PixelSpacing; assuming 1 mm pixels", stacklevel=2)
        pixel_spacing = (1.0, 1.0)
    _check_spacing(files[0], "PixelSpacing", pixel_spacing)
    rows, cols = _check_size(folder, files, datasets)
    hu = np.empty((len(order), rows, cols), dtype=np.float32)
    for k, i in enumerate(order):
        raw = _pixels(_read_full(files[i], stop_before_pixels=False), files[i])
        if raw.shape != (rows, cols):
            raise InputError(
                f"{files[i]}: pixel array {raw.shape} does not match Rows/Columns {(rows, cols)}"
            )
        slope = _scalar(datasets[i], "RescaleSlope", 1.0, files[i])
        intercept = _scalar(datasets[i], "RescaleIntercept", 0.0, files[i])
        if not (np.isfinite(slope) and np.isfinite(intercept)):
            raise InputError(f"{files[i]}: RescaleSlope {slope} / RescaleIntercept {intercept} is not finite")
        hu[k] = raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)

    first = datasets[order[0]]
    return Volume(
        hu=hu,
        spacing_mm=(float(dz), float(pixel_spacing[0]), float(pixel_spacing[1])),
        origin_mm=tuple(float(v) for v in sorted_ipps[0]),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in direction.ravel()),
        z_positions_mm=tuple(float(p[2]) for p in sorted_ipps),
        series_uid=uid,
        patient_id=str(first.get("PatientID")) if first.get("PatientID") else None,
        source=str(path),
    )
