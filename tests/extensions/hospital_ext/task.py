"""Raised lactate from bedside vitals: a tiny binary task on a CSV, one row per observation.

Columns: ``patient_id, heart_rate_bpm, lactate_mmol_l, temperature_c`` and, for training,
``high_lactate`` (0/1). :func:`write_vitals` synthesises such a file deterministically.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.target import Target
from medlearn.engine.task import NoOptions, PredictInputs, PredictUnit, Task, step

VITALS = ("heart_rate_bpm", "lactate_mmol_l", "temperature_c")
LABEL = "high_lactate"


class SepsisFlag(Task):
    """Is the lactate of this observation high (> 2 mmol/l)?"""

    # An out-of-tree task is named as it is looked up, so a bundle that stores the name finds it again.
    name: ClassVar[str] = "hospital_ext.task:SepsisFlag"
    target: ClassVar[Target] = Target("binary", ("normal", "high"), monitor="auroc")
    unit: ClassVar[str] = "observation"
    default_model: ClassVar[str] = "hospital_ext.models:tiny_mlp"
    PredictOptions: ClassVar[type[BaseModel]] = NoOptions
    credits: ClassVar[list[str]] = ["Synthetic vitals written by the test (no real patient)."]

    def load(self, root: Path) -> UnitTable:
        rows = read_rows(root)
        return UnitTable(
            ids=[f"{r['patient_id']}/{i}" for i, r in enumerate(rows)],
            targets=np.array([int(r[LABEL]) for r in rows], dtype=np.int64),
            groups=np.array([r["patient_id"] for r in rows]),
            raw=[vector(r) for r in rows],
            fingerprint=fingerprint_files([root]),
        )

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        # a built-in transform (per-vital z-score) followed by the hospital's own
        return [
            step("normalize", mean=[90.0, 2.0, 37.0], std=[20.0, 1.5, 1.0]),
            step("hospital_ext.transforms:ClipOutliers", limit=4.0),
        ]

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        return {**super().model_kwargs(model_name), "in_features": len(VITALS)}

    def load_inputs(self, paths: Sequence[Path], options: BaseModel) -> PredictInputs:
        units = []
        for path in paths:
            for i, row in enumerate(read_rows(Path(path))):
                units.append(PredictUnit(f"{row['patient_id']}/{i}", vector(row), {"input": str(path)}))
        return PredictInputs(units)


def vector(row: dict[str, str]) -> np.ndarray:
    return np.array([float(row[v]) for v in VITALS], dtype=np.float32)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_vitals(
    path: Path, n_patients: int = 24, per_patient: int = 3, seed: int = 0, label: bool = True
) -> Path:
    """A CSV of synthetic vitals where lactate (and with it heart rate) separates the classes."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["patient_id", *VITALS, *([LABEL] if label else [])])
        for p in range(n_patients):
            for _ in range(per_patient):
                high = int(rng.random() < 0.4)
                lactate = rng.normal(3.5 if high else 1.2, 0.4)
                heart_rate = rng.normal(110 if high else 80, 8)
                temperature = rng.normal(37.0, 0.5)
                values = [f"{heart_rate:.1f}", f"{lactate:.2f}", f"{temperature:.1f}"]
                writer.writerow([f"P{p:03d}", *values, *([high] if label else [])])
    return path
