"""The in-memory 3D image every imaging reader returns.

Coordinates follow DICOM: *patient* coordinates are LPS millimetres (x grows to the patient's left, y to
the posterior, z to the head). Array indices are ``(z, row, col)``: ``col`` runs along the row cosine,
``row`` along the column cosine, ``z`` along the slice normal (the stacking direction). A voxel index
refers to the voxel *centre*, as ``ImagePositionPatient`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Direction cosines within this of 0/±1 count as axis-aligned (DICOM headers store ~6 decimals).
_AXIS_TOL = 1e-6


@dataclass(frozen=True, eq=False)
class Volume:
    """A stacked 3D image with the geometry needed to map voxels to patient millimetres.

    ``eq=False`` because comparing numpy arrays with ``==`` is ambiguous; compare ``hu`` explicitly.
    """

    hu: np.ndarray
    """float32 ``(z, y, x)``; Hounsfield units for CT (raw·slope + intercept), raw intensity for MR/NIfTI."""
    spacing_mm: tuple[float, float, float]
    """Voxel size ``(z, y, x)`` in mm: slice spacing (from positions, not SliceThickness), row, column."""
    origin_mm: tuple[float, float, float]
    """Patient ``(x, y, z)`` mm of voxel ``(0, 0, 0)``: ImagePositionPatient of the first stacked slice."""
    direction: tuple[float, ...]
    """9 numbers: row cosine (3), column cosine (3), slice normal (3), all in patient LPS axes."""
    z_positions_mm: tuple[float, ...]
    """Patient z (mm) of every slice in stacking order; ascending for the usual axial orientation."""
    series_uid: str | None
    patient_id: str | None
    source: str
    """The file or folder the volume was read from (for error messages and provenance)."""

    def __post_init__(self) -> None:
        if self.hu.ndim != 3:
            raise ValueError(f"Volume.hu must be 3D (z, y, x), got shape {self.hu.shape}")
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise ValueError(f"Volume.spacing_mm must be 3 positive mm values, got {self.spacing_mm}")
        if len(self.origin_mm) != 3:
            raise ValueError(f"Volume.origin_mm must have 3 values, got {self.origin_mm}")
        if len(self.direction) != 9:
            raise ValueError(f"Volume.direction must have 9 values, got {len(self.direction)}")
        if len(self.z_positions_mm) != self.hu.shape[0]:
            raise ValueError(
                f"Volume.z_positions_mm has {len(self.z_positions_mm)} values for {self.hu.shape[0]} slices"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)`` voxel counts."""
        return tuple(int(n) for n in self.hu.shape)  # type: ignore[return-value]

    def _index_to_world_matrix(self) -> np.ndarray:
        """3x3 matrix whose columns map a (col, row, z) index step to a patient-mm step."""
        d = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        dz, dy, dx = self.spacing_mm
        return np.stack([d[0] * dx, d[1] * dy, d[2] * dz], axis=1)

    def _axis_aligned(self) -> list[tuple[int, float]] | None:
        """For each of (col, row, z): (patient axis, sign) when every cosine is a signed unit vector."""
        d = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        out: list[tuple[int, float]] = []
        for vec in d:
            axis = int(np.argmax(np.abs(vec)))
            if abs(abs(vec[axis]) - 1.0) > _AXIS_TOL or np.any(np.abs(np.delete(vec, axis)) > _AXIS_TOL):
                return None
            out.append((axis, float(np.sign(vec[axis]))))
        if len({axis for axis, _ in out}) != 3:
            return None
        return out

    def voxel_to_world(self, z: float, row: float, col: float) -> tuple[float, float, float]:
        """Patient ``(x, y, z)`` in mm of the (possibly fractional) voxel index ``(z, row, col)``."""
        aligned = self._axis_aligned()
        dz, dy, dx = self.spacing_mm
        if aligned is not None:
            world = list(self.origin_mm)
            for (axis, sign), idx, step in zip(aligned, (col, row, z), (dx, dy, dz)):
                world[axis] += sign * float(idx) * step
            return (float(world[0]), float(world[1]), float(world[2]))
        vec = self._index_to_world_matrix() @ np.array([col, row, z], dtype=np.float64)
        out = np.asarray(self.origin_mm, dtype=np.float64) + vec
        return (float(out[0]), float(out[1]), float(out[2]))

    def world_to_voxel(self, x_mm: float, y_mm: float, z_mm: float) -> tuple[float, float, float]:
        """Fractional ``(z_index, row, col)`` of patient point ``(x, y, z)`` mm; may lie outside the array.

        Axis-aligned volumes (the common case) use plain division so that a slice position maps to an
        exact integer index; oblique ones solve the direction-matrix system.
        """
        offset = np.array([x_mm, y_mm, z_mm], dtype=np.float64) - np.asarray(self.origin_mm, dtype=np.float64)
        aligned = self._axis_aligned()
        dz, dy, dx = self.spacing_mm
        if aligned is not None:
            col, row, zi = (sign * offset[axis] / step for (axis, sign), step in zip(aligned, (dx, dy, dz)))
            return (float(zi), float(row), float(col))
        col, row, zi = np.linalg.solve(self._index_to_world_matrix(), offset)
        return (float(zi), float(row), float(col))

    def slice_index_of_z(self, z_mm: float, tol_mm: float = 0.01) -> int | None:
        """Index of the slice whose patient z is within ``tol_mm`` of ``z_mm`` (``None`` if none)."""
        zs = np.asarray(self.z_positions_mm, dtype=np.float64)
        if zs.size == 0:
            return None
        idx = int(np.argmin(np.abs(zs - z_mm)))
        return idx if abs(zs[idx] - z_mm) <= tol_mm else None
