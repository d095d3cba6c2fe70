"""Molecular graphs: exact SMILES → graph → SMILES round trips, padding, errors and JSON storage."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from medlearn.molecules.representations import BOND_TYPES, GraphFeaturizer, MolGraph
from tests.conftest import require_data, require_module

Chem = require_module("rdkit.Chem")

#: Drug-like molecules covering charges, [nH] heterocycles, fused rings, S/P oxidation states.
HAND_WRITTEN = [
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "Cn1c(=O)c2c(ncn2C)n(C)c1=O",  # caffeine
    "C[N+](=O)[O-]",  # nitromethane: charge separation
    "c1ccc2[nH]ccc2c1",  # indole
    "c1nn[nH]n1",  # tetrazole
    "O=c1cc[nH]cc1",  # 4-pyridone
    "[O-][n+]1ccccc1",  # pyridine N-oxide
    "C[NH3+]",
    "CC(=O)[O-]",
    "NS(=O)(=O)c1ccc(N)cc1",  # sulfanilamide
    "OP(=O)(O)OC",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",  # ibuprofen
    "CN1CCC[C@H]1c1cccnc1",  # nicotine (stereo is dropped)
    "C#N",
    "C",
    "FC(F)(F)c1ccc(Cl)c(Br)c1",
]
ATOM_TYPES = ["C", "N", "O", "F", "S", "Cl", "Br", "P"]


def canonical(smiles: str) -> str:
    """RDKit's canonical SMILES without stereo: what a graph can represent."""
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles), isomericSmiles=False)


@pytest.fixture(scope="module")
def moses_sample() -> list[str]:
    path = require_data("molecules/moses") / "test.csv.gz"
    with gzip.open(path, "rt") as handle:
        lines = [line.strip() for _, line in zip(range(51), handle)]
    assert lines[0] == "SMILES"
    return lines[1:]


@pytest.fixture
def featurizer() -> GraphFeaturizer:
    return GraphFeaturizer(ATOM_TYPES, max_atoms=32)


@pytest.mark.parametrize("kekulize", [True, False])
def test_hand_written_molecules_round_trip_to_the_same_canonical_smiles(kekulize):
    featurizer = GraphFeaturizer(ATOM_TYPES, max_atoms=32, kekulize=kekulize)
    for smiles in HAND_WRITTEN:
        assert featurizer.decode(featurizer.encode(smiles)) == canonical(smiles), smiles


@pytest.mark.parametrize("kekulize", [True, False])
def test_moses_sample_round_trips_exactly(moses_sample, kekulize):
    featurizer = GraphFeaturizer.fit(moses_sample, kekulize=kekulize)
    exact = [featurizer.decode(featurizer.encode(s)) == canonical(s) for s in moses_sample]
    assert len(moses_sample) == 50 and all(exact), [s for s, ok in zip(moses_sample, exact) if not ok]


def test_kekule_graphs_need_only_atom_ids_and_bonds_to_decode(moses_sample):
    """What a MolGAN-style generator emits: no charges, no hydrogen counts."""
    featurizer = GraphFeaturizer.fit(moses_sample)
    for smiles in moses_sample:
        graph = featurizer.encode(smiles)
        assert featurizer.decode(graph.atoms, graph.adjacency) == canonical(smiles)
    nitro = featurizer.encode("C[N+](=O)[O-]")
    assert featurizer.decode(nitro.atoms, nitro.adjacency, nitro.charges) == "C[N+](=O)[O-]"


def test_kekulized_graphs_have_no_aromatic_bonds_but_keep_the_aromatic_flag(featurizer):
    graph = featurizer.encode("c1ccc2[nH]ccc2c1")
    assert set(np.unique(graph.adjacency)) == {0, 1, 2}
    aromatic = graph.atom_features[:, featurizer.feature_names.index("aromatic")]
    assert aromatic[: graph.n_atoms].all() and not aromatic[graph.n_atoms :].any()
    aromatic_bonds = GraphFeaturizer(ATOM_TYPES, 32, kekulize=False).encode("c1ccc2[nH]ccc2c1").adjacency
    assert BOND_TYPES.index("AROMATIC") + 1 in aromatic_bonds


