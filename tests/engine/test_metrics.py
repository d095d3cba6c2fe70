"""Clinical metrics, operating points and bootstrap CIs (medlearn.engine.metrics / calibration)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from sklearn import metrics as skm

from medlearn.engine.metrics import (
    BINARY_METRICS,
    BinaryMetricSet,
    OperatingPoint,
    binary_metrics,
    bootstrap_ci,
    choose_operating_point,
    evaluate_predictions,
    expected_calibration_error,
    multiclass_metrics,
    parse_rule,
    regression_metrics,
    reliability_curve,
)
from medlearn.errors import ConfigError


def _binary_data(rng: np.random.Generator, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping scores rounded to 2 decimals, so ties exercise the tie handling."""
    y = rng.integers(0, 2, n)
    prob = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), 2)
    return y, prob


def test_binary_metrics_agree_with_sklearn(rng: np.random.Generator) -> None:
    y, prob = _binary_data(rng)
    pred = prob >= 0.4
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    got = binary_metrics(y, prob, threshold=0.4)
    assert tuple(got) == BINARY_METRICS
    expected = {
        "auroc": skm.roc_auc_score(y, prob),
        "auprc": skm.average_precision_score(y, prob),
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "sensitivity": skm.recall_score(y, pred),
        "specificity": tn / (tn + fp),
        "ppv": skm.precision_score(y, pred),
        "npv": tn / (tn + fn),
        "f1": skm.f1_score(y, pred),
        "brier": skm.brier_score_loss(y, prob),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_binary_metrics_accept_two_column_probabilities(rng: np.random.Generator) -> None:
    y, prob = _binary_data(rng, 100)
    assert binary_metrics(y, np.stack([1 - prob, prob], axis=1)) == binary_metrics(y, prob)


def test_binary_metrics_reject_labels_other_than_zero_and_one() -> None:
    with pytest.raises(ValueError, match="only 0 and 1"):
        binary_metrics(np.array([0, 1, 2]), np.array([0.1, 0.5, 0.9]))


def test_multiclass_metrics_agree_with_sklearn(rng: np.random.Generator) -> None:
    n, k = 500, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = prob.argmax(axis=1)
    overall, per_class = multiclass_metrics(y, prob, ["a", "b", "c", "d"])
    assert overall["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert overall["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert overall["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert overall["auroc"] == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr", average="macro"))
    assert overall["kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert 0 <= overall["ece"] <= 1
    reference = {"sensitivity": skm.recall_score, "ppv": skm.precision_score, "f1": skm.f1_score}
    for name, sk_fn in reference.items():
        assert per_class["c"][name] == pytest.approx(sk_fn(y, pred, labels=[2], average=None)[0]), name


def test_regression_metrics_agree_with_sklearn(rng: np.random.Generator) -> None:
    y, pred = rng.normal(5, 2, 200), rng.normal(5, 2, 200)
    got = regression_metrics(y, pred)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, pred)))


def test_perfect_classifier_has_auroc_one_and_ci_one_one(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 200)
    prob = np.where(y == 1, rng.uniform(0.6, 1.0, 200), rng.uniform(0.0, 0.4, 200))
    result = evaluate_predictions("t", "test", "case", "binary", y, prob, ["neg", "pos"], None, n_boot=300)
    assert result["metrics"]["auroc"] == {"value": 1.0, "ci95": [1.0, 1.0], "ci_method": "percentile"}
    assert result["metrics"]["sensitivity"]["ci95"] == [1.0, 1.0]


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 1.0])
def test_sensitivity_rule_picks_the_highest_threshold_reaching_the_target(
    rng: np.random.Generator, target: float
) -> None:
    y, prob = _binary_data(rng, 300)
    op = choose_operating_point(y, prob, f"sensitivity>={target}", chosen_on="val")
    assert op.chosen_on == "val" and op.rule == f"sensitivity>={target}"
    assert binary_metrics(y, prob, op.threshold)["sensitivity"] >= target
    higher = np.unique(prob[prob > op.threshold])
    if higher.size:  # the next observed score up already misses the target
        assert binary_metrics(y, prob, higher[0])["sensitivity"] < target


