"""Real-data check: MOSES test molecules scored against the shipped MOSES statistics look like Test."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest

from tests.conftest import require_module

require_module("rdkit")
require_module("fcd")

from medlearn.molecules.io import read_smiles  # noqa: E402
from medlearn.molecules.metrics import MosesReference, compute_metrics  # noqa: E402
from tests.conftest import require_data  # noqa: E402


def write_csv(path: Path, smiles: list[str]) -> Path:
    path.write_text("SMILES\n" + "\n".join(smiles) + "\n")
    return path


@pytest.mark.slow
def test_ten_thousand_test_molecules_have_near_zero_fcd_and_property_distances(tmp_path):
    """FCD and property statistics are the shipped MOSES ones (176k molecules); SNN/Frag/Scaf use 20k
    other test molecules as reference SMILES so that the test takes ~2 min instead of building the
    full 2 × 176k statistics (that is the benchmark's job)."""
    moses = require_data("molecules/moses")
    test = [s for s in read_smiles(moses / "test.csv.gz") if s]
    scaffold_test = [s for s in read_smiles(moses / "test_scaffolds.csv.gz") if s]
    rng = random.Random(0)
    shuffled = rng.sample(test, 30_000)
    generated, reference_smiles = shuffled[:10_000], shuffled[10_000:]
    reference = MosesReference.load(
        test_path=write_csv(tmp_path / "test.csv", reference_smiles),
        test_stats=moses / "test_stats_fcd_props.npz",
        test_scaffolds_path=write_csv(tmp_path / "sf.csv", rng.sample(scaffold_test, 20_000)),
        test_scaffolds_stats=moses / "test_scaffolds_stats_fcd.npz",
        n_jobs=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = compute_metrics(generated, reference, n_jobs=2)
    assert table["valid"] == 1.0 and table["unique@10000"] == 1.0
    assert table["FCD/Test"] < 0.3  # fcd 1.2.2 gives ~0.035 for 30k, more for fewer molecules
    assert table["FCD/TestSF"] > table["FCD/Test"]  # the scaffold split is a different distribution
    assert table["logP"] < 0.05 and table["SA"] < 0.05 and table["QED"] < 0.01 and table["weight"] < 1.5
    assert table["Frag/Test"] > 0.99 and table["Scaf/Test"] > 0.8 and table["Scaf/TestSF"] < 0.2
    assert table["Filters"] > 0.99 and table["Novelty"] == 1.0
    assert 0.8 < table["IntDiv"] < 0.9
