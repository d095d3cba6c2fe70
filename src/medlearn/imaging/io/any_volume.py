"""One entry point for "a CT given as a path": NIfTI files by extension, everything else as DICOM."""

from __future__ import annotations

from pathlib import Path

from medlearn.imaging.io.volume import Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def read_volume(path: Path, series_uid: str | None = None) -> Volume:
    """Read a NIfTI file (``.nii``/``.nii.gz``) or a DICOM series/study/patient folder or file."""
    path = Path(path)
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        from medlearn.imaging.io.nifti import read_nifti

        return read_nifti(path)
    from medlearn.imaging.io.dicom import read_dicom_series

    return read_dicom_series(path, series_uid)
