"""The Trainer on synthetic data: it learns, stops early, is deterministic and resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medlearn.config import TrainConfig
from medlearn.engine.data import CachedDataset, Preprocessing, group_split
from medlearn.engine.target import Target
from medlearn.engine.trainer import Trainer, balanced_class_weights


def _data(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    x[:, 0] += 2.0 * y  # one informative feature
    return list(x), y


def tiny_datasets() -> tuple[CachedDataset, CachedDataset]:
    """200 training and 80 validation units of 8 features, one of them informative (shared by the
    callback and tracking tests)."""
    pre = Preprocessing([])
    xtr, ytr = _data(200, 0)
    xva, yva = _data(80, 1)
    return CachedDataset(xtr, ytr, pre), CachedDataset(xva, yva, pre)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))


def tiny_trainer(tmp_path=None, callbacks=(), **kw) -> Trainer:
    """A binary Trainer of 6 epochs (``kw`` overrides the train config) checkpointing into ``tmp_path``."""
    cfg = TrainConfig(**{"epochs": 6, "batch_size": 32, "lr": 0.01, "scheduler": "none", **kw})
    return Trainer(cfg, Target("binary", ("neg", "pos")), checkpoint_dir=tmp_path, callbacks=callbacks)


def test_trainer_learns_an_informative_feature():
    train, val = tiny_datasets()
    result = tiny_trainer().fit(tiny_model(), train, val)
    assert result.history[-1]["val_auroc"] > 0.85
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    pred, _ = tiny_trainer().predict(tiny_model(), val)
    assert pred.shape == (80,) and np.all((pred >= 0) & (pred <= 1))


def test_training_is_deterministic_for_a_seed():
    train, val = tiny_datasets()
    a = tiny_trainer().fit(tiny_model(), train, val)
    b = tiny_trainer().fit(tiny_model(), train, val)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    for k in a.best_state:
        assert torch.equal(a.best_state[k], b.best_state[k])


def test_early_stopping_keeps_the_best_epoch():
    train, val = tiny_datasets()
    # A monitor that never improves after epoch 1 (loss on a huge lr) must stop after `patience` epochs.
    result = tiny_trainer(epochs=30, lr=5.0, early_stopping={"monitor": "auroc", "patience": 2}).fit(
        tiny_model(), train, val
    )
    assert len(result.history) < 30
    best = max(h["val_auroc"] for h in result.history)
    assert result.best_score == pytest.approx(best)
    assert result.history[result.best_epoch - 1]["val_auroc"] == pytest.approx(best)


def test_resume_continues_to_the_same_result(tmp_path):
    train, val = tiny_datasets()
    full = tiny_trainer(tmp_path / "a").fit(tiny_model(), train, val)
    tiny_trainer(tmp_path / "b", epochs=3).fit(tiny_model(), train, val)  # "interrupted" after 3 epochs
    resumed = tiny_trainer(tmp_path / "b").fit(tiny_model(), train, val, resume=True)
    assert len(resumed.history) == len(full.history)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx(
        [h["train_loss"] for h in full.history]
    )


def test_balanced_class_weights_follow_sklearn():
    w = balanced_class_weights(np.array([0, 0, 0, 1]), 2)
    assert w == pytest.approx([4 / 6, 4 / 2])


def test_group_split_never_separates_a_group():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(100), 3).astype(str)
    y = np.repeat(rng.integers(0, 2, 100), 3)
    split = group_split(y, groups, 0.15, 0.2, seed=0)
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1
    fractions = {s: np.mean(split == s) for s in ("train", "val", "test")}
    assert 0.12 < fractions["test"] < 0.28 and 0.08 < fractions["val"] < 0.22


def test_cache_key_changes_with_the_task_options():
    from medlearn.engine.data import dataset_cache_key

    pre = Preprocessing([])
    base = dataset_cache_key("f" * 32, pre, ["a", "b"], '{"window": 24}')
    assert base == dataset_cache_key("f" * 32, pre, ["a", "b"], '{"window": 24}')
    assert base != dataset_cache_key("f" * 32, pre, ["a", "b"], '{"window": 48}')
    assert base != dataset_cache_key("f" * 32, pre, ["a", "c"], '{"window": 24}')


def test_cross_validation_folds_test_every_group_once_and_never_split_a_group():
    from medlearn.engine.data import cv_group_splits
    from medlearn.errors import InputError

    rng = np.random.default_rng(0)
    groups = np.repeat([f"p{i}" for i in range(23)], rng.integers(1, 6, 23))
    targets = rng.integers(0, 3, len(groups))
    splits = cv_group_splits(targets, groups, 5, 0.2, seed=0)
    assert len(splits) == 5
    tested = np.stack([s == "test" for s in splits])
    assert (tested.sum(axis=0) == 1).all()  # every unit is tested exactly once
    for split in splits:
        for g in set(groups):
            assert len(set(split[groups == g])) == 1  # a group never straddles train/val/test
        assert {"train", "val", "test"} <= set(split)
    with pytest.raises(InputError, match="5 folds need at least 5 groups"):
        cv_group_splits(targets[:6], np.array(["a", "a", "b", "b", "c", "c"]), 5, 0.2, seed=0)
