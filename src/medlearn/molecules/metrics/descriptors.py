"""Per-molecule RDKit work of the MOSES metrics, run in worker processes (see :mod:`.parallel`).

Every function here takes a chunk of SMILES and returns plain arrays/lists, so that results cross the
process boundary cheaply. Definitions follow ``moses.metrics.utils`` (molsets 0.3.1):

- fingerprint: Morgan radius 2, 1024 bits (``GetMorganFingerprintAsBitVect(mol, 2, nBits=1024)``;
  RDKit's generator gives the same bits), stored packed (128 bytes per molecule);
- fragments: SMILES of the pieces after cutting BRICS bonds (``FragmentOnBRICSBonds``), with the
  isotope-labelled dummy atoms, as MOSES counts them;
- scaffold: Bemis-Murcko scaffold SMILES, ``None`` when it has fewer than 2 rings or fails;
- properties: Crippen logP, SA score (RDKit Contrib ``sascorer``), QED and molecular weight. logP and
  weight are read from QED's own property computation (the same RDKit functions) instead of being
  computed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlearn.molecules.io import SmilesCanonicalizer, require

#: Morgan fingerprint of SNN and IntDiv (MOSES: radius 2, 1024 bits).
FP_RADIUS, FP_BITS = 2, 1024
#: Property columns of :attr:`Descriptors.properties`, named as the MOSES metric keys.
PROPERTY_NAMES = ("logP", "SA", "QED", "weight")
#: A scaffold with fewer rings is not counted (MOSES ``compute_scaffolds(min_rings=2)``).
MIN_SCAFFOLD_RINGS = 2

_STATE: dict[str, Any] = {}


def init_worker(filter_smarts: tuple[str, ...] | None = None) -> None:
    """Set up a process once: RDKit imports, the fingerprint generator, compiled filters."""
    chem = require("rdkit.Chem", "for molecule metrics")
    generator = require("rdkit.Chem.rdFingerprintGenerator", "for molecule metrics")
    _STATE.update(
        chem=chem,
        rdbase=require("rdkit.rdBase", "for molecule metrics"),
        canonicalizer=SmilesCanonicalizer("keep"),
        fingerprints=generator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS),
        murcko=require("rdkit.Chem.Scaffolds.MurckoScaffold", "for scaffolds"),
        qed=require("rdkit.Chem.QED", "for QED"),
        sascorer=require("rdkit.Contrib.SA_Score.sascorer", "for the SA score"),
        filters=None,
    )
    if filter_smarts:
        from medlearn.molecules.metrics.filters import MosesFilters

        _STATE["filters"] = MosesFilters(filter_smarts)


def _state() -> dict[str, Any]:
    if not _STATE:
        init_worker()
    return _STATE


@dataclass
class Descriptors:
    """What the metrics need of a list of molecules, row-aligned with it."""

    fingerprints: np.ndarray  # (n, FP_BITS // 8) uint8, packed Morgan bits
    fragments: list[list[str]]  # BRICS fragment SMILES per molecule
    scaffolds: list[str | None]  # Murcko scaffold SMILES (None: < 2 rings)
    passes_filters: np.ndarray | None = None  # (n,) bool, MOSES filters
    properties: np.ndarray | None = None  # (n, 4) float64, columns PROPERTY_NAMES
    n_invalid: int = 0  # input SMILES RDKit rejected (dropped, with skip_invalid)

    @classmethod
    def concat(cls, parts: Sequence[Descriptors]) -> Descriptors:
        """Join the per-chunk results of a pool map."""

        def joined(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            return None if not arrays or arrays[0] is None else np.concatenate(arrays)

        fingerprints = joined("fingerprints")
        return cls(
            fingerprints=np.zeros((0, FP_BITS // 8), np.uint8) if fingerprints is None else fingerprints,
            fragments=[f for p in parts for f in p.fragments],
            scaffolds=[s for p in parts for s in p.scaffolds],
            passes_filters=joined("passes_filters"),
            properties=joined("properties"),
            n_invalid=sum(p.n_invalid for p in parts),
        )


def canonicalize_chunk(smiles: Sequence[str | None]) -> list[str | None]:
    """MOSES ``canonic_smiles`` of each record (``None`` when invalid); multi-fragment SMILES are kept."""
    return [canonical for canonical, _ in canonicalize_chunk_reasons(smiles)]


def canonicalize_chunk_reasons(smiles: Sequence[str | None]) -> list[tuple[str | None, str | None]]:
    """``(canonical SMILES, None)`` or ``(None, reason)`` per record (reasons: ``io.REJECTION_REASONS``).

    A record over the size limits (``too_large``) is rejected from its text, before RDKit sees it."""
    state = _state()
    canonicalizer, _quiet = state["canonicalizer"], state["rdbase"].BlockLogs()
    return [canonicalizer(s) for s in smiles]


def scaffold_smiles(mol: Any) -> str | None:
    """MOSES ``compute_scaffold``: Murcko scaffold SMILES, ``None`` if it fails or has < 2 rings."""
    state = _state()
    try:
        scaffold = state["murcko"].GetScaffoldForMol(mol)
    except Exception:  # MOSES catches everything here too: a failed scaffold is just not counted
        return None
    smiles = state["chem"].MolToSmiles(scaffold)
    if not smiles or scaffold.GetRingInfo().NumRings() < MIN_SCAFFOLD_RINGS:
        return None
    return smiles


def molecule_properties(mol: Any) -> tuple[float, float, float, float]:
    """(logP, SA, QED, weight) of a molecule, as the MOSES metrics, plots and guided objectives use them."""
    state = _state()
    props = state["qed"].properties(mol)
    return (
        props.ALOGP,
        state["sascorer"].calculateScore(mol),
        state["qed"].qed(mol, qedProperties=props),
        props.MW,
    )


def packed_fingerprints(mols: Sequence[Any]) -> np.ndarray:
    """MOSES's Morgan fingerprints (radius 2, 1024 bits) of RDKit molecules, packed to (n, 128) uint8."""
    generator = _state()["fingerprints"]
    bits = np.stack([generator.GetFingerprintAsNumPy(m) for m in mols]) if mols else np.zeros((0, FP_BITS))
    return np.packbits(bits.astype(bool), axis=1)


