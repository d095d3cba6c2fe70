"""The bundles a service answers for: each loaded once at start-up, named and versioned.

- **name**: the config name the bundle was trained with (``bundle.meta.config["name"]``, e.g.
  ``ecg_af_cinc2017``); two bundles with one name are refused at start-up.
- **version**: the first 12 hex digits of the SHA-256 of the bundle's ``manifest.json``. The manifest lists
  the SHA-256 of the weights, ``bundle.json`` (preprocessing, calibration, operating point...) and the model
  card, so any change to what the model computes or claims gives a new version; it is returned with every
  prediction and written to the audit log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlearn.engine.bundle import Bundle, load_bundle
from medlearn.engine.integrity import bundle_version
from medlearn.engine.protocols import gradcam_layer
from medlearn.engine.task import Task
from medlearn.errors import BundleError


def model_version(bundle_dir: Path) -> str:
    """The bundle's version (:func:`medlearn.engine.integrity.bundle_version`: its manifest's short SHA-256)."""
    return bundle_version(bundle_dir)


class SharedLock:
    """A readers-writer lock: many holders of :meth:`shared` at once, or one of :meth:`exclusive` alone
    (a waiting exclusive holder goes before new shared ones, so explanations are not starved)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if not self._shared:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


#: Sampling seeds torch's global random generator: one generation at a time in the process, so that the
#: same seed gives the same molecules whatever else runs.
GENERATION_LOCK = threading.Lock()


@dataclass
class ServedModel:
    """One loaded bundle and what the service says about it."""

    name: str
    version: str
    bundle: Bundle
    #: Predictions run concurrently (shared); a Grad-CAM explanation runs alone (exclusive): it hooks the
    #: model's layers, and another request's forward pass must not run through those hooks.
    lock: SharedLock = field(default_factory=lambda: SharedLock(), repr=False)

    @property
    def generative(self) -> bool:
        return self.bundle.kind == "generative"

    @property
    def explains(self) -> bool:
        """Whether ``Bundle.predict(out_dir=...)`` draws an explanation picture: Grad-CAM for a CNN over
        images, attributions drawn on the strip or the window for the others (:mod:`medlearn.explain`).
        A model served with onnxruntime has no gradients to take, and a generator no prediction."""
        if self.bundle.model is None or self.generative:
            return False
        task = self.bundle.task
        image = type(task).display_image is not Task.display_image
        return bool(gradcam_layer(self.bundle.model)) if image else True

    def predict_options(self) -> list[dict[str, Any]]:
        """The task's predict options as the form fields / query parameters that set them."""
        options = self.bundle.task.PredictOptions
        if options is None:
            return []
        return [
            {"name": f.alias or name, "description": f.description or ""}
            for name, f in options.model_fields.items()
        ]

    def summary(self) -> dict[str, Any]:
        """The ``/models`` entry: identity, what the model predicts, test metrics with CIs, operating point."""
        meta = self.bundle.meta
        test = meta.metrics.get("test") or {}
        op = meta.operating_point
        return {
            "name": self.name,
            "version": self.version,
            "model": self.bundle.model_name,
            "task": meta.task.name,
            "kind": meta.kind,
            "class_names": meta.class_names,
            "unit": meta.unit,
            "created": meta.created,
            "metrics": {
                key: test[key]
                for key in ("split", "unit", "n", "metrics", "per_class", "ci_method", "ci_note")
                if key in test
            },
            "operating_point": None if op is None else op.model_dump(),
            "prediction_interval": (
                None if meta.prediction_interval is None else meta.prediction_interval.model_dump()
            ),
            "predict_options": self.predict_options(),
            "intended_use": meta.intended_use,
        }

    def model_card(self) -> str:
        card = self.bundle.path / "model_card.md"
        return card.read_text(encoding="utf-8") if card.is_file() else f"# {self.name}\n\n(no model card)\n"


def load_models(
    paths: Sequence[str | Path],
    device: str = "cpu",
    allow_external: bool = False,
    public_key: str | Path | None = None,
    runtime: str = "torch",
    threads: int | None = None,
) -> dict[str, ServedModel]:
    """Load every bundle once (verifying its manifest, and its signature with ``public_key``); with
    ``runtime="onnx"`` each predicts through its ONNX export (``medlearn export``) with onnxruntime,
    ``threads`` intra-op threads per prediction (torch's count is set process-wide by the caller).

    Raises:
        BundleError: no bundle given, a bundle that does not load, or two bundles with one name.
    """
    if not paths:
        raise BundleError("serve needs at least one bundle directory")
    models: dict[str, ServedModel] = {}
    where: dict[str, Path] = {}
    for path in paths:
        if runtime == "onnx":
            from medlearn.engine.onnx_runtime import load_onnx_bundle

            bundle = load_onnx_bundle(
                path, allow_external=allow_external, public_key=public_key, threads=threads
            )
        else:
            bundle = load_bundle(path, device=device, allow_external=allow_external, public_key=public_key)
        name = str(bundle.meta.config.get("name") or bundle.meta.task.name)
        if name in models:
            raise BundleError(
                f"two bundles are named {name!r} ({where[name]} and {bundle.path}); a served model's name is "
                "its config name, so retrain one under another name (--set name=...)"
            )
        models[name] = ServedModel(name, model_version(bundle.path), bundle)
        where[name] = bundle.path
    return models