def test_graph_arrays_are_padded_symmetric_and_consistent(featurizer):
    graph = featurizer.encode("CC(=O)Oc1ccccc1C(=O)O")
    n, size = graph.n_atoms, featurizer.max_atoms
    assert isinstance(graph, MolGraph) and n == 13
    assert graph.atoms.shape == (size,) and graph.adjacency.shape == (size, size)
    assert graph.atom_features.shape == (size, featurizer.n_atom_features)
    assert graph.atom_features.dtype == np.float32 and graph.atoms.dtype == np.int64
    np.testing.assert_array_equal(graph.adjacency, graph.adjacency.T)
    assert (graph.atoms[:n] > 0).all() and not graph.atoms[n:].any()
    assert not graph.adjacency[n:].any() and not graph.adjacency[:, n:].any()
    assert not graph.atom_features[n:].any() and not graph.hydrogens[n:].any()
    assert not np.diag(graph.adjacency).any()
    assert (graph.adjacency > 0).sum() == 2 * 13  # 13 bonds in aspirin, each stored twice
    # each real atom has exactly one element, one charge and one hydrogen-count column set
    names = featurizer.feature_names
    features = graph.atom_features[:n]
    for prefix in ("element=", "charge=", "hydrogens="):
        columns = [i for i, name in enumerate(names) if name.startswith(prefix)]
        np.testing.assert_array_equal(features[:, columns].sum(axis=1), 1.0)
    elements = [names[i].removeprefix("element=") for i in features[:, : len(ATOM_TYPES)].argmax(axis=1)]
    assert elements == [featurizer.atom_types[i - 1] for i in graph.atoms[:n]]


def test_charges_and_hydrogens_are_recorded(featurizer):
    graph = featurizer.encode("C[N+](=O)[O-]")
    assert graph.charges[:4].tolist() == [0, 1, 0, -1]
    assert graph.hydrogens[:4].tolist() == [3, 0, 0, 0]
    assert graph.atom_features[1, featurizer.feature_names.index("charge=+1")] == 1.0


def test_encode_batch_stacks_graphs(featurizer):
    batch = featurizer.encode_batch(["CCO", "c1ccccc1", "C[N+](=O)[O-]"])
    assert batch["atoms"].shape == (3, 32) and batch["adjacency"].shape == (3, 32, 32)
    assert batch["atom_features"].shape == (3, 32, featurizer.n_atom_features)
    assert batch["n_atoms"].tolist() == [3, 6, 4]
    graph = MolGraph(**{k: v[1] for k, v in batch.items() if k != "n_atoms"}, n_atoms=6)
    assert featurizer.decode(graph) == "c1ccccc1"
    assert featurizer.encode_batch([])["adjacency"].shape == (0, 32, 32)


def test_encode_errors_name_the_problem(featurizer):
    with pytest.raises(ValueError, match=r"atom type 'Se'"):
        featurizer.encode("C[Se]C")
    with pytest.raises(ValueError, match=r"40 heavy atoms, more than max_atoms=32"):
        featurizer.encode("C" * 40)
    with pytest.raises(ValueError, match=r"SMILES 'C1CC\(C' is not a valid molecule"):
        featurizer.encode("C1CC(C")
    with pytest.raises(ValueError, match=r"SMILES '' is not a valid molecule"):
        featurizer.encode("")
    with pytest.raises(ValueError, match=r"SMILES 'C\(C\)\(C\)\(C\)\(C\)C' is not a valid molecule"):
        featurizer.encode("C(C)(C)(C)(C)C")  # parses, but a pentavalent carbon does not sanitise
    with pytest.raises(ValueError, match=r"formal charge \+2 on atom 1 \(C\)"):
        featurizer.encode("C[C+2]C")


