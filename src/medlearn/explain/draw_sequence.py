"""Pictures of sequence attributions (EHR: time bins × features): a heatmap of the most-attributed
features over the window, named with their units; for per-feature contributions (Shapley values of a
tree model) a signed bar chart. And the top features for explanations.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.explain.layout import InputLayout

#: Features (rows) a picture shows, the most-attributed by total absolute attribution.
TOP_FEATURES = 15


def feature_label(layout: InputLayout, j: int) -> str:
    name = layout.feature_names[j] if j < len(layout.feature_names) else f"feature {j}"
    unit = layout.feature_units[j] if j < len(layout.feature_units) else ""
    return f"{name} [{unit}]" if unit else name


def bin_labels(layout: InputLayout, n_bins: int) -> list[str]:
    """Each time bin as hours from the window's start (``0-2h``), or its index without a bin width."""
    if not layout.bin_hours:
        return [str(b) for b in range(n_bins)]
    h = layout.bin_hours
    return [f"{b * h:g}-{(b + 1) * h:g}h" for b in range(n_bins)]


def per_feature(attribution: np.ndarray, by_feature: bool) -> np.ndarray:
    """One contribution per feature: the sum over the window, or — for group attributions that give
    every bin of a feature the feature's whole value — the value of one bin."""
    a = np.asarray(attribution, float).reshape(-1, np.shape(attribution)[-1])
    return a[0] if by_feature else a.sum(axis=0)


def draw_sequence(
    path: Path,
    attribution: np.ndarray,
    layout: InputLayout,
    title: str,
    method: str,
    by_feature: bool,
) -> None:
    """Write the picture of one unit: a heatmap (top features × time bins) or, ``by_feature``, bars."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    a = np.asarray(attribution, float).reshape(-1, np.shape(attribution)[-1])
    totals = per_feature(a, by_feature)
    rows = [j for j in np.argsort(-np.abs(totals))[:TOP_FEATURES] if totals[j] != 0 or not by_feature]
    labels = [feature_label(layout, j) for j in rows]
    if by_feature:
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.5))
        values = totals[rows][::-1]
        ax.barh(range(len(rows)), values, color=["#c0392b" if v > 0 else "#2e86c1" for v in values])
        ax.set_yticks(range(len(rows)), labels[::-1], fontsize=7)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_xlabel(f"{method} contribution to the class score (red: toward, blue: against)")
    else:
        fig, ax = plt.subplots(figsize=(max(7.0, 0.45 * a.shape[0] + 5), 0.35 * len(rows) + 1.8))
        shown = a[:, rows].T
        limit = float(np.abs(shown).max()) or 1.0
        image = ax.imshow(
            shown, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest"
        )
        ax.set_yticks(range(len(rows)), labels, fontsize=7)
        ax.set_xticks(range(a.shape[0]), bin_labels(layout, a.shape[0]), rotation=60, fontsize=7)
        ax.set_xlabel("time since the window's start")
        bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
        bar.set_label(f"{method} (red: toward the class)")
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def sequence_summary(attribution: np.ndarray, layout: InputLayout, by_feature: bool, top: int = 10) -> dict:
    """The ``top`` features by absolute contribution, each with its unit and — for time-resolved
    attributions — the bin that carries most of it."""
    a = np.asarray(attribution, float).reshape(-1, np.shape(attribution)[-1])
    totals = per_feature(a, by_feature)
    labels = bin_labels(layout, a.shape[0])
    found = []
    for j in np.argsort(-np.abs(totals))[:top]:
        if totals[j] == 0:
            continue
        entry = {
            "feature": layout.feature_names[j] if j < len(layout.feature_names) else f"feature {j}",
            "unit": layout.feature_units[j] if j < len(layout.feature_units) else "",
            "contribution": round(float(totals[j]), 6),
        }
        if not by_feature:
            entry["peak_bin"] = labels[int(np.argmax(np.abs(a[:, j])))]
        found.append(entry)
    return {"top_features": found}
