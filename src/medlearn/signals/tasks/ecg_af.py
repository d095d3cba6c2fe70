"""Atrial fibrillation from a short single-lead ECG: PhysioNet/CinC Challenge 2017.

Classes Normal, AF, Other rhythm, Noisy (v3 labels); records are 9–61 s at 300 Hz. The challenge score
``challenge_f1`` is the mean F1 of Normal, AF and Other (Noisy counts only through its errors), as in
Clifford et al. (2017). The records carry no patient ids; the challenge states one record per patient
in most cases, so each record is its own group (say so when citing the split).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.progress import make_progress
from medlearn.engine.target import Target
from medlearn.signals.tasks.common import SignalTask
from medlearn.signals.transforms import SignalUnit

LABEL_INDEX = {"N": 0, "A": 1, "O": 2, "~": 3}


class EcgAF(SignalTask):
    name: ClassVar[str] = "ecg_af"
    target: ClassVar[Target] = Target(
        "multiclass",
        ("Normal", "AF", "Other", "Noisy"),
        monitor="challenge_f1",
        f1_groups={"challenge_f1": ("Normal", "AF", "Other")},
    )
    unit: ClassVar[str] = "record"
    default_model: ClassVar[str] = "resnet1d"
    is_ecg: ClassVar[bool] = True
    credits: ClassVar[list[str]] = [
        "PhysioNet/CinC Challenge 2017, ODC-By 1.0: Clifford GD et al., AF Classification from a Short Single "
        "Lead ECG Recording, Computing in Cardiology 44 (2017), doi:10.22489/CinC.2017.065.",
    ]

    def load(self, root: Path) -> UnitTable:
        from medlearn.signals.io import load_cinc2017, read_wfdb

        records = load_cinc2017(root)
        raw = []
        with make_progress() as progress:
            bar = progress.add_task("read ECG", total=len(records), status="")
            for rec in records:
                recording = read_wfdb(rec.path, annotation_extension=None)
                raw.append(SignalUnit(recording.signal[:, 0].copy()[None], recording.fs_hz))
                progress.update(bar, advance=1)
        ids = [r.record for r in records]
        names = set(ids)
        files = [root / "REFERENCE.csv"] + [
            p for p in root.iterdir() if p.stem in names and p.suffix in (".hea", ".mat", ".dat")
        ]
        return UnitTable(
            ids=ids,
            targets=np.array([LABEL_INDEX[r.label] for r in records]),
            groups=np.array(ids),
            raw=raw,
            fingerprint=fingerprint_files(files),
            meta={"seconds": [round(u.seconds, 2) for u in raw]},
        )
