"""Gradient-boosted trees fitted by scikit-learn and served as a torch module.

Why not keep the scikit-learn estimator: a bundle is safetensors + JSON and must load without pickle
(a pickle runs code on load, which a hospital cannot accept from a downloaded model). The fitted trees
are just arrays, so :class:`BoostedTrees` copies them into buffers and evaluates them with tensor
gathers; the bundle, ``predict``, calibration and reports then treat a tree model like any network.

Fitting is not gradient descent: the :class:`~medlearn.engine.trainer.Trainer` sees ``fit_arrays`` and
hands the whole training set over once (see :class:`ArrayFitted`). Right after fitting, the tensor
forward is checked against scikit-learn's own raw predictions, so a change in scikit-learn's tree
layout fails loudly at training time instead of producing silently different bundles.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

#: below this many cells (rows × features) the trees are grown on one thread
SMALL_TABLE_CELLS = 5_000_000
#: the score (logit) of a class the training set never showed: its probability is ~e^-30 of the others'
ABSENT_CLASS_SCORE = -30.0


@runtime_checkable
class ArrayFitted(Protocol):
    """A model fitted in one call on the whole training set (no epochs, no optimiser)."""

    def fit_arrays(
        self, x: np.ndarray, y: np.ndarray, kind: str, sample_weight: np.ndarray | None, seed: int
    ) -> dict[str, Any]:
        """Fit on ``x`` (n, ...) and targets ``y``; return facts worth logging (e.g. trees grown)."""
        ...


class BoostedTrees(nn.Module):
    """``HistGradientBoosting{Classifier,Regressor}`` as tensors; outputs raw scores (logits).

    ``features`` turns the model's input into the flat (n, n_features) matrix the trees split on, so a
    task's time-series input can be aggregated first. Buffers start empty and take their shapes from
    ``fit_arrays`` or from a loaded state dict.
    """

    def __init__(
        self,
        out_channels: int = 1,
        max_iter: int = 200,
        learning_rate: float = 0.05,
        max_depth: int | None = 3,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 10,
        l2_regularization: float = 1.0,
        max_features: float = 0.5,
    ):
        super().__init__()
        self.out_channels = out_channels
        self.hyper = {
            "max_iter": max_iter,
            "learning_rate": learning_rate,
            "max_depth": max_depth,
            "max_leaf_nodes": max_leaf_nodes,
            "min_samples_leaf": min_samples_leaf,
            "l2_regularization": l2_regularization,
            "max_features": max_features,
        }
        # (trees, nodes) per tree, padded; leaves point to themselves so a fixed number of steps works
        for name, dtype in [
            ("feature", torch.long),
            ("threshold", torch.float64),
            ("left", torch.long),
            ("right", torch.long),
            ("missing_left", torch.bool),
            ("leaf_value", torch.float64),
            ("output", torch.long),
            ("baseline", torch.float64),
        ]:
            self.register_buffer(name, torch.zeros(0, dtype=dtype))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1)

    # -- fitting -------------------------------------------------------------------------------------
    def fit_arrays(
        self, x: np.ndarray, y: np.ndarray, kind: str, sample_weight: np.ndarray | None, seed: int
    ) -> dict[str, Any]:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        flat = self.features(torch.as_tensor(x)).double().numpy()
        common = dict(self.hyper, early_stopping=False, random_state=seed)
        estimator = (
            HistGradientBoostingRegressor(**common)
            if kind == "regression"
            else HistGradientBoostingClassifier(**common)
        )
        # OpenMP threads do not pay on small tables and collapse when other work holds the cores
        # (137 × 924 here: 6 s on one thread, 55 s on two under load), so only big tables get them.
        threads = 1 if flat.size < SMALL_TABLE_CELLS else torch.get_num_threads()
        with threadpool_limits(limits=threads, user_api="openmp"):
            estimator.fit(flat, y, sample_weight=sample_weight)
        self._load_estimator(estimator, kind)
        reference = estimator._raw_predict(flat) if kind != "regression" else estimator.predict(flat)[:, None]
        mine = self.score(torch.as_tensor(flat)).numpy()
        if kind == "multiclass":  # compare the classes scikit-learn saw (one score column when only two)
            seen = estimator.classes_.astype(int)
            mine = mine[:, seen] if len(seen) > 2 else mine[:, seen[1:]] - mine[:, seen[:1]]
        if reference.shape != mine.shape or not np.allclose(mine, reference, atol=1e-4):
            raise RuntimeError(
                "BoostedTrees disagrees with scikit-learn's predictions: its tree layout changed; "
                "pin scikit-learn to a tested version"
            )
        leaves = sum(int(p.nodes["is_leaf"].sum()) for iteration in estimator._predictors for p in iteration)
        return {"trees": int(len(self.output)), "leaves": leaves}

    def _load_estimator(self, estimator: Any, kind: str) -> None:
        predictors = [(k, p) for iteration in estimator._predictors for k, p in enumerate(iteration)]
        if any(p.nodes["is_categorical"].any() for _, p in predictors):
            raise RuntimeError("categorical splits are not supported by BoostedTrees")
        n_nodes = max(len(p.nodes) for _, p in predictors)
        shape = (len(predictors), n_nodes)
        feature, left, right = np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        threshold, value = np.zeros(shape), np.zeros(shape)
        missing_left = np.zeros(shape, bool)
        for t, (_, p) in enumerate(predictors):
            nodes, n = p.nodes, len(p.nodes)
            leaf = nodes["is_leaf"].astype(bool)
            own = np.arange(n)
            feature[t, :n] = np.where(leaf, 0, nodes["feature_idx"])
            threshold[t, :n] = nodes["num_threshold"]
            left[t, :n] = np.where(leaf, own, nodes["left"])
            right[t, :n] = np.where(leaf, own, nodes["right"])
            missing_left[t, :n] = nodes["missing_go_to_left"].astype(bool)
            value[t, :n] = nodes["value"]
        outputs = np.array([k for k, _ in predictors], np.int64)
        fitted_baseline = np.asarray(estimator._baseline_prediction, np.float64).reshape(-1)
        if kind != "multiclass":
            baseline = fitted_baseline
        else:
            # Scores for every class the task knows: classes absent from the training set get a score
            # far below the rest; with only two classes seen, scikit-learn fits one log-odds score,
            # which becomes the second class's score against a zero for the first.
            seen = estimator.classes_.astype(int)
            baseline = np.full(self.out_channels, ABSENT_CLASS_SCORE)
            if len(seen) == 2:
                baseline[seen] = [0.0, fitted_baseline[0]]
                outputs = np.full_like(outputs, seen[1])
            else:
                baseline[seen] = fitted_baseline
                outputs = seen[outputs]
        tensors = {
            "feature": feature,
            "threshold": threshold,
            "left": left,
            "right": right,
            "missing_left": missing_left,
            "leaf_value": value,
            "output": outputs,
            "baseline": baseline,
        }
        for name, array in tensors.items():
            setattr(self, name, torch.from_numpy(array))

    # -- inference -----------------------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # buffers take the saved shapes: a fitted ensemble's size is only known after fitting
        for name, buffer in self._buffers.items():
            saved = state_dict.get(prefix + name)
            if saved is not None and buffer is not None and buffer.shape != saved.shape:
                self._buffers[name] = torch.empty_like(saved)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x)).float()

    def depth(self) -> int:
        """Steps from the root to the deepest leaf, from the fitted arrays alone (a leaf's children are
        itself). The forward walks exactly this many steps, so it never branches on the data and exports
        to ONNX as one fixed graph."""
        left, right = self.left.tolist(), self.right.tolist()
        deepest = 0
        for tree_left, tree_right in zip(left, right):
            level, depth = {0}, 0
            while True:
                children = {c for node in level for c in (tree_left[node], tree_right[node])}
                if children == level:  # every node on this level is a leaf
                    break
                level = {c for node in level for c in (tree_left[node], tree_right[node]) if c != node} | {
                    node for node in level if tree_left[node] == node
                }
                depth += 1
                if depth > len(tree_left):
                    raise RuntimeError("BoostedTrees: the tree arrays do not describe trees")
            deepest = max(deepest, depth)
        return deepest

    def score(self, flat: torch.Tensor) -> torch.Tensor:
        """Raw scores (n, outputs) in float64 of the flat feature matrix the trees split on."""
        if self.output.numel() == 0:
            raise RuntimeError("BoostedTrees is not fitted")
        flat = flat.double()
        n_trees = self.output.shape[0]
        node = torch.zeros_like(flat[:, :1], dtype=torch.long).expand(
            -1, n_trees
        )  # (n, trees); n stays symbolic
        trees = torch.arange(n_trees).unsqueeze(0).expand_as(node)
        for _ in range(self.depth()):
            feat = self.feature[trees, node]
            value = torch.gather(flat, 1, feat)
            missing = torch.isnan(value)  # logical ops, not a bool where: onnxruntime has no bool Where
            go_left = (missing & self.missing_left[trees, node]) | (
                ~missing & (value <= self.threshold[trees, node])
            )
            node = torch.where(go_left, self.left[trees, node], self.right[trees, node])
        leaf = self.leaf_value[trees, node]  # (n, trees)
        assign = torch.nn.functional.one_hot(
            self.output, int(self.baseline.numel())
        ).double()  # (trees, outputs)
        return leaf @ assign + self.baseline
