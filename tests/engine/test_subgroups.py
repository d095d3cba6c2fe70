"""Subgroup metrics and the gap between subgroups with its bootstrap CI (issue 16, item 6)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from medlearn.engine.subgroups import MIN_GROUP_UNITS, subgroup_gaps


def binary_task():
    return SimpleNamespace(kind="binary", class_names=["no", "yes"], target=SimpleNamespace(ordinal=False))


def scores(rng, y, separation):
    return 1 / (1 + np.exp(-(rng.normal(size=len(y)) + separation * (2 * y - 1))))


def test_a_real_gap_has_an_interval_that_excludes_zero_and_a_fake_one_does_not():
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    sex = np.where(np.arange(n) < n // 2, "F", "M")
    age = rng.choice(["18-44", "45-64", "65+"], n)
    pred = np.where(sex == "F", scores(rng, y, 2.0), scores(rng, y, 0.4))  # good for F, poor for M
    table = SimpleNamespace(targets=y, groups=np.arange(n))
    subsets = {f"sex={s}": sex == s for s in ("F", "M")} | {
        f"age={a}": age == a for a in ("18-44", "45-64", "65+")
    }
    gaps = subgroup_gaps(binary_task(), table, pred, subsets, n_boot=300)
    assert gaps["sex"]["metric"] == "auroc" and gaps["sex"]["between"] == ["sex=F", "sex=M"]
    low, high = gaps["sex"]["gap_ci95"]
    assert 0 < low <= gaps["sex"]["gap"] <= high
    low, high = gaps["age"]["gap_ci95"]  # age does not matter here: its interval holds 0
    assert low < 0 < high or low <= 0.02


def test_small_groups_are_listed_not_scored_and_patients_are_resampled_whole():
    rng = np.random.default_rng(1)
    n = 200
    y = rng.integers(0, 2, n)
    race = np.array(["A"] * 150 + ["B"] * 40 + ["C"] * (MIN_GROUP_UNITS - 10))
    table = SimpleNamespace(targets=y, groups=np.arange(n) // 2)  # two units per patient
    subsets = {f"race={r}": race == r for r in ("A", "B", "C")}
    gaps = subgroup_gaps(binary_task(), table, scores(rng, y, 1.0), subsets, n_boot=200)
    assert gaps["race"]["too_small"] == ["race=C"] and set(gaps["race"]["groups"]) == {"race=A", "race=B"}
    assert gaps["race"]["groups"]["race=B"]["n"] == 40 and gaps["race"]["gap_ci95"] is not None


def test_one_scorable_group_has_no_gap():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    table = SimpleNamespace(targets=y, groups=np.arange(100))
    subsets = {"sex=F": np.ones(100, bool), "sleep_period": np.ones(100, bool)}
    gaps = subgroup_gaps(binary_task(), table, scores(rng, y, 1.0), subsets, n_boot=50)
    assert "gap" not in gaps["sex"] and gaps["sex"]["groups"]["sex=F"]["n"] == 100
    assert set(gaps) == {"sex"}  # a subset without attribute=value is not a subgroup of people


def test_without_a_bootstrap_the_gap_has_no_interval():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 100)
    sex = np.arange(100) < 50
    subsets = {"sex=F": sex, "sex=M": ~sex}
    table = SimpleNamespace(targets=y, groups=np.arange(100))
    gaps = subgroup_gaps(binary_task(), table, scores(rng, y, 1.0), subsets, n_boot=0)
    assert gaps["sex"]["gap"] is not None and gaps["sex"]["gap_ci95"] is None
