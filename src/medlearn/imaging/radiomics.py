"""The radiomic features of the LIDC marks (``solidNodules.csv``): which columns a model may see, and how
they are scaled.

``solidNodules.csv`` has one row per reader mark (the same units as the image folders; one physical
nodule appears once per reader who marked it, within one exam), keyed by ``exam_id`` and ``nodule_id``.

Columns kept (:data:`DROPPED` lists the others; 72 in all, :data:`N_KEPT`): the 71 radiomic features
computed upstream from the segmented mark (the data README counts 72 with ``diameter``) — first-order
intensity statistics (``*_N``: energy, entropy, kurtosis, mean, …), shape (compactness, sphericity,
area, surface, volume, diameter), grey-level co-occurrence texture in four directions
(``*0_N``, ``*45_N``, ``*90_N``, ``*135_N``) and summary statistics of the nodule pixels
(``differenceends`` … ``scm``) — and ``diameter_mm``, the mark's diameter (also in ``labels.csv``; a
measurement of the reader's outline, not a rating).

Columns dropped, and why:

- ``malignancy`` and ``class``: the label itself (the reader's malignancy rating and its benign/malignant
  name). Nothing else in the file is derived from the ratings.
- ``exam_id`` and ``nodule_id``: identifiers. ``exam_id`` is the split group: as a feature it would let a
  model recognise an exam's other marks (leakage across readers of one nodule); ``nodule_id`` encodes the
  reader (``IL057_…``, ``Nodule 001``), which says which reading session, not what the nodule is.

The features span 1e-3 to 1e27 with either sign (texture ``shade``/``promenance`` moments), so they are
put through a signed log, ``sign(x)·log1p(|x|)``, before a z-score fitted on the training split.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from medlearn.errors import InputError

__all__ = ["DROPPED", "N_KEPT", "SignedLog1p", "read_radiomics"]

#: columns of solidNodules.csv no model sees: the label (``malignancy``, ``class``) and identifiers
DROPPED = ("exam_id", "nodule_id", "malignancy", "class")
#: columns a model sees in the shared solidNodules.csv (the width of a bundle's radiomics part)
N_KEPT = 72


def read_radiomics(
    path: Path,
) -> tuple[list[str], dict[tuple[str, str], np.ndarray], dict[tuple[str, str], str]]:
    """The feature names (file order), each mark's feature vector keyed by ``(exam_id, nodule_id)`` and
    its ``class`` (kept apart, only to check the file agrees with labels.csv). Raises InputError naming the
    file for a missing column, a repeated mark or a non-numeric value."""
    if not path.is_file():
        raise InputError(f"{path}: not found (the radiomic features of the LIDC marks, solidNodules.csv)")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    missing = [c for c in DROPPED if c not in columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    names = [c for c in columns if c not in DROPPED]
    if not names:
        raise InputError(f"{path}: no feature columns besides {', '.join(DROPPED)}")
    features, classes = {}, {}
    for line, row in enumerate(rows, start=2):
        key = (row["exam_id"], row["nodule_id"])
        if key in features:
            raise InputError(f"{path}: line {line}: mark {key[0]}/{key[1]} appears twice")
        try:
            features[key] = np.array([float(row[c]) for c in names], dtype=np.float64)
        except (TypeError, ValueError):
            bad = next(c for c in names if not _is_number(row[c]))
            raise InputError(f"{path}: line {line}: column {bad} is not a number: {row[bad]!r}") from None
        classes[key] = row["class"]
    return names, features, classes


def _is_number(value: str | None) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


class SignedLog1p:
    """``sign(x)·log1p(|x|)`` elementwise: heavy-tailed features of both signs onto a scale a z-score can
    handle. NaN stays NaN (the z-score after it fills it)."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)
