"""FCD pieces: the fast ChemNet pass equals fcd.get_predictions; the Fréchet formula equals fcd's."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_module

fcd = require_module("fcd")

from medlearn.molecules.metrics.chemnet import (  # noqa: E402
    ChemNetEmbedder,
    activation_statistics,
    frechet_distance,
)

SMILES = [
    "CCO",
    "c1ccccc1",
    "CC(=O)Nc1ccc(O)cc1",
    "Clc1ccc(Br)cc1[Si](C)(C)C",
    "C[N+](C)(C)C.[Cl-]",
    "O=C1C=CC(=O)C=C1",
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",
    "c1ccc2[nH]ccc2c1",
    "[2H]C([2H])([2H])O",
    "C" * 400,
]  # longer than fcd's default pad of 350: the pad length grows for the whole list


def test_chemnet_activations_equal_the_fcd_package_including_long_and_unknown_tokens():
    embedder = ChemNetEmbedder(batch_size=4)  # several batches with different shared padding
    ours = embedder(SMILES)
    with pytest.warns(UserWarning, match="Padding"):
        theirs = fcd.get_predictions(embedder.model, SMILES, n_jobs=0)
    assert ours.shape == (len(SMILES), 512)
    np.testing.assert_allclose(ours, theirs, atol=5e-5)


def test_fast_path_matches_fcd_at_the_default_pad_length():
    embedder = ChemNetEmbedder(batch_size=3)
    expected = fcd.get_predictions(embedder.model, SMILES[:-1], n_jobs=0)
    np.testing.assert_allclose(embedder(SMILES[:-1]), expected, atol=5e-5)


@pytest.mark.parametrize("rank", [64, 20])
def test_frechet_distance_matches_fcd_calculate_frechet_distance(rng, rank):
    a, b = rng.normal(size=(rank, 64)), rng.normal(size=(rank, 64))
    sigma1, sigma2 = a.T @ a / rank, b.T @ b / rank + 0.01 * np.eye(64)
    mu1, mu2 = rng.normal(size=64), rng.normal(size=64)
    expected = fcd.calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, sigma1, mu1, sigma1) == pytest.approx(0.0, abs=1e-5)


def test_weighted_statistics_equal_statistics_of_repeated_rows(rng):
    rows = rng.normal(size=(5, 3))
    weights = np.array([1, 3, 1, 2, 1])
    mu, sigma = activation_statistics(rows, weights)
    repeated = np.repeat(rows, weights, axis=0)
    np.testing.assert_allclose(mu, repeated.mean(0))
    np.testing.assert_allclose(sigma, np.cov(repeated.T))
