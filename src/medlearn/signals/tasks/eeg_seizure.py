"""Seizure detection from single-channel EEG segments: the Bonn set (Andrzejak et al. 2001) and the
New Delhi segments (Swami et al. 2016).

- ``eeg_seizure``: ictal vs everything else (Bonn set E vs A–D; Delhi ictal vs inter-/pre-ictal);
- ``eeg_seizure_bonn_sets``: the 5-set task (A, B, C, D, E);
- ``eeg_seizure_delhi_phases``: ictal / interictal / preictal.

Neither set gives patient ids, so each segment is its own group: segments of one subject can sit in
train and test at once, which flatters every score in the literature on these sets. The shipped configs
use 5-fold cross-validation and the report says so. Amplitude is kept (one scale fitted on the training
segments) because seizures are large: z-scoring each segment would hide that.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.target import Target
from medlearn.errors import InputError
from medlearn.signals.tasks.common import SignalOptions, SignalTask
from medlearn.signals.transforms import SignalUnit, robust_scale

#: sampling rates the datasets' documentation gives (the files carry none)
BONN_FS_HZ = 173.61
DELHI_FS_HZ = 200.0
SUBJECTS_NOTE = (
    "Neither dataset identifies patients: segments of the same subject can be in the training and "
    "the test folds at once, so these scores are optimistic for new patients."
)


class SeizureOptions(SignalOptions):
    fs_hz: float = Field(100.0, gt=0, description="rate the model sees (Hz)")
    seconds: float = Field(23.6, gt=0, description="segment length (s): Bonn 23.6, Delhi 5.12")
    high_hz: float = Field(40.0, gt=0, description="band-pass high edge (Hz)")


def read_segments(root: Path) -> tuple[list[dict[str, str]], str, float]:
    """Rows of ``labels.csv`` and which dataset it is (Bonn has a ``set`` column, Delhi a ``class``)."""
    labels = root / "labels.csv"
    if not labels.is_file():
        raise InputError(f"{labels}: missing; a Bonn or New Delhi EEG folder holds labels.csv")
    with labels.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = set(rows[0]) if rows else set()
    if {"file", "set", "seizure"} <= columns:
        return rows, "bonn", BONN_FS_HZ
    if {"file", "class", "seizure"} <= columns:
        return rows, "delhi", DELHI_FS_HZ
    raise InputError(
        f"{labels}: expected columns file,set,seizure (Bonn) or file,class,seizure (Delhi), "
        f"found {','.join(sorted(columns)) or 'none'}"
    )


class EEGSeizure(SignalTask):
    name: ClassVar[str] = "eeg_seizure"
    target: ClassVar[Target] = Target("binary", ("non-ictal", "ictal"), monitor="auroc")
    unit: ClassVar[str] = "segment"
    default_model: ClassVar[str] = "cnn1d"
    Options: ClassVar[type] = SeizureOptions
    credits: ClassVar[list[str]] = [
        "Bonn EEG: Andrzejak RG et al., Phys Rev E 64:061907 (2001). Terms of the shared copy were not verified.",
        "New Delhi EEG segments (Neurology & Sleep Centre, Hauz Khas): Swami P et al., "
        "Expert Syst Appl 56:116-130 (2016).",
    ]

    def label_of(self, row: dict[str, str], dataset: str) -> int:
        return int(row["seizure"])

    def load(self, root: Path) -> UnitTable:
        from medlearn.signals.io import read_mat_segment, read_text_segment

        rows, dataset, fs_hz = read_segments(root)
        raw, targets, ids = [], [], []
        for row in rows:
            path = root / row["file"]
            reader = read_text_segment if path.suffix.lower() == ".txt" else read_mat_segment
            recording = reader(path, fs_hz)
            raw.append(SignalUnit(recording.signal[:, 0].copy()[None], fs_hz))
            targets.append(self.label_of(row, dataset))
            ids.append(row["file"])
        self._dataset = dataset
        return UnitTable(
            ids=ids,
            targets=np.array(targets),
            groups=np.array(ids),
            raw=raw,
            fingerprint=fingerprint_files([root / "labels.csv", *(root / i for i in ids)]),
        )

    def fit_preprocessing(self, model_name: str, train: UnitTable) -> list[dict[str, Any]]:
        return self.signal_chain(
            scale=float(np.median([robust_scale(u.signal.astype(np.float64))[0, 0] for u in train.raw]))
        )

    def data_sections(self) -> list[Any]:
        from medlearn.engine.report import ReportSection

        return [ReportSection("About these subjects", html=f"<p>{SUBJECTS_NOTE}</p>")]


class BonnSets(EEGSeizure):
    name: ClassVar[str] = "eeg_seizure_bonn_sets"
    target: ClassVar[Target] = Target("multiclass", ("A", "B", "C", "D", "E"), monitor="accuracy")

    def label_of(self, row: dict[str, str], dataset: str) -> int:
        if dataset != "bonn":
            raise InputError("eeg_seizure_bonn_sets needs the Bonn folder (labels.csv with a 'set' column)")
        return self.class_names.index(row["set"])


class DelhiPhases(EEGSeizure):
    name: ClassVar[str] = "eeg_seizure_delhi_phases"
    target: ClassVar[Target] = Target("multiclass", ("interictal", "preictal", "ictal"), monitor="accuracy")

    def label_of(self, row: dict[str, str], dataset: str) -> int:
        if dataset != "delhi":
            raise InputError(
                "eeg_seizure_delhi_phases needs the New Delhi folder (labels.csv with a 'class' column)"
            )
        return self.class_names.index(row["class"])
