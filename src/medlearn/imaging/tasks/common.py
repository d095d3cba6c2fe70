"""What the imaging tasks share: how their inputs look in a report, and the nodule position that
``medlearn predict`` takes for CT series."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator

from medlearn.engine.task import Task, step  # noqa: F401 (re-exported for the imaging tasks)

XYZ_EXAMPLE = "55.5,85.6,-116"


def parse_xyz_mm(value: Any) -> tuple[float, float, float]:
    """A point in patient millimetres (DICOM LPS) from ``"x,y,z"`` (the CLI's spelling) or three numbers
    (the Python API's ``nodule=(55.5, 85.6, -116)``)."""
    parts: Any = value.split(",") if isinstance(value, str) else value
    if isinstance(parts, Sequence) and len(parts) == 3:
        try:
            x, y, z = (float(v) for v in parts)
            return x, y, z
        except (TypeError, ValueError):
            pass
    raise ValueError(f"expected x,y,z in patient millimetres, e.g. {XYZ_EXAMPLE}; got {value!r}")


#: A pydantic field type: a point in patient mm, given as "x,y,z" or a 3-sequence of numbers.
PointMM = Annotated[tuple[float, float, float], BeforeValidator(parse_xyz_mm)]


def display_image(x: np.ndarray) -> np.ndarray:
    """A 2D view of a model input or Grad-CAM map: (C, H, W) → the middle channel (the middle slice of a
    2.5D stack; a 1-channel map stays itself); (1, D, H, W) → the middle axial slice."""
    arr = np.asarray(x)
    if arr.ndim == 4:
        return arr[0, arr.shape[1] // 2]
    if arr.ndim == 3:
        return arr[arr.shape[0] // 2] if arr.shape[0] > 1 else arr[0]
    return arr


class ImagingTask(Task):
    """Base of the imaging tasks: their inputs are pictures, shown in reports and Grad-CAM overlays."""

    def display_image(self, x: np.ndarray) -> np.ndarray:
        return display_image(x)
