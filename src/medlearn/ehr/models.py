"""Sequence models over per-admission time series ``(batch, time bins, features)``.

``lstm`` is the seed project's model; ``gru_attention`` learns which time bins matter (its attention
weights are an explanation); ``transformer`` is a small encoder with learned positions;
``linear_baseline`` is (multinomial) logistic / linear regression and ``gradient_boosting`` scikit-learn's
histogram gradient boosting, both on aggregated features. All give ``out_channels`` raw scores
(1 for regression/binary, k for classification).
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from medlearn.engine.trees import BoostedTrees

#: What ``model.params`` is checked against before anything is built (engine.validate binds the params to
#: these signatures): a width, size or count is a positive integer within reason, a dropout a probability
#: below 1. A negative width would otherwise fail deep inside torch, a huge one exhaust memory.
Size = Annotated[int, Field(ge=1, le=8192)]
#: set by the task from the data (input features, classes, vocabulary): positive, no upper bound
Positive = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=1, le=64)]
Rate = Annotated[float, Field(ge=0, lt=1)]
Iterations = Annotated[int, Field(ge=1, le=100_000)]
Leaves = Annotated[int, Field(ge=2, le=100_000)]
LearningRate = Annotated[float, Field(gt=0, le=10)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, le=1)]


class LSTMModel(nn.Module):
    def __init__(
        self, in_features: int, out_channels: int = 1, hidden: int = 64, layers: int = 1, dropout: float = 0.2
    ):
        super().__init__()
        self.lstm = nn.LSTM(
            in_features, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


class GRUAttention(nn.Module):
    def __init__(self, in_features: int, out_channels: int = 1, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.gru = nn.GRU(in_features, hidden, batch_first=True)
        self.score = nn.Linear(hidden, 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, out_channels))

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states, _ = self.gru(x)
        weights = torch.softmax(self.score(states)[..., 0], dim=1)
        return (weights[..., None] * states).sum(dim=1), weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attention(x)[0])


class SmallTransformer(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_channels: int = 1,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        max_len: int = 256,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.proj = nn.Linear(in_features, d_model)
        self.position = nn.Parameter(torch.zeros(1, max_len, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.head = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.proj(x) + self.position[:, : x.shape[1]])
        return self.head(h.mean(dim=1))


def aggregate_over_time(x: torch.Tensor) -> torch.Tensor:
    """(n, bins, features) → (n, 2·features): each feature's mean over the window and its last bin.

    The baselines see this summary instead of the sequence: it is what a tabular model gets in the
    literature (Harutyunyan et al. aggregate over sub-windows), and it makes the deep models' gain visible.
    """
    return torch.cat([x.mean(dim=1), x[:, -1]], dim=1)


class AggregateLinear(nn.Module):
    """Baseline: logistic/linear (softmax for classes) regression on aggregated features. Trained by the
    same Trainer (weight decay = L2) and saved like every model, so baselines and deep models are
    compared on identical splits."""

    def __init__(self, in_features: int, out_channels: int = 1):
        super().__init__()
        self.linear = nn.Linear(2 * in_features, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(aggregate_over_time(x))


class AggregateBoostedTrees(BoostedTrees):
    """Baseline: scikit-learn's histogram gradient boosting on the same aggregated features."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # in float64: a float32 mean summed in another order (onnxruntime's) can land on the other side of
        # a split threshold; in float64 the two agree far below any threshold's spacing
        return aggregate_over_time(x.double())


def linear_baseline(in_features: Positive, out_channels: Positive = 1) -> nn.Module:
    return AggregateLinear(in_features, out_channels)


def gradient_boosting(
    in_features: Positive,
    out_channels: Positive = 1,
    max_iter: Iterations = 200,
    learning_rate: LearningRate = 0.05,
    max_depth: int | None = 3,
    max_leaf_nodes: Leaves = 15,
    min_samples_leaf: Size = 10,
    l2_regularization: NonNegative = 1.0,
    max_features: Fraction = 0.5,
) -> nn.Module:
    del in_features  # the trees take their inputs' width from the data they are fitted on
    return AggregateBoostedTrees(
        out_channels,
        max_iter,
        learning_rate,
        max_depth,
        max_leaf_nodes,
        min_samples_leaf,
        l2_regularization,
        max_features,
    )


def lstm(
    in_features: Positive,
    out_channels: Positive = 1,
    hidden: Size = 64,
    layers: Count = 1,
    dropout: Rate = 0.2,
) -> nn.Module:
    return LSTMModel(in_features, out_channels, hidden, layers, dropout)


def gru_attention(
    in_features: Positive, out_channels: Positive = 1, hidden: Size = 64, dropout: Rate = 0.2
) -> nn.Module:
    return GRUAttention(in_features, out_channels, hidden, dropout)


def transformer(
    in_features: Positive,
    out_channels: Positive = 1,
    d_model: Size = 64,
    heads: Count = 4,
    layers: Count = 2,
    dropout: Rate = 0.2,
) -> nn.Module:
    return SmallTransformer(in_features, out_channels, d_model, heads, layers, dropout=dropout)
