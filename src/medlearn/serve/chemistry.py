"""``/molecules/score``: per-molecule QED, SA, logP, weight and the MOSES filters, and the MOSES table.

The molecule code is reached by name at run time (:func:`importlib.import_module`), as the registry reaches
every modality: the service imports no modality package statically (``.importlinter``), and RDKit loads
only when a molecule is scored.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

from medlearn.errors import InputError

_DESCRIPTORS = "medlearn.molecules.metrics.descriptors"
_METRICS = "medlearn.molecules.metrics"
_SCORE = "medlearn.molecules.score"


def _number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


class MoleculeScorer:
    """Scores posted SMILES; the MOSES reference (test statistics, filters, training set) loads once, on
    the first request that asks for the table (``MosesReference.load``: the MOSES files under
    ``MEDLEARN_DATA/molecules/moses``, its statistics cached in ``MEDLEARN_CACHE`` after the first run)."""

    def __init__(self, reference: Callable[[], Any] | None = None) -> None:
        self._make_reference = reference
        self._reference: Any = None
        self._smarts: tuple[str, ...] | None = None
        self._lock = threading.Lock()

    def _filter_smarts(self) -> tuple[str, ...]:
        if self._smarts is None:
            if self._reference is not None:
                self._smarts = tuple(self._reference.filter_smarts)
            else:
                metrics = importlib.import_module(_METRICS)
                from medlearn.paths import data_root

                moses = data_root() / "molecules" / "moses"
                self._smarts = metrics.read_filter_smarts(moses / "mcf.csv", moses / "wehi_pains.csv")
        return self._smarts

    def reference(self) -> Any:
        if self._reference is None:
            if self._make_reference is not None:
                self._reference = self._make_reference()
            else:
                self._reference = importlib.import_module(_METRICS).MosesReference.load(n_jobs=1)
        return self._reference

    def per_molecule(self, smiles: Sequence[str]) -> list[dict[str, Any]]:
        """One row per SMILES: validity, canonical SMILES, QED, SA, logP, weight, MOSES filters."""
        desc = importlib.import_module(_DESCRIPTORS)
        if desc._STATE.get("filters") is None:  # compiling ~500 SMARTS: once per process
            desc.init_worker(self._filter_smarts())
        state = desc._state()
        chem, _quiet = state["chem"], state["rdbase"].BlockLogs()
        rows = []
        for text, canonical in zip(smiles, desc.canonicalize_chunk(list(smiles))):
            mol = None if canonical is None else chem.MolFromSmiles(canonical)
            if mol is None:
                rows.append({"smiles": text, "valid": False})
                continue
            logp, sa, qed, weight = desc.molecule_properties(mol)
            rows.append(
                {
                    "smiles": text,
                    "valid": True,
                    "canonical": canonical,
                    "qed": _number(qed),
                    "sa": _number(sa),
                    "logp": _number(logp),
                    "weight": _number(weight),
                    "passes_filters": bool(state["filters"].passes([mol])[0]),
                }
            )
        return rows

    def score(self, smiles: Sequence[str], table: bool) -> dict[str, Any]:
        if not smiles:
            raise InputError("smiles: expected a non-empty list of SMILES strings")
        with self._lock:  # RDKit state (filters, canonicaliser) is shared within the process
            result: dict[str, Any] = {}
            if table:
                score = importlib.import_module(_SCORE)
                moses = score.metrics_json("mol_score", list(smiles), self.reference(), "posted", n_jobs=1)
                moses.pop("seconds", None)
                result["table"] = moses
            result["molecules"] = self.per_molecule(smiles)
        return result