@pytest.mark.parametrize("target", [0.5, 0.9, 0.95])
def test_specificity_rule_picks_the_lowest_score_reaching_the_target(
    rng: np.random.Generator, target: float
) -> None:
    y, prob = _binary_data(rng, 300)
    op = choose_operating_point(y, prob, f"specificity>={target}")
    assert binary_metrics(y, prob, op.threshold)["specificity"] >= target
    lower = np.unique(prob[prob < op.threshold])
    assert binary_metrics(y, prob, lower[-1])["specificity"] < target


def test_youden_and_f1_rules_maximise_their_criterion(rng: np.random.Generator) -> None:
    y, prob = _binary_data(rng, 300)
    candidates = np.unique(prob)

    def best(criterion: str) -> float:
        values = [binary_metrics(y, prob, t) for t in candidates]
        youden = [m["sensitivity"] + m["specificity"] - 1 for m in values]
        score = youden if criterion == "youden" else [m["f1"] for m in values]
        return float(np.max(score))

    youden = binary_metrics(y, prob, choose_operating_point(y, prob, "youden").threshold)
    assert youden["sensitivity"] + youden["specificity"] - 1 == pytest.approx(best("youden"))
    f1_threshold = choose_operating_point(y, prob, "f1").threshold
    assert binary_metrics(y, prob, f1_threshold)["f1"] == pytest.approx(best("f1"))


def test_fixed_threshold_rule_and_operating_point_dict() -> None:
    op = choose_operating_point(np.array([0, 1]), np.array([0.2, 0.8]), "threshold=0.3", chosen_on="config")
    assert op == OperatingPoint(0.3, "config", "threshold=0.3")
    assert op.to_dict() == {"threshold": 0.3, "chosen_on": "config", "rule": "threshold=0.3"}


def test_operating_point_needs_both_classes_for_youden() -> None:
    with pytest.raises(ValueError, match="one class"):
        choose_operating_point(np.zeros(10), np.linspace(0, 1, 10), "youden")


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("sensitivity>=0.90", ("sensitivity", 0.9)),
        (" Specificity >= .95 ", ("specificity", 0.95)),
        ("threshold=0.5", ("threshold", 0.5)),
        ("f1", ("f1", math.nan)),
        ("youden", ("youden", math.nan)),
    ],
)
def test_parse_rule_accepts_the_documented_forms(rule: str, expected: tuple[str, float]) -> None:
    kind, value = parse_rule(rule)
    assert kind == expected[0]
    assert value == expected[1] or (math.isnan(value) and math.isnan(expected[1]))


@pytest.mark.parametrize(
    "rule",
    [
        "sensitivity>0.9",
        "sensitivity>=1.5",
        "sensitivity>=0",
        "ppv>=0.9",
        "threshold=2",
        "threshold",
        "",
        "youden2",
    ],
)
def test_parse_rule_rejects_bad_rules_naming_the_accepted_forms(rule: str) -> None:
    with pytest.raises(ValueError, match="sensitivity>=0.90.*youden.*threshold=0.5") as info:
        parse_rule(rule)
    assert isinstance(info.value, ConfigError)  # the CLI reports it as a one-line user error


def test_cluster_bootstrap_moves_whole_groups_together(rng: np.random.Generator) -> None:
    groups = np.repeat(np.arange(30), rng.integers(1, 5, 30))
    seen: list[np.ndarray] = []

    def record(g: np.ndarray) -> dict[str, float]:
        seen.append(g)
        return {"n": float(g.size)}

    bootstrap_ci(record, (groups,), n_boot=50, groups=groups)
    sizes = np.bincount(groups)
    for resample in seen:
        drawn = np.bincount(resample, minlength=sizes.size)
        assert np.all(drawn % sizes == 0)  # each group enters whole, as often as it was drawn


