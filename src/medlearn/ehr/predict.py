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
    cohort = build_cohort(admissions, window, ongoing=True)
    result = PredictInputs(units=[])
    kept = set(cohort["admission_id"].to_list())
    for row in admissions.collect().to_dicts():
        if row["admission_id"] not in kept:
            result.skipped.append({"input": str(path), "unit": f"{row['subject_id']}/{row['admission_id']}",
                                   "reason": f"not in hospital and alive {window.prediction_hours:g} h after admission"})
    if cohort.is_empty() and not result.skipped:
        result.skipped.append({"input": str(path), "unit": "", "reason": "no inpatient admission/encounter found"})
    for row, raw in zip(cohort.to_dicts(), extract_units(source.events, cohort, window)):
        meta = {"input": str(path), "admit_time": str(row["admit_time"]), "prediction_time": str(row["cutoff"])}
        result.units.append(PredictUnit(f"{row['subject_id']}/{row['admission_id']}", raw, meta))
    return result


def annotate_unit(unit: PredictUnit, array: np.ndarray, bundle: Any, top: int = 5) -> None:
    """Warn about unknown codes and explain with gradient × input summed over time (top features)."""
    import torch

    featurize = bundle.preprocessing.steps[0]
    unknown = featurize.unknown_codes(unit.raw)
    n_codes = len({*unit.raw["lab_keys"], *unit.raw["code_keys"], *unit.raw["history"]})
    if unknown:
        unit.warnings.append(f"{len(unknown)} of {n_codes} codes are unknown to this model and do not reach it "
                             f"(e.g. {', '.join(unknown[:5])})")
    if n_codes == len(unknown):
        unit.warnings.append("no code of this admission is known to the model: the prediction rests on age, sex, "
                             "admission type and earlier admissions only")
    x = torch.from_numpy(array[None]).requires_grad_(True)
    model = bundle.model
    model.eval()
    out = model(x)
    target = out[0, int(out[0].argmax())] if out.shape[1] > 1 else out[0, 0]
    (grad,) = torch.autograd.grad(target, x)
    contribution = (grad * x).detach()[0].sum(dim=0).numpy()
    names = featurize.feature_names()
    order = np.argsort(-np.abs(contribution))[:top]
    unit.explanation = {"top_features": [{"feature": names[i], "contribution": round(float(contribution[i]), 4)}
                                         for i in order if contribution[i] != 0],
                        "method": "gradient x input, summed over time bins"}
