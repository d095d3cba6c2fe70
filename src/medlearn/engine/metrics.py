"""Clinical evaluation: the numbers in ``metrics.json``, each with a 95 % bootstrap confidence interval.

A single AUROC on 140 test cases can move by 0.05 between resamples, so every metric carries a percentile
bootstrap CI. Correlated units (several units from one patient, or several raters' scores of one case)
must move together or the CI is falsely narrow: pass ``groups`` for a cluster bootstrap.

Where the percentile interval does not even contain its own point estimate (a biased metric such as ECE,
or a skewed one near its bound), the interval is replaced by the bias-corrected and accelerated (BCa)
interval of Efron (1987), computed from the same replicates plus a jackknife over the resampled units or
clusters; each metric says which it got (``"ci_method": "percentile"|"bca"``). A cluster bootstrap with
fewer than :data:`MIN_CLUSTERS` clusters (e.g. 5 sleep subjects) does not hold its coverage, so
:func:`evaluate_predictions` gives no CI there (``ci95: null`` and a ``ci_note``); cross-validated runs
report the spread of the per-fold figures instead.

Speed: each metric set (:class:`BinaryMetricSet` and friends) scores *weighted* data, a weight being how
many times a unit was drawn into a resample. Ranking metrics sort the scores once (a resample only
re-weights the same sorted units) and every count is a matrix product, so 1000 resamples of 700 units take
a few tens of milliseconds. The point estimate is the same code with all weights one, so it can never
disagree with its replicates. Any other ``metric_fn(*arrays) -> dict`` also works, through a plain loop.

The operating point (:func:`choose_operating_point`) and ECE live in :mod:`medlearn.engine.calibration`
and are re-exported here. Conventions: a unit is predicted positive when ``prob >= threshold``; a metric
whose denominator is empty (AUROC with one class present, PPV with no positive predictions) is NaN,
written as ``null`` in JSON.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from medlearn.engine.calibration import (
    OperatingPoint,
    OperatingRuleError,
    check_binary,
    choose_operating_point,
    expected_calibration_error,
    parse_rule,
    reliability_curve,
    weighted_ece,
)
from medlearn.engine.target import BINARY_METRICS, MULTICLASS_METRICS, REGRESSION_METRICS

__all__ = [
    "BINARY_METRICS",
    "BinaryMetricSet",
    "MulticlassMetricSet",
    "OperatingPoint",
    "OperatingRuleError",
    "BootstrapInterval",
    "MIN_CLUSTERS",
    "RegressionMetricSet",
    "binary_metrics",
    "bootstrap_ci",
    "bootstrap_intervals",
    "choose_operating_point",
    "evaluate_predictions",
    "expected_calibration_error",
    "multiclass_metrics",
    "parse_rule",
    "regression_metrics",
    "reliability_curve",
]

PER_CLASS_METRICS = ("sensitivity", "ppv", "f1")
#: fewer clusters than this and a cluster bootstrap CI is not reported (its coverage falls well short of
#: 95 %: with 5 clusters a resample holds at most 5 distinct values of any between-cluster effect)
MIN_CLUSTERS = 10
#: the jackknife for BCa leaves out one cluster at a time up to this many clusters, then blocks of them
MAX_JACKKNIFE = 1000


def _div(num: Any, den: Any) -> np.ndarray:
    """Elementwise num/den, NaN where the denominator is zero (an undefined metric, not a warning)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast_shapes(num.shape, den.shape), np.nan)
    return np.divide(num, den, out=out, where=den != 0)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Mean over axis 1 of the finite entries; NaN for a row without any (no RuntimeWarning)."""
    finite = np.isfinite(values)
    return _div(np.where(finite, values, 0.0).sum(axis=1), finite.sum(axis=1))


def _weighted_ranking(weights: np.ndarray, y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC (ties count one half) and average precision (sklearn's step definition) per weighted replicate.

    Units are sorted once and tied scores merged into one group, so each replicate is a handful of
    cumulative sums over the groups.
    """
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    w = weights[:, order]
    pos = w * y[order].astype(float)  # weighted positives per distinct score, ascending
    if starts.size < s.size:  # merge ties; without ties every unit is its own group already
        w, pos = np.add.reduceat(w, starts, axis=1), np.add.reduceat(pos, starts, axis=1)
    neg = w - pos
    n_pos, n_neg = pos.sum(axis=1, keepdims=True), neg.sum(axis=1, keepdims=True)
    cum_pos, cum_neg = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    auroc = _div((pos * (cum_neg - 0.5 * neg)).sum(axis=1), (n_pos * n_neg)[:, 0])
    # AP: at the threshold of each group, positives and negatives scoring at or above it
    tp = n_pos - cum_pos + pos
    called = tp + (n_neg - cum_neg + neg)
    precision = tp / np.where(called > 0, called, 1.0)  # tp is 0 where nothing is called positive
    return auroc, _div((pos * precision).sum(axis=1), n_pos[:, 0])


