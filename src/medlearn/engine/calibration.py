"""Calibration: turning scores into risks and decisions.

Two questions a model's scores must answer before a clinician can use them. Is a predicted 0.8 a real
80 % risk (expected calibration error, reliability curve)? And at which score does the model call a case
positive (the operating point, e.g. "sensitivity>=0.90" chosen on the validation split)?

Discrimination (AUROC) says whether a model ranks cases correctly; calibration says whether its
probabilities can be read as risks, which is what a clinician acting on "30 % risk" relies on. ECE and
the reliability curve use equal-width bins on [0, 1] so that values are comparable between models and
runs (adaptive bins would move with the model being measured).

The ``weighted_*`` forms take a matrix of unit weights of shape (replicates, units) so that the bootstrap
in :mod:`medlearn.engine.metrics` evaluates 1000 resamples in a few matrix products instead of a Python
loop; a weight is how many times a unit was drawn into a replicate. The plain forms are the same
computation with all weights equal to one, so point estimates and bootstrap replicates can never disagree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlearn.errors import ConfigError

_RULE_FORMS = '"sensitivity>=0.90", "specificity>=0.95", "youden", "f1" or "threshold=0.5"'
_NUMBER = r"([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)"


class OperatingRuleError(ConfigError, ValueError):
    """An operating-point rule that cannot be parsed; a ValueError, and a user-fixable config error."""


@dataclass(frozen=True)
class OperatingPoint:
    """The decision threshold a binary model ships with, and how and on which split it was chosen.

    Choosing it on validation data and reporting test metrics at it is what makes the test sensitivity an
    honest estimate; ``chosen_on`` and ``rule`` record that so a reader can check.
    """

    threshold: float
    chosen_on: str
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form; the threshold keeps full precision because rounding it would change predictions."""
        return {"threshold": float(self.threshold), "chosen_on": self.chosen_on, "rule": self.rule}


