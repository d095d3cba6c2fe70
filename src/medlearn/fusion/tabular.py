"""Models over one vector of features per unit (e.g. radiomic features): a baseline on their own and an
encoder inside a fused model. Modality-free: they see (batch, features) and nothing else.

``tabular_mlp`` doubles as an encoder: a fused model builds it with ``out_channels=embed_dim``.
``tabular_trees`` is the engine's gradient-boosted trees (:mod:`medlearn.engine.trees`) over the flat
vector: fitted in one pass, served as tensors (no pickle in a bundle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from medlearn.engine.trees import BoostedTrees

__all__ = ["tabular_mlp", "tabular_trees"]

Positive = Annotated[int, Field(ge=1)]
Size = Annotated[int, Field(ge=1, le=8192)]
Sizes = Annotated[Sequence[Size], Field(max_length=8)]
Rate = Annotated[float, Field(ge=0, lt=1)]


class TabularMLP(nn.Module):
    """Linear → layer norm → GELU → dropout per hidden width, then a linear output. Layer norm rather
    than batch norm: a few hundred units and modality dropout make batch statistics noisy."""

    def __init__(self, in_features: int, out_channels: int, hidden: Sequence[int], dropout: float):
        super().__init__()
        blocks: list[nn.Module] = []
        width = in_features
        for h in hidden:
            blocks += [nn.Linear(width, h), nn.LayerNorm(h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(width, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x.reshape(x.shape[0], -1)))


def tabular_mlp(
    in_features: Positive,
    out_channels: Positive = 1,
    hidden: Sizes = (64, 64),
    dropout: Rate = 0.2,
) -> nn.Module:
    """A small MLP over a feature vector of ``in_features`` (set by the task)."""
    return TabularMLP(in_features, out_channels, list(hidden), dropout)


def tabular_trees(
    in_features: Positive,
    out_channels: Positive = 1,
    max_iter: Annotated[int, Field(ge=1, le=5000)] = 200,
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.05,
    max_depth: int | None = 3,
    max_leaf_nodes: Annotated[int, Field(ge=2, le=4096)] = 15,
    min_samples_leaf: Size = 10,
    l2_regularization: Annotated[float, Field(ge=0)] = 1.0,
    max_features: Annotated[float, Field(gt=0, le=1)] = 0.5,
) -> nn.Module:
    """Histogram gradient boosting over the flat feature vector (see :class:`BoostedTrees`)."""
    del in_features  # the trees take their width from the data they are fitted on
    return BoostedTrees(
        out_channels,
        max_iter,
        learning_rate,
        max_depth,
        max_leaf_nodes,
        min_samples_leaf,
        l2_regularization,
        max_features,
    )
