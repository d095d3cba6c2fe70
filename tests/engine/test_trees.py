"""Boosted trees fitted by scikit-learn, served as tensors: same scores, pickle-free round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from medlearn.config import TrainConfig
from medlearn.engine.data import CachedDataset, Preprocessing
from medlearn.engine.target import Target
from medlearn.engine.trainer import Trainer
from medlearn.engine.trees import ABSENT_CLASS_SCORE, BoostedTrees

HYPER = dict(
    max_iter=30,
    learning_rate=0.1,
    max_depth=3,
    max_leaf_nodes=15,
    min_samples_leaf=5,
    l2_regularization=1.0,
    max_features=1.0,
)


def _table(n: int, seed: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the learned side
    signal = np.nan_to_num(x[:, 0]) * 1.5 + rng.normal(size=n) * 0.5
    if not classes:
        return x.astype(np.float32), signal + np.nan_to_num(x[:, 1]) ** 2
    return x.astype(np.float32), np.clip(signal + classes / 2, 0, classes - 1).astype(int)


@pytest.mark.parametrize("kind,classes", [("binary", 2), ("multiclass", 4), ("regression", 0)])
def test_tensor_scores_equal_scikit_learn_on_unseen_rows(kind, classes):
    x, y = _table(300, 0, classes)
    model = BoostedTrees(out_channels=classes if kind == "multiclass" else 1, **HYPER)
    model.fit_arrays(x, y, kind, None, seed=0)
    sk = (HistGradientBoostingRegressor if kind == "regression" else HistGradientBoostingClassifier)(
        **HYPER, early_stopping=False, random_state=0
    ).fit(x.astype(np.float64), y)
    new, _ = _table(200, 1, classes)
    scores = model(torch.from_numpy(new)).double()
    if kind == "regression":
        np.testing.assert_allclose(scores[:, 0].numpy(), sk.predict(new.astype(np.float64)), atol=1e-4)
    elif kind == "binary":
        np.testing.assert_allclose(
            torch.sigmoid(scores[:, 0]).numpy(), sk.predict_proba(new)[:, 1], atol=1e-5
        )
    else:
        np.testing.assert_allclose(torch.softmax(scores, 1).numpy(), sk.predict_proba(new), atol=1e-5)


def test_a_class_absent_from_training_gets_a_negligible_score_and_the_rest_match():
    x, y = _table(300, 0, 4)
    y[y == 2] = 1  # class 2 never seen
    model = BoostedTrees(out_channels=4, **HYPER)
    model.fit_arrays(x, y, "multiclass", None, seed=0)
    prob = torch.softmax(model(torch.from_numpy(x)).double(), 1).numpy()
    assert prob.shape == (300, 4) and prob[:, 2].max() < 1e-9
    assert model.baseline[2] == ABSENT_CLASS_SCORE
    sk = HistGradientBoostingClassifier(**HYPER, early_stopping=False, random_state=0).fit(x, y)
    np.testing.assert_allclose(prob[:, [0, 1, 3]], sk.predict_proba(x), atol=1e-5)


def test_state_dict_round_trips_through_safetensors_into_an_unfitted_module(tmp_path):
    x, y = _table(200, 0, 3)
    model = BoostedTrees(out_channels=3, **HYPER)
    model.fit_arrays(x, y, "multiclass", None, seed=0)
    save_file(model.state_dict(), str(tmp_path / "trees.safetensors"))
    fresh = BoostedTrees(out_channels=3, **HYPER)
    with pytest.raises(RuntimeError, match="not fitted"):
        fresh(torch.from_numpy(x))
    fresh.load_state_dict(load_file(str(tmp_path / "trees.safetensors")))
    assert torch.equal(fresh(torch.from_numpy(x)), model(torch.from_numpy(x)))


def test_trainer_fits_trees_in_one_pass_and_validates_them():
    xtr, ytr = _table(300, 0, 2)
    xva, yva = _table(120, 1, 2)
    pre = Preprocessing([])
    trainer = Trainer(TrainConfig(epochs=1), Target("binary", ("neg", "pos")))
    model = BoostedTrees(**HYPER)
    fit = trainer.fit(model, CachedDataset(list(xtr), ytr, pre), CachedDataset(list(xva), yva, pre))
    assert len(fit.history) == 1 and fit.history[0]["trees"] == 30
    assert fit.best_score > 0.8  # x0 drives the label