def check_binary(y_true: Any, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate 0/1 labels and positive-class probabilities (an (n, 2) array gives its second column)."""
    y, p = np.asarray(y_true), np.asarray(prob, dtype=float)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    y, p = y.reshape(-1), p.reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true and prob differ in length: {y.shape[0]} vs {p.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"binary y_true must hold only 0 and 1, found {np.unique(y)[:5].tolist()}")
    if not np.isfinite(p).all():
        raise ValueError("prob holds NaN or infinite values")
    return y.astype(float), p


def bin_index(prob: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each probability; 1.0 goes to the last bin, values outside [0, 1] are clipped."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    idx = np.floor(np.asarray(prob, dtype=float) * n_bins).astype(np.int64)
    return np.clip(idx, 0, n_bins - 1)


def weighted_bin_sums(
    weights: np.ndarray, outcome: np.ndarray, confidence: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-replicate, per-bin (count, sum of confidence, sum of outcome); each of shape (replicates, n_bins).

    A one-hot bin matrix turns the three sums into matrix products, which is what makes 1000 bootstrap
    replicates cheap.
    """
    onehot = np.zeros((confidence.shape[0], n_bins))
    onehot[np.arange(confidence.shape[0]), bin_index(confidence, n_bins)] = 1.0
    stacked = np.concatenate([onehot, onehot * confidence[:, None], onehot * outcome[:, None]], axis=1)
    sums = weights @ stacked
    return sums[:, :n_bins], sums[:, n_bins : 2 * n_bins], sums[:, 2 * n_bins :]


def weighted_ece(
    weights: np.ndarray, outcome: np.ndarray, confidence: np.ndarray, n_bins: int = 10
) -> np.ndarray:
    """ECE of each weighted replicate: sum over bins of (bin weight / total) * |observed - mean confidence|.

    ``outcome`` is 1 when the event the confidence refers to happened (the positive class for binary
    ECE; "the top label was right" for top-label multiclass ECE). Returns NaN for an empty replicate.
    """
    counts, conf_sum, outcome_sum = weighted_bin_sums(weights, outcome.astype(float), confidence, n_bins)
    total = counts.sum(axis=1)
    gap = np.abs(outcome_sum - conf_sum)  # = count * |observed - confidence| per bin
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, gap.sum(axis=1) / total, np.nan)


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error of positive-class probabilities with ``n_bins`` equal-width bins.

    0 is perfect; an overconfident model (predicts 0.99 for cases that are right 70 % of the time) scores
    high. Binning makes ECE slightly positive even for a perfectly calibrated model on finite data.
    """
    y, p = check_binary(y_true, prob)
    if y.size == 0:
        return float("nan")
    return float(weighted_ece(np.ones((1, y.size)), y, p, n_bins)[0])


def reliability_curve(
    y_true: np.ndarray, prob: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin: mean predicted probability, observed frequency of the positive class, count.

    All three arrays have length ``n_bins`` so bins line up between models; empty bins hold NaN for the
    two means and 0 for the count (plot only bins with a count).
    """
    y, p = check_binary(y_true, prob)
    counts, conf_sum, outcome_sum = weighted_bin_sums(np.ones((1, y.size)), y, p, n_bins)
    counts, conf_sum, outcome_sum = counts[0], conf_sum[0], outcome_sum[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.where(counts > 0, conf_sum / counts, np.nan)
        observed = np.where(counts > 0, outcome_sum / counts, np.nan)
    return mean_pred, observed, counts.astype(np.int64)


def parse_rule(rule: str) -> tuple[str, float]:
    """Split an operating-point rule into (kind, value); value is NaN for "youden" and "f1"."""
    text = re.sub(r"\s+", "", str(rule)).lower()
    if text in ("youden", "f1"):
        return text, float("nan")
    m = re.fullmatch(rf"(sensitivity|specificity)>={_NUMBER}", text)
    if m and 0.0 < float(m[2]) <= 1.0:
        return m[1], float(m[2])
    m = re.fullmatch(rf"threshold={_NUMBER}", text)
    if m and 0.0 <= float(m[1]) <= 1.0:
        return "threshold", float(m[1])
    raise OperatingRuleError(
        f"operating-point rule {rule!r} is not understood; use {_RULE_FORMS} "
        "(targets in (0, 1], thresholds in [0, 1])"
    )


def choose_operating_point(y_true: Any, prob: Any, rule: str, chosen_on: str = "val") -> OperatingPoint:
    """Pick the decision threshold ``rule`` asks for on these data (normally the validation split).

    ``sensitivity>=s`` takes the highest threshold that still reaches s (the best specificity at that
    sensitivity); ``specificity>=s`` the lowest observed score that reaches s; ``youden`` and ``f1`` the
    observed score maximising sens+spec-1 or F1 (the highest on ties); ``threshold=x`` is x.
    """
    kind, value = parse_rule(rule)
    if kind == "threshold":
        return OperatingPoint(value, chosen_on, rule.strip())
    y, p = check_binary(y_true, prob)
    pos, neg = np.sort(p[y == 1]), np.sort(p[y == 0])
    needed = {"sensitivity": pos.size, "specificity": neg.size, "f1": pos.size}
    if needed.get(kind, min(pos.size, neg.size)) == 0:
        raise ValueError(
            f"cannot choose an operating point by {rule!r}: the {chosen_on} data lack the class it needs "
            "(one class only)"
        )
    if kind == "sensitivity":
        k = max(1, math.ceil(value * pos.size - 1e-9))  # positives that must score at or above the threshold
        threshold = pos[::-1][k - 1]
    elif kind == "specificity":
        cut = neg[max(1, math.ceil(value * neg.size - 1e-9)) - 1]  # negatives up to here must fall below
        above = p[p > cut]
        threshold = above.min() if above.size else np.nextafter(cut, np.inf)
    else:
        candidates = np.unique(p)[::-1]
        tp = pos.size - np.searchsorted(pos, candidates, side="left")
        fp = neg.size - np.searchsorted(neg, candidates, side="left")
        score = tp / pos.size - fp / neg.size if kind == "youden" else 2 * tp / (tp + fp + pos.size)
        threshold = candidates[int(np.argmax(score))]
    return OperatingPoint(float(threshold), chosen_on, rule.strip())