def describe_chunk(
    smiles: Sequence[str], properties: bool = True, filters: bool = True, skip_invalid: bool = False
) -> Descriptors:
    """Descriptors of a chunk of SMILES (metrics pass valid canonical SMILES).

    Reference sets need neither ``properties`` nor ``filters``. With ``skip_invalid`` a SMILES RDKit
    rejects is dropped and counted in ``n_invalid`` (a reference file with a bad row); otherwise it
    raises ``ValueError``.
    """
    state = _state()
    chem, _quiet = state["chem"], state["rdbase"].BlockLogs()
    mols = [chem.MolFromSmiles(s) for s in smiles]
    n_invalid = sum(m is None for m in mols)
    if n_invalid and not skip_invalid:
        raise ValueError(
            f"describe_chunk expects valid SMILES; RDKit rejects "
            f"{[s for s, m in zip(smiles, mols, strict=True) if m is None][:3]}"
        )
    mols = [m for m in mols if m is not None]
    result = Descriptors(
        fingerprints=packed_fingerprints(mols),
        fragments=[chem.MolToSmiles(chem.FragmentOnBRICSBonds(m)).split(".") for m in mols],
        scaffolds=[scaffold_smiles(m) for m in mols],
        n_invalid=n_invalid,
    )
    if filters:
        if state["filters"] is None:
            raise RuntimeError("describe_chunk(filters=True) needs init_worker(filter_smarts)")
        result.passes_filters = state["filters"].passes(mols)
    if properties:
        result.properties = np.array([molecule_properties(m) for m in mols], dtype=np.float64).reshape(
            len(mols), 4
        )
    return result
