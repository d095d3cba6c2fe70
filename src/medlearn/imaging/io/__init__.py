"""Imaging readers: DICOM series, NIfTI, npz/MedMNIST, PNG stacks and LIDC-IDRI radiologist XML.

Every reader raises :class:`medlearn.errors.InputError` (message starting with the offending path) for
input a user can fix. Names are imported lazily so that ``import medlearn.imaging.io`` does not pull in
pydicom, nibabel, Pillow and matplotlib until a reader is used.
"""

from __future__ import annotations

from medlearn.lazy import lazy_getattr

_EXPORTS = {
    "Volume": "volume",
    "find_series": "dicom",
    "read_dicom_series": "dicom",
    "read_nifti": "nifti",
    "read_volume": "any_volume",
    "load_npz": "npz",
    "load_medmnist": "npz",
    "read_png_stack": "png",
    "RoiContour": "lidc_xml",
    "ReaderMark": "lidc_xml",
    "parse_lidc_xml": "lidc_xml",
    "mark_mask": "lidc_xml",
    "rois_inside": "lidc_xml",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
