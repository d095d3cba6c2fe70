"""Bounded work on hostile input: an oversized SMILES is invalid (``too_large``) from its text, before
RDKit parses it, and counted; blank rows count against validity. Built from MOSES test/train SMILES
(copies under ``tmp_path``).

Before the limits, ``mol-metrics`` on 100 MOSES molecules plus one 10,000-carbon chain was killed after
560 s at 4 GB (ChemNet pads every SMILES to the longest one); now the chain costs well under a second."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from typer.testing import CliRunner

from medlearn.cli import app
from tests.conftest import require_data, require_module

Chem = require_module("rdkit.Chem")

runner = CliRunner()
CHAIN = "C" * 10_000  # 10,000 heavy atoms
RINGS = "C1CC1" * 3_334  # 10,002 atoms in 3,334 cyclopropanes
FILTERS = ("[#6]=&!@[#6]-[#6]#[#7]",)  # one MOSES medicinal-chemistry filter (acyclic C=C-C#N)


@pytest.fixture(scope="module")
def moses() -> dict[str, list[str]]:
    root = require_data("molecules/moses")
    with gzip.open(root / "test.csv.gz", "rt") as fh:
        test = [line.strip() for line in fh][1:2401]
    with gzip.open(root / "train.csv.gz", "rt") as fh:
        train = [line.strip() for line in fh][1:301]
    return {"test": test, "train": train}


def test_heavy_atoms_from_the_text_equal_rdkit(moses):
    from medlearn.molecules.io import heavy_atoms

    smiles = moses["test"][:2000] + [
        "[2H]C([H])Cl",
        "C[Hg]C",
        "[NH4+].[Cl-]",
        "C%10CC%10",
        "Br[Se]Br",
        "c1cc[nH]c1",
    ]
    assert [heavy_atoms(s) for s in smiles] == [Chem.MolFromSmiles(s).GetNumHeavyAtoms() for s in smiles]


@pytest.mark.parametrize("smiles", [CHAIN, RINGS, "C" * 251, "[CH3]" * 1_000, "(" * 50_000 + "C"])
def test_an_oversized_smiles_is_too_large_without_being_parsed(smiles, monkeypatch):
    from medlearn.molecules.io import SmilesCanonicalizer

    canonicalizer = SmilesCanonicalizer()
    monkeypatch.setattr(canonicalizer, "_chem", None)  # any RDKit call would fail: nothing is parsed
    started = time.perf_counter()
    assert canonicalizer(smiles) == (None, "too_large")
    assert time.perf_counter() - started < 0.5


def test_the_limits_are_inclusive():
    from medlearn.molecules.io import MAX_HEAVY_ATOMS, SmilesCanonicalizer

    canonical, reason = SmilesCanonicalizer()("C" * MAX_HEAVY_ATOMS)
    assert reason is None and canonical == "C" * MAX_HEAVY_ATOMS
    assert SmilesCanonicalizer(max_heavy_atoms=10)("C" * 11) == (None, "too_large")


def test_blank_rows_are_empty_records_not_dropped(tmp_path, moses):
    from medlearn.molecules.io import canonicalize, read_smiles

    good = moses["test"][:5]
    csv_file = tmp_path / "gen.csv"
    csv_file.write_text("SMILES,score\n" + f"{good[0]},1\n\n{good[1]},2\n,3\n\n" + "\n".join(good[2:]) + "\n")
    smi_file = tmp_path / "gen.smi"
    smi_file.write_text(f"{good[0]}\n\n   \n{good[1]} name\n" + "\n".join(good[2:]) + "\n")
    for path, n_blank in ((csv_file, 3), (smi_file, 2)):
        records = read_smiles(path)
        assert len(records) == 5 + n_blank and records.count("") == n_blank
        _, report = canonicalize(records)
        assert report.n_valid == 5 and report.rejected["empty"] == n_blank


def test_compute_metrics_counts_each_reason(tmp_path, moses, monkeypatch):
    from medlearn.molecules.metrics import MosesReference, compute_metrics

    monkeypatch.setenv("MEDLEARN_CACHE", str(tmp_path / "cache"))
    reference = MosesReference.from_smiles(
        moses["test"][:200],
        FILTERS,
        test_scaffolds_smiles=moses["test"][200:400],
        train_smiles=moses["train"],
        n_jobs=1,
    )
    generated = moses["test"][400:460] + [CHAIN, RINGS, "", "   ", "C1CC", "c1cccc1", None]
    rejected: dict[str, int] = {}
    started = time.perf_counter()
    with pytest.warns(UserWarning):  # fewer than 1000 valid molecules for unique@1000
        table = compute_metrics(generated, reference, n_jobs=1, rejected=rejected)
    seconds = time.perf_counter() - started
    assert rejected == {"empty": 2, "parse_failure": 2, "sanitization_failure": 1, "too_large": 2}
    assert table["valid"] == pytest.approx(60 / 67)
    assert seconds < 120  # 60 molecules: a few seconds on 2 busy cores; the chain alone used to take > 9 min


def test_mol_metrics_cli_reports_skipped_too_large_and_blank_rows(tmp_path, moses):
    test, train = moses["test"], moses["train"]
    (tmp_path / "test.csv").write_text("SMILES\n" + "\n".join(test[:200]) + "\n")
    (tmp_path / "scaffolds.csv").write_text("SMILES\n" + "\n".join(test[200:400]) + "\n")
    (tmp_path / "train.csv").write_text("SMILES\n" + "\n".join(train) + "\n")
    generated = tmp_path / "gen.csv"
    generated.write_text("SMILES\n" + "\n".join(train[:100] + [CHAIN, "", RINGS, ""]) + "\n")
    out = tmp_path / "metrics.json"
    started = time.perf_counter()
    result = runner.invoke(
        app,
        [
            "mol-metrics",
            str(generated),
            "--out",
            str(out),
            "--train",
            str(tmp_path / "train.csv"),
            "--test",
            str(tmp_path / "test.csv"),
            "--test-scaffolds",
            str(tmp_path / "scaffolds.csv"),
            "--n-jobs",
            "1",
            "--quiet",
        ],
    )
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 104 and metrics["n_valid"] == 100
    assert metrics["skipped_too_large"] == 2 and metrics["invalid"]["empty"] == 2
    assert metrics["limits"] == {"max_heavy_atoms": 250, "max_smiles_chars": 2000}
    assert metrics["metrics"]["validity"]["value"] == pytest.approx(100 / 104, abs=1e-6)
    assert seconds < 180  # bounded: about 15 s here


def test_a_hostile_reference_row_is_skipped_and_counted(tmp_path, moses, monkeypatch):
    from medlearn.molecules.metrics import ReferenceStats
    from medlearn.molecules.metrics import reference as module

    monkeypatch.setenv("MEDLEARN_CACHE", str(tmp_path / "cache"))
    said: list[str] = []
    monkeypatch.setattr(module, "info", said.append)
    started = time.perf_counter()
    stats = ReferenceStats.from_smiles("Test", moses["test"][:100] + [CHAIN], n_jobs=1)
    assert time.perf_counter() - started < 120
    assert stats.n_molecules == 100
    assert "reference Test: skipped 1 SMILES over the size limits (too_large)" in said


def test_a_file_of_blank_lines_only_is_one_clear_error(tmp_path):
    from medlearn.errors import InputError
    from medlearn.molecules.io import read_smiles

    for name, text in (("blank.smi", "\n\n  \n"), ("blank.csv", "SMILES\n\n\n")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(InputError, match="holds no molecules"):
            read_smiles(path)
