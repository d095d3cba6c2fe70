"""What training optimises and watches: the loss of each target kind, balanced class weights, and the
validation metrics early stopping monitors (and in which direction)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medlearn.engine.target import Target

#: Validation metrics where lower is better; every other monitored metric is maximised.
LOWER_IS_BETTER = {"loss", "mae", "rmse", "ece", "brier", "mad"}


def make_loss(kind: str, class_weights: np.ndarray | None) -> nn.Module | None:
    """BCE-with-logits (binary, ``pos_weight`` = n_neg/n_pos when weighted), cross-entropy, MSE, or None
    for generative models (their own ``training_loss``)."""
    if kind == "generative":
        return None
    if kind == "binary":
        pos_weight = None if class_weights is None else torch.tensor([class_weights[1] / class_weights[0]])
        return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    if kind == "multiclass":
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        return nn.CrossEntropyLoss(weight=weight)
    return nn.MSELoss()


def balanced_class_weights(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (k · count_c)`` as scikit-learn's "balanced"; absent classes get weight 1."""
    counts = np.bincount(np.asarray(targets, dtype=int), minlength=n_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 1.0)
    return weights


def validation_scores(target: Target, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The validation metrics of predictions for ``target`` (binary at threshold 0.5)."""
    from medlearn.engine import metrics

    if target.kind == "binary":
        return metrics.binary_metrics(y, pred, 0.5)
    if target.kind == "multiclass":
        groups = {name: list(classes) for name, classes in target.f1_groups.items()}
        return metrics.multiclass_metrics(
            y, pred, list(target.class_names), ordinal=target.ordinal, f1_groups=groups
        )[0]
    return metrics.regression_metrics(y, pred)
