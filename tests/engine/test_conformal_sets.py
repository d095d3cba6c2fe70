"""Split-conformal prediction sets (issue 16, item 3): the coverage guarantee holds on exchangeable units
for both scores, sets grow where the model is unsure, class-conditional sets cover each class, and the
fitted predictor survives a round trip through the bundle's JSON."""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.engine.conformal import ConformalSets, fit_sets, selective_curve, set_metrics


def noisy_classifier(n: int, k: int, seed: int, weights: tuple[float, ...] | None = None):
    """Labels and softmax probabilities of a mediocre model: the true class gets a boost of random size,
    so some units are clear and some are near ties (what sets must adapt to)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(k, size=n, p=weights)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += rng.exponential(1.5, size=n)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, labels


@pytest.mark.parametrize("score", ["aps", "class_conditional"])
@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_coverage_holds_on_new_units(score, coverage):
    covered = []
    for seed in range(20):  # over repeated calibration draws, coverage averages at the target
        probs, labels = noisy_classifier(4000, 4, seed)
        sets = fit_sets(probs[:2000], labels[:2000], coverage, score)
        covered.append(set_metrics(sets.sets(probs[2000:]), labels[2000:], list("abcd"))["coverage"])
    assert np.mean(covered) >= coverage - 0.01
    assert np.mean(covered) <= coverage + 0.025  # exact, not conservative (every class in every set)


def test_sets_grow_where_the_model_is_unsure():
    probs, labels = noisy_classifier(2000, 4, 0)
    sets = fit_sets(probs[:1000], labels[:1000], 0.9, "aps").sets(probs[1000:])
    sizes = np.array([len(s) for s in sets])
    top = probs[1000:].max(axis=1)
    assert sizes[top > 0.8].mean() < sizes[top < 0.4].mean()
    assert all(s[0] == int(np.argmax(p)) for s, p in zip(sets, probs[1000:]))  # most probable first
    assert min(sizes) >= 1


def test_class_conditional_sets_cover_a_rare_class_that_marginal_sets_miss():
    probs, labels = noisy_classifier(6000, 3, 1, weights=(0.85, 0.1, 0.05))
    probs[:, 2] *= 0.3  # the model underrates the rare class
    probs /= probs.sum(axis=1, keepdims=True)
    cal, new = slice(0, 3000), slice(3000, None)
    rare = {}
    for score in ("aps", "class_conditional"):
        fitted = fit_sets(probs[cal], labels[cal], 0.9, score)
        rare[score] = set_metrics(fitted.sets(probs[new]), labels[new], ["a", "b", "c"])["per_class"]["c"]
    assert rare["class_conditional"]["coverage"] >= 0.85
    assert rare["class_conditional"]["coverage"] > rare["aps"]["coverage"]


def test_a_binary_models_probability_is_two_classes():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 800)
    p = np.clip(labels * 0.6 + rng.normal(0.2, 0.2, 800), 0.001, 0.999)
    fitted = fit_sets(p[:400], labels[:400], 0.9)
    sets = fitted.sets(p[400:])
    assert {len(s) for s in sets} <= {1, 2}
    assert set_metrics(sets, labels[400:], ["neg", "pos"])["coverage"] >= 0.85


def test_too_few_calibration_units_give_every_class():
    probs, labels = noisy_classifier(5, 3, 3)
    fitted = fit_sets(probs, labels, 0.95)  # ⌈6·0.95⌉ = 6 > 5 units: no finite threshold
    assert all(len(s) == 3 for s in fitted.sets(probs))
    assert fitted.to_dict()["thresholds"] == [None]


def test_round_trip_through_json():
    probs, labels = noisy_classifier(300, 3, 4)
    fitted = fit_sets(probs, labels, 0.9, "class_conditional", source="120 held-out validation records")
    again = ConformalSets.from_dict(fitted.to_dict())
    assert again == fitted
    assert again.to_dict()["method"] == "split conformal (class_conditional), 120 held-out validation records"


def test_selective_curve_accuracy_falls_as_coverage_grows():
    probs, labels = noisy_classifier(1000, 4, 5)
    curve = selective_curve(probs, labels)
    assert curve["coverage"][-1] == 1.0 and len(curve["coverage"]) == len(curve["accuracy"])
    assert curve["accuracy"][0] >= curve["accuracy"][-1]


def test_an_unknown_score_is_refused():
    with pytest.raises(ValueError, match="choose one of aps, class_conditional"):
        fit_sets(np.eye(2), np.array([0, 1]), 0.9, "raps")