def test_cluster_bootstrap_of_duplicated_units_equals_unit_bootstrap_of_originals(
    rng: np.random.Generator,
) -> None:
    """Three identical copies of each unit are one group: the cluster CI must not shrink because of them."""
    y, prob = _binary_data(rng, 120)
    copies = 3
    y3, prob3, groups = np.repeat(y, copies), np.repeat(prob, copies), np.repeat(np.arange(y.size), copies)
    fn = BinaryMetricSet(0.5)
    unit_ci = bootstrap_ci(fn, (y, prob), n_boot=400, seed=1)["auroc"]
    cluster_ci = bootstrap_ci(fn, (y3, prob3), n_boot=400, seed=1, groups=groups)["auroc"]
    naive_ci = bootstrap_ci(fn, (y3, prob3), n_boot=400, seed=1)["auroc"]
    assert cluster_ci == pytest.approx(unit_ci, abs=1e-9)
    assert naive_ci[1] - naive_ci[0] < 0.75 * (cluster_ci[1] - cluster_ci[0])


@pytest.mark.parametrize("clustered", [False, True])
def test_vectorised_and_looped_bootstrap_draw_the_same_resamples(
    rng: np.random.Generator, clustered: bool
) -> None:
    y, prob = _binary_data(rng, 150)
    groups = rng.integers(0, 40, 150) if clustered else None
    fast = bootstrap_ci(BinaryMetricSet(0.5), (y, prob), n_boot=100, seed=3, groups=groups)
    slow = bootstrap_ci(lambda a, b: binary_metrics(a, b, 0.5), (y, prob), n_boot=100, seed=3, groups=groups)
    for name in BINARY_METRICS:
        assert fast[name] == pytest.approx(slow[name], abs=1e-9), name


def test_bootstrap_gives_none_when_most_replicates_are_undefined() -> None:
    values = np.r_[np.zeros(50), np.ones(50)]

    def fn(v: np.ndarray) -> dict[str, float]:
        return {"mean": float(v.mean()), "rare": float(v.mean()) if v.mean() > 0.55 else math.nan}

    cis = bootstrap_ci(fn, (values,), n_boot=200)
    assert cis["rare"] is None
    lo, hi = cis["mean"]
    assert lo < 0.5 < hi


def test_ece_is_small_when_calibrated_and_large_when_overconfident(rng: np.random.Generator) -> None:
    prob = rng.uniform(0, 1, 20000)
    y = (rng.uniform(0, 1, prob.size) < prob).astype(int)
    assert expected_calibration_error(y, prob) < 0.02
    overconfident = np.where(prob > 0.5, 0.99, 0.01)
    assert expected_calibration_error(y, overconfident) > 0.2


def test_ece_and_reliability_curve_on_a_hand_computed_case() -> None:
    y = np.array([0, 1, 1, 1])
    prob = np.array([0.05, 0.15, 0.95, 1.0])  # bins 0, 1, 9, 9 of 10
    mean_pred, observed, counts = reliability_curve(y, prob)
    assert counts.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert mean_pred[9] == pytest.approx(0.975) and observed[9] == 1.0 and np.isnan(observed[5])
    assert expected_calibration_error(y, prob) == pytest.approx((0.05 + 0.85 + 2 * 0.025) / 4)


def test_undefined_metrics_are_null_and_the_result_is_strict_json(rng: np.random.Generator) -> None:
    y = np.zeros(80, dtype=int)
    prob = rng.uniform(0, 1, 80)
    result = evaluate_predictions("t", "test", "case", "binary", y, prob, ["neg", "pos"], None, n_boot=200)
    text = json.dumps(result, allow_nan=False)
    assert result["metrics"]["auroc"] == {"value": None, "ci95": None}
    assert result["metrics"]["sensitivity"] == {"value": None, "ci95": None}
    assert result["metrics"]["specificity"]["value"] is not None
    assert json.loads(text) == result