def test_decode_returns_none_for_impossible_graphs(featurizer):
    carbon, single = ATOM_TYPES.index("C") + 1, BOND_TYPES.index("SINGLE") + 1
    atoms = np.zeros(32, dtype=np.int64)
    atoms[:6] = carbon
    adjacency = np.zeros((32, 32), dtype=np.int64)
    adjacency[0, 1:6] = adjacency[1:6, 0] = single  # a carbon with five single bonds
    assert featurizer.decode(atoms, adjacency) is None
    assert featurizer.decode(np.zeros(32, dtype=np.int64), adjacency * 0) is None  # no atoms
    aromatic = BOND_TYPES.index("AROMATIC") + 1
    chain = np.zeros((32, 32), dtype=np.int64)
    for i in range(4):  # an aromatic chain of carbons cannot be kekulized
        chain[i, i + 1] = chain[i + 1, i] = aromatic
    assert featurizer.decode(np.where(np.arange(32) < 5, carbon, 0), chain) is None


def test_decode_reads_the_upper_triangle_ignores_absent_atoms_and_picks_fragments(featurizer):
    carbon, oxygen = ATOM_TYPES.index("C") + 1, ATOM_TYPES.index("O") + 1
    atoms = np.array([carbon, carbon, 0, oxygen, carbon], dtype=np.int64)
    adjacency = np.zeros((5, 5), dtype=np.int64)
    adjacency[0, 1] = adjacency[1, 4] = 1  # upper triangle only
    adjacency[1, 2] = adjacency[2, 3] = 1  # bonds to the absent atom 2 are dropped
    assert featurizer.decode(atoms, adjacency) == "CCC.O"
    assert featurizer.decode(atoms, adjacency, largest_fragment=True) == "CCC"
    adjacency[3, 4] = 1
    assert featurizer.decode(atoms, adjacency) == "CCCO"


def test_decode_rejects_malformed_arrays(featurizer):
    with pytest.raises(ValueError, match="atom ids must lie in 0..8"):
        featurizer.decode(np.array([9]), np.zeros((1, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="adjacency must have shape"):
        featurizer.decode(np.array([1, 1]), np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="argmax"):
        featurizer.decode(np.array([0.2, 0.8]), np.zeros((2, 2)))


def test_fit_picks_atom_types_by_frequency_and_the_largest_molecule():
    featurizer = GraphFeaturizer.fit(["CCO", "c1ccncc1", "OCCO", "CCCl"])
    assert featurizer.atom_types == ["C", "O", "Cl", "N"]  # 12 C, 3 O, then ties alphabetically
    assert featurizer.max_atoms == 6
    assert GraphFeaturizer.fit(["CCO"], max_atoms=9).max_atoms == 9
    with pytest.raises(ValueError, match="SMILES 'C1' is not a valid molecule"):
        GraphFeaturizer.fit(["CCO", "C1"])


def test_to_dict_from_dict_round_trip_through_json(featurizer):
    stored = json.loads(json.dumps(featurizer.to_dict()))
    assert stored["format"] == "medlearn.graph_featurizer/1"
    rebuilt = GraphFeaturizer.from_dict(stored)
    assert rebuilt == featurizer
    graph = rebuilt.encode("Cn1c(=O)c2c(ncn2C)n(C)c1=O")
    np.testing.assert_array_equal(graph.adjacency, featurizer.encode("Cn1c(=O)c2c(ncn2C)n(C)c1=O").adjacency)
    with pytest.raises(ValueError, match="not a graph featurizer"):
        GraphFeaturizer.from_dict({"format": "medlearn.vocabulary/1"})


def test_invalid_specs_are_rejected():
    with pytest.raises(ValueError, match="duplicate atom_types"):
        GraphFeaturizer(["C", "C"], max_atoms=3)
    with pytest.raises(ValueError, match="max_atoms"):
        GraphFeaturizer(["C"], max_atoms=0)
