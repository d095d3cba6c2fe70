"""Predicting for patients in hospital now: units from any supported source (a FHIR bundle above all),
warnings for codes the model does not know, and the features that drove a prediction.

The bundle's vocabulary decides what is understood: a model trained on MIMIC (ICD, itemids, NDC) knows
nothing of a FHIR bundle's LOINC/RxNorm/SNOMED codes, and says so instead of predicting silently from
age and sex alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medlearn.engine.task import PredictInputs, PredictUnit


def units_from_source(path: Path, window: Any) -> PredictInputs:
    """One unit per inpatient admission still in hospital (and alive) at the prediction time."""
    import polars as pl

    from medlearn.ehr.features import build_cohort, extract_units
    from medlearn.ehr.io import read_source
    from medlearn.ehr.io.fhir import INPATIENT_CLASSES

    source = read_source(path, cache=False)
    admissions = source.admissions
    if source.kind == "fhir":  # FHIR encounters include ambulatory visits: keep inpatient classes
        admissions = admissions.filter(pl.col("admission_type").is_in(INPATIENT_CLASSES))
    order = source.admission_order_known  # eICU: events join by hospital stay, no "earlier" stays
    cohort = build_cohort(admissions, window, ongoing=True, admission_order_known=order)
    result = PredictInputs(units=[])
    kept = set(cohort["admission_id"].to_list())
    for row in admissions.collect().to_dicts():
        if row["admission_id"] not in kept:
            result.skipped.append(
                {
                    "input": str(path),
                    "unit": f"{row['subject_id']}/{row['admission_id']}",
                    "reason": f"not in hospital and alive {window.prediction_hours:g} h after admission",
                }
            )
    if cohort.is_empty() and not result.skipped:
        result.skipped.append(
            {"input": str(path), "unit": "", "reason": "no inpatient admission/encounter found"}
        )
    for row, raw in zip(
        cohort.to_dicts(), extract_units(source.events, cohort, window, admission_order_known=order)
    ):
        meta = {
            "input": str(path),
            "admit_time": str(row["admit_time"]),
            "prediction_time": str(row["cutoff"]),
        }
        result.units.append(PredictUnit(f"{row['subject_id']}/{row['admission_id']}", raw, meta))
    return result


def annotate_unit(unit: PredictUnit, array: np.ndarray, bundle: Any, top: int = 5) -> None:
    """Warn about unknown codes and explain the prediction by its top contributing features."""
    featurize = bundle.preprocessing.steps[0]
    unknown = featurize.unknown_codes(unit.raw)
    n_codes = len({*unit.raw["lab_keys"], *unit.raw["code_keys"], *unit.raw["history"]})
    if unknown:
        unit.warnings.append(
            f"{len(unknown)} of {n_codes} codes are unknown to this model and do not reach it "
            f"(e.g. {', '.join(unknown[:5])})"
        )
    if n_codes == len(unknown):
        unit.warnings.append(
            "no code of this admission is known to the model: the prediction rests on age, sex, "
            "admission type and earlier admissions only"
        )
    if bundle.model is None:  # onnxruntime: no torch model to take gradients or occlusions with
        return
    contribution, method = feature_contributions(bundle.model, array)
    names = featurize.feature_names()
    order = np.argsort(-np.abs(contribution))[:top]
    unit.explanation = {
        "top_features": [
            {"feature": names[i], "contribution": round(float(contribution[i]), 4)}
            for i in order
            if contribution[i] != 0
        ],
        "method": method,
    }


def feature_contributions(model: Any, array: np.ndarray) -> tuple[np.ndarray, str]:
    """Each input feature's contribution to the predicted class's score (or the regression output).

    Networks: gradient × input summed over the time bins. Models without gradients (boosted trees)
    get occlusion instead: the score drop when a feature is set to 0, its training mean after
    normalisation, in every bin — one batched forward for all features.
    """
    import torch

    model.eval()
    x = torch.from_numpy(array[None])
    with torch.no_grad():
        out = model(x)
    target = int(out[0].argmax()) if out.shape[1] > 1 else 0
    if any(p.requires_grad for p in model.parameters()):
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x)[0, target], x)
        return (grad * x).detach()[0].sum(dim=0).numpy(), "gradient x input, summed over time bins"
    n_features = array.shape[-1]
    occluded = x.repeat(n_features, 1, 1)
    occluded[torch.arange(n_features), :, torch.arange(n_features)] = 0.0
    with torch.no_grad():
        scores = model(occluded)[:, target]
    return (
        out[0, target] - scores
    ).numpy(), "occlusion: score drop when the feature is set to its mean in every bin"
