"""Lung nodule malignancy from LIDC-IDRI reader marks (``imaging/lidc-segmented-nodules-2d``).

One unit is one radiologist's mark of a nodule: its 1–43 segmented, windowed 64×64 axial slices.
Labels: reader malignancy 1–2 benign, 4–5 malignant (3 excluded upstream). Splits are by exam, which
keeps every reader's mark of one nodule together. See the data README for the quirks (segmented, no lung
context, pixel scale kept, window undocumented).

``predict`` takes a mark's PNG folder, or a CT DICOM series with LIDC XML / a nodule position (the
real-CT path in :mod:`medlearn.imaging.ct_input`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.task import PredictInputs, PredictUnit
from medlearn.errors import InputError
from medlearn.imaging.tasks.common import ImagingTask, step

PACKED_KEYS = ("slices", "nodule_start", "nodule_nslices", "label", "exam_id", "nodule_id")


class LidcOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = Field(16, ge=1, le=64, description="slices in the 2.5D/3D stack (zero-padded/centre-cropped)")
    window_hu: tuple[float, float] = Field(
        (-1000.0, 400.0), description="HU window used to turn real CT into the training images' 0–255 scale")


class LungNoduleMalignancy(ImagingTask):
    name: ClassVar[str] = "lung_nodule_malignancy"
    kind: ClassVar[str] = "binary"
    unit: ClassVar[str] = "mark"
    class_names: ClassVar[list[str]] = ["benign", "malignant"]
    default_model: ClassVar[str] = "nodule_resnet25d"
    monitor: ClassVar[str] = "auroc"
    Options: ClassVar[type[BaseModel]] = LidcOptions
    credits: ClassVar[list[str]] = [
        "LIDC-IDRI (TCIA), CC BY 3.0: Armato SG III et al., Med Phys 38:915-931 (2011); "
        "doi:10.7937/K9/TCIA.2015.LO9QL9SX.",
        "Segmented 64×64 nodule slices from MaximoDouglas/pulmonary-nodule-classification (derived from LIDC-IDRI).",
    ]

    def load(self, root: Path) -> UnitTable:
        packed, labels = root / "nodules_packed.npz", root / "labels.csv"
        if not labels.is_file():
            raise InputError(f"{root}: no labels.csv (expected the lidc-segmented-nodules-2d layout)")
        rows = _read_labels(labels)
        if packed.is_file():
            stacks = _stacks_from_packed(packed, rows)
            fingerprint = fingerprint_files([packed, labels])
        else:
            from medlearn.imaging.io.png import read_png_stack

            stacks = [read_png_stack(root / r["image_dir"]) for r in rows]
            fingerprint = fingerprint_files([labels, *[p for r in rows for p in (root / r["image_dir"]).glob("*.png")]])
        return UnitTable(
            ids=[f"{r['exam_id']}/{r['nodule_id']}" for r in rows],
            targets=np.array([int(r["label"]) for r in rows], dtype=np.int64),
            groups=np.array([r["exam_id"] for r in rows]),
            raw=stacks,
            fingerprint=fingerprint,
            meta={"malignancy": [r["malignancy"] for r in rows], "n_slices": [len(s) for s in stacks]},
        )

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        to_unit = step("scale_intensity_range", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0)
        if model_name == "seed_cnn":
            return [step("middle_slice"), to_unit]
        stack = step("slice_stack", depth=self.options.depth)
        if model_name in ("resnet3d", "cnn3d"):
            return [stack, to_unit, step("add_channel")]
        return [stack, to_unit]

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        in_channels = self.options.depth if model_name == "nodule_resnet25d" else 1
        return {"in_channels": in_channels, "out_channels": 1, "image_size": 64}

    def augmentation(self, model_name: str, seed: int):
        from medlearn.imaging.transforms import flips_and_rotations

        axes = (1, 2) if model_name in ("resnet3d", "cnn3d") else (0, 1)
        return flips_and_rotations(axes, seed)

    def load_inputs(self, paths: list[Path], annotations: Path | None = None, reader: str | None = None,
                    nodule: tuple[float, float, float] | None = None, diameter_mm: float | None = None,
                    series_uid: str | None = None, **_: Any) -> PredictInputs:
        """PNG folders of marks, or a CT DICOM series with ``annotations`` (LIDC XML) or ``nodule``."""
        from medlearn.imaging import ct_input

        result = PredictInputs(units=[])
        for path in paths:
            if path.is_dir() and any(path.glob("*.png")):
                from medlearn.imaging.io.png import read_png_stack

                result.units.append(PredictUnit(str(path), read_png_stack(path), {"input": str(path)}))
                continue
            got = ct_input.units_from_ct(path, annotations=annotations, reader=reader, nodule_mm=nodule,
                                         diameter_mm=diameter_mm, series_uid=series_uid,
                                         window_hu=self.options.window_hu)
            result.units.extend(got.units)
            result.skipped.extend(got.skipped)
        return result


def _read_labels(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    required = {"exam_id", "nodule_id", "label", "malignancy", "image_dir"}
    missing = required - set(rows[0] if rows else ())
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    for i, r in enumerate(rows, start=2):
        if r["label"] not in ("0", "1"):
            raise InputError(f"{path}: line {i}: label must be 0 or 1, got {r['label']!r}")
    return rows


def _stacks_from_packed(path: Path, rows: list[dict[str, str]]) -> list[np.ndarray]:
    from medlearn.imaging.io.npz import load_npz

    data = load_npz(path, PACKED_KEYS)
    n = len(data["nodule_start"])
    if n != len(rows):
        raise InputError(f"{path}: {n} marks but labels.csv has {len(rows)} rows")
    for i in (0, n - 1):
        if str(data["exam_id"][i]) != rows[i]["exam_id"] or str(data["nodule_id"][i]) != rows[i]["nodule_id"]:
            raise InputError(f"{path}: mark {i} does not match labels.csv row {i + 2} (files out of sync)")
    slices = data["slices"]
    return [np.ascontiguousarray(slices[s : s + k]) for s, k in zip(data["nodule_start"], data["nodule_nslices"])]
