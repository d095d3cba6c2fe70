"""The hospital's own model: a small multilayer perceptron on a vector of vitals."""

from __future__ import annotations

from torch import nn


def tiny_mlp(in_features: int, out_channels: int = 1, hidden: int = 8) -> nn.Module:
    """``in_features`` → ``hidden`` (ReLU) → ``out_channels`` logits."""
    if hidden < 1:
        raise ValueError(f"hidden must be at least 1, got {hidden}")
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out_channels))
