"""Pneumonia from chest X-rays: PneumoniaMNIST (MedMNIST v2, 28×28, official train/val/test split).

MedMNIST carries no patient ids, so each image is its own group; the official split is used as is.
``predict`` accepts PNG/JPEG images, a DICOM radiograph, or an npz with ``images``/``test_images``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.target import Target
from medlearn.engine.task import NoOptions, PredictInputs, PredictUnit
from medlearn.errors import InputError
from medlearn.imaging.tasks.common import ImagingTask, step


class CXROptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_size: int = Field(28, ge=8, le=512, description="side in pixels that predict inputs are resized to")


class CXRPneumonia(ImagingTask):
    name: ClassVar[str] = "cxr_pneumonia"
    target: ClassVar[Target] = Target("binary", ("normal", "pneumonia"), monitor="auroc")
    unit: ClassVar[str] = "image"
    default_model: ClassVar[str] = "resnet2d"
    Options: ClassVar[type[BaseModel]] = CXROptions
    PredictOptions: ClassVar[type[BaseModel]] = NoOptions  # an image is all it needs
    credits: ClassVar[list[str]] = [
        "PneumoniaMNIST (MedMNIST v2), CC BY 4.0: Yang J et al., Scientific Data 10:41 (2023); "
        "source images: Kermany DS et al., Cell 172:1122-1131 (2018).",
    ]

    def load(self, root: Path) -> UnitTable:
        from medlearn.imaging.io.npz import load_medmnist

        splits = load_medmnist(root)
        ids, targets, raw, split = [], [], [], []
        for name in ("train", "val", "test"):
            images, labels = splits[name]
            ids += [f"{name}-{i:05d}" for i in range(len(images))]
            targets.append(np.asarray(labels, dtype=np.int64).reshape(-1))
            raw += list(images)
            split += [name] * len(images)
        return UnitTable(
            ids=ids,
            targets=np.concatenate(targets),
            groups=np.array(ids),
            raw=raw,
            fingerprint=fingerprint_files([root]),
            split=np.array(split),
        )

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        return [
            step("add_channel"),
            step("scale_intensity_range", a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0),
            step("normalize", mean=0.5, std=0.25),
        ]

    def augmentation(self, model_name: str, seed: int):
        from monai.transforms import RandAffine

        from medlearn.imaging.transforms import Augment

        # Small rotations, shifts and zooms: radiographs vary in positioning, not in orientation.
        return Augment(
            [
                RandAffine(
                    prob=0.8,
                    rotate_range=0.17,
                    translate_range=(2, 2),
                    scale_range=(0.1, 0.1),
                    padding_mode="border",
                )
            ],
            seed,
        )

    def load_inputs(self, paths: list[Path], options: NoOptions) -> PredictInputs:
        units = []
        for path in paths:
            for uid, image, facts in _read_images(path, self.options.image_size):
                units.append(PredictUnit(uid, image, {"input": str(path), **facts}))
        return PredictInputs(units)

    #: Declared expectations: a grayscale radiograph (DICOM Modality CR or DX), at least half the model's
    #: side in pixels (smaller ones are mostly interpolation once resized).
    expected_modalities: ClassVar[tuple[str, ...]] = ("CR", "DX")

    def input_profile(self, table: UnitTable) -> dict[str, Any]:
        """Side, mean intensity and contrast (standard deviation) of the training images (0–255)."""
        from medlearn.engine.input_checks import seen_range

        images = [np.asarray(im, dtype=np.float32) for im in table.raw]
        if not images:
            return {}
        return {
            "side_px": seen_range(min(im.shape[-2:]) for im in images),
            "mean": seen_range(float(im.mean()) for im in images),
            "std": seen_range(float(im.std()) for im in images),
            "n_units": len(images),
        }

    def check_input(self, unit: PredictUnit, array: np.ndarray, profile: dict[str, Any]) -> list[str]:
        """A blank or colour image, another modality, a source far smaller than the model's input, or a
        brightness/contrast beyond the training images' (after the same 0–255 scaling)."""
        from medlearn.engine.input_checks import below_range, constant_reason, fmt_range, outside_range
        from medlearn.imaging.tasks.common import modality_reasons

        reasons = modality_reasons(unit.meta.get("modality"), None, {}, self.expected_modalities)
        if unit.meta.get("colour"):
            reasons.append("a colour image (its RGB channels differ), not a grayscale radiograph")
        source = unit.meta.get("source_px")
        if source and min(source) < self.options.image_size / 2:
            seen = profile.get("side_px")
            reasons.append(
                f"the image is {source[1]}×{source[0]} px, under half the model's {self.options.image_size} px "
                + (f"(trained on {fmt_range(seen, 'px')} images)" if seen else "input")
            )
        image = np.asarray(unit.raw, dtype=np.float32)
        blank = constant_reason(image, "the image")
        if blank is not None:
            return [*reasons, f"{blank} (a blank image)"]
        found = outside_range(
            "the mean intensity (0–255)", float(image.mean()), profile.get("mean"), trained_on="images of"
        )
        if found:
            reasons.append(found)
        low = below_range("the contrast (standard deviation, 0–255)", float(image.std()), profile.get("std"))
        if low:
            reasons.append(low)
        return reasons


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    arr = np.asarray(image, dtype=np.float32)
    span = float(arr.max() - arr.min())
    arr8 = ((arr - arr.min()) / span * 255 if span > 0 else np.zeros_like(arr)).astype(np.uint8)
    if arr8.shape == (size, size):
        return arr8
    return np.asarray(Image.fromarray(arr8).resize((size, size), Image.Resampling.BILINEAR))


def _is_colour(im: Any) -> bool:
    """Whether a Pillow image holds colour: its RGB channels differ somewhere (a grayscale picture saved
    as RGB does not count)."""
    if im.mode in ("L", "I", "I;16", "F", "1", "LA"):
        return False
    rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    return bool(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max() > 8)


def _read_images(path: Path, size: int) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """(unit id, resized 0–255 image, facts for the input checks: source size, colour, modality)."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from medlearn.imaging.io.npz import load_npz

        with np.load(path, allow_pickle=False) as data:
            key = "images" if "images" in data.files else "test_images"
        images = load_npz(path, [key])[key]
        return [
            (f"{path.name}[{i}]", _resize(im, size), {"source_px": list(np.shape(im)[-2:])})
            for i, im in enumerate(images)
        ]
    if suffix in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                facts: dict[str, Any] = {"source_px": [im.height, im.width]}
                if _is_colour(im):
                    facts["colour"] = True
                return [(path.name, _resize(np.asarray(im.convert("L")), size), facts)]
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
    if path.is_dir() or suffix in (".dcm", ""):
        from medlearn.imaging.ct_input import series_facts
        from medlearn.imaging.io.dicom import read_dicom_series

        volume = read_dicom_series(path)
        facts = {k: v for k, v in series_facts(path, volume.series_uid).items() if v is not None}
        facts["source_px"] = list(volume.shape[1:])
        return [(path.name, _resize(volume.hu[len(volume.hu) // 2], size), facts)]
    raise InputError(f"{path}: unsupported input for cxr_pneumonia (PNG/JPEG, DICOM or npz)")
