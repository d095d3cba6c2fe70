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
from pydantic import BaseModel, ConfigDict, Field, FilePath, model_validator

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.target import Target
from medlearn.engine.task import PredictInputs, PredictUnit
from medlearn.errors import InputError
from medlearn.imaging.tasks.common import ImagingTask, PointMM, step

PACKED_KEYS = ("slices", "nodule_start", "nodule_nslices", "label", "exam_id", "nodule_id")


class LidcOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = Field(
        16, ge=1, le=64, description="slices in the 2.5D/3D stack (zero-padded/centre-cropped)"
    )
    window_hu: tuple[float, float] = Field(
        (-1000.0, 400.0), description="HU window used to turn real CT into the training images' 0–255 scale"
    )


class LidcPredictOptions(BaseModel):
    """What ``medlearn predict`` takes besides a mark's PNG folder: for a CT series, the reader contours of
    an LIDC XML (``--annotations [--reader]``) or a sphere around a position (``--nodule --diameter``)."""

    model_config = ConfigDict(extra="forbid")
    annotations: FilePath | None = Field(None, description="LIDC XML with reader contours")
    reader: str | None = Field(None, description="reader mark id or reading session (with --annotations)")
    nodule: PointMM | None = Field(None, description="nodule centre x,y,z in patient mm")
    diameter_mm: float | None = Field(
        None, gt=0, alias="diameter", description="nodule diameter in mm (with --nodule)"
    )
    series_uid: str | None = Field(
        None, alias="series", description="SeriesInstanceUID when a folder holds several"
    )

    @model_validator(mode="after")
    def _one_way_to_find_the_nodule(self) -> LidcPredictOptions:
        if self.nodule is not None and self.diameter_mm is None:
            raise ValueError("--nodule needs --diameter MM (the spherical mask's size)")
        if self.diameter_mm is not None and self.nodule is None:
            raise ValueError("--diameter applies with --nodule x,y,z only")
        if self.nodule is not None and self.annotations is not None:
            raise ValueError("give --annotations or --nodule, not both")
        if self.reader is not None and self.annotations is None:
            raise ValueError("--reader needs --annotations LIDC_XML")
        return self


class LungNoduleMalignancy(ImagingTask):
    name: ClassVar[str] = "lung_nodule_malignancy"
    target: ClassVar[Target] = Target("binary", ("benign", "malignant"), monitor="auroc")
    unit: ClassVar[str] = "mark"
    default_model: ClassVar[str] = "nodule_resnet25d"
    Options: ClassVar[type[BaseModel]] = LidcOptions
    PredictOptions: ClassVar[type[BaseModel]] = LidcPredictOptions
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
            fingerprint = fingerprint_files(
                [labels, *[p for r in rows for p in (root / r["image_dir"]).glob("*.png")]]
            )
        return UnitTable(
            ids=[f"{r['exam_id']}/{r['nodule_id']}" for r in rows],
            targets=np.array([int(r["label"]) for r in rows], dtype=np.int64),
            groups=np.array([r["exam_id"] for r in rows]),
            raw=stacks,
            fingerprint=fingerprint,
            meta={"malignancy": [r["malignancy"] for r in rows], "n_slices": [len(s) for s in stacks]},
        )

    #: Declared expectations (the training PNGs carry no DICOM header): CT only, windowed 0–255 slices of
    #: this side in which only the segmented nodule is non-zero.
    expected_modalities: ClassVar[tuple[str, ...]] = ("CT",)
    image_px: ClassVar[int] = 64

    def input_profile(self, table: UnitTable) -> dict[str, Any]:
        """Slices per mark, the share of non-zero (segmented nodule) pixels and the median nodule pixel
        value of the training marks."""
        from medlearn.engine.input_checks import seen_range

        stacks = [np.asarray(s) for s in table.raw]
        if not stacks:
            return {}
        fore = [s[s > 0] for s in stacks]
        return {
            "n_slices": seen_range(len(s) for s in stacks),
            "foreground_fraction": seen_range(float((s > 0).mean()) for s in stacks),
            "foreground_median": seen_range(float(np.median(f)) for f in fore if f.size),
            "n_units": len(stacks),
        }

    def check_input(self, unit: PredictUnit, array: np.ndarray, profile: dict[str, Any]) -> list[str]:
        """A non-CT series, a blank stack (no nodule pixel), an unsegmented image (far more non-zero
        pixels than any training mark), or slice counts and nodule intensities beyond the training ones."""
        from medlearn.engine.input_checks import outside_range
        from medlearn.imaging.tasks.common import modality_reasons

        reasons = modality_reasons(unit.meta.get("modality"), None, {}, self.expected_modalities)
        stack = np.asarray(unit.raw)
        if stack.ndim != 3:
            return reasons
        if stack.shape[1:] != (self.image_px, self.image_px):
            reasons.append(
                f"slices are {stack.shape[1]}×{stack.shape[2]} px; the model was built for "
                f"{self.image_px}×{self.image_px} px nodule crops"
            )
        if not (stack > 0).any():
            return [*reasons, "every pixel is 0: no segmented nodule to classify (a blank stack)"]
        fraction = outside_range(
            "the share of non-zero pixels",
            float((stack > 0).mean()),
            profile.get("foreground_fraction"),
            margin=0.5,
            trained_on="segmented marks (only nodule pixels non-zero) with shares",
        )
        if fraction:
            reasons.append(f"{fraction}: is the image segmented?")
        for what, value, key, unit_name in (
            ("the number of slices", len(stack), "n_slices", "marks of"),
            (
                "the median nodule pixel value",
                float(np.median(stack[stack > 0])),
                "foreground_median",
                "marks of",
            ),
        ):
            found = outside_range(what, value, profile.get(key), margin=0.5, trained_on=unit_name)
            if found:
                reasons.append(found)
        return reasons

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

    def load_inputs(self, paths: list[Path], options: LidcPredictOptions) -> PredictInputs:
        """PNG folders of marks, or a CT DICOM series with ``annotations`` (LIDC XML) or ``nodule``."""
        from medlearn.imaging import ct_input

        result = PredictInputs(units=[])
        for path in paths:
            if path.is_dir() and any(path.glob("*.png")):
                from medlearn.imaging.io.png import read_png_stack

                result.units.append(PredictUnit(str(path), read_png_stack(path), {"input": str(path)}))
                continue
            got = ct_input.units_from_ct(
                path,
                annotations=options.annotations,
                reader=options.reader,
                nodule_mm=options.nodule,
                diameter_mm=options.diameter_mm,
                series_uid=options.series_uid,
                window_hu=self.options.window_hu,
            )
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
    return [
        np.ascontiguousarray(slices[s : s + k]) for s, k in zip(data["nodule_start"], data["nodule_nslices"])
    ]
