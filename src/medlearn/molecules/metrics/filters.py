"""The MOSES ``Filters`` metric: MCF + PAINS substructures, allowed atoms, no charge, no large ring.

Same rules as ``moses.metrics.utils.mol_passes_filters`` (molsets 0.3.1): a molecule passes when no ring
has 8 or more atoms (MOSES's ``len(ring) >= 8`` test, i.e. rings of up to 7 atoms are allowed), no atom
is charged, every atom is one of C N S O F Cl Br H, none of the MCF and PAINS SMARTS matches the
molecule *with explicit hydrogens*, and its non-isomeric SMILES parses again.

Matching ~500 SMARTS against every molecule is the slowest MOSES metric (≈ 6-16 ms per molecule). Here
each hydrogen-added molecule gets one RDKit pattern fingerprint and only the SMARTS whose own pattern
fingerprint is a subset of it are matched (the screen RDKit's ``SubstructLibrary`` uses; it never
drops a true match, only skips impossible ones), ≈ 5× faster with identical results.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.errors import InputError
from medlearn.molecules.io import require

#: Elements a passing molecule may contain (MOSES).
ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
#: MOSES rejects a molecule with a ring of this many atoms or more.
MIN_REJECTED_RING_SIZE = 8
_SCREEN_BITS = 2048


def read_filter_smarts(mcf_path: str | Path, pains_path: str | Path) -> tuple[str, ...]:
    """The SMARTS of MOSES's ``mcf.csv`` (header ``names,smarts``) and ``wehi_pains.csv`` (no header:
    SMARTS, name), as MOSES reads them."""
    smarts: list[str] = []
    for path, has_header in ((Path(mcf_path), True), (Path(pains_path), False)):
        if not path.is_file():
            raise InputError(f"{path}: filter SMARTS file not found")
        with open(path, encoding="utf-8", newline="") as handle:
            rows = [row for row in csv.reader(handle) if row]
        if has_header:
            if not rows or "smarts" not in rows[0]:
                raise InputError(f"{path}: expected a header with a 'smarts' column, found {rows[:1]}")
            column = rows[0].index("smarts")
            rows = rows[1:]
        else:
            column = 0
        if not rows:
            raise InputError(f"{path}: no SMARTS patterns in the file")
        smarts.extend(row[column].strip() for row in rows)
    return tuple(smarts)


def _bits(fingerprint: Any, data_structs: Any) -> np.ndarray:
    array = np.zeros(fingerprint.GetNumBits(), dtype=np.uint8)
    data_structs.ConvertToNumpyArray(fingerprint, array)
    return array


class MosesFilters:
    """Compiled MOSES filters; :meth:`passes` scores a batch of molecules."""

    def __init__(self, smarts: Sequence[str]) -> None:
        self._chem = require("rdkit.Chem", "for the MOSES filters")
        self._ds = require("rdkit.DataStructs", "for the MOSES filters")
        self.patterns = []
        for text in smarts:
            pattern = self._chem.MolFromSmarts(text)
            if pattern is None:
                raise ValueError(f"invalid filter SMARTS {text!r}")
            self.patterns.append(pattern)
        self._pattern_bits = np.stack(
            [_bits(self._chem.PatternFingerprint(p, fpSize=_SCREEN_BITS), self._ds) for p in self.patterns]
        ).astype(np.float32)

    def _passes_atom_rules(self, mol: Any) -> bool:
        ring_info = mol.GetRingInfo()
        rings = ring_info.AtomRings() if ring_info.NumRings() else ()
        if any(len(ring) >= MIN_REJECTED_RING_SIZE for ring in rings):
            return False
        atoms = mol.GetAtoms()
        return all(a.GetFormalCharge() == 0 for a in atoms) and all(
            a.GetSymbol() in ALLOWED_ATOMS for a in atoms
        )

    def _matches_any(self, mols: Sequence[Any]) -> np.ndarray:
        """Whether any filter SMARTS matches each molecule (with explicit H), screened by fingerprints."""
        if not mols:
            return np.zeros(0, dtype=bool)
        chem = self._chem
        h_mols = [chem.AddHs(m) for m in mols]
        mol_bits = np.stack(
            [_bits(chem.PatternFingerprint(h, fpSize=_SCREEN_BITS), self._ds) for h in h_mols]
        )
        missing = (1.0 - mol_bits.astype(np.float32)) @ self._pattern_bits.T  # pattern bits absent in mol
        candidates = missing == 0
        return np.array(
            [
                any(h.HasSubstructMatch(self.patterns[j]) for j in np.flatnonzero(row))
                for h, row in zip(h_mols, candidates, strict=True)
            ],
            dtype=bool,
        )

    def passes(self, mols: Sequence[Any]) -> np.ndarray:
        """A boolean per molecule (RDKit ``Mol`` parsed from the canonical SMILES, as MOSES does)."""
        ok = np.array([self._passes_atom_rules(m) for m in mols], dtype=bool)
        survivors = np.flatnonzero(ok)
        ok[survivors[self._matches_any([mols[i] for i in survivors])]] = False
        for i in np.flatnonzero(ok):
            smiles = self._chem.MolToSmiles(mols[i], isomericSmiles=False)
            ok[i] = bool(smiles) and self._chem.MolFromSmiles(smiles) is not None
        return ok
