"""Missing samples: linear interpolation along time, so that zero-phase filters do not smear one NaN
over a whole record (``sosfiltfilt`` of a signal with one NaN is all NaN)."""

from __future__ import annotations

import numpy as np


def interpolate_nans(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray | None]:
    """Replace non-finite samples (NaN, ±inf) by linear interpolation along ``axis``.

    Leading/trailing gaps take the nearest finite value; a lane with no finite sample becomes zeros.
    Returns ``(filled, mask)`` where ``mask`` marks the replaced samples, or ``(x, None)`` untouched
    (no copy) when every sample is finite — the common case costs one ``isfinite`` pass.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        return x, None
    bad = ~np.isfinite(x)
    if not bad.any():
        return x, None
    moved = np.moveaxis(x, axis, -1)
    lanes = moved.reshape(-1, moved.shape[-1]).copy()
    bad_lanes = np.moveaxis(bad, axis, -1).reshape(lanes.shape)
    positions = np.arange(lanes.shape[-1])
    for lane, missing in zip(lanes, bad_lanes):
        if not missing.any():
            continue
        good = ~missing
        if not good.any():
            lane[:] = 0.0
            continue
        lane[missing] = np.interp(positions[missing], positions[good], lane[good])
    filled = np.moveaxis(lanes.reshape(moved.shape), -1, axis)
    return filled, bad
