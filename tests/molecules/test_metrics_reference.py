"""Reference statistics: computed once, cached by content, shipped statistics used as given."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_module

require_module("rdkit")
require_module("fcd")

from medlearn.errors import InputError  # noqa: E402
from medlearn.molecules.metrics import reference as reference_module  # noqa: E402
from medlearn.molecules.metrics.reference import MosesReference, ReferenceStats  # noqa: E402
from medlearn.paths import cache_dir  # noqa: E402

SMILES = ["c1ccc2ccccc2c1", "CCOC(=O)c1ccccc1", "CC(=O)Nc1ccc(O)cc1", "O=C(Nc1ccccc1)c1ccccc1", "CCN", "CCN"]


def write_csv(path: Path, smiles: list[str]) -> Path:
    path.write_text("SMILES\n" + "\n".join(smiles) + "\n")
    return path


def write_stats(path: Path, with_properties: bool = True) -> Path:
    arrays = {"fcd_mu": np.zeros(512, np.float32), "fcd_sigma": np.eye(512, dtype=np.float32)}
    if with_properties:
        arrays |= {name: np.arange(3, dtype=np.float32) for name in ("logP", "SA", "QED", "weight")}
    np.savez(path, **arrays)
    return path


def forbid_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("statistics were recomputed instead of read from the cache")

    monkeypatch.setattr(reference_module, "_compute", fail)


def test_statistics_are_cached_under_medlearn_cache_and_reused(monkeypatch):
    first = ReferenceStats.from_smiles("Test", SMILES, n_jobs=1)
    assert len(list(cache_dir("molecules", "reference").glob("Test-*.npz"))) == 1
    forbid_computation(monkeypatch)
    second = ReferenceStats.from_smiles("Test", SMILES, n_jobs=1)
    assert second.n_molecules == first.n_molecules == 6
    assert len(second.fingerprints) == 5  # CCN twice: one distinct fingerprint
    assert second.scaffolds == first.scaffolds == {"c1ccc2ccccc2c1": 1, "O=C(Nc1ccccc1)c1ccccc1": 1}
    from rdkit import Chem

    expected = Counter(
        f
        for smiles in SMILES
        for f in Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(Chem.MolFromSmiles(smiles))).split(".")
    )
    assert second.fragments == first.fragments == dict(expected)
    np.testing.assert_allclose(second.fcd_mu, first.fcd_mu)
    assert set(second.properties) == {"logP", "SA", "QED", "weight"}


def test_a_changed_file_is_recomputed(tmp_path):
    path = write_csv(tmp_path / "ref.csv", SMILES)
    ReferenceStats.from_file("Test", path, with_properties=False, n_jobs=1)
    write_csv(path, SMILES + ["CCCC"])
    changed = ReferenceStats.from_file("Test", path, with_properties=False, n_jobs=1)
    assert changed.n_molecules == 7
    assert len(list(cache_dir("molecules", "reference").glob("Test-*.npz"))) == 2


def test_shipped_statistics_are_used_as_given_and_invalid_rows_skipped(tmp_path):
    path = write_csv(tmp_path / "ref.csv", SMILES + ["C1CC", ""])
    stats = ReferenceStats.from_file("Test", path, write_stats(tmp_path / "stats.npz"), n_jobs=1)
    assert stats.n_molecules == 6
    np.testing.assert_array_equal(stats.fcd_sigma, np.eye(512))
    np.testing.assert_array_equal(stats.properties["QED"], [0, 1, 2])


def test_bad_statistics_files_raise_input_error(tmp_path):
    path = write_csv(tmp_path / "ref.csv", SMILES)
    with pytest.raises(InputError, match="missing.npz: reference statistics file not found"):
        ReferenceStats.from_file("Test", path, tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", fcd_mu=np.zeros(512))
    with pytest.raises(InputError, match=r"needs arrays 'fcd_mu' and 'fcd_sigma', found \['fcd_mu'\]"):
        ReferenceStats.from_file("Test", path, tmp_path / "partial.npz")
    with pytest.raises(InputError, match="reference SMILES file not found"):
        ReferenceStats.from_file("Test", tmp_path / "nope.csv")


def test_moses_reference_load_from_explicit_files(tmp_path):
    (tmp_path / "mcf.csv").write_text("names,smarts\nMCF1,[#6]=&!@[#6]-[#6]#[#7]\n")
    (tmp_path / "pains.csv").write_text('"c1ccccc1O","<regId=phenol>"\n')
    reference = MosesReference.load(
        test_path=write_csv(tmp_path / "test.csv", SMILES),
        test_stats=write_stats(tmp_path / "t.npz"),
        test_scaffolds_path=write_csv(tmp_path / "sf.csv", SMILES[:3]),
        test_scaffolds_stats=write_stats(tmp_path / "sf.npz", with_properties=False),
        mcf_path=tmp_path / "mcf.csv",
        pains_path=tmp_path / "pains.csv",
        train_path=write_csv(tmp_path / "train.csv", ["CCO", "CCN"]),
        n_jobs=1,
    )
    assert [r.name for r in reference.references] == ["Test", "TestSF"]
    assert reference.test_scaffolds.properties is None
    assert reference.filter_smarts == ("[#6]=&!@[#6]-[#6]#[#7]", "c1ccccc1O")
    assert reference.train_smiles() == frozenset({"CCO", "CCN"})


def test_two_worker_processes_give_the_same_statistics_as_one(tmp_path):
    smiles = SMILES * 300  # enough chunks for the pool to split the work
    stats = write_stats(tmp_path / "stats.npz")  # given FCD statistics: no ChemNet pass on 1800 SMILES
    one = ReferenceStats.from_smiles("A", smiles, stats, n_jobs=1)
    two = ReferenceStats.from_smiles("B", smiles, stats, n_jobs=2)
    np.testing.assert_array_equal(one.fingerprints.packed, two.fingerprints.packed)
    assert one.fragments == two.fragments and one.scaffolds == two.scaffolds
