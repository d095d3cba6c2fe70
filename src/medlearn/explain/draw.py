"""One entry point for pictures and summaries: the layout's kind picks the drawing module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medlearn.explain.layout import InputLayout


def draw(
    path: Path, array: np.ndarray, attribution: np.ndarray, layout: InputLayout, title: str, method: str
) -> str | None:
    """Write one unit's picture to ``path``; returns a problem the picture states (an empty map), or None."""
    if layout.kind == "image":
        from medlearn.explain.draw_image import draw_image

        return draw_image(path, array, attribution, layout, title, method)
    if layout.kind == "signal":
        from medlearn.explain.draw_signal import draw_signal

        draw_signal(path, array, attribution, layout, title, method)
        return None
    from medlearn.explain.draw_sequence import draw_sequence

    draw_sequence(path, attribution, layout, title, method, by_feature=method == "shapley")
    return None


def unit_summary(attribution: np.ndarray, layout: InputLayout, method: str) -> dict[str, Any]:
    """Where the evidence is, for explanations.json: image peak/centroid, signal time ranges, sequence
    top features."""
    if layout.kind == "image":
        from medlearn.explain.draw_image import image_summary

        return image_summary(attribution, layout)
    if layout.kind == "signal":
        from medlearn.explain.draw_signal import signal_summary

        return signal_summary(attribution, layout)
    from medlearn.explain.draw_sequence import sequence_summary

    return sequence_summary(attribution, layout, by_feature=method == "shapley")
