"""Molecules as fixed-size graphs for graph generators (MolGAN-style): atom ids, atom features, bond ids.

A :class:`GraphFeaturizer` turns a SMILES into a :class:`MolGraph` of dense, padded numpy arrays and
a graph back into a canonical SMILES. It is a small JSON spec (``to_dict``/``from_dict``) because a
generator's bundle must carry the exact atom-type ids it was trained with: a different id order at
sampling time turns every generated graph into a different molecule without any error.

Design (see :class:`GraphFeaturizer` for the details):

- Heavy atoms only; hydrogens are a per-atom count, as in MolGAN.
- Bonds are **kekulized** by default (single/double/triple only), as in MolGAN: a generator that
  emits "aromatic" bonds must also get every ring's aromaticity right or RDKit cannot kekulize it,
  whereas a Kekulé graph only needs valences right. Aromaticity is re-perceived when decoding.
  ``kekulize=False`` keeps RDKit's aromatic bond type instead (exact too for encoded graphs).
- Stereochemistry and isotopes are not encoded: ``decode(encode(s))`` is the canonical SMILES of
  ``s`` without them (MOSES molecules have neither).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlearn.molecules.io import require

_FORMAT = "medlearn.graph_featurizer/1"
#: Bond types by id - 1 (id 0 is "no bond"); RDKit ``BondType`` names, fixed so ids never move.
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
#: Hydrogen counts one-hot encoded in the atom features: 0..4 (4 only for CH4, NH4+, SiH4).
MAX_HYDROGENS = 4
_PURPOSE = "for molecular graphs"


@dataclass
class MolGraph:
    """One molecule as padded arrays; rows and columns past ``n_atoms`` are zero (padding).

    Attributes:
        atoms: ``(max_atoms,)`` int64 atom-type ids, 1-based into ``atom_types``; 0 = no atom.
        atom_features: ``(max_atoms, F)`` float32 one-hots (element, formal charge, aromatic flag,
            hydrogen count); names in :attr:`GraphFeaturizer.feature_names`.
        adjacency: ``(max_atoms, max_atoms)`` int64 symmetric bond-type ids, 1-based into
            :data:`BOND_TYPES`; 0 = no bond.
        charges: ``(max_atoms,)`` int64 formal charges (exact, not one-hot), needed by ``decode``.
        hydrogens: ``(max_atoms,)`` int64 total hydrogen counts, so ``decode`` need not guess them.
        n_atoms: number of real (heavy) atoms, the first ``n_atoms`` rows.
    """

    atoms: np.ndarray
    atom_features: np.ndarray
    adjacency: np.ndarray
    charges: np.ndarray
    hydrogens: np.ndarray
    n_atoms: int


@dataclass
class GraphFeaturizer:
    """SMILES ↔ :class:`MolGraph` with a fixed atom vocabulary and graph size.

    Exactness: for an encoded graph, element, formal charge, bond orders and hydrogen counts fully
    determine the molecule, so ``decode(encode(s))`` equals RDKit's canonical SMILES of ``s`` (minus
    stereo and isotopes). A *generated* graph usually has only atom ids and bonds: ``decode`` then
    takes charges as 0 and lets RDKit infer hydrogens from default valences, which is what a
    MolGAN-style model relies on.

    Attributes:
        atom_types: element symbols; atom id ``i + 1`` is ``atom_types[i]``.
        max_atoms: number of heavy-atom slots; larger molecules are rejected, never truncated.
        formal_charges: charges one-hot encoded in the atom features; others are rejected.
        kekulize: encode Kekulé single/double bonds (default, MolGAN) instead of aromatic bonds.

    Examples:
        >>> featurizer = GraphFeaturizer.fit(["CCO", "c1ccncc1"])
        >>> featurizer.decode(featurizer.encode("OCC"))
        'CCO'
    """

    atom_types: list[str]
    max_atoms: int
    formal_charges: list[int] = field(default_factory=lambda: [-1, 0, 1])
    kekulize: bool = True

    def __post_init__(self) -> None:
        self.atom_types = [str(a) for a in self.atom_types]
        self.formal_charges = [int(c) for c in self.formal_charges]
        if not self.atom_types:
            raise ValueError("atom_types is empty; a featurizer needs at least one element")
        for name, values in (("atom_types", self.atom_types), ("formal_charges", self.formal_charges)):
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise ValueError(f"duplicate {name}: {duplicates}")
        if 0 not in self.formal_charges:
            raise ValueError(f"formal_charges must include 0, got {self.formal_charges}")
        if int(self.max_atoms) < 1:
            raise ValueError(f"max_atoms must be at least 1, got {self.max_atoms}")
        self.max_atoms = int(self.max_atoms)

    # ------------------------------------------------------------------------------------ building
    @classmethod
    def fit(
        cls,
        smiles: Iterable[str],
        max_atoms: int | None = None,
        kekulize: bool = True,
        formal_charges: Sequence[int] = (-1, 0, 1),
    ) -> GraphFeaturizer:
        """The featurizer of a training corpus: every element seen, the largest molecule's size.

        Atom types are ordered by frequency, ties alphabetically, so the same corpus always gives the
        same ids. ``max_atoms`` overrides the size (molecules above it will fail to encode).

        Raises:
            ValueError: an invalid SMILES (named), or an empty corpus.
        """
        chem = require("rdkit.Chem", _PURPOSE)
        counts: Counter[str] = Counter()
        largest = 0
        for s in smiles:
            mol = _parse(chem, s)
            counts.update(atom.GetSymbol() for atom in mol.GetAtoms())
            largest = max(largest, mol.GetNumAtoms())
        if not counts:
            raise ValueError("cannot fit a graph featurizer on no molecules")
        atom_types = sorted(counts, key=lambda a: (-counts[a], a))
        return cls(atom_types, largest if max_atoms is None else max_atoms, list(formal_charges), kekulize)

    # ----------------------------------------------------------------------------------- shapes
    @property
    def n_atom_types(self) -> int:
        """Atom ids including 0 (no atom): the size of a generator's node-type output."""
        return len(self.atom_types) + 1

    @property
    def n_bond_types(self) -> int:
        """Bond ids including 0 (no bond): the size of a generator's edge-type output."""
        return len(BOND_TYPES) + 1

    @property
    def feature_names(self) -> list[str]:
        """Column names of ``atom_features``, in order."""
        return (
            [f"element={a}" for a in self.atom_types]
            + [f"charge={c:+d}" if c else "charge=0" for c in self.formal_charges]
            + ["aromatic"]
            + [f"hydrogens={h}" for h in range(MAX_HYDROGENS + 1)]
        )

    @property
    def n_atom_features(self) -> int:
        return len(self.feature_names)

    # ---------------------------------------------------------------------------------- encoding
    def encode(self, smiles: str) -> MolGraph:
        """The padded graph of ``smiles``.

        Raises:
            ValueError: the SMILES does not parse or sanitise, an element is outside ``atom_types``, a formal
                charge is outside ``formal_charges``, or the molecule has more than ``max_atoms``
                heavy atoms; the message names the SMILES and the problem.
        """
        chem = require("rdkit.Chem", _PURPOSE)
        mol = _parse(chem, smiles)
        n = mol.GetNumAtoms()
        if n > self.max_atoms:
            raise ValueError(f"SMILES {smiles!r} has {n} heavy atoms, more than max_atoms={self.max_atoms}")
        type_ids = {a: i + 1 for i, a in enumerate(self.atom_types)}
        charge_cols = {c: i for i, c in enumerate(self.formal_charges)}
        n_types, n_charges = len(self.atom_types), len(self.formal_charges)

        atoms = np.zeros(self.max_atoms, dtype=np.int64)
        charges = np.zeros(self.max_atoms, dtype=np.int64)
        hydrogens = np.zeros(self.max_atoms, dtype=np.int64)
        features = np.zeros((self.max_atoms, self.n_atom_features), dtype=np.float32)
        for atom in mol.GetAtoms():
            i, symbol, charge = atom.GetIdx(), atom.GetSymbol(), atom.GetFormalCharge()
            if symbol not in type_ids:
                raise ValueError(
                    f"SMILES {smiles!r} has atom type {symbol!r}, which is not in the "
                    f"featurizer's atom types {self.atom_types}"
                )
            if charge not in charge_cols:
                raise ValueError(
                    f"SMILES {smiles!r} has formal charge {charge:+d} on atom {i} ({symbol}), "
                    f"outside the featurizer's formal charges {self.formal_charges}"
                )
            atoms[i], charges[i], hydrogens[i] = type_ids[symbol], charge, atom.GetTotalNumHs()
            features[i, type_ids[symbol] - 1] = 1.0
            features[i, n_types + charge_cols[charge]] = 1.0
            features[i, n_types + n_charges] = float(atom.GetIsAromatic())
            features[i, n_types + n_charges + 1 + min(int(hydrogens[i]), MAX_HYDROGENS)] = 1.0

        if self.kekulize:  # after reading the aromatic flags above, which stay useful as features
            mol = chem.Mol(mol)
            chem.Kekulize(mol, clearAromaticFlags=True)
        bond_ids = {getattr(chem.BondType, name): i + 1 for i, name in enumerate(BOND_TYPES)}
        adjacency = np.zeros((self.max_atoms, self.max_atoms), dtype=np.int64)
        for bond in mol.GetBonds():
            if bond.GetBondType() not in bond_ids:
                raise ValueError(
                    f"SMILES {smiles!r} has a {bond.GetBondType()} bond; "
                    f"only {', '.join(BOND_TYPES).lower()} bonds are encoded"
                )
            i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            adjacency[i, j] = adjacency[j, i] = bond_ids[bond.GetBondType()]
        return MolGraph(atoms, features, adjacency, charges, hydrogens, n)

    def encode_batch(self, smiles: Sequence[str]) -> dict[str, np.ndarray]:
        """The graphs of ``smiles`` stacked along a new first axis, keyed by :class:`MolGraph` field.

        ``n_atoms`` becomes an ``(n,)`` int64 array. Raises like :meth:`encode` on the first bad SMILES.
        """
        graphs = [self.encode(s) for s in smiles]
        n = self.max_atoms
        empty = {
            "atoms": (n,),
            "atom_features": (n, self.n_atom_features),
            "adjacency": (n, n),
            "charges": (n,),
            "hydrogens": (n,),
        }
        batch = {
            key: (
                np.stack([getattr(g, key) for g in graphs])
                if graphs
                else np.zeros((0, *shape), dtype=np.float32 if key == "atom_features" else np.int64)
            )
            for key, shape in empty.items()
        }
        batch["n_atoms"] = np.array([g.n_atoms for g in graphs], dtype=np.int64)
        return batch

    # ---------------------------------------------------------------------------------- decoding
    def decode(
        self,
        graph: MolGraph | np.ndarray | Sequence[int],
        adjacency: np.ndarray | None = None,
        charges: np.ndarray | Sequence[int] | None = None,
        hydrogens: np.ndarray | Sequence[int] | None = None,
        *,
        largest_fragment: bool = False,
    ) -> str | None:
        """The canonical SMILES of a graph, or ``None`` if it is not a valid molecule.

        Pass a :class:`MolGraph`, or the arrays of a generated graph: ``atoms`` (ids, 0 = no atom) and
        ``adjacency`` (bond ids), with optional ``charges`` (default 0) and ``hydrogens`` (default:
        RDKit infers them from valences). Only the upper triangle of ``adjacency`` is read, so a
        sampler need only fill ``i < j``; bonds to absent atoms and the diagonal are ignored.

        Generated graphs are often chemically impossible (over-valent atoms, aromatic rings that do
        not kekulize, no atoms): they give ``None``, never an exception. A graph with several
        disconnected parts gives a dotted SMILES, or only its largest part (most heavy atoms) with
        ``largest_fragment=True``.

        Raises:
            ValueError: malformed arrays (wrong shapes, ids outside the vocabularies): a caller bug,
                not a bad molecule.
        """
        if isinstance(graph, MolGraph):
            atoms, adjacency = graph.atoms, graph.adjacency
            charges = graph.charges if charges is None else charges
            hydrogens = graph.hydrogens if hydrogens is None else hydrogens
        else:
            atoms = graph
            if adjacency is None:
                raise ValueError("decode needs an adjacency matrix with the atom ids")
        atoms, adjacency = self._check_ids(atoms, adjacency)
        charges = self._check_per_atom("charges", charges, len(atoms))
        hydrogens = self._check_per_atom("hydrogens", hydrogens, len(atoms))

        chem = require("rdkit.Chem", _PURPOSE)
        rdbase = require("rdkit.rdBase", _PURPOSE)
        _quiet = rdbase.BlockLogs()  # invalid generated graphs would flood stderr with valence errors
        present = np.flatnonzero(atoms)
        if present.size == 0:
            return None
        mol = chem.RWMol()
        index = {}
        for i in present:
            atom = chem.Atom(self.atom_types[atoms[i] - 1])
            if charges is not None:
                atom.SetFormalCharge(int(charges[i]))
            if hydrogens is not None:
                atom.SetNumExplicitHs(int(hydrogens[i]))
                atom.SetNoImplicit(True)
            index[int(i)] = mol.AddAtom(atom)
        bond_types = [getattr(chem.BondType, name) for name in BOND_TYPES]
        rows, cols = np.nonzero(np.triu(adjacency, k=1))
        for i, j in zip(rows.tolist(), cols.tolist()):
            if i not in index or j not in index:
                continue
            bond_type = bond_types[adjacency[i, j] - 1]
            mol.AddBond(index[i], index[j], bond_type)
            if bond_type == chem.BondType.AROMATIC:
                mol.GetBondBetweenAtoms(index[i], index[j]).SetIsAromatic(True)
                mol.GetAtomWithIdx(index[i]).SetIsAromatic(True)
                mol.GetAtomWithIdx(index[j]).SetIsAromatic(True)
        try:
            result = mol.GetMol()
            if chem.SanitizeMol(result, catchErrors=True) != chem.SanitizeFlags.SANITIZE_NONE:
                return None
            if largest_fragment:
                fragments = chem.GetMolFrags(result, asMols=True, sanitizeFrags=False)
                result = max(fragments, key=lambda m: m.GetNumAtoms())
            smiles = chem.MolToSmiles(result)
            # A canonical SMILES that does not parse back (rare RDKit corner cases) is not a molecule.
            return smiles if smiles and chem.MolFromSmiles(smiles) is not None else None
        except (ValueError, RuntimeError):
            return None

    def _check_ids(self, atoms: Any, adjacency: Any) -> tuple[np.ndarray, np.ndarray]:
        atoms = np.asarray(atoms)
        adjacency = np.asarray(adjacency)
        if atoms.ndim != 1:
            raise ValueError(f"atoms must be a 1-d array of atom ids, got shape {atoms.shape}")
        if adjacency.shape != (len(atoms), len(atoms)):
            raise ValueError(
                f"adjacency must have shape {(len(atoms), len(atoms))} to match atoms, got {adjacency.shape}"
            )
        for name, ids, limit in (("atom", atoms, self.n_atom_types), ("bond", adjacency, self.n_bond_types)):
            if not np.issubdtype(ids.dtype, np.integer):
                raise ValueError(
                    f"{name} ids must be integers (take the argmax of a generator's "
                    f"probabilities first), got dtype {ids.dtype}"
                )
            if ids.size and (ids.min() < 0 or ids.max() >= limit):
                raise ValueError(f"{name} ids must lie in 0..{limit - 1}, got {ids.min()}..{ids.max()}")
        return atoms.astype(np.int64), adjacency.astype(np.int64)

    @staticmethod
    def _check_per_atom(name: str, values: Any, n: int) -> np.ndarray | None:
        if values is None:
            return None
        values = np.asarray(values)
        if values.shape != (n,):
            raise ValueError(f"{name} must have shape {(n,)} to match atoms, got {values.shape}")
        return values.astype(np.int64)

    # ------------------------------------------------------------------------------------ storage
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the format tag, the atom and bond vocabularies, the size and the bond mode."""
        return {
            "format": _FORMAT,
            "atom_types": list(self.atom_types),
            "max_atoms": self.max_atoms,
            "formal_charges": list(self.formal_charges),
            "kekulize": self.kekulize,
            "bond_types": list(BOND_TYPES),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphFeaturizer:
        """Rebuild a featurizer stored by :meth:`to_dict`, checking that the bond ids are unchanged."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(
                f"not a graph featurizer in format {_FORMAT!r}: "
                f"{data.get('format') if isinstance(data, dict) else type(data).__name__}"
            )
        if list(data.get("bond_types", BOND_TYPES)) != list(BOND_TYPES):
            raise ValueError(f"stored bond types {data['bond_types']} differ from {list(BOND_TYPES)}")
        return cls(
            list(data["atom_types"]),
            int(data["max_atoms"]),
            list(data["formal_charges"]),
            bool(data["kekulize"]),
        )


def _parse(chem: Any, smiles: str) -> Any:
    """RDKit molecule of ``smiles`` (hydrogens folded into counts), or a ValueError naming it."""
    rdbase = require("rdkit.rdBase", _PURPOSE)
    _quiet = rdbase.BlockLogs()
    mol = chem.MolFromSmiles(smiles) if isinstance(smiles, str) and smiles.strip() else None
    if mol is None or mol.GetNumAtoms() == 0:
        raise ValueError(f"SMILES {smiles!r} is not a valid molecule (RDKit cannot parse or sanitise it)")
    return mol
