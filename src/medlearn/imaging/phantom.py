"""A synthetic chest-CT phantom with benign and malignant lung nodules, written as a real DICOM series.

Why: the real LIDC slabs hold only a handful of nodules, too few to train or smoke-test a 3D classifier
end to end. The phantom exercises the same path as hospital data (DICOM files with shuffled names →
:func:`~medlearn.imaging.io.dicom.read_dicom_series` → HU volume) and has a learnable but non-trivial
label: benign nodules are small (4–10 mm), smooth and often calcified; malignant ones are larger
(8–20 mm, the sizes overlap), lobulated and spiculated, of soft-tissue density. All sizes are in mm,
intensities in Hounsfield units; patient coordinates are DICOM LPS (x left, y posterior, z head).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

DEFAULT_SHAPE = (48, 96, 96)
DEFAULT_SPACING_MM = (2.5, 1.0, 1.0)
HU_MIN, HU_MAX = -1024, 3071  # what int16 storage with intercept -1024 and 12-bit range can hold


@dataclass(frozen=True)
class PhantomNodule:
    """Ground truth of one synthetic nodule."""

    center_mm: tuple[float, float, float]
    """Patient (x, y, z) in mm of the nodule centre."""
    diameter_mm: float
    """Diameter of the core sphere (spicules extend beyond it)."""
    malignant: bool


def default_origin_mm(shape: Sequence[int], spacing_mm: Sequence[float]) -> tuple[float, float, float]:
    """Patient (x, y, z) of voxel (0, 0, 0) that puts the volume centre at the patient origin."""
    nz, ny, nx = shape
    dz, dy, dx = spacing_mm
    return (-(nx - 1) / 2 * dx, -(ny - 1) / 2 * dy, -(nz - 1) / 2 * dz)


def _blend(vol: np.ndarray, frac: np.ndarray, value: np.ndarray | float, box: tuple[slice, ...]) -> None:
    """Partial-volume mix ``value`` into ``vol[box]`` with weights ``frac`` in [0, 1]."""
    vol[box] = vol[box] * (1.0 - frac) + value * frac


def _box(center: np.ndarray, radius_mm: float, coords: list[np.ndarray]) -> tuple[slice, ...]:
    """Voxel slices (z, y, x) of the cube of half-size ``radius_mm`` around patient ``center`` (x, y, z)."""
    out = []
    for axis_coords, c in zip(coords, (center[2], center[1], center[0])):
        lo = int(np.searchsorted(axis_coords, c - radius_mm))
        hi = int(np.searchsorted(axis_coords, c + radius_mm, side="right"))
        out.append(slice(max(lo, 0), min(hi, len(axis_coords))))
    return tuple(out)


def _offsets(box: tuple[slice, ...], coords: list[np.ndarray], center: np.ndarray) -> tuple[np.ndarray, ...]:
    zc, yc, xc = coords
    return (
        xc[box[2]][None, None, :] - center[0],
        yc[box[1]][None, :, None] - center[1],
        zc[box[0]][:, None, None] - center[2],
    )


def _add_vessels(
    rng: np.random.Generator,
    vol: np.ndarray,
    lungs: np.ndarray,
    coords: list[np.ndarray],
    hila: list[np.ndarray],
    n_per_lung: int,
    n_blobs: int,
) -> None:
    """Vessels (~+40 HU blood), clipped to the lungs: straight tubes (radius 0.5–1.5 mm) radiating from
    each hilum, plus small blobs (radius 1–2.5 mm) that mimic vessels seen end-on, i.e. tiny nodules."""
    lung_float = lungs.astype(np.float64)
    for hilum in hila:
        for _ in range(n_per_lung):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            length, radius = rng.uniform(15, 50), rng.uniform(0.5, 1.5)
            a = hilum + rng.normal(scale=3.0, size=3)
            box = _box(a + direction * length / 2, length / 2 + radius + 1, coords)
            dx, dy, dz = _offsets(box, coords, a)
            t = np.clip(dx * direction[0] + dy * direction[1] + dz * direction[2], 0, length)
            dist = np.sqrt(
                (dx - t * direction[0]) ** 2 + (dy - t * direction[1]) ** 2 + (dz - t * direction[2]) ** 2
            )
            _blend(vol, np.clip(radius + 0.5 - dist, 0.0, 1.0) * lung_float[box], 40.0, box)
    lung_idx = np.flatnonzero(lungs)
    for flat in rng.choice(lung_idx, size=min(n_blobs, lung_idx.size), replace=False):
        k, r, c = np.unravel_index(flat, lungs.shape)
        centre, radius = np.array([coords[2][c], coords[1][r], coords[0][k]]), rng.uniform(1.0, 2.5)
        box = _box(centre, radius + 1, coords)
        dx, dy, dz = _offsets(box, coords, centre)
        dist = np.sqrt(dx**2 + dy**2 + dz**2)
        _blend(vol, np.clip(radius + 0.5 - dist, 0.0, 1.0) * lung_float[box], 40.0, box)


def _nodule(
    rng: np.random.Generator,
    vol: np.ndarray,
    coords: list[np.ndarray],
    center: np.ndarray,
    diameter: float,
    malignant: bool,
) -> None:
    """Draw one nodule: smooth (benign) or lobulated + spiculated (malignant) with a 1 mm soft edge."""
    r0 = diameter / 2
    spikes: list[tuple[np.ndarray, float, float]] = []  # (direction, length beyond core mm, half-width mm)
    if malignant:
        harmonics = [(m, rng.uniform(0.04, 0.12), rng.uniform(0, 2 * np.pi)) for m in range(2, 6)]
        polar = (rng.uniform(0.05, 0.15), rng.uniform(0, 2 * np.pi))
        for _ in range(int(rng.integers(6, 13))):
            s = rng.normal(size=3)
            spikes.append((s / np.linalg.norm(s), rng.uniform(0.6, 1.4) * r0 + 2, rng.uniform(0.6, 1.4)))
        reach = r0 * 2.6 + 4
    else:
        axes = rng.uniform(0.9, 1.1, size=3)
        reach = r0 * 1.2 + 2
    box = _box(center, reach, coords)
    dx, dy, dz = _offsets(box, coords, center)
    dist = np.sqrt(dx**2 + dy**2 + dz**2) + 1e-6
    if malignant:
        phi, theta = np.arctan2(dy, dx), np.arccos(np.clip(dz / dist, -1, 1))
        mod = sum(a * np.cos(m * phi + p) * np.sin(theta) for m, a, p in harmonics)
        r_eff = r0 * (1 + mod + polar[0] * np.cos(2 * theta + polar[1]))
        frac = np.clip(r_eff - dist + 0.5, 0.0, 1.0)
        for s, length, width in spikes:  # tapered cones from inside the core out to r0 + length
            t = dx * s[0] + dy * s[1] + dz * s[2]
            perp = np.sqrt(np.maximum(dist**2 - t**2, 0.0))
            half_width = width * np.clip(1 - (t - 0.8 * r0) / length, 0, 1) * (t > 0)
            frac = np.maximum(frac, np.clip(half_width - perp + 0.5, 0.0, 1.0) * (half_width > 0))
        texture = gaussian_filter(rng.normal(size=frac.shape), 1.0) * 40.0
        _blend(vol, frac, 20.0 + texture, box)
    else:
        scaled = np.sqrt((dx / axes[0]) ** 2 + (dy / axes[1]) ** 2 + (dz / axes[2]) ** 2)
        frac = np.clip(r0 - scaled + 0.5, 0.0, 1.0)
        calcified = rng.random() < 0.6
        _blend(vol, frac, rng.uniform(150, 300) if calcified else 35.0, box)
        if calcified and rng.random() < 0.5:  # central "popcorn"/bull's-eye core
            _blend(vol, np.clip(0.5 * r0 - scaled + 0.5, 0.0, 1.0), 400.0, box)


def make_phantom_volume(
    rng: np.random.Generator,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing_mm: tuple[float, float, float] = DEFAULT_SPACING_MM,
    n_nodules: int = 2,
    malignant: Sequence[bool] | None = None,
    origin_mm: tuple[float, float, float] | None = None,
    noise_sd_hu: float = 20.0,
) -> tuple[np.ndarray, list[PhantomNodule]]:
    """int16 HU volume ``(z, y, x)`` of a small chest with ``n_nodules`` nodules, and their ground truth.

    ``malignant`` fixes each nodule's class (default: each is malignant with probability 0.5).
    ``origin_mm`` is the patient (x, y, z) of voxel (0, 0, 0); the axes are axial LPS, unrotated.
    """
    if malignant is not None and len(malignant) != n_nodules:
        raise ValueError(f"malignant has {len(malignant)} entries for {n_nodules} nodules")
    nz, ny, nx = shape
    dz, dy, dx = spacing_mm
    origin = np.asarray(origin_mm if origin_mm is not None else default_origin_mm(shape, spacing_mm), float)
    coords = [origin[2] + np.arange(nz) * dz, origin[1] + np.arange(ny) * dy, origin[0] + np.arange(nx) * dx]
    fov_x, fov_y, fov_z = nx * dx, ny * dy, nz * dz
    cx, cy, cz = (c.mean() for c in (coords[2], coords[1], coords[0]))
    x, y, z = coords[2][None, None, :] - cx, coords[1][None, :, None] - cy, coords[0][:, None, None] - cz

    vol = np.full(shape, -1000.0, dtype=np.float64)
    body_ax, body_ay = fov_x * rng.uniform(0.44, 0.48), fov_y * rng.uniform(0.34, 0.38)
    body = ((x / body_ax) ** 2 + (y / body_ay) ** 2 <= 1.0) & np.ones_like(z, dtype=bool)
    fat = (x / (body_ax * 0.93)) ** 2 + (y / (body_ay * 0.91)) ** 2 > 1.0
    vol[body] = 40.0
    vol[body & fat] = -100.0
    spine = (x / (0.06 * fov_x)) ** 2 + ((y - 0.25 * fov_y) / (0.06 * fov_y)) ** 2 <= 1.0  # +y = posterior
    vol[spine & np.ones_like(z, dtype=bool)] = 400.0

    lung_ax, lung_ay, lung_az = fov_x * 0.19, fov_y * 0.26, fov_z * 0.6
    lung_centres = [np.array([s * fov_x * 0.22 + cx, cy - 0.02 * fov_y, cz + 0.1 * fov_z]) for s in (-1, 1)]
    lungs = np.zeros(shape, dtype=bool)
    for c in lung_centres:
        lungs |= (
            ((x + cx - c[0]) / lung_ax) ** 2
            + ((y + cy - c[1]) / lung_ay) ** 2
            + ((z + cz - c[2]) / lung_az) ** 2
        ) <= 1.0
    texture = gaussian_filter(rng.normal(size=shape), (0.6, 1.5, 1.5))
    parenchyma = -850.0 + texture * (35.0 / texture.std())  # ~35 HU sd, correlated over ~3 mm
    vol[lungs] = parenchyma[lungs]
    hila = [c + np.array([-np.sign(c[0] - cx) * lung_ax * 0.6, 0.0, 0.0]) for c in lung_centres]
    _add_vessels(rng, vol, lungs, coords, hila, n_per_lung=16, n_blobs=12)

    nodules: list[PhantomNodule] = []
    for k in range(n_nodules):
        is_malignant = bool(malignant[k]) if malignant is not None else bool(rng.random() < 0.5)
        diameter = float(rng.uniform(8.0, 20.0) if is_malignant else rng.uniform(4.0, 10.0))
        r = diameter / 2
        for _ in range(500):
            c = lung_centres[int(rng.integers(2))]
            u = rng.uniform(-1, 1, size=3)
            if u @ u > 1:
                continue
            centre = c + u * np.array([lung_ax - r - 1, lung_ay - r - 1, lung_az - r - 1])
            inside_z = coords[0][0] + r + dz <= centre[2] <= coords[0][-1] - r - dz
            apart = all(
                np.linalg.norm(centre - np.array(n.center_mm)) > r + n.diameter_mm / 2 + 5 for n in nodules
            )
            if inside_z and apart and lung_ax > r + 1:
                break
        else:
            raise ValueError(
                f"could not place a {diameter:.1f} mm nodule in a {shape} volume; use a larger shape"
            )
        _nodule(rng, vol, coords, centre, diameter, is_malignant)
        centre_mm = (float(centre[0]), float(centre[1]), float(centre[2]))
        nodules.append(PhantomNodule(centre_mm, round(diameter, 3), is_malignant))

    vol += rng.normal(scale=noise_sd_hu, size=shape)
    return np.clip(np.rint(vol), HU_MIN, HU_MAX).astype(np.int16), nodules


def write_phantom_study(
    folder: Path, patient_id: str, seed: int, n_nodules: int = 2, **kw: Any
) -> list[PhantomNodule]:
    """Write one phantom CT series as ``.dcm`` files into ``folder`` and return its nodules.

    Files get random hex names (not in z order, on purpose) and InstanceNumber runs head-to-feet, so
    only ImagePositionPatient gives the right order — as with real exports. UIDs are deterministic in
    ``(patient_id, seed)``. ``kw`` goes to :func:`make_phantom_volume` (shape, spacing_mm, malignant, ...).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filewriter import dcmwrite
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    shape = tuple(kw.pop("shape", DEFAULT_SHAPE))
    spacing = tuple(float(s) for s in kw.pop("spacing_mm", DEFAULT_SPACING_MM))
    origin = kw.pop("origin_mm", None) or default_origin_mm(shape, spacing)
    hu, nodules = make_phantom_volume(
        np.random.default_rng(seed),
        shape=shape,
        spacing_mm=spacing,  # type: ignore[arg-type]
        n_nodules=n_nodules,
        origin_mm=origin,
        **kw,
    )

    def uid(*parts: object) -> str:
        return generate_uid(entropy_srcs=["medlearn-phantom", patient_id, str(seed), *map(str, parts)])

    study_uid, series_uid, frame_uid = uid("study"), uid("series"), uid("frame")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = "20000101"
    ds.Modality = "CT"
    ds.Manufacturer = "medlearn synthetic phantom"
    ds.PatientName = f"PHANTOM^{patient_id}"
    ds.PatientID = patient_id
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = f"{spacing[0]:g}"
    ds.KVP = "120"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.StudyID, ds.SeriesNumber = "1", 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = shape[1], shape[2]
    ds.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[2]:g}"]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.WindowCenter, ds.WindowWidth = -600, 1500
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"

    folder.mkdir(parents=True, exist_ok=True)
    # unique random hex names, deliberately unrelated to z order
    names = np.random.default_rng([seed, 0xD1C0]).choice(16**8, size=shape[0], replace=False)
    raw = (hu.astype(np.int32) + 1024).astype("<i2")
    for k in range(shape[0]):
        z = origin[2] + k * spacing[0]
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = uid("slice", k)
        ds.InstanceNumber = shape[0] - k  # scanner order: head first
        ds.ImagePositionPatient = [f"{origin[0]:.10g}", f"{origin[1]:.10g}", f"{z:.10g}"]
        ds.SliceLocation = f"{z:.10g}"
        ds.PixelData = raw[k].tobytes()
        dcmwrite(folder / f"{int(names[k]):08x}.dcm", ds, enforce_file_format=True)
    return nodules
