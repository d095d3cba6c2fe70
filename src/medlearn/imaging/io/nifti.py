"""Read a NIfTI-1/2 image (``.nii`` / ``.nii.gz``) into a :class:`Volume` with DICOM-like axes.

NIfTI stores world coordinates in RAS and arrays in any axis order; DICOM-derived code in medlearn expects
LPS and ``(z, y, x)`` arrays where ``x`` (columns) runs to the patient's left and ``y`` (rows) to the
posterior. The image is therefore reoriented (axis permutations and flips only, no resampling) to the
closest L-P-S voxel axes, so a NIfTI converted from a DICOM axial series yields the same array as reading
the DICOM directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.errors import InputError
from medlearn.imaging.io.volume import Volume

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def read_nifti(path: Path) -> Volume:
    """Load a 3D NIfTI; ``hu`` holds the scaled intensities (scl_slope/inter applied), float32.

    Spacing comes from the header zooms (mm) of the reoriented image. A 4D image with a single volume
    (trailing axis of length 1) is accepted; true 4D data raises :class:`InputError`.
    """
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: NIfTI file does not exist")
    try:
        img = nib.load(str(path))
    except (ImageFileError, OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(f"{path}: expected a NIfTI image, nibabel read it as {type(img).__name__}")
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
    elif len(shape) != 3:
        raise InputError(f"{path}: expected a 3D image, got shape {shape}")

    unit = img.header.get_xyzt_units()[0]
    if unit not in ("mm", "unknown"):
        raise InputError(f"{path}: spatial units are {unit!r}; only mm is supported")

    transform = ornt_transform(io_orientation(img.affine), axcodes2ornt(("L", "P", "S")))
    img = img.as_reoriented(transform)
    try:
        data = img.get_fdata(dtype=np.float32)  # (i=col, j=row, k=slice)
    except Exception as exc:  # truncated .gz raises zlib.error, EOFError, OSError, ValueError
        raise InputError(f"{path}: could not read NIfTI voxel data ({type(exc).__name__}: {exc})") from exc
    if not np.all(np.isfinite(data)):
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(f"{path}: {n_bad} voxels are NaN or infinite")

    # float32 header zooms: round to 1e-6 mm so 0.7 stays 0.7 rather than 0.699999988
    zooms = tuple(round(float(z), 6) for z in img.header.get_zooms()[:3])
    if min(zooms) <= 0:
        raise InputError(f"{path}: header zooms {zooms} are not positive voxel sizes")
    lps = _RAS_TO_LPS @ img.affine
    axes = lps[:3, :3] / np.linalg.norm(lps[:3, :3], axis=0)  # unit columns: i, j, k directions
    hu = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    z_positions = tuple(float((lps @ np.array([0.0, 0.0, k, 1.0]))[2]) for k in range(hu.shape[0]))
    return Volume(
        hu=hu,
        spacing_mm=(zooms[2], zooms[1], zooms[0]),
        origin_mm=tuple(float(v) for v in lps[:3, 3]),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in np.concatenate([axes[:, 0], axes[:, 1], axes[:, 2]])),
        z_positions_mm=z_positions,
        series_uid=None,
        patient_id=None,
        source=str(path),
    )
