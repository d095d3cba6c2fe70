"""No information from the future (issue 12): a unit's prediction is the same from the record as it stood
at its prediction time as from the full data.

For each unit, :mod:`tests.ehr.time_travel` writes a copy of the raw files (CSV, CSV.gz or JSON, as the
source ships them) holding only what the care team could know at the unit's prediction time — rows
known later removed, later admissions removed, the unit's own discharge time, death and discharge
location altered (still after the prediction time). The copy is read by the normal reader, featurized
by the bundle's own preprocessing and predicted by the bundle; the prediction must equal the one from
the full data within 1e-6. The fast tests sample a few units per source (fixed seed); the slow ones
run every unit. eICU also checks that making every hospital stay its own patient changes nothing.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from medlearn.config import load_config
from medlearn.engine.bundle import Bundle, load_bundle
from medlearn.engine.run import train_experiment
from tests.conftest import require_data
from tests.ehr.time_travel import (
    EicuTruncator,
    Mimic3Truncator,
    Mimic4Truncator,
    Truncator,
    Unit,
    eicu_stays_as_patients,
    fhir_time,
    truncate_fhir,
)
from tests.engine.minimal_meta import meta_for_task

TOLERANCE = 1e-6
N_FAST = 4
PREDICTION_HOURS = 24.0
TONY = "Tony_Beer_bb8cd3e5-8910-4eea-bbc6-3f64a4a655b8.json"


def train_tiny_bundle(root: Path, out: Path) -> Bundle:
    """A linear bundle trained for 2 epochs whose vocabularies hold every code of the training split
    (min_count 1, wide limits), so that any leaked code moves its prediction."""
    overrides = [
        f"data.root={root}",
        "train.epochs=2",
        "eval.n_bootstrap=0",
        "data.options.min_count=1",
        "data.options.max_labs=1000",
        "data.options.max_codes=5000",
        "data.options.max_history=5000",
        f"data.options.prediction_hours={PREDICTION_HOURS}",
    ]
    cfg = load_config("ehr_los_mimic4_linear", overrides)
    return load_bundle(train_experiment(cfg, out, device="cpu").bundle)


def predictions(bundle: Bundle, path: Path) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """unit id ("subject/admission") → (the bundle's unrounded output, the unit's details), as
    ``medlearn predict`` computes them."""
    loaded = bundle.task.load_inputs([path])
    outputs = bundle.predict_arrays([bundle.preprocessing(u.raw) for u in loaded.units])
    return {
        u.id: (np.atleast_1d(np.asarray(out, float)), {**u.meta, "unit": u.id})
        for u, out in zip(loaded.units, outputs)
    }


def time_travel_gaps(
    bundle: Bundle, truncator: Truncator, full: dict, ids: list[str], tmp: Path
) -> dict[str, float]:
    """unit id → largest change of its prediction between the full data and its truncated copy
    (``inf`` when the copy no longer predicts the unit)."""
    gaps = {}
    for k, unit_id in enumerate(ids):
        expected, details = full[unit_id]
        unit = Unit.from_record({"unit": unit_id, "details": details})
        copy = truncator.write(unit, tmp / f"unit{k}")
        got = predictions(bundle, copy).get(unit_id)
        gaps[unit_id] = float("inf") if got is None else float(np.max(np.abs(got[0] - expected)))
    return gaps


def sample(ids: list[str], n: int = N_FAST) -> list[str]:
    return random.Random(0).sample(sorted(ids), min(n, len(ids)))


def assert_no_time_travel(gaps: dict[str, float]) -> None:
    moved = {u: g for u, g in gaps.items() if not g <= TOLERANCE}
    assert not moved, (
        f"{len(moved)} of {len(gaps)} unit(s) predict differently from the record as it stood "
        f"at their prediction time (largest change {max(moved.values()):.3g}): "
        f"{dict(sorted(moved.items(), key=lambda kv: -kv[1])[:10])}"
    )


# ------------------------------------------------------------------------------------------ sources


@pytest.fixture(scope="module")
def mimic4(tmp_path_factory, one_torch_thread):
    root = require_data("ehr/mimic-iv-demo")
    bundle = train_tiny_bundle(root, tmp_path_factory.mktemp("tt-mimic4") / "run")
    return bundle, Mimic4Truncator(root), predictions(bundle, root)


@pytest.fixture(scope="module")
def mimic3(tmp_path_factory, one_torch_thread):
    root = require_data("ehr/mimic-iii-demo")
    bundle = train_tiny_bundle(root, tmp_path_factory.mktemp("tt-mimic3") / "run")
    return bundle, Mimic3Truncator(root), predictions(bundle, root)


@pytest.fixture(scope="module")
def eicu(tmp_path_factory, one_torch_thread):
    root = require_data("ehr/eicu-demo")
    bundle = train_tiny_bundle(root, tmp_path_factory.mktemp("tt-eicu") / "run")
    return bundle, EicuTruncator(root, PREDICTION_HOURS), predictions(bundle, root)


def test_mimic4_sampled_units_predict_the_same_from_what_was_known(mimic4, tmp_path):
    bundle, truncator, full = mimic4
    assert len(full) == 245
    assert_no_time_travel(time_travel_gaps(bundle, truncator, full, sample(list(full)), tmp_path))


def test_mimic3_sampled_units_predict_the_same_from_what_was_known(mimic3, tmp_path):
    bundle, truncator, full = mimic3
    assert_no_time_travel(time_travel_gaps(bundle, truncator, full, sample(list(full)), tmp_path))


def test_eicu_sampled_units_predict_the_same_from_their_own_hospital_stay(eicu, tmp_path):
    bundle, truncator, full = eicu
    assert len(full) == 135
    assert_no_time_travel(time_travel_gaps(bundle, truncator, full, sample(list(full)), tmp_path))


def test_eicu_making_every_hospital_stay_its_own_patient_changes_no_prediction(eicu, tmp_path):
    bundle, _, full = eicu
    split = predictions(bundle, eicu_stays_as_patients(require_data("ehr/eicu-demo"), tmp_path / "split"))
    by_stay = {unit_id.split("/", 1)[1]: out for unit_id, (out, _) in split.items()}
    gaps = {
        unit_id: float(np.max(np.abs(by_stay[unit_id.split("/", 1)[1]] - out)))
        if unit_id.split("/", 1)[1] in by_stay
        else float("inf")
        for unit_id, (out, _) in full.items()
    }
    assert_no_time_travel(gaps)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["mimic4", "mimic3", "eicu"])
def test_every_unit_predicts_the_same_from_what_was_known(source, request, tmp_path):
    bundle, truncator, full = request.getfixturevalue(source)
    assert_no_time_travel(time_travel_gaps(bundle, truncator, full, sorted(full), tmp_path))


# --------------------------------------------------------------------------------------------- FHIR


@pytest.fixture(scope="module")
def fhir_stay(tmp_path_factory) -> tuple[Path, dict[str, Any], list[str], list[str]]:
    """Synthea's only inpatient stay (30 h) of a living patient, with six lab Observations moved into its
    first 24 h: all taken before the prediction time, three of them issued only after it. Also a
    Condition with an onset in the stay, recorded after the prediction time. Returns the file, the
    bundle, and the lab keys issued in time and late."""
    data = json.loads((require_data("ehr/fhir/synthea-r4-bundles") / TONY).read_text())
    resources = [e["resource"] for e in data["entry"]]
    stay = next(r for r in resources if r["resourceType"] == "Encounter" and r["class"]["code"] == "IMP")
    admit = fhir_time(stay["period"]["start"])
    cutoff = admit + timedelta(hours=PREDICTION_HOURS)
    stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S+00:00")  # noqa: E731
    for r in resources:
        if r["resourceType"] == "Patient":
            r.pop("deceasedDateTime", None)  # Synthea has him die at admission: alive here
    labs = [r for r in resources if r["resourceType"] == "Observation" and "valueQuantity" in r]
    chosen, early, late = {}, [], []
    for r in labs:  # six distinct codes
        chosen.setdefault(r["code"]["coding"][0]["code"], r)
    hours = timedelta(hours=1)
    for k, r in enumerate(list(chosen.values())[:6]):
        r["encounter"] = {"reference": f"urn:uuid:{stay['id']}"}
        r["effectiveDateTime"] = stamp(admit + (2 + 3 * k) * hours)
        r["issued"] = stamp(cutoff + hours if k % 2 else admit + (2 + 3 * k) * hours + hours / 3)
        (late if k % 2 else early).append(f"LOINC//{r['code']['coding'][0]['code']}")
    condition = json.loads(json.dumps(next(r for r in resources if r["resourceType"] == "Condition")))
    condition.update(
        id="late-condition",
        encounter={"reference": f"urn:uuid:{stay['id']}"},
        onsetDateTime=stamp(admit + hours),
        recordedDate=stamp(cutoff + 2 * hours),
    )
    data["entry"].append({"fullUrl": "urn:uuid:late-condition", "resource": condition})
    path = tmp_path_factory.mktemp("tt-fhir") / "stay.json"
    path.write_text(json.dumps(data))
    return path, data, early, late


@pytest.fixture(scope="module")
def fhir_bundle(fhir_stay, tmp_path_factory) -> Bundle:
    """A bundle built directly (the FHIR sample is too small to train on) whose vocabularies hold every
    code of the edited data, with seeded random linear weights: any code that reaches it moves the
    prediction."""
    import torch

    from medlearn.ehr.features import DIAGNOSIS_SYSTEMS, NUMERIC_SYSTEMS, Featurize
    from medlearn.ehr.io import read_source
    from medlearn.engine.data import Preprocessing
    from medlearn.engine.models import build_model
    from medlearn.registry import task_class

    events = read_source(fhir_stay[0], cache=False).events.collect()
    keys = events.select(
        system=pl.col("code_system"), key=pl.col("code_system") + "//" + pl.col("code")
    ).unique()
    labs = sorted(keys.filter(pl.col("system").is_in(NUMERIC_SYSTEMS))["key"].to_list())
    params = {
        "n_bins": 12,
        "lab_keys": labs,
        "lab_low": [-1e9] * len(labs),
        "lab_high": [1e9] * len(labs),
        "lab_mean": [0.0] * len(labs),
        "lab_std": [100.0] * len(labs),
        "code_keys": sorted(keys.filter(~pl.col("system").is_in(NUMERIC_SYSTEMS))["key"].to_list()),
        "history_keys": sorted(keys.filter(pl.col("system").is_in(DIAGNOSIS_SYSTEMS))["key"].to_list()),
        "admission_types": ["IMP"],
        "age_mean": 50.0,
        "age_std": 20.0,
    }
    task = task_class("los_classification")({"prediction_hours": PREDICTION_HOURS, "bin_hours": 2.0})
    torch.manual_seed(0)
    model, kwargs = build_model(
        "linear_baseline",
        {},
        {"in_features": Featurize(**params).n_features, "out_channels": len(task.class_names)},
    )
    meta = meta_for_task(task, "linear_baseline", kwargs)
    spec = [{"name": "ehr_featurize", "params": params}]
    return Bundle(tmp_path_factory.mktemp("tt-fhir-bundle"), meta, task, model.eval(), Preprocessing(spec))


def test_fhir_observations_count_from_when_they_were_issued(fhir_stay, fhir_bundle, tmp_path):
    path, data, early, late = fhir_stay
    full = predictions(fhir_bundle, path)
    assert len(full) == 1  # the one inpatient stay
    ((unit_id, (expected, details)),) = full.items()
    unit = Unit.from_record({"unit": unit_id, "details": details})
    copy = tmp_path / "stay.json"
    copy.write_text(json.dumps(truncate_fhir(data, unit)))
    got = predictions(fhir_bundle, copy)
    assert unit_id in got, "the truncated copy no longer predicts the unit"
    assert_no_time_travel({unit_id: float(np.max(np.abs(got[unit_id][0] - expected)))})
    raw = fhir_bundle.task.load_inputs([path]).units[0].raw  # the labs issued in time do reach the unit
    assert set(early) <= set(raw["lab_keys"]) and not set(late) & set(raw["lab_keys"])
    assert not raw["history"]  # nor the Condition recorded after the prediction time
