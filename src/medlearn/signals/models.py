"""1D networks for biosignals: input (n, channels, samples), output (n, out_channels) raw scores.

- ``resnet1d``: the residual CNN of Hannun et al. (Nat Med 2019) scaled down for CPUs — wide kernels
  (ECG morphology spans ~100 ms), stride-2 stages, global average + max pooling so any length works;
- ``cnn1d``: a small plain CNN for short fixed windows (single beats, EEG segments);
- ``cnn_lstm``: a CNN front end whose feature sequence an LSTM reads (rhythm = order of beats);
- ``epoch_gru``: a bidirectional GRU over a window of per-epoch feature vectors (sleep staging
  from a night's epochs: the stage depends on its neighbours, as in DeepSleepNet's sequence part).

Every convolutional model names its last convolutional block in ``gradcam_layer`` (for Grad-CAM).
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

#: What ``model.params`` is checked against before anything is built (engine.validate binds the params to
#: these signatures): a width, size or count is a positive integer within reason, a dropout a probability
#: below 1. A negative width would otherwise fail deep inside torch, a huge one exhaust memory.
Size = Annotated[int, Field(ge=1, le=8192)]
#: set by the task from the data (input features, classes, vocabulary): positive, no upper bound
Positive = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=1, le=64)]
Rate = Annotated[float, Field(ge=0, lt=1)]
Kernel = Annotated[int, Field(ge=1, le=1001)]


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)


class ResidualBlock1d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm1d(in_ch),
            nn.ReLU(),
            _conv(in_ch, out_ch, kernel, stride),
            nn.BatchNorm1d(out_ch),
            nn.ReLU(),
            nn.Dropout(dropout),
            _conv(out_ch, out_ch, kernel),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and in_ch == out_ch
            else nn.Sequential(
                nn.AvgPool1d(stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                nn.Conv1d(in_ch, out_ch, 1, bias=False),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        skip = self.skip(x)
        return out + skip[..., : out.shape[-1]]


class GlobalPool1d(nn.Module):
    """Average and max over time, concatenated: AF is both a global (irregular RR) and a local sign."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)


class ResNet1d(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        stages: int,
        blocks_per_stage: int,
        kernel: int,
        dropout: float,
    ):
        super().__init__()
        layers: list[nn.Module] = [_conv(in_channels, width, kernel, stride=2)]
        ch = width
        for stage in range(stages):
            out_ch = width * min(2**stage, 4)
            for block in range(blocks_per_stage):
                layers.append(ResidualBlock1d(ch, out_ch, kernel, 2 if block == 0 else 1, dropout))
                ch = out_ch
        layers += [nn.BatchNorm1d(ch), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(GlobalPool1d(), nn.Dropout(dropout), nn.Linear(2 * ch, out_channels))

    @property
    def gradcam_layer(self) -> str:
        return f"features.{len(self.features) - 3}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CNN1d(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, width: int, layers: int, kernel: int, dropout: float
    ):
        super().__init__()
        blocks: list[nn.Module] = []
        ch = in_channels
        for i in range(layers):
            out_ch = width * min(2**i, 4)
            blocks += [
                _conv(ch, out_ch, kernel),
                nn.BatchNorm1d(out_ch),
                nn.ReLU(),
                nn.MaxPool1d(2, ceil_mode=True),
            ]
            ch = out_ch
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(GlobalPool1d(), nn.Dropout(dropout), nn.Linear(2 * ch, out_channels))

    @property
    def gradcam_layer(self) -> str:
        return f"features.{len(self.features) - 4}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CNNLSTM(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        layers: int,
        kernel: int,
        hidden: int,
        dropout: float,
    ):
        super().__init__()
        self.cnn = CNN1d(in_channels, 1, width, layers, kernel, dropout)
        ch = width * min(2 ** (layers - 1), 4)
        self.lstm = nn.LSTM(ch, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, out_channels))

    @property
    def gradcam_layer(self) -> str:
        return f"cnn.{self.cnn.gradcam_layer}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.cnn.features(x).transpose(1, 2)  # (n, steps, channels)
        out, _ = self.lstm(seq)
        return self.head(out.mean(dim=1))


class EpochGRU(nn.Module):
    """Input (n, features, epochs): a window of consecutive epochs; output: the centre epoch's scores."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(in_channels)
        self.gru = nn.GRU(in_channels, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.norm(x.transpose(1, 2)))
        return self.head(out[:, out.shape[1] // 2])


def resnet1d(
    in_channels: Positive = 1,
    out_channels: Positive = 1,
    width: Size = 32,
    stages: Count = 4,
    blocks_per_stage: Count = 1,
    kernel: Kernel = 15,
    dropout: Rate = 0.2,
) -> nn.Module:
    return ResNet1d(in_channels, out_channels, width, stages, blocks_per_stage, kernel, dropout)


def cnn1d(
    in_channels: Positive = 1,
    out_channels: Positive = 1,
    width: Size = 32,
    layers: Count = 4,
    kernel: Kernel = 7,
    dropout: Rate = 0.2,
) -> nn.Module:
    return CNN1d(in_channels, out_channels, width, layers, kernel, dropout)


def cnn_lstm(
    in_channels: Positive = 1,
    out_channels: Positive = 1,
    width: Size = 32,
    layers: Count = 4,
    kernel: Kernel = 15,
    hidden: Size = 64,
    dropout: Rate = 0.2,
) -> nn.Module:
    return CNNLSTM(in_channels, out_channels, width, layers, kernel, hidden, dropout)


def epoch_gru(
    in_channels: Positive = 72, out_channels: Positive = 5, hidden: Size = 64, dropout: Rate = 0.2
) -> nn.Module:
    return EpochGRU(in_channels, out_channels, hidden, dropout)
