"""Model bundles: weights + the exact preprocessing + everything needed to trust and reuse a model.

A bundle is a directory::

    bundle.json        task, model, preprocessing spec, labels, operating point, metrics, data
                       fingerprint, split membership, resolved config, library versions, and under
                       ``training`` what the model saw (``summary``) and the torch thread count and
                       deterministic flag a bit-exact re-training needs (``threads``, ``deterministic``)
    model.safetensors  weights (no pickle; loading never executes code from the bundle)
    model_card.md      intended use, data, metrics with CIs, caveats

``serve``, ``predict``, ``explain`` and ``evaluate`` load a bundle and never re-declare transforms: a
different preprocessing at serving time is the most common silent bug in clinical ML.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medlearn.engine.data import Preprocessing
from medlearn.engine.task import PredictUnit, Task
from medlearn.engine.posthoc import Calibration, apply_calibration
from medlearn.errors import BundleError

FORMAT = "medlearn-bundle"
FORMAT_VERSION = 1
_VERSIONED = ("medlearn", "torch", "numpy", "monai", "pydicom", "scikit-learn", "safetensors")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def save_bundle(path: Path, model: nn.Module, meta: dict[str, Any], model_card: str) -> Path:
    """Write weights (safetensors), ``bundle.json`` and the model card into ``path``."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"))
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": library_versions(), **meta}
    if isinstance(meta.get("training"), dict) and "threads" not in meta["training"]:
        from medlearn.engine.trainer import REPRODUCIBILITY, reproducibility

        # pipelines that do not record it (e.g. generative runs) trained in this process, with these settings
        meta["training"] = {**meta["training"], **reproducibility(), "reproducibility": REPRODUCIBILITY}
    (path / "bundle.json").write_text(json.dumps(meta, indent=2, default=_json_default))
    (path / "model_card.md").write_text(model_card)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass
class Bundle:
    """A loaded bundle: the task, the model in eval mode and the saved preprocessing."""

    path: Path
    meta: dict[str, Any]
    task: Task
    model: nn.Module
    preprocessing: Preprocessing
    device: torch.device = torch.device("cpu")

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def calibration(self) -> Calibration:
        """Post-hoc calibration of the logits fitted on validation (identity when absent)."""
        return Calibration(**self.meta.get("calibration", {}))

    @property
    def threshold(self) -> float | None:
        op = self.meta.get("operating_point")
        return None if op is None else float(op["threshold"])

    @torch.no_grad()
    def predict_arrays(self, arrays: list[np.ndarray]) -> np.ndarray:
        """Model outputs for already-preprocessed arrays (P(positive), class probabilities or values)."""
        from medlearn.engine.trainer import outputs_to_predictions

        if not arrays:
            return np.zeros(0)
        self.model.eval()
        outs = []
        for i in range(0, len(arrays), 64):
            x = torch.from_numpy(np.stack(arrays[i : i + 64])).to(self.device)
            outs.append(outputs_to_predictions(apply_calibration(self.model(x).cpu(), self.calibration), self.kind))
        return np.concatenate(outs)

    def predict_raw(self, raws: list[Any]) -> np.ndarray:
        """Preprocess raw inputs with the bundle's own spec and predict."""
        return self.predict_arrays([self.preprocessing(r) for r in raws])

    def predict(self, inputs: list[str | Path], out_dir: Path | None = None, **options: Any) -> list[dict[str, Any]]:
        """``medlearn predict`` as a function: files in, one JSON-able dict per predicted unit out
        (with ``out_dir``, Grad-CAM pictures are saved there and named in ``"explanation"``)."""
        from medlearn.engine.predict import predict_with_pictures

        return predict_with_pictures(self, [Path(p) for p in inputs], out_dir, **options)

    def generate(self, n: int, seed: int = 0, temperature: float | None = None) -> list[Any]:
        """``medlearn generate`` as a function: ``n`` samples of a generative bundle (e.g. SMILES)."""
        from medlearn.engine.generative import generate_from_bundle

        return generate_from_bundle(self, n, seed, temperature)

    @property
    def model_name(self) -> str:
        return f"{self.meta['model']['name']}@{self.meta.get('created', '')}"

    def _within_range(self, value: float) -> float:
        """A regression value clipped to the task's physical range (e.g. no negative length of stay)."""
        lo, hi = self.task.value_range
        return round(float(min(max(value, -np.inf if lo is None else lo), np.inf if hi is None else hi)), 6)

    def describe(self, unit: PredictUnit, pred: Any) -> dict[str, Any]:
        """The CONVENTIONS.md prediction record for one unit."""
        record: dict[str, Any] = {"input": unit.meta.get("input", unit.id), "unit": unit.id, "model": self.model_name}
        if self.kind == "binary":
            threshold = self.threshold if self.threshold is not None else 0.5
            prob = float(pred)
            record.update(label=self.class_names[int(prob >= threshold)], probability=round(prob, 6),
                          threshold=threshold)
        elif self.kind == "multiclass":
            probs = {c: round(float(p), 6) for c, p in zip(self.class_names, pred)}
            record.update(label=max(probs, key=probs.get), probabilities=probs)
        else:
            interval = self.meta.get("prediction_interval")
            value = float(pred)
            record["value"] = self._within_range(value)
            record["interval"] = None if interval is None else [self._within_range(value - interval["half_width"]),
                                                                self._within_range(value + interval["half_width"])]
        extra = {k: v for k, v in unit.meta.items() if k != "input"}
        if extra:
            record["details"] = extra
        if unit.warnings:
            record["warnings"] = unit.warnings
        if unit.explanation is not None:
            record["explanation"] = unit.explanation
        return record


def load_bundle(path: str | Path, device: str = "cpu") -> Bundle:
    """Load a bundle directory (``<out>/bundle``; ``<out>`` itself is accepted too) onto ``device``
    ("cpu", "cuda" or "auto")."""
    from safetensors.torch import load_file

    from medlearn.engine.models import build_model
    from medlearn.engine.trainer import pick_device
    from medlearn.registry import task_class

    path = Path(path)
    if (path / "bundle" / "bundle.json").is_file():
        path = path / "bundle"
    meta_path = path / "bundle.json"
    if not meta_path.is_file():
        raise BundleError(f"{path}: not a medlearn bundle (no bundle.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: corrupt bundle.json ({exc.msg})") from None
    if meta.get("format") != FORMAT or meta.get("format_version", 0) > FORMAT_VERSION:
        raise BundleError(f"{meta_path}: unsupported bundle format {meta.get('format')!r} "
                          f"v{meta.get('format_version')} (this medlearn reads v{FORMAT_VERSION})")
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise BundleError(f"{path}: bundle has no model.safetensors")
    task = task_class(meta["task"]["name"])(meta["task"]["options"])
    model, _ = build_model(meta["model"]["name"], meta["model"]["params"], {})
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise BundleError(f"{weights}: weights do not load into {meta['model']['name']} ({exc})") from None
    target = pick_device(device)
    model.to(target).eval()
    return Bundle(path, meta, task, model, Preprocessing(meta["preprocessing"]), target)
