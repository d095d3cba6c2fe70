"""The score a guided run maximises: REINVENT 2.0's custom product of desirabilities in [0, 1].

A weighted geometric mean of the components the user switched on (QED; a logP window; a maximum SA
score), multiplied by penalty components (no PAINS alert: 0 or 1). Invalid SMILES score 0. Kept apart
from the RL loop so that the same objective can score any generator's samples (e.g. latent-space search).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlearn.errors import ConfigError, InputError
from medlearn.molecules.io import require

#: (logP, SA, QED, weight) of a molecule, as :func:`medlearn.molecules.metrics.descriptors.molecule_properties` gives
Props = tuple[float, float, float, float]


@dataclass
class Objective:
    """What guided generation optimises, each component in [0, 1] (REINVENT 2.0's custom product).

    Args:
        qed: weight of the QED component (desirability = QED itself); 0 switches it off.
        logp_range: ``(lo, hi)`` Crippen logP window: desirability 1 inside, ``exp(-distance)`` outside.
        max_sa: highest acceptable SA score (1 easy … 10 hard): 1 up to it, ``exp(-(SA - max_sa))`` above.
        no_pains: a penalty: a molecule matching any RDKit PAINS (A/B/C) alert scores 0.

    score = (∏ d_i^w_i)^(1 / Σ w_i) × (0 if a PAINS alert else 1); the logP and SA components weigh 1.
    """

    qed: float = 1.0
    logp_range: tuple[float, float] | None = None
    max_sa: float | None = None
    no_pains: bool = False
    _pains: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.qed) and self.qed >= 0):
            raise ConfigError(f"objective qed weight {self.qed}: must be a finite number ≥ 0")
        if self.logp_range is not None:
            if len(self.logp_range) != 2:
                raise InputError(f"logP range {self.logp_range}: expected two numbers LO,HI")
            lo, hi = (float(v) for v in self.logp_range)
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
                raise InputError(f"logP range {lo:g},{hi:g}: expected LO < HI, e.g. --logp 1,3")
            self.logp_range = (lo, hi)
        if self.max_sa is not None and not (1.0 <= self.max_sa <= 10.0):
            raise InputError(f"max SA score {self.max_sa:g}: the SA score runs from 1 (easy) to 10 (hard)")
        if not self.weights():
            raise ConfigError(
                "the objective has no active component: use QED, a logP range or a maximum SA "
                "score (no PAINS is a filter, not an objective on its own)"
            )

    def weights(self) -> dict[str, float]:
        """The active geometric-mean components and their weights."""
        out: dict[str, float] = {}
        if self.qed > 0:
            out["qed"] = float(self.qed)
        if self.logp_range is not None:
            out["logp"] = 1.0
        if self.max_sa is not None:
            out["sa"] = 1.0
        return out

    def describe(self) -> str:
        """One line, e.g. ``QED (w=1) × logP in [1, 3] × SA ≤ 4 × no PAINS``."""
        parts = []
        if self.qed > 0:
            parts.append(f"QED (w={self.qed:g})")
        if self.logp_range is not None:
            parts.append(f"logP in [{self.logp_range[0]:g}, {self.logp_range[1]:g}]")
        if self.max_sa is not None:
            parts.append(f"SA ≤ {self.max_sa:g}")
        text = "geometric mean of " + ", ".join(parts) if len(parts) > 1 else parts[0]
        return text + (" × no PAINS alert" if self.no_pains else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "qed": self.qed,
            "logp_range": list(self.logp_range) if self.logp_range else None,
            "max_sa": self.max_sa,
            "no_pains": self.no_pains,
            "description": self.describe(),
        }

    def _pains_catalog(self) -> Any:
        if self._pains is None:
            fc = require("rdkit.Chem.FilterCatalog", "for PAINS alerts")
            params = fc.FilterCatalogParams()
            params.AddCatalog(fc.FilterCatalogParams.FilterCatalogs.PAINS)
            self._pains = fc.FilterCatalog(params)
        return self._pains

    def score_mol(self, mol: Any, props: Props) -> float:
        """The score of a parsed molecule whose ``(logP, SA, QED, weight)`` are ``props``."""
        logp, sa, qed, _ = props
        desirability = {}
        if self.qed > 0:
            desirability["qed"] = qed
        if self.logp_range is not None:
            lo, hi = self.logp_range
            desirability["logp"] = math.exp(-max(lo - logp, logp - hi, 0.0))
        if self.max_sa is not None:
            desirability["sa"] = math.exp(-max(sa - self.max_sa, 0.0))
        weights = self.weights()
        total = sum(weights.values())
        if any(desirability[k] <= 0 for k in weights):
            return 0.0
        score = math.exp(sum(w * math.log(desirability[k]) for k, w in weights.items()) / total)
        if self.no_pains and self._pains_catalog().HasMatch(mol):
            return 0.0
        return float(min(max(score, 0.0), 1.0))

    def evaluate(self, smiles: list[str]) -> list[tuple[str, float, Props] | None]:
        """Per SMILES: ``(canonical SMILES, score, (logP, SA, QED, weight))``, or ``None`` when invalid."""
        from medlearn.molecules.metrics.descriptors import molecule_properties

        chem = require("rdkit.Chem", "to score molecules")
        rdbase = require("rdkit.rdBase", "to score molecules")
        out: list[tuple[str, float, Props] | None] = []
        _quiet = rdbase.BlockLogs()
        for s in smiles:
            mol = chem.MolFromSmiles(s) if isinstance(s, str) and s.strip() else None
            if mol is None or mol.GetNumAtoms() == 0:
                out.append(None)
                continue
            try:
                props = tuple(float(v) for v in molecule_properties(mol))
            except Exception:  # RDKit parses it but cannot describe it: as good as invalid
                out.append(None)
                continue
            out.append((chem.MolToSmiles(mol), self.score_mol(mol, props), props))  # type: ignore[arg-type]
        del _quiet
        return out

    def score(self, smiles: list[str]) -> np.ndarray:
        """Scores in [0, 1], aligned with ``smiles``; invalid SMILES score 0."""
        return np.array([0.0 if r is None else r[1] for r in self.evaluate(list(smiles))], dtype=np.float64)
