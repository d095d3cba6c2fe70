"""Vectorised Tanimoto (SNN, IntDiv) against RDKit's BulkTanimotoSimilarity, by hand on tiny sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import require_module

require_module("rdkit")

from rdkit import Chem, DataStructs  # noqa: E402
from rdkit.Chem import rdFingerprintGenerator  # noqa: E402

from medlearn.molecules.metrics import similarity  # noqa: E402
from medlearn.molecules.metrics.similarity import (  # noqa: E402
    SortedFingerprints,
    internal_diversity,
    nearest_neighbour_similarity,
)

GENERATED = ["CCO", "CC(=O)Nc1ccc(O)cc1", "c1ccccc1", "CC(=O)Nc1ccc(OC)cc1"]
REFERENCE = ["CCN", "c1ccccc1O", "CC(=O)Nc1ccccc1", "CCCCCC", "OCCO", "CC(=O)Nc1ccccc1"]


def bit_vectors(smiles: list[str]) -> list:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    return [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]


def packed(smiles: list[str]) -> np.ndarray:
    bits = [np.array(list(fp), dtype=bool) for fp in bit_vectors(smiles)]
    return np.packbits(np.stack(bits), axis=1)


def test_snn_terms_equal_the_max_of_rdkit_bulk_tanimoto():
    reference = bit_vectors(REFERENCE)
    expected = [max(DataStructs.BulkTanimotoSimilarity(fp, reference)) for fp in bit_vectors(GENERATED)]
    index = SortedFingerprints.from_packed(packed(REFERENCE))
    assert len(index) == 5  # the duplicate reference molecule is stored once
    # tiny blocks and chunks exercise popcount groups split across blocks
    for block, chunk in [(2, 1), (3, 2), (16384, 2048)]:
        got = nearest_neighbour_similarity(packed(GENERATED), index, chunk_size=chunk, block_size=block)
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_internal_diversity_equals_moses_formula_on_rdkit_similarities():
    fps = bit_vectors(GENERATED)
    pairs = np.array([DataStructs.BulkTanimotoSimilarity(fp, fps) for fp in fps])
    got = internal_diversity(packed(GENERATED), chunk_size=3)  # blocks above the diagonal, and the diagonal
    assert got[1] == pytest.approx(1 - pairs.mean(), abs=1e-6)
    assert got[2] == pytest.approx(1 - np.mean(np.sqrt((pairs**2).mean(axis=1))), abs=1e-6)


def test_weights_equal_repeating_the_rows():
    rows = packed(GENERATED)
    weights = np.array([2, 1, 3, 1])
    repeated = np.repeat(rows, weights, axis=0)
    got, expected = internal_diversity(rows, weights), internal_diversity(repeated)
    assert got[1] == pytest.approx(expected[1], abs=1e-7) and got[2] == pytest.approx(expected[2], abs=1e-7)


def test_two_empty_fingerprints_are_identical_as_in_moses():
    empty = np.zeros((2, 128), dtype=np.uint8)
    assert internal_diversity(empty)[1] == pytest.approx(0.0)
    assert nearest_neighbour_similarity(empty, SortedFingerprints.from_packed(empty)).tolist() == [1.0, 1.0]


def test_empty_inputs_give_nan_not_an_error():
    assert np.isnan(internal_diversity(np.zeros((0, 128), np.uint8))[1])
    index = SortedFingerprints.from_packed(packed(REFERENCE))
    assert nearest_neighbour_similarity(np.zeros((0, 128), np.uint8), index).shape == (0,)


def test_float_fallback_counts_equal_the_integer_kernel(monkeypatch):
    left = similarity.unpack_int8(packed(GENERATED))
    right = similarity.unpack_int8(packed(REFERENCE)).T
    exact = similarity.intersection_counts(left, right)

    def no_int_mm(*args):
        raise RuntimeError("no int8 kernel")

    monkeypatch.setattr(torch, "_int_mm", no_int_mm)
    assert torch.equal(similarity.intersection_counts(left, right), exact)
