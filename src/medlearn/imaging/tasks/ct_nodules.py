"""Nodule malignancy from whole CT series: DICOM folders plus a table of nodule positions.

This is the task for a hospital's own data (and the embedded demo): ``data.root`` is a folder holding
``nodules.csv`` with one row per nodule::

    patient_id,series,x_mm,y_mm,z_mm,diameter_mm,label
    P001,P001/CT,-41.5,12.0,-88.0,14.2,1

``series`` is the DICOM folder relative to ``data.root`` (a series, study or patient folder) or a NIfTI
file (``.nii``/``.nii.gz``), positions
are patient coordinates in mm (DICOM LPS), ``label`` is 0/1 or benign/malignant. Each nodule's
neighbourhood is cut out of the HU volume; the saved preprocessing resamples it to isotropic voxels,
crops a cube around the centre, windows it to the lung window and feeds a 3D CNN. Splits are by patient.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.progress import track
from medlearn.engine.target import Target
from medlearn.engine.task import PredictInputs, PredictUnit
from medlearn.errors import InputError
from medlearn.imaging.tasks.common import ImagingTask, PointMM, check_ct_box, ct_profile, step

REQUIRED = ("patient_id", "series", "x_mm", "y_mm", "z_mm", "label")
LABELS = {"0": 0, "1": 1, "benign": 0, "malignant": 1}


class CTNoduleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cube_px: int = Field(32, ge=8, le=128, description="side of the model's input cube in voxels")
    spacing_mm: float = Field(1.0, gt=0, description="isotropic voxel size the cube is resampled to")
    window_hu: tuple[float, float] = (-1000.0, 400.0)
    denoise: bool = Field(False, description="median-filter the cube (radius 1 voxel) before windowing")


class CTNodulePredictOptions(BaseModel):
    """``medlearn predict BUNDLE CT_SERIES --nodule x,y,z [--series UID]``: the model looks at a fixed cube
    around the position, so a nodule's diameter does not apply (unlike the LIDC reader-mark model)."""

    model_config = ConfigDict(extra="forbid")
    nodule: PointMM = Field(description="nodule centre x,y,z in patient mm, e.g. --nodule 55.5,85.6,-116")
    series_uid: str | None = Field(
        None, alias="series", description="SeriesInstanceUID when a folder holds several"
    )


