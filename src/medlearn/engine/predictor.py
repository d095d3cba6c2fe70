"""What every loaded model shares, whatever runs it (torch, or onnxruntime on a device without torch):
its identity, its decision threshold, the prediction flow and the prediction record.

Kept free of torch so that :class:`medlearn.engine.onnx_runtime.OnnxBundle` can predict where torch is
not installed; :class:`medlearn.engine.bundle.Bundle` adds the torch model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.errors import BundleError, ConfigError

if TYPE_CHECKING:
    from medlearn.engine.artifacts import BundleMeta
    from medlearn.engine.conformal import ConformalSets
    from medlearn.engine.data import Preprocessing
    from medlearn.engine.task import PredictUnit, Task


class Predictor:
    """A bundle loaded for prediction. Subclasses hold ``path``, ``meta``, ``task`` and ``preprocessing``
    and implement :meth:`predict_arrays`; ``model`` is the torch module when there is one (Grad-CAM)."""

    path: Path
    meta: BundleMeta
    task: Task
    preprocessing: Preprocessing
    model: Any  # the torch module, or None where there is none (onnxruntime)

    def predict_arrays(self, arrays: list[np.ndarray]) -> np.ndarray:
        """Model outputs for already-preprocessed arrays (P(positive), class probabilities or values)."""
        raise NotImplementedError

    def predict_raw(self, raws: list[Any]) -> np.ndarray:
        """Preprocess raw inputs with the bundle's own spec and predict."""
        return self.predict_arrays([self.preprocessing(r) for r in raws])

    def check_outputs(self, outputs: np.ndarray, inputs: np.ndarray, first: int, runtime: str = "") -> None:
        """Refuse a batch of raw model outputs that cannot be predictions, whatever ran the model: the
        wrong number of outputs per unit for the bundle's classes, or NaN/inf (naming the inputs, from
        index ``first``, and whether their input already held NaN/inf). ``runtime`` names it in the message
        (e.g. ``"ONNX "``)."""
        flat = np.asarray(outputs).reshape(len(outputs), -1)
        width = len(self.class_names) if self.kind == "multiclass" else 1
        if self.kind != "generative" and flat.shape[1] != width:
            raise BundleError(
                f"{self.path}: the {runtime}model gives {flat.shape[1]} outputs per unit, but the bundle names "
                f"{width} ({', '.join(self.class_names) or self.kind})"
            )
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            where = [first + int(j) for j in np.flatnonzero(bad)]
            broken_input = ~np.isfinite(np.asarray(inputs).reshape(len(inputs), -1)).all(axis=1)
            cause = "its input holds NaN or inf" if broken_input[bad].any() else "the model is broken"
            raise BundleError(
                f"{self.path}: the {runtime}model's output is NaN or inf for input(s) {where[:5]} ({cause}); "
                "no prediction is made from it"
            )

    @property
    def kind(self) -> str:
        return self.meta.kind

    @property
    def class_names(self) -> list[str]:
        return self.meta.class_names

    @property
    def threshold(self) -> float | None:
        op = self.meta.operating_point
        return None if op is None else float(op.threshold)

    def predict(
        self,
        inputs: str | Path | Sequence[str | Path],
        out_dir: Path | None = None,
        strict: bool = False,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """``medlearn predict`` as a function: files in, one prediction record per unit out.

        Args:
            inputs: a file or folder, or a list of them (a DICOM series folder, an ECG record, EHR tables…).
            out_dir: where to save a Grad-CAM picture per unit (named in the record's ``"explanation"``).
            strict: refuse a unit that is outside what the bundle was trained on (see
                :meth:`~medlearn.engine.task.Task.check_input`) instead of predicting it with a flag.
            **options: the task's predict options, named like the CLI flags (``nodule="55.5,85.6,-116"``
                or ``nodule=(55.5, 85.6, -116)``, ``diameter=10``, ``fs=200``). One the task does not take
                is an :class:`~medlearn.errors.InputError` naming the options it does take.

        Returns:
            One dict per predicted unit, the prediction record of ``medlearn predict --json``; inputs that
            held nothing to predict come back as ``{"input": ..., "skipped": {...}}``.

        Examples:
            >>> bundle = medlearn.load_bundle("runs/ecg_af/bundle")  # doctest: +SKIP
            >>> bundle.predict("A00001.hea")[0]["label"]  # doctest: +SKIP
            'Normal'
        """
        from medlearn.engine.predict import predict_with_pictures

        paths = [Path(inputs)] if isinstance(inputs, str | Path) else [Path(p) for p in inputs]
        return predict_with_pictures(self, paths, out_dir, strict=strict, **options)

    def predict_samples(
        self, samples: np.ndarray, strict: bool = False, out_dir: Path | None = None, **options: Any
    ) -> list[dict[str, Any]]:
        """:meth:`predict` for a signal already in memory, ``(n_samples, n_channels)`` or one channel,
        with its rate as the ``fs`` option: the records a header-less file of the same samples gives
        (input ``"samples"``), without writing one (the service's JSON route).

        Raises:
            ConfigError: the bundle's task predicts from files only (not a signal task).
            InputError: ``fs`` missing or implausible, or an option the task does not take.
        """
        from medlearn.engine.predict import predict_units

        validated = self.task.predict_options(**options)
        return predict_units(self, self.task.load_samples(np.asarray(samples), validated), out_dir, strict)

    @property
    def model_name(self) -> str:
        return f"{self.meta.model.name}@{self.meta.created}"

    @cached_property
    def conformal_sets(self) -> ConformalSets | None:
        """The bundle's prediction sets, built once from ``bundle.json`` (not once per predicted unit)."""
        from medlearn.engine.conformal import ConformalSets

        record = self.meta.prediction_sets
        return None if record is None else ConformalSets.from_dict(record.model_dump())

    def _add_prediction_set(self, record: dict[str, Any], pred: Any) -> None:
        """The unit's conformal prediction set (class names, most probable first) and ``uncertain``: the
        set holds more than one class, so the model cannot tell them apart at the bundle's coverage."""
        fitted = self.conformal_sets
        (chosen,) = fitted.sets(np.asarray([pred], dtype=np.float64))  # binary: P(positive) → 2 classes
        record["prediction_set"] = [self.class_names[c] for c in chosen]
        record["set_coverage"] = fitted.coverage
        record["uncertain"] = len(chosen) > 1

    def _within_range(self, value: float) -> float:
        """A regression value clipped to the task's physical range (e.g. no negative length of stay)."""
        lo, hi = self.task.target.value_range
        return round(float(min(max(value, -np.inf if lo is None else lo), np.inf if hi is None else hi)), 6)

    def describe(self, unit: PredictUnit, pred: Any) -> dict[str, Any]:
        """The prediction record (docs/conventions.md#the-prediction-record) for one unit."""
        record: dict[str, Any] = {
            "input": unit.meta.get("input", unit.id),
            "unit": unit.id,
            "model": self.model_name,
        }
        if self.kind == "binary":
            threshold = self.threshold if self.threshold is not None else 0.5
            prob = float(pred)
            record.update(
                label=self.class_names[int(prob >= threshold)],
                probability=round(prob, 6),
                threshold=threshold,
            )
        elif self.kind == "multiclass":
            probs = {c: round(float(p), 6) for c, p in zip(self.class_names, pred)}
            record.update(label=max(probs, key=probs.get), probabilities=probs)
        else:
            interval = self.meta.prediction_interval
            value = float(pred)
            record["value"] = self._within_range(value)
            record["interval"] = (
                None
                if interval is None
                else [
                    self._within_range(value - interval.half_width),
                    self._within_range(value + interval.half_width),
                ]
            )
        if self.kind in ("binary", "multiclass") and self.meta.prediction_sets is not None:
            self._add_prediction_set(record, pred)
        extra = {k: v for k, v in unit.meta.items() if k != "input"}
        if extra:
            record["details"] = extra
        if unit.warnings:
            record["warnings"] = unit.warnings
        if unit.explanation is not None:
            record["explanation"] = unit.explanation
        return record


def _external_names(raw: dict[str, Any]) -> list[str]:
    """The out-of-tree names (``package.module:Name``) a bundle's task, model and transforms use."""
    from medlearn.registry import is_external

    task = raw.get("task") if isinstance(raw.get("task"), dict) else {}
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    steps = raw.get("preprocessing") if isinstance(raw.get("preprocessing"), list) else []
    names = [task.get("name"), model.get("name"), *(s.get("name") for s in steps if isinstance(s, dict))]
    return [n for n in names if isinstance(n, str) and is_external(n)]


def _make_task(raw: dict[str, Any], meta_path: Path) -> Task:
    from medlearn.registry import task_class

    ref = raw.get("task")
    if (
        not isinstance(ref, dict)
        or not isinstance(ref.get("name"), str)
        or not isinstance(ref.get("options"), dict)
    ):
        raise BundleError(f"{meta_path}: missing field 'task' (an object with name and options)")
    try:
        return task_class(ref["name"])(ref["options"])
    except ConfigError as exc:
        raise BundleError(f"{meta_path}: task: {exc}") from None


def read_bundle(
    path: str | Path, allow_external: bool = False, public_key: str | Path | None = None
) -> tuple[Path, BundleMeta, Task]:
    """Find, verify and parse a bundle's metadata, and make its task — everything a loader does before
    it builds the model (torch or onnxruntime). See :func:`medlearn.engine.bundle.load_bundle` for the
    checks and errors."""
    from medlearn.engine.artifacts import FORMAT, FORMAT_VERSION, migrate_v1, parse_bundle_meta
    from medlearn.engine.integrity import verify_manifest, verify_signature

    path = Path(path)
    if (path / "bundle" / "bundle.json").is_file():
        path = path / "bundle"
    meta_path = path / "bundle.json"
    if not meta_path.is_file():
        raise BundleError(f"{path}: not a medlearn bundle (no bundle.json)")
    try:
        raw = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path}: corrupt bundle.json ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{meta_path}: bundle.json holds a {type(raw).__name__}, not an object")
    version = raw.get("format_version")
    if raw.get("format") != FORMAT or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise BundleError(
            f"{meta_path}: unsupported bundle format {raw.get('format')!r} "
            f"v{version} (this medlearn reads v1 to v{FORMAT_VERSION})"
        )
    verified = verify_manifest(path, required=version >= 2)
    if public_key is not None:
        verify_signature(path, Path(public_key))
    external = _external_names(raw)
    if external and not allow_external:
        raise BundleError(
            f"{path}: the bundle runs out-of-tree code ({', '.join(external)}); if you trust that package, "
            "load it with allow_external=True (CLI: --allow-external)"
        )
    task = _make_task(raw, meta_path)
    meta = parse_bundle_meta(migrate_v1(raw, task.target) if version == 1 else raw, meta_path)
    expected = (task.target.kind, list(task.target.class_names))
    if (meta.kind, meta.class_names) != expected:
        raise BundleError(
            f"{meta_path}: target {meta.kind} {meta.class_names} is not what task {meta.task.name} predicts "
            f"({expected[0]} {expected[1]})"
        )
    if not verified:
        logging.getLogger("medlearn.engine.integrity").warning(
            "%s: a format v1 bundle has no manifest.json; its files are not verified", path
        )
    return path, meta, task
