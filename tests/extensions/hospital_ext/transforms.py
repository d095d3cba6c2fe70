"""The hospital's own preprocessing step (stored in bundles by its ``package.module:Name``)."""

from __future__ import annotations

import numpy as np


class ClipOutliers:
    """Clip standardised values to ``±limit``: one implausible reading must not dominate a unit."""

    def __init__(self, limit: float = 4.0):
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        self.limit = limit

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(x, np.float32), -self.limit, self.limit)