def test_evaluate_predictions_follows_the_metrics_json_schema(rng: np.random.Generator) -> None:
    y, prob = _binary_data(rng, 200)
    op = OperatingPoint(0.4123456, "val", "sensitivity>=0.90")
    groups = np.arange(200) // 2
    result = evaluate_predictions(
        "nodule", "test", "mark", "binary", y, prob, ["benign", "malignant"], op, groups=groups, n_boot=200
    )
    assert list(result) == [
        "task",
        "split",
        "unit",
        "n",
        "metrics",
        "per_class",
        "operating_point",
        "ci_method",
    ]
    assert (result["task"], result["split"], result["unit"], result["n"]) == ("nodule", "test", "mark", 200)
    assert list(result["metrics"]) == list(BINARY_METRICS)
    assert result["operating_point"] == op.to_dict()
    assert result["ci_method"] == "percentile bootstrap, 200 resamples of groups (cluster bootstrap)"
    auroc = result["metrics"]["auroc"]
    assert auroc["value"] == round(skm.roc_auc_score(y, prob), 4)
    assert auroc["ci95"][0] <= auroc["value"] <= auroc["ci95"][1]
    assert result["per_class"]["benign"]["sensitivity"] == result["metrics"]["specificity"]
    assert result["per_class"]["benign"]["ppv"] == result["metrics"]["npv"]
    assert result["per_class"]["malignant"]["sensitivity"] == result["metrics"]["sensitivity"]
    sens = binary_metrics(y, prob, op.threshold)["sensitivity"]
    assert result["metrics"]["sensitivity"]["value"] == round(sens, 4)


def test_evaluate_predictions_multiclass_and_regression(rng: np.random.Generator) -> None:
    y = rng.integers(0, 3, 150)
    prob = rng.dirichlet([1, 1, 1], 150)
    multi = evaluate_predictions(
        "t", "test", "window", "multiclass", y, prob, ["N", "S", "V"], None, n_boot=100
    )
    assert set(multi["metrics"]) == {"accuracy", "balanced_accuracy", "macro_f1", "auroc", "kappa", "ece"}
    assert set(multi["per_class"]) == {"N", "S", "V"}
    assert set(multi["per_class"]["S"]) == {"sensitivity", "ppv", "f1"}
    assert multi["ci_method"] == "percentile bootstrap, 100 resamples of windows"
    truth, pred = rng.normal(size=90), rng.normal(size=90)
    reg = evaluate_predictions("t", "test", "stay", "regression", truth, pred, [], None, n_boot=0)
    assert set(reg["metrics"]) == {"mae", "rmse"} and reg["metrics"]["mae"]["ci95"] is None
    assert reg["per_class"] == {} and reg["operating_point"] is None
    json.dumps([multi, reg], allow_nan=False)


def test_bootstrap_of_the_binary_metric_set_is_fast(rng: np.random.Generator) -> None:
    y, prob = _binary_data(rng, 700)
    start = time.perf_counter()
    evaluate_predictions("t", "test", "case", "binary", y, prob, ["neg", "pos"], None, n_boot=1000)
    assert time.perf_counter() - start < 2.0


