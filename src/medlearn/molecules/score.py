"""``medlearn mol-metrics``: score any SMILES file with the MOSES table, written as CONVENTIONS.md's
metrics.json (snake-case names, ``ci95`` null: these are set-level statistics, not bootstrapped)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any


def score_smiles_file(path: Path, train: Path | None = None, test: Path | None = None,
                      test_scaffolds: Path | None = None, n_jobs: int | None = None) -> dict[str, Any]:
    """The metrics.json dict of ``path``'s SMILES against the MOSES references (defaults: the MOSES
    files under ``MEDLEARN_DATA``; any of train/test/test-scaffolds may be replaced by a file)."""
    from medlearn.molecules.io import read_smiles
    from medlearn.molecules.metrics import METRICS_JSON_NAMES, MosesReference, compute_metrics

    generated = read_smiles(path)
    reference = MosesReference.load(test_path=test, test_scaffolds_path=test_scaffolds, train_path=train,
                                    n_jobs=n_jobs)
    started = time.perf_counter()
    table = compute_metrics(generated, reference, n_jobs=n_jobs)
    metrics = {METRICS_JSON_NAMES.get(k, k): {"value": None if math.isnan(v) else round(float(v), 6), "ci95": None}
               for k, v in table.items()}
    return {"task": "mol_metrics", "split": "generated", "unit": "molecule", "n": len(generated),
            "metrics": metrics, "per_class": {}, "operating_point": None,
            "ci_method": "not bootstrapped (set-level statistics)",
            "input": str(path), "reference": {"train": str(train or "MOSES train"), "test": str(test or "MOSES test"),
                                              "test_scaffolds": str(test_scaffolds or "MOSES test_scaffolds")},
            "seconds": round(time.perf_counter() - started, 1)}
