"""Figures for reports: training curves, discrimination, calibration, confusion, sample grids.

Every function builds a :class:`matplotlib.figure.Figure` directly, without pyplot, so nothing here touches
matplotlib's global backend or pyplot's figure registry: the engine can draw inside a notebook, a web
server or a headless CI job alike, and figures never leak. :func:`figure_to_data_uri` renders a figure
to an embeddable PNG (Agg renders it; no display is needed).

The functions take plain arrays (labels, probabilities, images) and know nothing of where they came from.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn import metrics as skm

from medlearn.engine.calibration import (
    OperatingPoint,
    check_binary,
    expected_calibration_error,
    reliability_curve,
)

_LINE = {"linewidth": 1.8}
_CHANCE = {"color": "0.6", "linestyle": "--", "linewidth": 1}


def _figure(width: float = 5.0, height: float = 4.0) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _one_class_note(ax: Any) -> None:
    """Say why a curve is missing instead of drawing an empty, misleading axis."""
    ax.text(0.5, 0.5, "undefined: only one class present", ha="center", va="center", transform=ax.transAxes)


def _op_label(op: OperatingPoint) -> str:
    return f"threshold {op.threshold:.3g} ({op.rule}, chosen on {op.chosen_on})"


def monitor_key(history: list[dict[str, Any]], monitor: str | None) -> str | None:
    """The history key holding the monitored metric: ``monitor`` itself or ``val_<monitor>`` (the
    Trainer monitors ``"auroc"`` and records ``"val_auroc"``), or None when no row holds it."""
    if not monitor:
        return None
    for key in (monitor, f"val_{monitor}"):
        if any(row.get(key) is not None for row in history):
            return key
    return None


def best_of(history: list[dict[str, Any]], key: str, lower_is_better: bool) -> tuple[int, float] | None:
    """(epoch, value) of the first best finite ``key`` in ``history`` — how the Trainer picks its epoch."""
    rows = [
        (int(r.get("epoch", i + 1)), float(r[key]))
        for i, r in enumerate(history)
        if r.get(key) is not None and math.isfinite(float(r[key]))
    ]
    if not rows:
        return None
    pick = min if lower_is_better else max
    return pick(rows, key=lambda row: row[1])


def loss_curves(
    history: list[dict[str, Any]], monitor: str | None = None, best_epoch: int | None = None
) -> Figure:
    """Train and validation loss by epoch, the monitored validation metric, and the best epoch marked.

    Args:
        history: one row per epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>``...);
            missing, None or non-finite entries are skipped, so partial rows are fine.
        monitor: the metric the Trainer monitored for early stopping and the kept weights (``"auroc"``
            or ``"val_auroc"``; ``"loss"`` is the validation loss, drawn on the loss axis). Other
            metrics go on a twin axis. None: the first ``val_*`` key that is not ``val_loss``.
        best_epoch: the epoch whose weights were kept (``training.best_epoch`` of a bundle): a vertical
            line and a marker on the monitored curve, labelled "best epoch N (monitor=value)". None: the
            best value of the monitored curve, as the Trainer chooses it.

    When ``monitor`` is named but no row holds it, the axis says so instead of drawing another metric.
    """
    fig = _figure(6.0, 3.8)
    ax = fig.add_subplot()
    if not history:
        ax.text(0.5, 0.5, "no training history", ha="center", va="center", transform=ax.transAxes)
        return fig

    def series(key: str) -> tuple[list[float], list[float]]:
        rows = [(r.get("epoch", i + 1), r.get(key)) for i, r in enumerate(history)]
        pts = [(float(e), float(v)) for e, v in rows if v is not None and math.isfinite(float(v))]
        return [p[0] for p in pts], [p[1] for p in pts]

    handles = []
    for key, color in (("train_loss", "tab:blue"), ("val_loss", "tab:orange")):
        x, y = series(key)
        if x:
            label = key.replace("_", " ")
            handles += ax.plot(x, y, marker="o", markersize=3, color=color, label=label, **_LINE)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    named = monitor is not None
    if monitor is None:
        keys = [k for row in history for k in row if k.startswith("val_") and k != "val_loss"]
        monitor = keys[0] if keys else None
    key = monitor_key(history, monitor)
    if key is not None:
        metric_ax = ax
        if key not in ("val_loss", "train_loss"):
            metric_ax = ax.twinx()
            x, y = series(key)
            handles += metric_ax.plot(
                x, y, marker="s", markersize=3, color="tab:green", label=key.replace("_", " "), **_LINE
            )
            metric_ax.set_ylabel(key.replace("_", " "))
        from medlearn.engine.objectives import LOWER_IS_BETTER

        name = key[4:] if key.startswith("val_") else key
        best = best_of(history, key, name in LOWER_IS_BETTER)
        if best_epoch is not None:
            value = next(
                (
                    float(r[key])
                    for i, r in enumerate(history)
                    if int(r.get("epoch", i + 1)) == best_epoch and r.get(key) is not None
                ),
                None,
            )
            best = (int(best_epoch), value)
        if best is not None:
            epoch, value = best
            shown = "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"
            label = f"best epoch {epoch} ({key}={shown})"
            handles.append(ax.axvline(epoch, color="tab:red", linestyle=":", linewidth=1.4, label=label))
            if value is not None and math.isfinite(value):
                metric_ax.plot([epoch], [value], marker="*", markersize=13, color="tab:red", zorder=5)
    elif named:
        ax.text(
            0.5,
            0.93,
            f"monitored metric {monitor!r} is not in the history",
            ha="center",
            va="top",
            transform=ax.transAxes,
            fontsize=8,
            color="tab:red",
        )
        if best_epoch is not None:
            handles.append(
                ax.axvline(
                    best_epoch,
                    color="tab:red",
                    linestyle=":",
                    linewidth=1.4,
                    label=f"best epoch {best_epoch}",
                )
            )
    if handles:
        ax.legend(handles=handles, loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("Training" + (f" (monitored: {monitor})" if named else ""))
    return fig


def roc_curve(y_true: Any, prob: Any, op: OperatingPoint | None = None) -> Figure:
    """ROC curve with AUROC in the legend and the operating point marked where it sits on the curve."""
    y, p = check_binary(y_true, prob)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], label="chance", **_CHANCE)
    if 0 < y.sum() < y.size:
        fpr, tpr, _ = skm.roc_curve(y, p)
        ax.plot(fpr, tpr, color="tab:blue", label=f"AUROC = {skm.roc_auc_score(y, p):.3f}", **_LINE)
        if op is not None:
            pred = p >= op.threshold
            sens, spec = pred[y == 1].mean(), (~pred[y == 0]).mean()
            ax.plot(
                [1 - spec],
                [sens],
                "o",
                color="tab:red",
                markersize=8,
                label=f"{_op_label(op)}\nsens {sens:.2f}, spec {spec:.2f}",
            )
    else:
        _one_class_note(ax)
    ax.set(
        xlabel="1 - specificity (false positive rate)",
        ylabel="sensitivity (true positive rate)",
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        title="ROC curve",
    )
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def pr_curve(y_true: Any, prob: Any, op: OperatingPoint | None = None) -> Figure:
    """Precision-recall curve with average precision in the legend; the dashed line is the prevalence.

    More telling than ROC when positives are rare: PPV is what a flagged patient experiences.
    """
    y, p = check_binary(y_true, prob)
    fig = _figure()
    ax = fig.add_subplot()
    if 0 < y.sum() < y.size:
        precision, recall, _ = skm.precision_recall_curve(y, p)
        ax.plot(
            recall,
            precision,
            color="tab:blue",
            drawstyle="steps-post",
            label=f"AUPRC = {skm.average_precision_score(y, p):.3f}",
            **_LINE,
        )
        ax.axhline(y.mean(), label=f"prevalence {y.mean():.2f}", **_CHANCE)
        pred = p >= op.threshold if op is not None else np.zeros(p.shape, dtype=bool)
        if op is not None and pred.any():  # PPV is undefined when nothing is called positive
            sens, ppv = pred[y == 1].mean(), y[pred].mean()
            ax.plot(
                [sens],
                [ppv],
                "o",
                color="tab:red",
                markersize=8,
                label=f"{_op_label(op)}\nsens {sens:.2f}, PPV {ppv:.2f}",
            )
    else:
        _one_class_note(ax)
    ax.set(
        xlabel="recall (sensitivity)",
        ylabel="precision (PPV)",
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        title="Precision-recall curve",
    )
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def reliability_diagram(y_true: Any, prob: Any, n_bins: int = 10, label: str = "positive class") -> Figure:
    """Observed frequency against mean predicted probability per bin, ECE in the title, and a histogram.

    The histogram shows where predictions fall, because a well-calibrated curve over bins holding three
    cases each means little. ``label`` names what the probability is of (e.g. "top label").
    """
    y, p = check_binary(y_true, prob)
    mean_pred, observed, counts = reliability_curve(y, p, n_bins)
    fig = _figure(5.0, 5.2)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], label="perfect calibration", **_CHANCE)
    shown = counts > 0
    top.plot(mean_pred[shown], observed[shown], "o-", color="tab:blue", label=label, **_LINE)
    top.set(
        ylabel="observed frequency",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"Reliability (ECE = {expected_calibration_error(y, p, n_bins):.3f}, {n_bins} bins)",
    )
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.hist(p, bins=np.linspace(0, 1, n_bins + 1), color="tab:blue", alpha=0.7)
    bottom.set(xlabel="predicted probability", ylabel="count")
    return fig


def confusion_matrix(y_true: Any, y_pred: Any, class_names: list[str]) -> Figure:
    """Confusion matrix: colour and percentages normalised by true class (rows), with raw counts.

    Row percentages are each class's sensitivity and miss rates, which read the same whatever the
    prevalence; the counts keep small classes honest.
    """
    k = len(class_names)
    truth, pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    counts = skm.confusion_matrix(truth, pred, labels=list(range(k)))
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = 2.2 + 0.9 * k
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{counts[i, j]}\n{100 * share[i, j]:.1f}%",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if share[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(k), class_names, rotation=30 if k > 3 else 0, ha="right" if k > 3 else "center")
    ax.set_yticks(range(k), class_names)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (row-normalised)")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    return fig


def _displayable(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """(array, is_rgb): squeeze a singleton channel; scale RGB into [0, 1] floats, which imshow requires."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return arr.astype(float), False
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        if arr.dtype == np.uint8:
            return arr, True
        arr = arr.astype(float)
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        if lo < 0 or hi > 1:
            arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        return arr, True
    raise ValueError(f"image_grid takes 2D grayscale or HxWx3 RGB arrays, got shape {arr.shape}")


