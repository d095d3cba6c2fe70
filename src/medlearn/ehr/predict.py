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


def units_from_source(path: Path, window: Any, features: str = "codes") -> PredictInputs:
    """One unit per inpatient admission still in hospital (and alive) at the prediction time, from the
    events the bundle was trained on (``features``: the source's own codes, or harmonised concepts)."""
    import polars as pl

    from medlearn.ehr.concepts import feature_admissions, feature_events
    from medlearn.ehr.features import build_cohort, extract_units
    from medlearn.ehr.io import read_source
    from medlearn.ehr.io.fhir import INPATIENT_CLASSES

    source = read_source(path, cache=False)
    admissions = source.admissions
    if source.kind == "fhir":  # FHIR encounters include ambulatory visits: keep inpatient classes
        admissions = admissions.filter(pl.col("admission_type").is_in(INPATIENT_CLASSES))
    admissions = feature_admissions(admissions, source.kind, features)
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
    events, _ = feature_events(source, features)
    for row, raw in zip(
        cohort.to_dicts(), extract_units(events, cohort, window, admission_order_known=order)
    ):
        meta = {
            "input": str(path),
            "source": source.kind,  # how a FHIR RiskAssessment references the patient (ehr.fhir_risk)
            "admit_time": str(row["admit_time"]),
            "prediction_time": str(row["cutoff"]),
        }
        result.units.append(PredictUnit(f"{row['subject_id']}/{row['admission_id']}", raw, meta))
    return result


#: Margins of the admission checks (stated in their sentences): ages may pass the training range by 10 %
#: of its span; a lab value is implausible when negative where no training value was, or more than 100×
#: the largest training magnitude (a unit mix-up: real extremes, e.g. an AST of 8,000 U/L, stay in scope:
#: the featurizer clips them to the training percentiles).
AGE_MARGIN, LAB_FACTOR = 0.1, 100.0
#: the share of unknown codes is flagged half-way between the largest share seen in training and 100 %
UNKNOWN_MARGIN = 0.5
#: a lab range is recorded (and checked) only when training held at least this many values of it
MIN_LAB_VALUES = 10


def _codes(raw: dict[str, Any]) -> set[str]:
    return {*raw.get("lab_keys", []), *raw.get("code_keys", []), *raw.get("history", [])}


def _system(code: str) -> str:
    """The coding system of a ``system//code`` key (e.g. ``mimic4_lab``, ``icd10``)."""
    return code.split("//", 1)[0]


def admission_profile(
    units: list[dict[str, Any]],
    n_bins: int,
    max_labs: int,
    max_codes: int,
    max_history: int,
    min_count: int,
    groups: Any = None,
) -> dict[str, Any]:
    """What :func:`check_admission` compares an admission to, from the training admissions: the age range,
    each vocabulary lab's value range, the known codes (the same vocabularies ``fit_featurize`` keeps) and
    the range of the share of an admission's codes unknown to a vocabulary fitted without it (2 halves)."""
    from medlearn.ehr.features import fit_featurize
    from medlearn.engine.input_checks import seen_range

    if groups is None:
        groups = np.arange(len(units))
    kept = [(u, str(g)) for u, g in zip(units, groups) if isinstance(u, dict)]
    units = [u for u, _ in kept]
    if not units:
        return {}
    params = fit_featurize(units, n_bins, max_labs, max_codes, max_history, min_count)
    known = set(params["lab_keys"]) | set(params["code_keys"]) | set(params["history_keys"])
    values: dict[str, list[float]] = {k: [] for k in params["lab_keys"]}
    for u in units:
        for key, value in zip(u["lab_keys"], u["lab_values"]):
            if key in values and value is not None:
                values[key].append(value)
    # What a new admission's share of unknown codes looks like: each half of the training admissions
    # against a vocabulary fitted on the other half (the full vocabulary knows every frequent code of the
    # admissions it was fitted on, which would understate it).
    shares = []
    patients = sorted({g for _, g in kept})
    first = set(patients[0::2])  # by patient: one patient's admissions share codes a new patient may not
    halves = ([u for u, g in kept if g in first], [u for u, g in kept if g not in first])
    for held_out, fitted_on in (halves, halves[::-1]):
        if not fitted_on:
            continue
        half = fit_featurize(fitted_on, n_bins, max_labs, max_codes, max_history, min_count)
        vocab = set(half["lab_keys"]) | set(half["code_keys"]) | set(half["history_keys"])
        shares += [len(codes - vocab) / len(codes) for codes in map(_codes, held_out) if codes]
    return {
        "age_years": seen_range(u.get("age_years") for u in units),
        "labs": {
            k: r for k, v in values.items() if len(v) >= MIN_LAB_VALUES and (r := seen_range(v)) is not None
        },
        "known_codes": sorted(known),
        "code_systems": sorted({_system(code) for u in units for code in _codes(u)}),
        "unknown_share": seen_range(shares),
        "n_units": len(units),
    }


def check_admission(raw: dict[str, Any], profile: dict[str, Any]) -> list[str]:
    """Why an admission is outside what the training admissions were (see ``AdmissionTask.check_input``)."""
    from medlearn.engine.input_checks import fmt, fmt_range, outside_range

    reasons = []
    age = raw.get("age_years")
    if age is not None and np.isfinite(age) and age < 0:
        reasons.append(
            f"the patient's age at admission is {fmt(age)} years: born after the admission (birth date or "
            "admission time wrong)"
        )
    elif age is not None:
        found = outside_range(
            "the age at admission",
            float(age),
            profile.get("age_years"),
            "years",
            AGE_MARGIN,
            trained_on="patients",
        )
        if found:
            reasons.append(found)
    labs = profile.get("labs") or {}
    odd = []
    for key, value in zip(raw.get("lab_keys", []), raw.get("lab_values", [])):
        seen = labs.get(key)
        if seen is None or value is None or not np.isfinite(value):
            continue
        lo, hi = float(seen[0]), float(seen[1])
        top = LAB_FACTOR * max(abs(lo), abs(hi))
        if (value < 0 <= lo) or abs(value) > top:
            odd.append(f"{key} = {fmt(value)} (trained on {fmt_range(seen)})")
    if odd:
        reasons.append(
            f"{len(odd)} lab value(s) are implausible for this model (negative where training never was, or over "
            f"{LAB_FACTOR:g}× the largest training value: another unit?): "
            + "; ".join(odd[:3])
            + ("; …" if len(odd) > 3 else "")
        )
    codes = _codes(raw)
    systems = profile.get("code_systems")
    if isinstance(systems, list) and systems and codes:
        foreign = sorted({_system(c) for c in codes} - set(systems))
        n_foreign = sum(_system(c) in foreign for c in codes)
        if foreign:
            reasons.append(
                f"{n_foreign} of this admission's {len(codes)} codes come from coding systems the training "
                f"data never used ({', '.join(foreign[:5])}; trained on {', '.join(systems)})"
            )
    known, share_seen = profile.get("known_codes"), profile.get("unknown_share")
    if isinstance(known, list) and isinstance(share_seen, list) and codes:
        share = len(codes - set(known)) / len(codes)
        limit = float(share_seen[1]) + UNKNOWN_MARGIN * (1 - float(share_seen[1]))
        if share > limit:
            reasons.append(
                f"{share:.0%} of this admission's {len(codes)} codes are unknown to the model; training "
                f"admissions had at most {float(share_seen[1]):.0%} (flagged above {limit:.0%}, half-way "
                "from there to 100%)"
            )
    return reasons


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
