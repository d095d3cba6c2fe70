"""LIDC nodule malignancy from the mark's image, its radiomic features, or both (a fused model).

The units, labels and exam groups are exactly those of ``lung_nodule_malignancy`` (``labels.csv``), and
``solidNodules.csv`` has one row per mark, so every run of this task — image only, radiomics only, fused
— splits the marks exactly as ``lung_nodule`` does (the engine splits on targets and exam groups alone;
``tests/fusion/test_lidc_fusion.py`` checks the split equals the recorded ``lung_nodule`` one). Which
radiomic columns a model sees and why: :mod:`medlearn.imaging.radiomics`.

``data.options.inputs`` picks the parts: ``[image]`` (a unit is the slice stack, as in ``lung_nodule``),
``[radiomics]`` (the feature vector; models ``tabular_mlp`` / ``tabular_trees``) or both (a dict of both,
packed for the ``fused`` model by :mod:`medlearn.fusion`).

``medlearn predict`` takes PNG folders (or a CT series) as ``lung_nodule`` does. A fused bundle then has
the image only: the radiomics part is absent and the model predicts through its missing-modality path
(a warning on each unit says so). A radiomics-only bundle cannot predict from files (refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.task import PredictInputs, PredictUnit
from medlearn.errors import ConfigError, InputError
from medlearn.imaging.radiomics import N_KEPT, read_radiomics
from medlearn.imaging.tasks.common import step
from medlearn.imaging.tasks.lidc_nodules import LidcOptions, LidcPredictOptions, LungNoduleMalignancy

RADIOMICS_FILE = "solidNodules.csv"
TABULAR_MODELS = ("tabular_mlp", "tabular_trees")
IMAGE_PX = 64
#: the fused model's encoders when the config names none: lung_nodule's 2.5D ResNet and a small MLP
DEFAULT_ENCODERS: dict[str, dict[str, Any]] = {
    "image": {"model": "nodule_resnet25d", "params": {"widths": [16, 32, 64, 128], "tta": False}},
    "radiomics": {"model": "tabular_mlp", "params": {"hidden": [64, 64]}},
}
NO_RADIOMICS = (
    "no radiomic features given: predicted from the image alone (the fused model's missing-modality path)"
)


class LidcFusionOptions(LidcOptions):
    inputs: list[Literal["image", "radiomics"]] = Field(
        ["image", "radiomics"], description="the parts a unit has: image, radiomics or both (fused model)"
    )

    @field_validator("inputs")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError("give image, radiomics or both, each once")
        return value


class LungNoduleMultimodal(LungNoduleMalignancy):
    name: ClassVar[str] = "lung_nodule_multimodal"
    default_model: ClassVar[str] = "fused"
    Options: ClassVar[type[BaseModel]] = LidcFusionOptions
    PredictOptions: ClassVar[type[BaseModel]] = LidcPredictOptions
    credits: ClassVar[list[str]] = [
        *LungNoduleMalignancy.credits,
        "Radiomic features (solidNodules.csv) from MaximoDouglas/pulmonary-nodule-classification.",
    ]

    @property
    def inputs(self) -> list[str]:
        return list(self.options.inputs)

    @property
    def fused(self) -> bool:
        return len(self.inputs) > 1

    def load(self, root: Path) -> UnitTable:
        images = super().load(root)
        path = root / RADIOMICS_FILE
        self.feature_names, features, classes = read_radiomics(path)
        vectors = []
        for uid, target in zip(images.ids, images.targets):
            key = tuple(uid.split("/", 1))
            if key not in features:
                raise InputError(f"{path}: no row for mark {uid} (labels.csv has it)")
            if (classes[key] == "MALIGNANT") != bool(target):
                raise InputError(f"{path}: mark {uid} has class {classes[key]} but labels.csv says {target}")
            vectors.append(features[key])
        if len(features) != len(images):
            raise InputError(f"{path}: {len(features)} rows but labels.csv has {len(images)} marks")
        parts = {"image": images.raw, "radiomics": vectors}
        raw = (
            parts[self.inputs[0]]
            if not self.fused
            else [{name: parts[name][i] for name in self.inputs} for i in range(len(images))]
        )
        return UnitTable(
            ids=images.ids,
            targets=images.targets,
            groups=images.groups,
            raw=raw,
            fingerprint=fingerprint_files([path], extra=images.fingerprint),
            meta=images.meta,
        )

    # -- preprocessing ------------------------------------------------------------------------------
    def _check_model(self, model_name: str) -> None:
        if self.fused and model_name != "fused":
            raise ConfigError(
                f"data.options.inputs {self.inputs}: several parts need model fused, got {model_name}"
            )
        if not self.fused and model_name == "fused":
            raise ConfigError(f"model fused needs data.options.inputs [image, radiomics], got {self.inputs}")
        if self.inputs == ["radiomics"] and model_name not in TABULAR_MODELS:
            raise ConfigError(
                f"data.options.inputs [radiomics] takes a model over a feature vector "
                f"({', '.join(TABULAR_MODELS)}), got {model_name}"
            )

    def _image_spec(self) -> list[dict[str, Any]]:
        return super().preprocessing_spec("nodule_resnet25d")

    def _radiomics_spec(self, train_vectors: list[np.ndarray] | None) -> list[dict[str, Any]]:
        """Signed log, then a z-score whose statistics come from the training marks only."""
        if train_vectors is None:
            return [step("signed_log1p")]
        from medlearn.imaging.radiomics import SignedLog1p

        logged = np.stack([SignedLog1p()(v) for v in train_vectors]).astype(np.float64)
        std = logged.std(axis=0)
        return [
            step("signed_log1p"),
            step(
                "normalize",
                mean=logged.mean(axis=0).tolist(),
                std=np.where(std > 1e-8, std, 1.0).tolist(),
                fill_missing=0.0,
            ),
        ]

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        return self._spec(model_name, None)

    def fit_preprocessing(self, model_name: str, train: UnitTable) -> list[dict[str, Any]]:
        vectors = None
        if "radiomics" in self.inputs:
            vectors = [r["radiomics"] for r in train.raw] if self.fused else list(train.raw)
        return self._spec(model_name, vectors)

    def _spec(self, model_name: str, train_vectors: list[np.ndarray] | None) -> list[dict[str, Any]]:
        self._check_model(model_name)
        if not self.fused:
            if self.inputs == ["image"]:
                return super().preprocessing_spec(model_name)
            return self._radiomics_spec(train_vectors)
        specs = {"image": self._image_spec(), "radiomics": self._radiomics_spec(train_vectors)}
        shapes = self._shapes()
        return [
            step(
                "fusion_pack",
                parts=[{"name": n, "shape": list(shapes[n]), "spec": specs[n]} for n in self.inputs],
            )
        ]

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        n_features = len(getattr(self, "feature_names", ())) or N_KEPT
        return {"image": (self.options.depth, IMAGE_PX, IMAGE_PX), "radiomics": (n_features,)}

    def _layout(self) -> Any:
        from medlearn.fusion.packing import Layout

        shapes = self._shapes()
        return Layout.from_parts({n: shapes[n] for n in self.inputs})

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        n_features = self._shapes()["radiomics"][0]
        if model_name == "fused":
            data = {
                "image": {**super().model_kwargs("nodule_resnet25d"), "shape": list(self._shapes()["image"])},
                "radiomics": {"in_features": n_features, "shape": [n_features]},
            }
            for part in data.values():
                part.pop("out_channels", None)
            return {
                "out_channels": 1,
                "inputs": {n: data[n] for n in self.inputs},
                "default_encoders": {n: DEFAULT_ENCODERS[n] for n in self.inputs},
            }
        if model_name in TABULAR_MODELS:
            return {"in_features": n_features, "out_channels": 1}
        return super().model_kwargs(model_name)

    def augmentation(self, model_name: str, seed: int):
        if self.inputs == ["radiomics"]:
            return None
        image_augment = super().augmentation("nodule_resnet25d" if self.fused else model_name, seed)
        if not self.fused:
            return image_augment
        from medlearn.fusion.packing import PackedAugmentation

        return PackedAugmentation(self._layout(), {"image": image_augment})

    # -- what the image task does on the image part -------------------------------------------------
    def _image_table(self, table: UnitTable) -> UnitTable | None:
        if "image" not in self.inputs:
            return None
        if not self.fused:
            return table
        return UnitTable(
            table.ids, table.targets, table.groups, [r["image"] for r in table.raw], table.fingerprint
        )

    def input_profile(self, table: UnitTable) -> dict[str, Any]:
        images = self._image_table(table)
        return {} if images is None else super().input_profile(images)

    def check_input(self, unit: PredictUnit, array: np.ndarray, profile: dict[str, Any]) -> list[str]:
        if "image" not in self.inputs:
            return []
        if not self.fused:
            return super().check_input(unit, array, profile)
        image_unit = PredictUnit(unit.id, unit.raw.get("image"), unit.meta)
        return super().check_input(image_unit, array, profile)

    def display_image(self, x: np.ndarray) -> np.ndarray | None:
        """The image part's middle slice (a fused input is unpacked first); None for radiomics only."""
        if self.inputs == ["radiomics"]:
            return None
        arr = np.asarray(x)
        if self.fused and arr.ndim == 1:
            if arr.shape[0] != self._layout().width:
                return None  # e.g. a Grad-CAM map: fused models declare no Grad-CAM layer
            parts, _ = self._layout().unpack_one(arr)
            arr = parts["image"]
        return super().display_image(arr)

    def explanation_layout(self, preprocessing: Any) -> Any:
        """Image explanations for the image alone. A packed input (image + radiomics) or a radiomic vector
        has no layout the explain package knows (its methods take images, signals, sequences or trees):
        refused with one line rather than attributed as if it were one of those."""
        if self.inputs == ["image"]:
            return super().explanation_layout(preprocessing)
        raise ConfigError(
            f"medlearn explain does not support task {self.name} with inputs {self.inputs} "
            "(a fused or radiomics-only model); explain an image-only bundle (lung_nodule)"
        )

    def load_inputs(self, paths: list[Path], options: LidcPredictOptions) -> PredictInputs:
        """As ``lung_nodule``; a fused model gets the image part only (radiomics absent, with a warning)."""
        if "image" not in self.inputs:
            raise ConfigError(
                f"task {self.name} with inputs {self.inputs} predicts from radiomic features, which "
                "medlearn predict does not read from files: use a bundle with the image part"
            )
        found = super().load_inputs(paths, options)
        if self.fused:
            for unit in found.units:
                unit.raw = {"image": unit.raw}
                unit.warnings.append(NO_RADIOMICS)
        return found
