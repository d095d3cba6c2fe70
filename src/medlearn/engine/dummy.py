"""A model that has learned nothing but the training split's base rate: the floor every real model must clear.

Why it exists: a pipeline test that asserts "AUROC > 0.5" or "κ in [−1, 1]" passes for a model that
ignores its input, so it cannot catch a pipeline that silently stopped learning (shuffled labels,
a preprocessing that zeroes the inputs, a split that leaks nothing useful). ``medlearn.engine.dummy``
outputs the same score for every unit — the training prevalence — so the test suite can be run once
against it (``pytest --dummy-model``) to prove that every quality assertion fails when nothing is learned.

It is fitted like the boosted trees (:class:`~medlearn.engine.trees.ArrayFitted`): the trainer hands
it the whole training split once; no epochs, no optimiser. The one fitted tensor is a buffer, so the
bundle stays safetensors + JSON and reloads through the registry like any model.

Examples:
    >>> import numpy as np, torch
    >>> model = dummy(out_channels=1)
    >>> _ = model.fit_arrays(np.zeros((4, 3)), np.array([0, 0, 0, 1]), "binary", None, seed=0)
    >>> round(float(torch.sigmoid(model(torch.zeros(2, 3)))[0, 0]), 2)
    0.25
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

#: the score (log frequency) of a class absent from the training split, as in ``engine.trees``
ABSENT_CLASS_SCORE = -30.0


class PrevalenceModel(nn.Module):
    """Outputs one fitted constant per output channel, whatever the input.

    Binary: the logit of the training prevalence (1 channel). Multiclass: the log class frequencies
    (``out_channels`` channels; softmax gives the frequencies back). Regression: the training mean.
    Sample weights (class balancing) are deliberately ignored: the model reports the prevalence the
    data shows, not a reweighted one.

    Args:
        out_channels: number of outputs (1 for binary and regression, k for k classes).
    """

    def __init__(self, out_channels: int = 1):
        super().__init__()
        if out_channels < 1:
            raise ValueError(f"out_channels must be at least 1, got {out_channels}")
        self.out_channels = out_channels
        self.register_buffer("constant", torch.zeros(out_channels, dtype=torch.float32))

    def fit_arrays(
        self, x: np.ndarray, y: np.ndarray, kind: str, sample_weight: np.ndarray | None, seed: int
    ) -> dict[str, Any]:
        """Fit the constant from the training targets ``y`` alone (``x``, weights and seed are unused)."""
        del x, sample_weight, seed
        y = np.asarray(y)
        if len(y) == 0:
            raise ValueError("cannot fit the prevalence of an empty training split")
        if kind == "binary":
            # clipped so a one-class training split still gives a finite logit
            prevalence = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
            constant = np.full(self.out_channels, np.log(prevalence / (1 - prevalence)))
            facts = {"prevalence": prevalence}
        elif kind == "multiclass":
            counts = np.bincount(y.astype(int), minlength=self.out_channels)[: self.out_channels].astype(
                float
            )
            constant = np.where(counts > 0, np.log(np.maximum(counts, 1) / counts.sum()), ABSENT_CLASS_SCORE)
            facts = {"majority_share": float(counts.max() / counts.sum())}
        elif kind == "regression":
            constant = np.full(self.out_channels, float(np.mean(y)))
            facts = {"mean": float(np.mean(y))}
        else:
            raise ValueError(
                f"the prevalence model fits binary, multiclass or regression tasks, not {kind!r}"
            )
        self.constant = torch.as_tensor(constant, dtype=torch.float32)
        return facts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.constant.expand(len(x), -1).clone()


def dummy(out_channels: int = 1) -> nn.Module:
    """The registered ``dummy`` model: the training prevalence (binary), class frequencies
    (multiclass) or mean (regression) for every unit. A baseline, never a model to ship."""
    return PrevalenceModel(out_channels)