def image_grid(images: list[np.ndarray], titles: list[str], ncols: int = 6, cmap: str = "gray") -> Figure:
    """Images in a grid with a title each, e.g. sample inputs with their labels, or heatmap overlays.

    2D arrays are shown with ``cmap`` (each scaled to its own range); HxWx3 arrays as RGB.
    """
    if len(titles) != len(images):
        raise ValueError(f"image_grid got {len(images)} images but {len(titles)} titles")
    n = max(1, len(images))
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = _figure(2.0 * ncols, 2.2 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes:
        ax.axis("off")
    for ax, image, title in zip(axes, images, titles):
        arr, rgb = _displayable(image)
        ax.imshow(arr, cmap=None if rgb else cmap, interpolation="nearest")
        ax.set_title(str(title), fontsize=8)
    return fig


def multiclass_roc(y_true: Any, prob: Any, class_names: list[str]) -> Figure:
    """One-vs-rest ROC curve of each class, with its AUROC in the legend."""
    y, p = np.asarray(y_true).astype(int).reshape(-1), np.asarray(prob, dtype=float)
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], label="chance", **_CHANCE)
    for c, name in enumerate(class_names):
        target = (y == c).astype(int)
        if 0 < target.sum() < target.size:
            fpr, tpr, _ = skm.roc_curve(target, p[:, c])
            ax.plot(fpr, tpr, label=f"{name} (AUROC {skm.roc_auc_score(target, p[:, c]):.3f})", **_LINE)
    ax.set(
        xlabel="1 - specificity",
        ylabel="sensitivity",
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        title="ROC, one class vs rest",
    )
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def predicted_vs_true(y_true: Any, y_pred: Any, unit: str = "") -> Figure:
    """Scatter of predictions against truth with the identity line; MAE in the title."""
    y, p = np.asarray(y_true, dtype=float).reshape(-1), np.asarray(y_pred, dtype=float).reshape(-1)
    fig = _figure(4.8, 4.5)
    ax = fig.add_subplot()
    if y.size:
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], label="identity", **_CHANCE)
        ax.scatter(y, p, s=10, alpha=0.5, color="tab:blue")
        ax.set_title(f"Predicted vs true (MAE {np.abs(p - y).mean():.3g}{' ' + unit if unit else ''})")
    suffix = f" ({unit})" if unit else ""
    ax.set(xlabel=f"true{suffix}", ylabel=f"predicted{suffix}")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI, the only kind of picture a report embeds (see
    :func:`medlearn.engine.report.write_report`); for pictures drawn by other libraries (RDKit)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_to_data_uri(fig: Figure, dpi: int = 100) -> str:
    """PNG of ``fig`` as a ``data:image/png;base64,...`` URI for self-contained HTML; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    manager = getattr(fig.canvas, "manager", None)
    if manager is not None:  # made by pyplot elsewhere: release it from pyplot's registry too
        import matplotlib.pyplot as plt

        plt.close(fig)
    fig.clear()
    return png_data_uri(buffer.getvalue())
