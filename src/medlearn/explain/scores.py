"""The class scores every explanation attributes: one output per class, whatever the model's head.

A binary model has one logit ``z`` (P(positive) = sigmoid(z)). Explaining "the predicted class" must work
for the negative class too, so :class:`ClassScores` turns it into two scores ``(-z/2, z/2)``, whose
softmax is exactly ``(1 - sigmoid(z), sigmoid(z))``: target 0 explains the negative class, target 1 the
positive one, and the probabilities the faithfulness curves track are the model's own. The bundle's
post-hoc calibration (``logit / T + b``) is applied first, so those probabilities are the ones
``medlearn predict`` reports. Regression models keep their single output (target 0, the value).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medlearn.engine.protocols import WrapsGradCAMModel
from medlearn.errors import InputError


class ClassScores(nn.Module):
    """``model`` with calibrated, one-score-per-class outputs (see the module docstring)."""

    def __init__(self, model: nn.Module, kind: str, temperature: float = 1.0, bias: float = 0.0):
        super().__init__()
        self.model = model
        self.kind = kind
        self.temperature = float(temperature)
        self.bias = float(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x).reshape(len(x), -1).float() / self.temperature + self.bias
        if self.kind == "binary" and logits.shape[1] == 1:
            return torch.cat([-logits / 2, logits / 2], dim=1)
        return logits

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, batch: int = 256) -> np.ndarray:
        """(n, classes) probabilities (regression: (n, 1) values), in batches."""
        outs = []
        for i in range(0, len(x), batch):
            scores = self(x[i : i + batch])
            outs.append(scores if self.kind == "regression" else torch.softmax(scores, dim=1))
        return torch.cat(outs).cpu().numpy() if outs else np.zeros((0, 1))


def explained_network(model: nn.Module) -> nn.Module:
    """The network an explanation looks into: a test-time-augmentation wrapper's network on the original
    view (what Grad-CAM explains, see :mod:`medlearn.explain.gradcam`), else the model itself."""
    return model.gradcam_model if isinstance(model, WrapsGradCAMModel) else model


def predicted_targets(probs: np.ndarray, kind: str, threshold: float | None = None) -> list[int]:
    """The predicted class of each unit: a binary model's label at its operating point (``threshold`` on
    P(positive), 0.5 without one), a multiclass model's argmax; regression's only output, 0."""
    if kind == "regression":
        return [0] * len(probs)
    if kind == "binary":
        cut = 0.5 if threshold is None else threshold
        return [int(p >= cut) for p in probs[:, 1]]
    return [int(i) for i in probs.argmax(axis=1)]


def resolve_target(target: str | int | None, class_names: list[str], kind: str) -> int | None:
    """``--target``: a class name (case-insensitive) or index, checked against the bundle's classes;
    None = each unit's predicted class."""
    if target is None:
        return None
    if kind == "regression":
        raise InputError(f"--target {target}: a regression model has one output; leave --target out")
    names = [c.lower() for c in class_names]
    text = str(target).strip()
    if text.lower() in names:
        return names.index(text.lower())
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(class_names):
        return int(text)
    raise InputError(f"--target {target}: not a class of this model (it has: {', '.join(class_names)})")
