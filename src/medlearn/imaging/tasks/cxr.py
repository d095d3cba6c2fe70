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
            for uid, image in _read_images(path, self.options.image_size):
                units.append(PredictUnit(uid, image, {"input": str(path)}))
        return PredictInputs(units)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    arr = np.asarray(image, dtype=np.float32)
    span = float(arr.max() - arr.min())
    arr8 = ((arr - arr.min()) / span * 255 if span > 0 else np.zeros_like(arr)).astype(np.uint8)
    if arr8.shape == (size, size):
        return arr8
    return np.asarray(Image.fromarray(arr8).resize((size, size), Image.Resampling.BILINEAR))


def _read_images(path: Path, size: int) -> list[tuple[str, np.ndarray]]:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from medlearn.imaging.io.npz import load_npz

        with np.load(path, allow_pickle=False) as data:
            key = "images" if "images" in data.files else "test_images"
        images = load_npz(path, [key])[key]
        return [(f"{path.name}[{i}]", _resize(im, size)) for i, im in enumerate(images)]
    if suffix in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                return [(path.name, _resize(np.asarray(im.convert("L")), size))]
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
    if path.is_dir() or suffix in (".dcm", ""):
        from medlearn.imaging.io.dicom import read_dicom_series

        volume = read_dicom_series(path)
        return [(path.name, _resize(volume.hu[len(volume.hu) // 2], size))]
    raise InputError(f"{path}: unsupported input for cxr_pneumonia (PNG/JPEG, DICOM or npz)")
