"""Pictures of signal attributions: each channel's strip with the attribution shaded behind it (red
toward the explained class, blue against), a colour bar and the class named; the time ranges that carry
the most evidence, for explanations.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.explain.layout import InputLayout

#: Width of the windows ranked in ``top_time_ranges`` and of the shading's smoothing (s).
WINDOW_S = 1.0
SMOOTH_S = 0.1


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """A moving average over ``width`` samples (same length), so per-sample attributions read as bands."""
    if width <= 1:
        return np.asarray(values, float)
    kernel = np.ones(width) / width
    return np.convolve(np.asarray(values, float), kernel, mode="same")


def draw_signal(
    path: Path, array: np.ndarray, attribution: np.ndarray, layout: InputLayout, title: str, method: str
) -> None:
    """Write the strip picture of one unit (``array`` (C, N) at ``layout.fs_hz``)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    signal = np.asarray(array, float).reshape(-1, np.shape(array)[-1])
    attr = np.asarray(attribution, float).reshape(signal.shape)
    fs = layout.fs_hz or 1.0
    t = np.arange(signal.shape[1]) / fs
    width = max(1, int(SMOOTH_S * fs))
    shade = np.stack([smooth(a, width) for a in attr])
    limit = float(np.abs(shade).max()) or 1.0
    seconds = signal.shape[1] / fs
    fig, axes = plt.subplots(
        len(signal), 1, figsize=(min(22.0, 3.0 + 0.35 * seconds), 2.0 * len(signal) + 0.8), squeeze=False
    )
    image = None
    for c, ax in enumerate(axes[:, 0]):
        lo, hi = float(signal[c].min()), float(signal[c].max())
        pad = 0.05 * (hi - lo or 1.0)
        image = ax.imshow(
            shade[c][None],
            extent=(0, seconds, lo - pad, hi + pad),
            aspect="auto",
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
            alpha=0.6,
            interpolation="nearest",
        )
        ax.plot(t, signal[c], color="black", linewidth=0.5)
        name = layout.channel_names[c] if c < len(layout.channel_names) else f"channel {c + 1}"
        ax.set_ylabel(name)
        ax.set_xlim(0, seconds)
    axes[-1, 0].set_xlabel("time (s)")
    if image is not None:
        bar = fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.02, pad=0.01)
        bar.set_label(f"{method}\n(red: toward the class)")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def signal_summary(attribution: np.ndarray, layout: InputLayout, top: int = 3) -> dict:
    """The ``top`` non-overlapping windows of :data:`WINDOW_S` with the most attribution toward the class
    (summed over channels), in seconds from the start of the model's input."""
    attr = np.asarray(attribution, float).reshape(-1, np.shape(attribution)[-1]).sum(axis=0)
    fs = layout.fs_hz or 1.0
    n = max(1, int(round(WINDOW_S * fs)))
    sums = np.array([attr[i : i + n].sum() for i in range(0, len(attr), n)])
    total = float(np.abs(attr).sum()) or 1.0
    order = np.argsort(-sums)[:top]
    return {
        "top_time_ranges": [
            {
                "start_s": round(i * n / fs, 3),
                "end_s": round(min(len(attr), (i + 1) * n) / fs, 3),
                "attribution": round(float(sums[i]), 6),
                "share_of_total": round(float(sums[i]) / total, 4),
            }
            for i in order
        ]
    }
