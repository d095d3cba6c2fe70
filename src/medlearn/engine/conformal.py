"""Split-conformal prediction sets for classifiers: a model that can say "not sure".

Instead of one label, a bundle returns the set of classes that together reach a stated coverage (e.g.
90 %: on new units exchangeable with the calibration units, the true class is in the set at least 90 % of
the time, whatever the model). A set of more than one class is the model saying it cannot tell; the
prediction record flags it ``uncertain``. Two scores (Angelopoulos & Bates, "A Gentle Introduction to
Conformal Prediction", 2021):

- ``aps`` (adaptive prediction sets, Romano et al. 2020): the classes are ranked by probability and a
  class is in the set when the mass ranked above it, plus a uniform share ``u`` of its own, stays within
  the calibrated threshold. Sets grow where the model is unsure. The share ``u`` is what makes coverage
  exact rather than conservative; it is drawn per unit from a hash of the unit's probabilities, so the
  same input always gets the same set. The top class is always kept (a set is never empty).
- ``class_conditional`` (Mondrian, per-class LAC, Vovk 2005): one threshold on ``1 - p(class)`` per
  class, so that each class on its own is covered at the target — what a rare positive class needs when
  a marginal guarantee would let it be missed.

The calibration units must not have steered the model: the engine holds them out of validation (units
neither early stopping nor temperature scaling saw). The probabilities scored are the calibrated ones the
bundle returns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Score = Literal["aps", "class_conditional"]
SCORES: tuple[str, ...] = ("aps", "class_conditional")


def as_class_probabilities(pred: np.ndarray) -> np.ndarray:
    """``(n, k)`` class probabilities from a bundle's predictions: a binary model's P(positive) becomes
    ``[1 - p, p]``."""
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim == 1:
        return np.stack([1.0 - pred, pred], axis=1)
    return pred


def _quantile(scores: np.ndarray, coverage: float) -> float:
    """The finite-sample conformal quantile: the ⌈(n+1)·coverage⌉-th smallest score (inf when n is too
    small for the coverage asked: every class is then in the set)."""
    n = len(scores)
    rank = int(np.ceil((n + 1) * coverage))
    if n == 0 or rank > n:
        return float("inf")
    return float(np.sort(scores)[rank - 1])


def unit_uniforms(probs: np.ndarray) -> np.ndarray:
    """One uniform number per unit, a function of its probabilities only (the randomised APS score's
    tie-break, reproducible for a given input)."""
    rounded = np.round(np.asarray(probs, dtype=np.float64), 9)
    out = np.empty(len(rounded))
    for i, row in enumerate(rounded):
        digest = hashlib.sha256(row.tobytes()).digest()
        out[i] = int.from_bytes(digest[:8], "little") / 2.0**64
    return out


def _aps_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Randomised APS score of the true class: mass ranked above it plus a uniform share of its own."""
    order = np.argsort(-probs, axis=1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, axis=1)
    before = np.cumsum(sorted_probs, axis=1) - sorted_probs
    rank_of_true = np.argmax(order == labels[:, None], axis=1)
    rows = np.arange(len(labels))
    return before[rows, rank_of_true] + unit_uniforms(probs) * sorted_probs[rows, rank_of_true]


@dataclass(frozen=True)
class ConformalSets:
    """A fitted set predictor: the score, its threshold(s) and where they came from."""

    coverage: float
    score: str
    #: APS: one threshold on cumulative probability; class_conditional: one on 1 - p per class
    thresholds: list[float]
    n_calibration: int
    source: str

    def sets(self, pred: np.ndarray) -> list[list[int]]:
        """The class indices in each unit's set, most probable first (never empty: the top class is
        always kept, so a unit is predicted even when the threshold is very tight)."""
        probs = as_class_probabilities(pred)
        order = np.argsort(-probs, axis=1, kind="stable")
        uniforms = unit_uniforms(probs)
        out: list[list[int]] = []
        for row, ranked, u in zip(probs, order, uniforms):
            if self.score == "aps":  # the scores rise with rank, so the set is a prefix of the ranking
                mass = row[ranked]
                scores = np.cumsum(mass) - mass + u * mass
                keep = int((scores <= self.thresholds[0]).sum())
                chosen = ranked[: max(1, keep)]
            else:
                chosen = [c for c in ranked if 1.0 - row[c] <= self.thresholds[c]] or [ranked[0]]
            out.append([int(c) for c in chosen])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "coverage": self.coverage,
            "score": self.score,
            "thresholds": [t if np.isfinite(t) else None for t in self.thresholds],
            "n_calibration": self.n_calibration,
            "method": f"split conformal ({self.score}), {self.source}",
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ConformalSets:
        source = str(raw.get("method", "")).split("), ", 1)[-1]
        thresholds = [float("inf") if t is None else float(t) for t in raw["thresholds"]]
        return cls(float(raw["coverage"]), str(raw["score"]), thresholds, int(raw["n_calibration"]), source)


def fit_sets(
    pred: np.ndarray,
    labels: np.ndarray,
    coverage: float = 0.9,
    score: str = "aps",
    source: str = "calibration units",
) -> ConformalSets:
    """Calibrate a set predictor on held-out units' predictions ``pred`` and true ``labels``."""
    if score not in SCORES:
        raise ValueError(f"conformal score {score!r}: choose one of {', '.join(SCORES)}")
    probs = as_class_probabilities(pred)
    labels = np.asarray(labels, dtype=int)
    if score == "aps":
        thresholds = [_quantile(_aps_scores(probs, labels), coverage)]
    else:
        thresholds = [_quantile(1.0 - probs[labels == c, c], coverage) for c in range(probs.shape[1])]
    return ConformalSets(coverage, score, thresholds, int(len(labels)), source)


def set_metrics(sets: list[list[int]], labels: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Empirical coverage, mean set size and the share of uncertain (more than one class) sets on scored
    units, overall and per true class."""
    labels = np.asarray(labels, dtype=int)
    covered = np.array([y in s for s, y in zip(sets, labels)], dtype=bool)
    sizes = np.array([len(s) for s in sets])
    per_class = {
        name: {"n": int((labels == c).sum()), "coverage": float(covered[labels == c].mean())}
        for c, name in enumerate(class_names)
        if (labels == c).any()
    }
    return {
        "n": int(len(labels)),
        "coverage": float(covered.mean()) if len(labels) else float("nan"),
        "mean_set_size": float(sizes.mean()) if len(labels) else float("nan"),
        "uncertain_share": float((sizes > 1).mean()) if len(labels) else float("nan"),
        "per_class": per_class,
    }


def selective_curve(pred: np.ndarray, labels: np.ndarray, n_points: int = 20) -> dict[str, list[float]]:
    """Accuracy against coverage when the model answers only its most confident units (by top-class
    probability): what abstaining on the least sure buys."""
    probs = as_class_probabilities(pred)
    labels = np.asarray(labels, dtype=int)
    order = np.argsort(-probs.max(axis=1), kind="stable")
    correct = (probs.argmax(axis=1) == labels)[order]
    n = len(labels)
    coverages, accuracies = [], []
    for k in np.unique(np.linspace(1, n, min(n_points, n)).round().astype(int)):
        coverages.append(float(k / n))
        accuracies.append(float(correct[:k].mean()))
    return {"coverage": coverages, "accuracy": accuracies}
