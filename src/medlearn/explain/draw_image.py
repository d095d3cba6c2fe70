"""Pictures of image attributions: the input in gray with the map in a jet colormap on top and a colour
bar; a volume (or a 2.5D stack of slices) as a montage of the slices through the nodule."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.explain.gradcam import cam_problem
from medlearn.explain.layout import InputLayout

#: Most slices a montage shows (evenly spaced through the volume, the middle one always among them).
MAX_SLICES = 12


def slices(array: np.ndarray, layout: InputLayout) -> tuple[np.ndarray, str]:
    """The 2D views a picture shows: (k, H, W) and what k counts. A volume (1, D, H, W) and a 2.5D stack
    give their slices; a 2D input (C, H, W) its middle channel."""
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == 4:
        return a[0], "axial slice"
    if a.ndim == 3 and layout.slices_in_channels and a.shape[0] > 1:
        return a, "slice"
    if a.ndim == 3:
        return a[a.shape[0] // 2][None], "image"
    return a.reshape((1, *a.shape[-2:])), "image"


def pick(n: int, limit: int = MAX_SLICES) -> list[int]:
    """Indices of at most ``limit`` slices of ``n``, evenly spaced and centred on the middle one."""
    if n <= limit:
        return list(range(n))
    step = n / limit
    return sorted({int(round(n // 2 + (j - limit // 2) * step)) % n for j in range(limit)})


def display_heat(attribution: np.ndarray) -> np.ndarray:
    """The positive evidence scaled to [0, 1] (Grad-CAM maps already are; signed maps keep their
    positive part)."""
    h = np.clip(np.nan_to_num(np.asarray(attribution, dtype=np.float32)), 0, None)
    peak = float(h.max()) if h.size else 0.0
    return h / peak if peak > 0 else h


def draw_image(
    path: Path, array: np.ndarray, attribution: np.ndarray, layout: InputLayout, title: str, method: str
) -> str | None:
    """Write the picture of one unit's attribution to ``path``; returns the map's problem (e.g. "Grad-CAM
    is zero everywhere"), which the picture also says, or None."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    views, what = slices(array, layout)
    heat_views, _ = slices(attribution, layout)
    heat_views = display_heat(heat_views)
    chosen = pick(len(views))
    problem = cam_problem(heat_views) if method.startswith("gradcam") else None
    cols = min(len(chosen), 4)
    rows = int(np.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols + 1.0, 3.0 * rows + 0.6), squeeze=False)
    image = None
    for ax, k in zip(axes.ravel(), chosen):
        ax.imshow(views[k], cmap="gray", interpolation="nearest")
        image = ax.imshow(heat_views[k], cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
        if len(chosen) > 1:
            ax.set_title(f"{what} {k + 1}/{len(views)}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    if image is not None:
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02)
        bar.set_label(f"{method} (1 = strongest evidence)")
    heading = title if problem is None else f"{title}\n{problem}"
    fig.suptitle(heading, fontsize=10)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return problem


def image_summary(attribution: np.ndarray, layout: InputLayout) -> dict:
    """Where the evidence is: the peak's position and the centroid of the top 5 % of the map, in input
    pixels (slice, row, column for volumes and stacks; row, column for images)."""
    heat, _ = slices(attribution, layout)
    heat = display_heat(heat)
    if heat.shape[0] == 1:
        heat = heat[0]
    flat = heat.ravel()
    peak = [int(i) for i in np.unravel_index(int(flat.argmax()), heat.shape)]
    cut = np.quantile(flat, 0.95)
    top = np.argwhere(heat >= cut) if cut > 0 else np.argwhere(heat > 0)
    centroid = [round(float(v), 1) for v in top.mean(axis=0)] if len(top) else None
    return {"peak_index": peak, "top5pct_centroid": centroid, "axes": _axes(heat.ndim)}


def _axes(ndim: int) -> list[str]:
    return ["slice", "row", "column"] if ndim == 3 else ["row", "column"]
