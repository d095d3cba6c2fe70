"""Pictures of signals for reports: ECG strips with detected R-peaks, hypnograms."""

from __future__ import annotations

from typing import Any

import numpy as np


def signal_strips(units: list[tuple[Any, str]], seconds: float = 10.0, rpeaks: bool = False) -> Any:
    """One row per (SignalUnit, title): its first ``seconds`` of the first channel, band-passed, on an ECG
    paper-like grid, with the R-peaks the detector finds when ``rpeaks``."""
    from matplotlib.figure import Figure

    from medlearn.signals.preprocess import bandpass, detect_rpeaks

    fig = Figure(figsize=(10, 1.6 * max(len(units), 1)))
    for row, (unit, title) in enumerate(units):
        ax = fig.add_subplot(len(units), 1, row + 1)
        n = min(unit.signal.shape[-1], int(seconds * unit.fs_hz))
        x = bandpass(unit.signal[0].astype(np.float64), unit.fs_hz, 0.5, min(40.0, 0.45 * unit.fs_hz))[:n]
        t = np.arange(n) / unit.fs_hz
        ax.plot(t, x, color="black", linewidth=0.7)
        if rpeaks:
            peaks = detect_rpeaks(unit.signal[0], unit.fs_hz)
            peaks = peaks[peaks < n]
            ax.plot(t[peaks], x[peaks], "o", color="red", markersize=3)
        ax.set_title(title, fontsize=8, loc="left")
        ax.set_xlim(0, seconds)
        ax.grid(True, color="#f4b6b6", linewidth=0.5)
        ax.tick_params(labelsize=7)
    fig.supxlabel("time (s)", fontsize=8)
    fig.tight_layout()
    return fig


def hypnogram(
    true_stage: np.ndarray,
    predicted_stage: np.ndarray,
    stage_names: list[str],
    epoch_s: float = 30.0,
    title: str = "",
) -> Any:
    """True vs predicted sleep stages over a night (W at the top, N3 at the bottom as clinicians draw it)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3))
    ax = fig.add_subplot(1, 1, 1)
    hours = np.arange(len(true_stage)) * epoch_s / 3600
    order = {"W": 0, "REM": 1, "N1": 2, "N2": 3, "N3": 4}
    level = np.array([order.get(name, i) for i, name in enumerate(stage_names)])
    ax.step(hours, level[true_stage], where="post", color="black", linewidth=1, label="scored")
    ax.step(
        hours,
        level[predicted_stage] + 0.08,
        where="post",
        color="tab:red",
        linewidth=0.8,
        alpha=0.8,
        label="predicted",
    )
    ax.set_yticks(
        sorted(set(level)), [n for n, _ in sorted(order.items(), key=lambda kv: kv[1]) if n in stage_names]
    )
    ax.invert_yaxis()
    ax.set_xlabel("hours from recording start")
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig
