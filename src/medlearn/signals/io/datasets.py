"""Dataset indexes: PhysioNet/CinC 2017 records + labels, MIT-BIH beats in AAMI classes.

AAMI EC57 / de Chazal et al. (2004) map the MIT-BIH beat symbols to five classes; every other
annotation (rhythm changes ``+``, noise ``~``, comments ``"``, signal-quality ``|`` ...) is not a beat
and is ignored — both for beat classification and as the R-peak reference.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlearn.errors import InputError
from medlearn.signals.io.recording import Annotations, Recording

#: MIT-BIH beat symbol → AAMI class (N normal, S supraventricular ectopic, V ventricular ectopic,
#: F fusion, Q paced/unclassifiable).
AAMI_CLASSES: dict[str, str] = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}
AAMI_ORDER = ("N", "S", "V", "F", "Q")
#: CinC 2017 (v3 labels): N normal rhythm, A atrial fibrillation, O other rhythm, ~ too noisy to classify.
CINC2017_LABELS = ("N", "A", "O", "~")


@dataclass(frozen=True)
class LabelledRecord:
    """A record of a labelled dataset: ``path`` is the WFDB record name (no extension)."""

    record: str
    path: Path
    label: str


@dataclass
class Beats:
    """Beat annotations only: R-peak ``sample`` indices, MIT-BIH ``symbol`` and its ``aami`` class."""

    sample: np.ndarray
    symbol: np.ndarray
    aami: np.ndarray

    def __len__(self) -> int:
        return len(self.sample)


def aami_classes(symbols: np.ndarray | list[str]) -> np.ndarray:
    """AAMI class of each symbol (``""`` for non-beat annotations), vectorised over a string array."""
    symbols = np.asarray(symbols, dtype=str)
    keys = np.array(list(AAMI_CLASSES), dtype=str)
    values = np.array(list(AAMI_CLASSES.values()), dtype=str)
    order = np.argsort(keys)
    position = np.clip(np.searchsorted(keys[order], symbols), 0, len(keys) - 1)
    hit = keys[order][position] == symbols
    return np.where(hit, values[order][position], "")


def beat_annotations(annotations: Annotations) -> Beats:
    """The beats among ``annotations`` (symbols in :data:`AAMI_CLASSES`), with their AAMI classes."""
    aami = aami_classes(annotations.symbol)
    beats = aami != ""
    return Beats(sample=annotations.sample[beats], symbol=annotations.symbol[beats], aami=aami[beats])


def rhythm_episodes(annotations: Annotations, rhythm: str) -> np.ndarray:
    """``[start, stop)`` sample intervals of a rhythm (e.g. ``"(VFL"``, ``"(AFIB"``) from the rhythm-change
    annotations (symbol ``+``, rhythm in ``aux_note``); an episode ends at the next rhythm change, or at
    the last annotation."""
    changes = annotations.select(annotations.symbol == "+")
    starts = changes.sample
    stops = np.r_[starts[1:], annotations.sample[-1] + 1 if len(annotations) else 0]
    mine = changes.aux_note == rhythm
    return np.stack([starts[mine], stops[mine]], axis=1) if mine.any() else np.zeros((0, 2), dtype=np.int64)


def load_mitdb_beats(record: str | Path) -> tuple[Recording, Beats]:
    """An MIT-BIH record (name, ``.hea`` or ``.dat``) and its ``.atr`` beats in AAMI classes."""
    from medlearn.signals.io.wfdb_reader import read_wfdb, record_base

    recording = read_wfdb(record, annotation_extension="atr")
    if recording.annotations is None:
        base = record_base(record)
        atr = base.parent / f"{base.name}.atr"
        raise InputError(f"{atr}: annotation file missing (MIT-BIH beats live there)")
    return recording, beat_annotations(recording.annotations)


def load_cinc2017(root: str | Path) -> list[LabelledRecord]:
    """Records and labels of a PhysioNet/CinC 2017 folder, from ``REFERENCE.csv`` (``record,label``, no
    header), in file order. InputError for an unknown label or a listed record without its ``.hea``."""
    root = Path(root)
    reference = root / "REFERENCE.csv"
    if not reference.is_file():
        raise InputError(
            f"{reference}: missing; a CinC 2017 folder holds REFERENCE.csv and A*.hea/.mat records"
        )
    records: list[LabelledRecord] = []
    with reference.open(newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != 2 or row[1].strip() not in CINC2017_LABELS:
                raise InputError(
                    f"{reference}:{line_number}: expected 'record,label' with a label in "
                    f"{'/'.join(CINC2017_LABELS)}, got {','.join(row)!r}"
                )
            name = row[0].strip()
            records.append(LabelledRecord(record=name, path=root / name, label=row[1].strip()))
    missing = [r.record for r in records if not (root / f"{r.record}.hea").is_file()]
    if missing:
        raise InputError(
            f"{root}: {len(missing)} record(s) listed in REFERENCE.csv have no .hea "
            f"(first: {', '.join(missing[:5])})"
        )
    return records
