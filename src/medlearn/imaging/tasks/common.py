"""What the imaging tasks share: how their inputs look in a report and how 2.5D/3D specs are built."""

from __future__ import annotations


import numpy as np

from medlearn.engine.task import Task, step  # noqa: F401 (re-exported for the imaging tasks)


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
