"""A complete medlearn task in one file: high potassium (hyperkalaemia) on the next draw from today's labs.

The worked example of ``docs/adding-a-task.md``; ``tests/test_task_contract.py`` imports it, registers
it and runs it through load → preprocessing → one batch → predict, so the example cannot rot.

Data: one CSV, one row per blood draw::

    patient_id,creatinine_mg_dl,sodium_mmol_l,potassium_mmol_l,glucose_mg_dl,high_potassium_next
    P001,1.1,139,4.2,98,0
    P002,2.9,133,5.4,,1

``high_potassium_next`` is 0/1; an empty lab cell is a missing value. A unit is a draw, its group the
patient (no patient in two splits).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.target import Target
from medlearn.engine.task import NoOptions, PredictInputs, PredictUnit, Task, step
from medlearn.errors import InputError

LABS = ("creatinine_mg_dl", "sodium_mmol_l", "potassium_mmol_l", "glucose_mg_dl")
LABEL = "high_potassium_next"


class LabOptions(BaseModel):
    """``data.options`` of the task (checked before any file is read; a typo is an error naming it)."""

    model_config = ConfigDict(extra="forbid")
    table: str = Field("labs.csv", description="CSV inside data.root (or data.root itself when it is a file)")


class HighPotassium(Task):
    """Will the next potassium be high (> 5.0 mmol/l)? A binary task on a table of lab values."""

    name: ClassVar[str] = "high_potassium"
    target: ClassVar[Target] = Target("binary", ("normal", "high"), monitor="auroc")
    unit: ClassVar[str] = "draw"
    # A (features, steps) reader: a bidirectional GRU over one step is a small network on the lab vector.
    default_model: ClassVar[str] = "epoch_gru"
    Options: ClassVar[type[BaseModel]] = LabOptions
    PredictOptions: ClassVar[type[BaseModel]] = NoOptions  # predict takes the CSV alone
    credits: ClassVar[list[str]] = ["Data: the lab table named in the config (see its own licence)."]

    def table_path(self, root: Path) -> Path:
        return root if root.is_file() else root / self.options.table

    def load(self, root: Path) -> UnitTable:
        path = self.table_path(root)
        rows = read_lab_rows(path, with_label=True)
        return UnitTable(
            ids=[f"{r['patient_id']}/{i}" for i, r in enumerate(rows)],
            targets=np.array([int(r[LABEL]) for r in rows], dtype=np.int64),
            groups=np.array([r["patient_id"] for r in rows]),
            raw=[lab_vector(r) for r in rows],
            fingerprint=fingerprint_files([path]),
        )

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        raise NotImplementedError("high_potassium's preprocessing is fitted on the training split")

    def fit_preprocessing(self, model_name: str, train: UnitTable) -> list[dict[str, Any]]:
        """Per-lab z-score with training statistics only; a missing lab becomes 0, the training mean."""
        values = np.stack([x[:, 0] for x in train.raw])
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        return [step("feature_standardize", mean=mean.tolist(), std=np.maximum(std, 1e-6).tolist())]

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        return {**super().model_kwargs(model_name), "in_channels": len(LABS)}

    def load_inputs(self, paths: Sequence[Path], options: NoOptions) -> PredictInputs:
        """``medlearn predict BUNDLE draws.csv``: one unit per row of a CSV with the lab columns (no label)."""
        units = []
        for path in paths:
            for i, row in enumerate(read_lab_rows(Path(path), with_label=False)):
                units.append(PredictUnit(f"{row['patient_id']}/{i}", lab_vector(row), {"input": str(path)}))
        return PredictInputs(units)


def lab_vector(row: dict[str, str]) -> np.ndarray:
    """(labs, 1): the draw's values as one step of a (features, steps) input; NaN where missing."""
    return np.array([[float(row[lab]) if row[lab].strip() else np.nan] for lab in LABS], dtype=np.float32)


def read_lab_rows(path: Path, with_label: bool) -> list[dict[str, str]]:
    """The CSV's rows, checked: every column present, numbers where numbers belong (errors name the line)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file (a CSV with columns patient_id, {', '.join(LABS)})")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    required = ("patient_id", *LABS, *((LABEL,) if with_label else ()))
    missing = [c for c in required if c not in (rows[0] if rows else {})]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    for line, row in enumerate(rows, start=2):
        for lab in LABS:
            try:
                float(row[lab]) if row[lab].strip() else None
            except ValueError:
                raise InputError(f"{path}: line {line}: {lab} is not a number ({row[lab]!r})") from None
        if with_label and row[LABEL] not in ("0", "1"):
            raise InputError(f"{path}: line {line}: {LABEL} must be 0 or 1, got {row[LABEL]!r}")
    return rows
