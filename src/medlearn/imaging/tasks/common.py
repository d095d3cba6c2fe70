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


def box_percentiles(hu: np.ndarray) -> tuple[float, float]:
    """1st and 99th percentile of a HU box: robust ends of what it shows."""
    lo, hi = np.percentile(np.asarray(hu, dtype=np.float32), [1, 99])
    return float(lo), float(hi)


def ct_profile(boxes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the training CT boxes were: modalities and body parts of their series (DICOM header), HU
    percentiles and spread of each box, and the voxel spacing (z, y, x) of their series."""
    from medlearn.engine.input_checks import seen_range, seen_values

    boxes = [b for b in boxes if isinstance(b, dict) and "hu" in b]
    if not boxes:
        return {}
    ends = [box_percentiles(b["hu"]) for b in boxes]
    return {
        "modalities": seen_values(b.get("modality") for b in boxes),
        "body_parts": seen_values(b.get("body_part") for b in boxes),
        "hu_p1": seen_range(lo for lo, _ in ends),
        "hu_p99": seen_range(hi for _, hi in ends),
        "hu_spread": seen_range(hi - lo for lo, hi in ends),
        "spacing_mm": [seen_range(float(b["spacing_mm"][k]) for b in boxes) for k in range(3)],
        "n_units": len(boxes),
    }


#: Margins of the CT checks (stated in their sentences): HU percentiles may pass the training range by
#: half its span plus a quarter of the median training spread; spacings may be 1.5× beyond the range.
HU_MARGIN, HU_PAD_OF_SPREAD, SPACING_MARGIN = 0.5, 0.25, 0.5


def modality_reasons(
    modality: str | None, body_part: str | None, profile: dict[str, Any], expected: Sequence[str]
) -> list[str]:
    """A series of another modality (or body part) than the training series'; without a profile, than
    the task's declared ``expected`` modalities."""
    reasons = []
    seen = [str(m) for m in profile.get("modalities") or []] or list(expected)
    source = "trained on" if profile.get("modalities") else "built for"
    if modality and seen and modality.upper() not in seen:
        reasons.append(
            f"the series is {modality} (DICOM Modality); the model was {source} {'/'.join(seen)} series"
        )
    parts = [str(p) for p in profile.get("body_parts") or []]
    if body_part and parts and body_part.upper() not in parts:
        reasons.append(
            f"the series shows {body_part} (BodyPartExamined); the model was trained on {'/'.join(parts)} series"
        )
    return reasons


def check_ct_box(
    box: dict[str, Any], profile: dict[str, Any], expected: Sequence[str] = ("CT",)
) -> list[str]:
    """Why a HU box (with its series' modality, body part and spacing) is outside the training boxes."""
    from medlearn.engine.input_checks import below_range, constant_reason, outside_range

    reasons = modality_reasons(box.get("modality"), box.get("body_part"), profile, expected)
    hu = np.asarray(box["hu"], dtype=np.float32)
    blank = constant_reason(hu, "the CT around the nodule", "HU")
    if blank is not None:
        return [*reasons, f"{blank}; a blank volume (RescaleSlope 0, or no image stored?)"]
    lo, hi = box_percentiles(hu)
    spread = profile.get("hu_spread")
    pad = HU_PAD_OF_SPREAD * float(np.mean(spread)) if isinstance(spread, list) and len(spread) == 2 else 0.0
    for what, value, key in (("1st", lo, "hu_p1"), ("99th", hi, "hu_p99")):
        found = outside_range(
            f"the {what} HU percentile around the nodule",
            value,
            profile.get(key),
            "HU",
            margin=HU_MARGIN,
            pad=pad,
            trained_on="CT boxes with values",
        )
        if found:
            reasons.append(found)
    flat = below_range("the HU spread (99th − 1st percentile)", hi - lo, spread, "HU", trained_on="boxes")
    if flat:
        reasons.append(f"{flat}: a nearly blank volume")
    ranges = profile.get("spacing_mm")
    for axis, name in enumerate(("slice spacing", "row spacing", "column spacing")):
        seen = ranges[axis] if isinstance(ranges, list) and len(ranges) == 3 else None
        found = outside_range(
            f"the {name}",
            float(box["spacing_mm"][axis]),
            seen,
            "mm",
            margin=SPACING_MARGIN,
            relative=True,
            trained_on="series with spacings",
        )
        if found:
            reasons.append(found)
    return reasons


class ImagingTask(Task):
    """Base of the imaging tasks: their inputs are pictures, shown in reports and Grad-CAM overlays."""

    def display_image(self, x: np.ndarray) -> np.ndarray:
        return display_image(x)

    def explanation_layout(self, preprocessing: Any) -> Any:
        """Images, volumes and 2.5D stacks (slices as channels, when the preprocessing stacks slices
        without adding a channel axis) explained by Grad-CAM first; a removed pixel is 0 (air in a HU
        window, black in a scaled picture, the mean of a normalised X-ray)."""
        from medlearn.explain.layout import InputLayout

        names = [s["name"] for s in getattr(preprocessing, "spec", [])]
        stacked = "slice_stack" in names and "add_channel" not in names
        return InputLayout(
            kind="image",
            methods=["gradcam", "gradcam++", "integrated_gradients", "occlusion"],
            baseline=0.0,
            slices_in_channels=stacked,
        )