def test_f1_groups_add_the_mean_f1_of_the_named_classes():
    from medlearn.engine.metrics import evaluate_predictions, multiclass_metrics

    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    prob = np.eye(4)[[0, 1, 1, 1, 2, 0, 3, 2]]
    names = ["N", "A", "O", "~"]
    overall, per_class = multiclass_metrics(y, prob, names, f1_groups={"challenge_f1": ["N", "A", "O"]})
    expected = np.mean([per_class[c]["f1"] for c in ("N", "A", "O")])
    assert overall["challenge_f1"] == pytest.approx(expected)
    # hand count: N f1 = 2·1/(2+2) = .5, A f1 = 2·2/(2+3) = .8, O f1 = 2·1/(2+2) = .5
    assert overall["challenge_f1"] == pytest.approx((0.5 + 0.8 + 0.5) / 3)
    report = evaluate_predictions(
        "t",
        "test",
        "record",
        "multiclass",
        y,
        prob,
        names,
        None,
        n_boot=50,
        f1_groups={"challenge_f1": ["N", "A", "O"]},
    )
    entry = report["metrics"]["challenge_f1"]
    assert entry["value"] == pytest.approx(0.6, abs=1e-4) and entry["ci95"][0] <= 0.6 <= entry["ci95"][1]


def test_bca_interval_agrees_with_scipy_on_a_skewed_statistic() -> None:
    from scipy import stats

    from medlearn.engine.metrics import bca_interval

    x = np.random.default_rng(4).exponential(1.0, 60)
    draws = np.random.default_rng(5).integers(0, x.size, size=(20000, x.size))
    replicates = x[draws].std(axis=1)
    jackknife = np.array([np.delete(x, i).std() for i in range(x.size)])
    ours = bca_interval(replicates, float(x.std()), jackknife)
    ref = stats.bootstrap((x,), np.std, method="BCa", n_resamples=20000, random_state=6).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high), abs=0.02)


def test_bca_replaces_a_percentile_interval_that_excludes_its_estimate() -> None:
    from medlearn.engine.metrics import bootstrap_intervals

    x = np.random.default_rng(0).normal(size=100)
    x += 0.001 - x.mean()  # |mean| = 0.001 while its replicates spread over ±0.1: biased upward

    def fn(v: np.ndarray) -> dict[str, float]:
        return {"abs_mean": float(abs(v.mean())), "mean": float(v.mean())}

    cis = bootstrap_intervals(fn, (x,), n_boot=2000, seed=0)
    percentile = np.percentile(
        [abs(x[i].mean()) for i in np.random.default_rng(0).integers(0, 100, (2000, 100))], [2.5, 97.5]
    )
    assert cis["mean"].method == "percentile"
    assert cis["abs_mean"].method == "bca" and cis["abs_mean"].low < percentile[0]


def test_bca_that_is_undefined_keeps_the_percentile_interval_and_says_so() -> None:
    from medlearn.engine.metrics import bootstrap_intervals

    values = np.arange(50.0)

    def distinct(v: np.ndarray) -> dict[str, float]:  # a resample never holds all 50 distinct values
        return {"distinct": float(len(np.unique(v)))}

    ci = bootstrap_intervals(distinct, (values,), n_boot=200, seed=0)["distinct"]
    assert ci.method == "percentile" and ci.high < 50 and "BCa is undefined" in ci.note


def test_fewer_than_ten_clusters_give_no_ci_and_a_note(rng: np.random.Generator) -> None:
    y, prob = _binary_data(rng, 200)
    groups = np.arange(200) % 5  # e.g. five sleep subjects
    result = evaluate_predictions(
        "t",
        "cv",
        "epoch",
        "binary",
        y,
        prob,
        ["neg", "pos"],
        None,
        groups=groups,
        n_boot=200,
        group_unit="subject",
    )
    assert all(m["ci95"] is None for m in result["metrics"].values())
    assert result["metrics"]["auroc"]["value"] is not None
    assert result["ci_method"] == "not bootstrapped: 5 subjects, fewer than 10"
    assert "only 5 subjects" in result["ci_note"] and "folds_summary" in result["ci_note"]
    ten = evaluate_predictions(
        "t", "cv", "epoch", "binary", y, prob, ["neg", "pos"], None, groups=np.arange(200) % 10, n_boot=200
    )
    assert ten["metrics"]["auroc"]["ci95"] is not None and "ci_note" not in ten
    assert ten["metrics"]["auroc"]["ci_method"] in ("percentile", "bca")
