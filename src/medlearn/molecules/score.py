"""The MOSES table as metrics.json (docs/conventions.md#metricsjson): snake-case names, ``ci95`` null
(these are set-level statistics, not bootstrapped); for ``medlearn mol-metrics`` and generators' runs."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def metrics_json(
    task: str, generated: Sequence[str | None], reference: Any, split: str, n_jobs: int | None = None
) -> dict[str, Any]:
    """metrics.json of ``generated`` SMILES (invalid ones count against validity) against ``reference``.

    The keys keep MOSES's names (``fcd_test``, ``snn_testsf``...) whatever the reference; its top-level
    ``"reference"`` names what the ``_test``/``_testsf`` metrics (and novelty, ``train``) were scored against.
    ``"invalid"`` counts the invalid samples per reason (blank rows are ``empty``); ``"skipped_too_large"``
    the SMILES over the per-molecule ``"limits"``, invalid without being parsed.
    """
    from medlearn.molecules.io import MAX_HEAVY_ATOMS, MAX_SMILES_CHARS
    from medlearn.molecules.metrics import METRICS_JSON_NAMES, compute_metrics

    started = time.perf_counter()
    rejected: dict[str, int] = {}
    table = compute_metrics(list(generated), reference, n_jobs=n_jobs, rejected=rejected)
    metrics = {
        METRICS_JSON_NAMES.get(k, k): {"value": None if math.isnan(v) else round(float(v), 6), "ci95": None}
        for k, v in table.items()
    }
    return {
        "task": task,
        "split": split,
        "unit": "molecule",
        "n": len(generated),
        "n_valid": len(generated) - sum(rejected.values()),
        "invalid": rejected,
        "skipped_too_large": rejected.get("too_large", 0),
        "limits": {"max_heavy_atoms": MAX_HEAVY_ATOMS, "max_smiles_chars": MAX_SMILES_CHARS},
        "metrics": metrics,
        "per_class": {},
        "operating_point": None,
        "reference": dict(getattr(reference, "sources", {}) or {}),
        "ci_method": "not bootstrapped (set-level statistics)",
        "seconds": round(time.perf_counter() - started, 1),
    }


def score_smiles_file(
    path: Path,
    train: Path | None = None,
    test: Path | None = None,
    test_scaffolds: Path | None = None,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """The metrics.json dict of ``path``'s SMILES against the MOSES references (defaults: the MOSES
    files under ``MEDLEARN_DATA``; any of train/test/test-scaffolds may be replaced by a file)."""
    from medlearn.molecules.io import read_smiles
    from medlearn.molecules.metrics import MosesReference

    generated = read_smiles(path)
    reference = MosesReference.load(
        test_path=test, test_scaffolds_path=test_scaffolds, train_path=train, n_jobs=n_jobs
    )
    result = metrics_json("mol_metrics", generated, reference, "generated", n_jobs)
    seconds = result.pop("seconds")
    result["input"] = str(path)
    result["seconds"] = seconds
    return result
