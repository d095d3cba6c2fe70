"""Deletion "beats random" only by the stated margin: on a linear model whose weights are the
attribution, a tie (equal weights: every order deletes the same) and a deletion ratio just under 1 (weights
differing by a fraction of a percent) do not count; a few dominant weights do. The ratios are reported
either way."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medlearn.explain.faithfulness import BEATS_RANDOM_RATIO, beats_random, curves

N_INPUTS = 40


class LinearScores(nn.Module):
    """Class scores ``(0, w·x)``: class 1's probability is ``sigmoid(w·x)``, each input its own group."""

    def __init__(self, weights: np.ndarray) -> None:
        super().__init__()
        self.weights = torch.as_tensor(weights, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.weights
        return torch.stack([torch.zeros_like(z), z], dim=1)


def deletion_of(weights: np.ndarray) -> dict:
    """The curves of an all-ones input whose attribution is the weights (the exact contributions)."""
    return curves(LinearScores(weights), torch.ones(N_INPUTS), weights, 1, np.arange(N_INPUTS), 0.0)


def test_a_tie_with_random_does_not_beat_random():
    found = deletion_of(np.full(N_INPUTS, 0.1))
    assert found["deletion_auc"] == pytest.approx(found["deletion_auc_random"])
    assert found["deletion_ratio"] == pytest.approx(1.0)
    assert found["beats_random"] is False


def test_a_deletion_ratio_within_the_margin_is_reported_but_does_not_beat_random():
    found = deletion_of(0.1 + 0.0005 * np.arange(N_INPUTS))  # the best order, but barely better
    assert found["deletion_auc"] < found["deletion_auc_random"]  # what a strict "<" counted as a win
    assert BEATS_RANDOM_RATIO < found["deletion_ratio"] < 1.0
    assert found["beats_random"] is False
    assert found["beats_random_ratio"] == BEATS_RANDOM_RATIO == 0.98


def test_a_few_dominant_inputs_deleted_first_beat_random():
    found = deletion_of(np.r_[np.full(4, 2.0), np.full(N_INPUTS - 4, 0.01)])
    assert found["deletion_ratio"] < 0.8
    assert found["beats_random"] is True


@pytest.mark.parametrize(
    ("deletion", "random", "expected"),
    [(0.252, 0.252, False), (0.99, 1.0, False), (0.98, 1.0, True), (0.5, 1.0, True), (0.0, 0.0, False)],
)
def test_beats_random_is_at_most_the_stated_fraction_of_the_random_area(deletion, random, expected):
    assert beats_random(deletion, random) is expected
