"""Reading SMILES files and canonicalising them with a report of what was rejected and why."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.conftest import require_module

require_module("rdkit")

from medlearn.errors import InputError  # noqa: E402
from medlearn.molecules.io import canonicalize, load_smiles, read_smiles  # noqa: E402


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name, text",
    [
        ("a.csv", "SMILES\nCCO\nc1ccccc1\n"),
        ("a.csv.gz", "SMILES\nCCO\nc1ccccc1\n"),
        ("a.csv", "id,smiles,y\n1,CCO,0.5\n2,c1ccccc1,1\n"),
        ("a.tsv", "smiles\tname\nCCO\tethanol\nc1ccccc1\tbenzene\n"),
        ("a.smi", "SMILES name\nCCO ethanol\nc1ccccc1\n"),
        ("a.smi.gz", "CCO\nc1ccccc1 benzene\n"),
    ],
)
def test_read_smiles_reads_every_supported_text_format(tmp_path, name, text):
    assert read_smiles(write(tmp_path / name, text)) == ["CCO", "c1ccccc1"]


def test_read_smiles_reads_sdf_and_keeps_unreadable_records_as_none(tmp_path):
    from rdkit import Chem

    path = tmp_path / "a.sdf"
    with Chem.SDWriter(str(path)) as writer:
        for smiles in ("CCO", "c1ccccc1"):
            writer.write(Chem.MolFromSmiles(smiles))
    broken = "broken\n  RDKit\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\nnot an atom line\nM  END\n$$$$\n"
    path.write_text(path.read_text() + broken)
    records = read_smiles(path)
    assert len(records) == 3 and records[2] is None
    canonical, report = canonicalize(records)
    assert canonical[:2] == ["CCO", "c1ccccc1"]
    assert report.rejected["parse_failure"] == 1


def test_wrong_column_names_the_file_and_the_columns_found(tmp_path):
    path = write(tmp_path / "mols.csv", "structure,y\nCCO,1\n")
    with pytest.raises(InputError, match=r"mols\.csv.*no SMILES column.*\['structure', 'y'\]"):
        read_smiles(path)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("empty.csv", "", "empty"),
        ("header.csv", "SMILES\n", "no molecules"),
        ("empty.smi", "\n\n", "no molecules"),
        ("empty.sdf", "", "empty"),
    ],
)
def test_empty_files_raise_input_error(tmp_path, name, text, message):
    with pytest.raises(InputError, match=message):
        read_smiles(write(tmp_path / name, text))


def test_malformed_files_raise_input_error_naming_the_file(tmp_path):
    not_gzip = tmp_path / "plain.csv.gz"
    not_gzip.write_text("SMILES\nCCO\n")
    with pytest.raises(InputError, match="plain.csv.gz: cannot read"):
        read_smiles(not_gzip)
    bad_quotes = write(tmp_path / "quotes.csv", 'SMILES\n"CC"O\n')
    with pytest.raises(InputError, match="quotes.csv: malformed CSV at line 2"):
        read_smiles(bad_quotes)
    not_sdf = write(tmp_path / "fake.sdf", "CCO\nc1ccccc1\n")
    with pytest.raises(InputError, match="not an SDF"):
        read_smiles(not_sdf)
    with pytest.raises(InputError, match="unknown molecule file type"):
        read_smiles(write(tmp_path / "a.xyz", "CCO\n"))
    with pytest.raises(InputError, match="not found"):
        read_smiles(tmp_path / "missing.csv")


def test_canonicalize_counts_each_rejection_reason_and_duplicates():
    records = ["CCO", "OCC", "", "   ", "C1CC", "C(C)(C)(C)(C)C", "CC.Cl", None, "c1cccc1"]
    canonical, report = canonicalize(records)
    assert canonical[:2] == ["CCO", "CCO"] and canonical[6] == "CC.Cl"
    assert report.n_input == 9 and report.n_valid == 3 and report.n_duplicates == 1
    assert report.rejected == {
        "empty": 2,
        "parse_failure": 2,
        "sanitization_failure": 2,
        "multi_fragment": 0,
        "too_large": 0,
    }
    assert report.n_rejected == 6
    assert "9 SMILES: 3 valid" in report.summary()


def test_multi_fragment_policies():
    salt = "CC(=O)[O-].[Na+]"
    assert canonicalize([salt])[0] == ["CC(=O)[O-].[Na+]"]
    largest, report = canonicalize([salt, "CCO"], multi_fragment="largest")
    assert largest == ["CC(=O)[O-]", "CCO"] and report.fragments_stripped == 1
    rejected, report = canonicalize([salt, "CCO"], multi_fragment="reject")
    assert rejected == [None, "CCO"] and report.rejected["multi_fragment"] == 1
    with pytest.raises(ValueError, match="multi_fragment"):
        canonicalize([salt], multi_fragment="drop")  # type: ignore[arg-type]


def test_load_smiles_returns_valid_canonical_smiles_and_the_report(tmp_path):
    path = write(tmp_path / "a.csv", "SMILES\nOCC\nCCO\nnonsense\n")
    smiles, report = load_smiles(path, deduplicate=True)
    assert smiles == ["CCO"]
    assert report.to_dict()["rejected"]["parse_failure"] == 1