class _MetricSet:
    """A metric function over weighted units; called plainly, every unit has weight one."""

    def weighted(self, weights: np.ndarray, *arrays: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def __call__(self, *arrays: np.ndarray) -> dict[str, float]:
        return {k: float(v[0]) for k, v in self.weighted(np.ones((1, len(arrays[0]))), *arrays).items()}


class BinaryMetricSet(_MetricSet):
    """The binary metrics (:data:`BINARY_METRICS`) at one threshold; callable, fast under the bootstrap."""

    names = BINARY_METRICS

    def __init__(self, threshold: float = 0.5, n_bins: int = 10) -> None:
        self.threshold, self.n_bins = float(threshold), n_bins

    def weighted(self, weights: np.ndarray, y: np.ndarray, prob: np.ndarray) -> dict[str, np.ndarray]:
        """Each metric for each row of ``weights`` (shape (replicates, units))."""
        y = y.astype(float)
        pred = (prob >= self.threshold).astype(float)
        cells = np.stack([y * pred, y * (1 - pred), (1 - y) * pred, (1 - y) * (1 - pred)], axis=1)
        tp, fn, fp, tn = (weights @ cells).T
        total = tp + fn + fp + tn
        sens, spec = _div(tp, tp + fn), _div(tn, tn + fp)
        auroc, auprc = _weighted_ranking(weights, y, prob)
        return {
            "auroc": auroc,
            "auprc": auprc,
            "accuracy": _div(tp + tn, total),
            "balanced_accuracy": (sens + spec) / 2,
            "sensitivity": sens,
            "specificity": spec,
            "ppv": _div(tp, tp + fp),
            "npv": _div(tn, tn + fn),
            "f1": _div(2 * tp, 2 * tp + fp + fn),
            "ece": weighted_ece(weights, y, prob, self.n_bins),
            "brier": _div(weights @ (prob - y) ** 2, total),
        }


class MulticlassMetricSet(_MetricSet):
    """Overall multiclass metrics plus per-class ``per_class/<index>/<metric>`` keys, bootstrap-friendly.

    balanced_accuracy averages recall over classes present in the truth (as sklearn does); macro_f1 and
    the one-vs-rest macro AUROC average over the classes where they are defined.
    """

    def __init__(
        self,
        n_classes: int,
        n_bins: int = 10,
        ordinal: bool = False,
        f1_groups: dict[str, list[int]] | None = None,
    ) -> None:
        self.n_classes, self.n_bins, self.ordinal = n_classes, n_bins, ordinal
        self.f1_groups = f1_groups or {}

    def weighted(self, weights: np.ndarray, y: np.ndarray, prob: np.ndarray) -> dict[str, np.ndarray]:
        k, y = self.n_classes, y.astype(np.int64)
        pred = prob.argmax(axis=1)
        pred_onehot = np.eye(k)[pred]
        # confusion counts per replicate, shape (replicates, true class, predicted class)
        conf = np.stack([weights[:, y == c] @ pred_onehot[y == c] for c in range(k)], axis=1)
        total = conf.sum(axis=(1, 2))
        diag = np.diagonal(conf, axis1=1, axis2=2)
        support, predicted = conf.sum(axis=2), conf.sum(axis=1)
        recall, precision = _div(diag, support), _div(diag, predicted)
        f1 = _div(2 * diag, support + predicted)
        accuracy = _div(diag.sum(axis=1), total)
        chance = _div((support * predicted).sum(axis=1), total**2)
        auroc = np.stack([_weighted_ranking(weights, (y == c), prob[:, c])[0] for c in range(k)], axis=1)
        out = {
            "accuracy": accuracy,
            "balanced_accuracy": _nanmean_rows(recall),
            "macro_f1": _nanmean_rows(f1),
            "auroc": _nanmean_rows(auroc),
            "kappa": _div(accuracy - chance, 1 - chance),
            "ece": weighted_ece(weights, (pred == y), prob.max(axis=1), self.n_bins),
        }
        for c in range(k):
            out.update(
                {
                    f"per_class/{c}/sensitivity": recall[:, c],
                    f"per_class/{c}/ppv": precision[:, c],
                    f"per_class/{c}/f1": f1[:, c],
                }
            )
        for name, classes in self.f1_groups.items():  # e.g. CinC 2017's mean F1 of N, A and O
            out[name] = _nanmean_rows(f1[:, classes])  # over the named classes present, like macro_f1
        if self.ordinal:  # ordered classes (e.g. length-of-stay bins): distance between classes counts
            distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(float)
            expected = support[:, :, None] * predicted[:, None, :] / np.maximum(total, 1e-12)[:, None, None]
            observed_cost = (conf * distance).sum(axis=(1, 2))
            out["kappa_linear"] = 1 - _div(observed_cost, (expected * distance).sum(axis=(1, 2)))
            out["mad"] = _div(observed_cost, total)  # mean absolute distance in classes
        return out


class RegressionMetricSet(_MetricSet):
    """Mean absolute error and root mean squared error, in the target's own units."""

    names = REGRESSION_METRICS

    def weighted(self, weights: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
        err, total = pred - y, weights.sum(axis=1)
        return {"mae": _div(weights @ np.abs(err), total), "rmse": np.sqrt(_div(weights @ err**2, total))}


def binary_metrics(y_true: Any, prob: Any, threshold: float = 0.5) -> dict[str, float]:
    """All :data:`BINARY_METRICS` for positive-class probabilities, thresholded at ``prob >= threshold``."""
    return BinaryMetricSet(threshold)(*check_binary(y_true, prob))


def _as_multiclass(y_true: Any, prob: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true).reshape(-1), np.asarray(prob, dtype=float)
    if p.ndim != 2 or p.shape != (y.size, n_classes):
        raise ValueError(f"prob must have shape (n, {n_classes}) = ({y.size}, {n_classes}), got {p.shape}")
    if y.size and (not np.isin(y, np.arange(n_classes)).all()):
        found = np.unique(y)[:10].tolist()
        raise ValueError(f"y_true must hold class indices 0..{n_classes - 1}, found {found}")
    return y.astype(np.int64), p


def multiclass_metrics(
    y_true: Any,
    prob: Any,
    class_names: list[str],
    ordinal: bool = False,
    f1_groups: dict[str, list[str]] | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Overall metrics (:data:`MULTICLASS_METRICS`, plus ``kappa_linear`` and ``mad`` for ordered
    classes, plus each ``f1_groups`` entry: the mean F1 of the named classes) and per-class
    sensitivity, ppv, f1 by class name.

    Predictions are the argmax class; ECE is top-label (confidence of the predicted class vs. being right).
    """
    y, p = _as_multiclass(y_true, prob, len(class_names))
    groups = class_index_groups(f1_groups, class_names)
    flat = MulticlassMetricSet(len(class_names), ordinal=ordinal, f1_groups=groups)(y, p)
    per_class = {
        name: {m: flat[f"per_class/{c}/{m}"] for m in PER_CLASS_METRICS} for c, name in enumerate(class_names)
    }
    names = MULTICLASS_METRICS + (("kappa_linear", "mad") if ordinal else ()) + tuple(groups)
    return {m: flat[m] for m in names}, per_class


def _as_regression(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true, dtype=float).reshape(-1), np.asarray(y_pred, dtype=float).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.shape[0]} vs {p.shape[0]}")
    return y, p


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Mean absolute error and root mean squared error, in the target's units."""
    return RegressionMetricSet()(*_as_regression(y_true, y_pred))


@dataclass(frozen=True)
class BootstrapInterval:
    """A bootstrap confidence interval and how it was obtained.

    ``method`` is "percentile", or "bca" where the percentile interval excluded the point estimate and
    was replaced by the bias-corrected and accelerated one; ``note`` says why a percentile interval that
    excludes its estimate was kept (BCa impossible, e.g. every replicate on one side of the estimate).
    """

    low: float
    high: float
    method: str = "percentile"
    note: str | None = None


def _jackknife(
    metric_fn: Callable[..., dict[str, float]],
    arrays: tuple[np.ndarray, ...],
    codes: np.ndarray,
    n_draw: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Leave-one-cluster-out values of every metric (``codes``: cluster index per unit); beyond
    :data:`MAX_JACKKNIFE` clusters, clusters are dealt into that many random blocks left out in turn."""
    if n_draw > MAX_JACKKNIFE:
        block = np.random.default_rng(seed + 1).permutation(n_draw) % MAX_JACKKNIFE
        codes, n_draw = block[codes], MAX_JACKKNIFE
    weighted = getattr(metric_fn, "weighted", None)
    n = len(codes)
    chunk = max(1, 1_000_000 // max(n, 1))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_draw, chunk):
        left_out = np.arange(start, min(start + chunk, n_draw))
        if weighted is not None:
            weights = (codes[None, :] != left_out[:, None]).astype(float)
            out = {k: np.asarray(v, dtype=float) for k, v in weighted(weights, *arrays).items()}
        else:
            results = [metric_fn(*(a[codes != c] for a in arrays)) for c in left_out]
            keys = dict.fromkeys(k for r in results for k in r)
            out = {k: np.array([r.get(k, np.nan) for r in results], dtype=float) for k in keys}
        for key, values in out.items():
            parts.setdefault(key, []).append(values)
    return {k: np.concatenate(v) for k, v in parts.items()}


def bca_interval(
    replicates: np.ndarray, estimate: float, jackknife: np.ndarray, alpha: float = 0.05
) -> tuple[float, float] | None:
    """The BCa interval (Efron 1987; Efron & Tibshirani 1993, ch. 14) from finite bootstrap
    ``replicates``, the point ``estimate`` and the leave-one-(cluster-)out ``jackknife`` values.

    Bias correction ``z0 = Φ⁻¹(share of replicates below the estimate)`` (ties count one half);
    acceleration ``a = Σ d³ / (6 (Σ d²)^1.5)`` with ``d`` the jackknife mean minus each jackknife value.
    None when BCa is undefined: every replicate on one side of the estimate (``z0`` infinite).
    """
    from scipy.special import ndtr, ndtri

    below = (np.sum(replicates < estimate) + 0.5 * np.sum(replicates == estimate)) / replicates.size
    if not 0 < below < 1:
        return None
    z0 = float(ndtri(below))
    jack = jackknife[np.isfinite(jackknife)]
    d = jack.mean() - jack if jack.size >= 2 else np.zeros(1)
    denom = 6 * float(np.sum(d**2)) ** 1.5
    a = float(np.sum(d**3)) / denom if denom > 0 else 0.0
    levels = []
    for q in (alpha / 2, 1 - alpha / 2):
        zq = z0 + float(ndtri(q))
        if 1 - a * zq <= 0:
            return None
        levels.append(float(ndtr(z0 + zq / (1 - a * zq))))
    lo, hi = np.percentile(replicates, [100 * levels[0], 100 * levels[1]])
    return float(lo), float(hi)


def bootstrap_intervals(
    metric_fn: Callable[..., dict[str, float]],
    arrays: tuple[np.ndarray, ...],
    n_boot: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    alpha: float = 0.05,
) -> dict[str, BootstrapInterval | None]:
    """Bootstrap CI of every metric ``metric_fn(*arrays)`` returns: percentile, or BCa where the
    percentile interval excludes the point estimate.

    Units are resampled with replacement; with ``groups``, whole groups are (cluster bootstrap), so that
    units sharing a group id always enter a resample together, and the BCa jackknife leaves out whole
    groups. NaN replicates (e.g. a resample with one class) are ignored; a metric finite in fewer than
    half of the replicates gets None, as its CI would describe a biased subset. A ``metric_fn`` with a
    ``weighted(weights, *arrays)`` method is evaluated vectorised; otherwise it is called once per
    resample. Both paths draw the same resamples.
    """
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(f"bootstrap needs non-empty arrays of one length, got {[len(a) for a in arrays]}")
    if groups is None:
        codes = np.arange(n)
    else:
        groups = np.asarray(groups).reshape(-1)
        if groups.size != n:
            raise ValueError(f"groups has {groups.size} entries for {n} units")
        codes = np.unique(groups, return_inverse=True)[1].reshape(-1)
    n_draw = int(codes.max()) + 1
    weighted = getattr(metric_fn, "weighted", None)
    if weighted is None and groups is not None:  # unit indices of each group, for the looped path
        members = np.split(np.argsort(codes, kind="mergesort"), np.cumsum(np.bincount(codes))[:-1])
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 1_000_000 // max(n, n_draw)))  # bounds the (replicates, units) weight matrix
    replicates: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n_draw, size=(b, n_draw))
        if weighted is not None:
            flat = (draws + n_draw * np.arange(b)[:, None]).ravel()
            counts = np.bincount(flat, minlength=b * n_draw).reshape(b, n_draw).astype(float)
            unit_weights = counts if groups is None else counts[:, codes]
            out = {k: np.asarray(v, dtype=float) for k, v in weighted(unit_weights, *arrays).items()}
        else:
            rows = draws if groups is None else [np.concatenate([members[g] for g in row]) for row in draws]
            results = [metric_fn(*(a[idx] for a in arrays)) for idx in rows]
            keys = dict.fromkeys(k for r in results for k in r)
            out = {k: np.array([r.get(k, np.nan) for r in results], dtype=float) for k in keys}
        for key, values in out.items():
            replicates.setdefault(key, []).append(values)
    point = metric_fn(*arrays)
    jackknife: dict[str, np.ndarray] | None = None
    cis: dict[str, BootstrapInterval | None] = {}
    for key, parts in replicates.items():
        values = np.concatenate(parts)
        finite = values[np.isfinite(values)]
        if finite.size == 0 or finite.size < 0.5 * n_boot:
            cis[key] = None
            continue
        lo, hi = (float(v) for v in np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)]))
        estimate = float(point.get(key, np.nan))
        if not math.isfinite(estimate) or lo <= estimate <= hi:
            cis[key] = BootstrapInterval(lo, hi)
            continue
        if jackknife is None:
            jackknife = _jackknife(metric_fn, arrays, codes, n_draw, seed)
        bca = bca_interval(finite, estimate, jackknife.get(key, np.zeros(0)), alpha)
        if bca is None:
            cis[key] = BootstrapInterval(
                lo,
                hi,
                "percentile",
                "the percentile interval excludes the estimate "
                "and BCa is undefined (every replicate on one side of it)",
            )
        else:
            cis[key] = BootstrapInterval(bca[0], bca[1], "bca")
    return cis


def bootstrap_ci(
    metric_fn: Callable[..., dict[str, float]],
    arrays: tuple[np.ndarray, ...],
    n_boot: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float] | None]:
    """:func:`bootstrap_intervals` as plain ``(low, high)`` pairs (percentile, or BCa where the
    percentile interval excluded the point estimate)."""
    return {
        k: None if ci is None else (ci.low, ci.high)
        for k, ci in bootstrap_intervals(metric_fn, arrays, n_boot, seed, groups, alpha).items()
    }


def _plural(word: str) -> str:
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + ("es" if re.search(r"(s|x|z|ch|sh)$", word) else "s")


def class_index_groups(
    f1_groups: dict[str, list[str]] | None, class_names: list[str]
) -> dict[str, list[int]]:
    """``{"challenge_f1": ["Normal", "AF"]}`` → ``{"challenge_f1": [0, 1]}`` (unknown names are a bug)."""
    return {name: [class_names.index(c) for c in classes] for name, classes in (f1_groups or {}).items()}


def evaluate_predictions(
    task_name: str,
    split: str,
    unit: str,
    kind: Literal["binary", "multiclass", "regression"],
    y_true: Any,
    prob_or_pred: Any,
    class_names: list[str],
    operating_point: OperatingPoint | None,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    group_unit: str = "group",
    ordinal: bool = False,
    f1_groups: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` dict (docs/conventions.md#metricsjson) for one split, JSON-safe (NaN -> None, 4 decimals).

    ``ordinal`` (multiclass only): the classes are ordered, so linear-weighted kappa (``kappa_linear``)
    and the mean absolute distance between predicted and true class (``mad``, in classes) are added.

    Binary metrics are taken at the operating point's threshold (0.5 without one). ``n_boot=0`` skips the
    bootstrap (every ``ci95`` None). ``group_unit`` only names the groups in ``ci_method``.

    Each bootstrapped metric carries its own ``ci_method`` ("percentile", or "bca" where the percentile
    interval excluded the estimate; see :func:`bootstrap_intervals`). With ``groups`` of fewer than
    :data:`MIN_CLUSTERS` distinct values no CI is computed: every ``ci95`` is None and ``ci_note`` says
    why (a cross-validated run reports the spread of its per-fold figures instead).
    """
    fn: Any
    if kind == "binary":
        if len(class_names) != 2:
            raise ValueError(f"a binary task needs 2 class names (negative, positive), got {class_names}")
        arrays = check_binary(y_true, prob_or_pred)
        fn = BinaryMetricSet(operating_point.threshold if operating_point else 0.5)
    elif kind == "multiclass":
        arrays = _as_multiclass(y_true, prob_or_pred, len(class_names))
        fn = MulticlassMetricSet(
            len(class_names), ordinal=ordinal, f1_groups=class_index_groups(f1_groups, class_names)
        )
    elif kind == "regression":
        arrays, fn = _as_regression(y_true, prob_or_pred), RegressionMetricSet()
    else:
        raise ValueError(f"kind must be 'binary', 'multiclass' or 'regression', got {kind!r}")
    if operating_point is not None and kind != "binary":
        raise ValueError(f"an operating point applies to binary tasks only, not {kind}")
    point = fn(*arrays)
    n_clusters = None if groups is None else len(np.unique(np.asarray(groups).reshape(-1)))
    too_few = n_clusters is not None and n_clusters < MIN_CLUSTERS
    cis = (
        bootstrap_intervals(fn, arrays, n_boot=n_boot, seed=seed, groups=groups)
        if n_boot > 0 and not too_few
        else {}
    )

    def entry(key: str) -> dict[str, Any]:
        ci = cis.get(key)
        ok = ci is not None and math.isfinite(ci.low) and math.isfinite(ci.high)
        value = round(point[key], 4) if math.isfinite(point[key]) else None
        out: dict[str, Any] = {"value": value, "ci95": [round(ci.low, 4), round(ci.high, 4)] if ok else None}
        if ok:
            out["ci_method"] = ci.method
            if ci.note:
                out["ci_note"] = ci.note
        return out

    per_class: dict[str, dict[str, Any]] = {}
    if kind == "binary":
        names = BINARY_METRICS
        per_class = {
            class_names[1]: {"sensitivity": entry("sensitivity"), "ppv": entry("ppv")},
            class_names[0]: {"sensitivity": entry("specificity"), "ppv": entry("npv")},
        }
    elif kind == "multiclass":
        names = MULTICLASS_METRICS + (("kappa_linear", "mad") if ordinal else ()) + tuple(f1_groups or {})
        per_class = {
            name: {m: entry(f"per_class/{c}/{m}") for m in PER_CLASS_METRICS}
            for c, name in enumerate(class_names)
        }
    else:
        names = RegressionMetricSet.names
    bca = any(ci is not None and ci.method == "bca" for ci in cis.values())
    corrected = " (BCa where the percentile interval excluded the estimate)" if bca else ""
    if n_boot <= 0:
        ci_method = "not bootstrapped"
    elif too_few:
        ci_method = f"not bootstrapped: {n_clusters} {_plural(group_unit)}, fewer than {MIN_CLUSTERS}"
    elif groups is None:
        ci_method = f"percentile bootstrap, {n_boot} resamples of {_plural(unit)}{corrected}"
    else:
        ci_method = (
            f"percentile bootstrap, {n_boot} resamples of {_plural(group_unit)} (cluster bootstrap)"
            f"{corrected}"
        )
    result = {
        "task": task_name,
        "split": split,
        "unit": unit,
        "n": int(len(arrays[0])),
        "metrics": {name: entry(name) for name in names},
        "per_class": per_class,
        "operating_point": operating_point.to_dict() if operating_point is not None else None,
        "ci_method": ci_method,
    }
    if too_few and n_boot > 0:
        result["ci_note"] = (
            f"only {n_clusters} {_plural(group_unit)}: a cluster bootstrap over fewer than "
            f"{MIN_CLUSTERS} clusters does not hold its 95% coverage, so no CI is given; a "
            "cross-validated run reports the spread of its per-fold figures (folds_summary)"
        )
    return result
