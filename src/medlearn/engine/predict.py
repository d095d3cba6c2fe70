"""``medlearn predict`` with pictures: predictions plus a Grad-CAM overlay per unit when ``--out`` is given."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.engine.input_checks import non_finite_reason
from medlearn.engine.protocols import gradcam_layer

if TYPE_CHECKING:  # Predictor.predict calls this module: a runtime import back would be a cycle
    from medlearn.engine.predictor import Predictor as Bundle
    from medlearn.engine.task import PredictInputs, PredictUnit


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "unit"


def _picture_name(unit_id: str, used: set[str]) -> str:
    """``<safe unit id>_gradcam.png``, unique among ``used`` (which it joins): two units with the same id,
    or ids that differ only in characters a file name cannot hold or in case, get ``-2``, ``-3``, … so
    that no picture overwrites another."""
    stem = _safe_name(unit_id)
    name, n = f"{stem}_gradcam.png", 1
    while name.lower() in used:
        n += 1
        name = f"{stem}-{n}_gradcam.png"
    used.add(name.lower())
    return name


def predict_with_pictures(
    bundle: Bundle, inputs: list[Path], out_dir: Path | None, strict: bool = False, **options: Any
) -> list[dict[str, Any]]:
    """Predict every unit found in ``inputs``; with ``out_dir``, save a Grad-CAM picture per unit and
    name it in the record's ``"explanation"``.

    ``options`` are the task's predict options named like the CLI flags (``nodule="55.5,85.6,-116"`` or
    ``nodule=(55.5, 85.6, -116)``, ``diameter=10``, ``fs=200``; None = not given), validated by
    ``bundle.task.predict_options`` before any input is read: one the task does not take is an InputError.
    """
    validated = bundle.task.predict_options(**options)
    loaded = bundle.task.load_inputs([Path(p) for p in inputs], validated)
    return predict_units(bundle, loaded, out_dir, strict)


def predict_units(
    bundle: Bundle, loaded: PredictInputs, out_dir: Path | None, strict: bool = False
) -> list[dict[str, Any]]:
    """Predict units a task has loaded (from files, or samples in memory): preprocess with the bundle's
    spec, refuse or flag what is out of scope, predict, annotate, and draw Grad-CAM with ``out_dir``."""
    all_arrays = [bundle.preprocessing(u.raw) for u in loaded.units]
    verdicts = [_scope(bundle, unit, array, strict) for unit, array in zip(loaded.units, all_arrays)]
    kept = [i for i, (refused, _) in enumerate(verdicts) if not refused]
    units = [loaded.units[i] for i in kept]
    arrays = [all_arrays[i] for i in kept]
    preds = bundle.predict_arrays(arrays) if arrays else []
    for unit, array in zip(units, arrays):
        bundle.task.annotate(unit, array, bundle)
    records = [bundle.describe(u, p) for u, p in zip(units, preds)]
    for i, record in zip(kept, records):
        reasons = verdicts[i][1]
        if reasons:  # predicted, but outside what the bundle was trained on: said twice, never silent
            record["out_of_scope"] = list(reasons)
            record["warnings"] = [*record.get("warnings", []), *reasons]
    # Grad-CAM pictures for models that see images; an attribution picture for the others (explain)
    pictured = arrays and bundle.task.display_image(arrays[0]) is not None
    if out_dir is not None and arrays and not pictured and bundle.model is not None:
        from medlearn.explain.run import unit_pictures

        for record, name in zip(records, unit_pictures(bundle, units, arrays, out_dir)):
            if isinstance(record.get("explanation"), dict):  # e.g. an admission's top features: keep them
                record["explanation"]["picture"] = name
            else:
                record["explanation"] = name
    if out_dir is not None and pictured and gradcam_layer(bundle.model):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        from medlearn.explain.gradcam import cam_problem, gradcam, overlay

        heat = gradcam(bundle.model, np.stack(arrays))
        used: set[str] = set()
        for unit, array, h, record in zip(units, arrays, heat, records):
            image = bundle.task.display_image(array)
            heat2d = bundle.task.display_image(h[None])
            if image is None:
                continue
            problem = cam_problem(heat2d)
            if problem is not None:  # the picture says it too (overlay writes it across the image)
                record.setdefault("warnings", []).append(problem)
            panels = [("model input + Grad-CAM", overlay(image, heat2d))]
            if unit.context is not None:
                ct, row0, col0 = unit.context
                full = np.zeros(np.shape(ct), dtype=np.float32)
                rows = slice(max(row0, 0), min(row0 + heat2d.shape[0], full.shape[0]))
                cols = slice(max(col0, 0), min(col0 + heat2d.shape[1], full.shape[1]))
                full[rows, cols] = heat2d[
                    rows.start - row0 : rows.stop - row0, cols.start - col0 : cols.stop - col0
                ]
                panels.insert(0, ("CT + Grad-CAM", overlay(ct, full)))
            fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5))
            for ax, (title, rgb) in zip(np.atleast_1d(axes), panels):
                ax.imshow(rgb)
                ax.set_title(title)
                ax.axis("off")
            label = record.get("label", "")
            prob = record.get("probability")
            fig.suptitle(f"{unit.id}: {label}" + (f" p={prob:.3f}" if prob is not None else ""))
            name = _picture_name(unit.id, used)
            fig.savefig(out_dir / name, dpi=100, bbox_inches="tight")
            plt.close(fig)
            record["explanation"] = name
    by_unit = dict(zip(kept, records))
    records = [
        by_unit[i] if i in by_unit else _refused_record(bundle, unit, verdicts[i][1])
        for i, unit in enumerate(loaded.units)
    ]
    for skipped in loaded.skipped:
        records.append({"input": skipped.get("input", ""), "model": bundle.model_name, "skipped": skipped})
    return records


def _scope(bundle: Bundle, unit: PredictUnit, array: np.ndarray, strict: bool) -> tuple[bool, list[str]]:
    """Whether ``unit`` is refused, and why it is outside what the bundle was trained on (the task's
    :meth:`~medlearn.engine.task.Task.check_input` against the bundle's stored ``input_profile``).

    A preprocessed input holding NaN or inf is refused even without ``strict``: no model output computed
    from it is a number to report. Otherwise ``strict`` refuses every flagged unit.
    """
    reasons = list(bundle.task.check_input(unit, array, dict(bundle.meta.input_profile or {})))
    broken = non_finite_reason(array)
    if broken is not None:
        return True, [*reasons, f"{broken}; no prediction can be made from it"]
    return bool(strict and reasons), reasons


def _refused_record(bundle: Bundle, unit: PredictUnit, reasons: list[str]) -> dict[str, Any]:
    """The record of a unit that was not predicted: what it was and why (docs/conventions.md)."""
    return {
        "input": unit.meta.get("input", unit.id),
        "unit": unit.id,
        "model": bundle.model_name,
        "refused": list(reasons),
    }