class CTNoduleMalignancy(ImagingTask):
    name: ClassVar[str] = "ct_nodule_malignancy"
    target: ClassVar[Target] = Target("binary", ("benign", "malignant"), monitor="auroc")
    unit: ClassVar[str] = "nodule"
    default_model: ClassVar[str] = "cnn3d"
    Options: ClassVar[type[BaseModel]] = CTNoduleOptions
    PredictOptions: ClassVar[type[BaseModel]] = CTNodulePredictOptions
    credits: ClassVar[list[str]] = [
        "Data: the CT series and nodule table named in the config (see its own license)."
    ]

    @property
    def context_mm(self) -> float:
        """Physical side of the box cut out of the CT: the cube plus a margin for resampling."""
        return self.options.cube_px * self.options.spacing_mm + 8.0

    def load(self, root: Path) -> UnitTable:
        from medlearn.imaging.io.any_volume import read_volume

        table = root / "nodules.csv"
        if not table.is_file():
            raise InputError(f"{root}: no nodules.csv (columns: {', '.join(REQUIRED)}, diameter_mm optional)")
        rows = _read_rows(table)
        from medlearn.imaging.ct_input import series_facts

        volumes, facts = {}, {}
        for series in track(sorted({r["series"] for r in rows}), "reading CT series"):
            volumes[series] = read_volume(root / series)
            facts[series] = series_facts(root / series, volumes[series].series_uid)
        raw, files = [], [table]
        for r in rows:
            volume = volumes[r["series"]]
            center = (float(r["x_mm"]), float(r["y_mm"]), float(r["z_mm"]))
            raw.append(self.cut_box(volume, center, facts[r["series"]]))
        for series in volumes:
            path = root / series
            files.extend([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()))
        return UnitTable(
            ids=[f"{r['patient_id']}/{i}" for i, r in enumerate(rows)],
            targets=np.array([LABELS[r["label"].strip().lower()] for r in rows], dtype=np.int64),
            groups=np.array([r["patient_id"] for r in rows]),
            raw=raw,
            fingerprint=fingerprint_files(files),
            meta={
                "diameter_mm": [r.get("diameter_mm", "") for r in rows],
                "series": [r["series"] for r in rows],
            },
        )

    def cut_box(
        self, volume: Any, center_mm: tuple[float, float, float], facts: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The HU box (with its spacing) around a nodule centre; air (−1000 HU) outside the scan. ``facts``
        (the series' modality and body part, :func:`~medlearn.imaging.ct_input.series_facts`) ride along
        for the input checks; the preprocessing reads ``hu`` and ``spacing_mm`` only."""
        from medlearn.imaging.transforms import crop_box

        center = volume.world_to_voxel(*center_mm)
        if not all(-0.5 <= c <= n - 0.5 for c, n in zip(center, volume.shape)):
            raise InputError(
                f"{volume.source}: nodule at {center_mm} mm lies outside the series (voxel {center})"
            )
        size = [int(np.ceil(self.context_mm / s)) + 1 for s in volume.spacing_mm]
        box = {"hu": crop_box(volume.hu, center, size, -1000.0), "spacing_mm": list(volume.spacing_mm)}
        return {**box, **{k: v for k, v in (facts or {}).items() if v is not None}}

    #: what the task is built for when a bundle recorded no profile (older bundles)
    expected_modalities: ClassVar[tuple[str, ...]] = ("CT",)

    def input_profile(self, table: UnitTable) -> dict[str, Any]:
        """Modality, body part, HU percentiles and spacing of the training series (see :func:`ct_profile`)."""
        return ct_profile(table.raw)

    def check_input(self, unit: PredictUnit, array: np.ndarray, profile: dict[str, Any]) -> list[str]:
        """An MR (or other non-CT) series, another body part, a blank or constant volume, HU or voxel
        spacing outside what the training series had (margins in :mod:`medlearn.imaging.tasks.common`)."""
        if not isinstance(unit.raw, dict) or "hu" not in unit.raw:
            return []
        return check_ct_box(unit.raw, profile, self.expected_modalities)

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        o = self.options
        spec = [
            step("resample_isotropic", spacing_mm=o.spacing_mm),
            step("crop_around", size=o.cube_px, pad_value=-1000.0),
        ]
        if o.denoise:
            spec.append(step("denoise", radius=1))
        return spec + [
            step("hu_window", lower_hu=o.window_hu[0], upper_hu=o.window_hu[1]),
            step("add_channel"),
        ]

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        return {"in_channels": 1, "out_channels": 1}

    def augmentation(self, model_name: str, seed: int):
        from medlearn.imaging.transforms import flips_and_rotations

        return flips_and_rotations((1, 2), seed)

    def load_inputs(self, paths: list[Path], options: CTNodulePredictOptions) -> PredictInputs:
        """One unit per CT series (a DICOM folder or NIfTI file): the box around ``options.nodule``."""
        from medlearn.imaging.ct_input import series_facts
        from medlearn.imaging.io.any_volume import read_volume

        nodule = options.nodule
        units = []
        for path in paths:
            volume = read_volume(path, options.series_uid)
            facts = {k: v for k, v in series_facts(path, volume.series_uid).items() if v is not None}
            box = self.cut_box(volume, nodule, facts)
            units.append(
                PredictUnit(
                    f"{volume.patient_id or path.name}@{','.join(f'{v:g}' for v in nodule)}",
                    box,
                    {"input": str(path), **facts},
                )
            )
        return PredictInputs(units)


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise InputError(f"{path}: no rows")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    for i, r in enumerate(rows, start=2):
        if r["label"].strip().lower() not in LABELS:
            raise InputError(f"{path}: line {i}: label must be 0/1 or benign/malignant, got {r['label']!r}")
        for key in ("x_mm", "y_mm", "z_mm"):
            try:
                float(r[key])
            except ValueError:
                raise InputError(f"{path}: line {i}: {key} is not a number ({r[key]!r})") from None
    return rows
