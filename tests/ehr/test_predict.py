"""`medlearn predict` for patients in hospital: FHIR bundles, unknown codes, explanations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medlearn.cli import app
from tests.conftest import require_data

runner = CliRunner()
TONY = "Tony_Beer_bb8cd3e5-8910-4eea-bbc6-3f64a4a655b8.json"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    require_data("ehr/mimic-iv-demo")
    out = tmp_path_factory.mktemp("ehrp") / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "ehr_los_mimic4",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "train.epochs=2",
            "--set",
            "eval.n_bootstrap=20",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return out / "bundle"


@pytest.fixture
def ongoing_inpatient(tmp_path) -> Path:
    """Synthea's only inpatient stay, made an ongoing admission of a living patient."""
    source = require_data("ehr/fhir/synthea-r4-bundles") / TONY
    data = json.loads(source.read_text())
    for entry in data["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource.pop("deceasedDateTime", None)
        if resource["resourceType"] == "Encounter" and resource["class"]["code"] == "IMP":
            resource["period"].pop("end")
    path = tmp_path / "inpatient.json"
    path.write_text(json.dumps(data))
    return path


def predict(*args: object) -> list[dict]:
    result = runner.invoke(app, ["predict", *map(str, args), "--json", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_fhir_inpatient_gets_a_prediction_an_interval_and_honest_warnings(bundle, ongoing_inpatient):
    (record,) = predict(bundle, ongoing_inpatient)
    assert record["label"] in record["probabilities"]
    assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    lo, hi = record["explanation"]["remaining_los_days_interval"]
    assert lo == 0 or lo >= 1
    assert any("unknown to this model" in w for w in record["warnings"])  # SNOMED/LOINC vs MIMIC's codes
    assert record["explanation"]["top_features"]
    assert record["details"]["prediction_time"] == "1989-01-09 00:41:27"


def test_patients_not_in_hospital_at_the_prediction_time_are_skipped_with_a_reason(bundle):
    records = predict(bundle, require_data("ehr/fhir/synthea-r4-bundles") / TONY)
    assert [r["skipped"]["reason"] for r in records] == ["not in hospital and alive 24 h after admission"]
    folder = predict(bundle, require_data("ehr/fhir/synthea-r4-bundles"))
    assert all("skipped" in r for r in folder)


def test_a_mimic_folder_predicts_every_admission_with_known_codes(bundle):
    records = predict(bundle, require_data("ehr/mimic-iv-demo"))
    predicted = [r for r in records if "probabilities" in r]
    assert len(predicted) == 245
    silent = [r for r in predicted if any("no code" in w for w in r.get("warnings", []))]
    assert len(silent) < 10  # the model's own vocabulary: almost every admission has known codes


def test_regression_bundle_gives_a_value_and_a_non_negative_interval(ongoing_inpatient, tmp_path):
    out = tmp_path / "reg"
    trained = runner.invoke(
        app,
        [
            "train",
            "ehr_los_regression_mimic4",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "train.epochs=2",
            "--set",
            "eval.n_bootstrap=20",
        ],
        catch_exceptions=False,
    )
    assert trained.exit_code == 0, trained.output
    meta = json.loads((out / "bundle" / "bundle.json").read_text())
    assert meta["prediction_interval"]["coverage"] == 0.9 and meta["prediction_interval"]["half_width"] > 0
    (record,) = predict(out / "bundle", ongoing_inpatient)
    lo, hi = record["interval"]
    assert 0.0 <= lo <= record["value"] <= hi
    assert hi - record["value"] == pytest.approx(meta["prediction_interval"]["half_width"], abs=1e-5)


def test_gradient_boosting_bundle_reloads_and_explains_by_occlusion(ongoing_inpatient, tmp_path):
    out = tmp_path / "gbm"
    trained = runner.invoke(
        app,
        [
            "train",
            "ehr_los_mimic4_gbm",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "model.params.max_iter=20",
            "--set",
            "eval.n_bootstrap=20",
        ],
        catch_exceptions=False,
    )
    assert trained.exit_code == 0, trained.output
    (record,) = predict(out / "bundle", ongoing_inpatient)
    assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert record["explanation"]["method"].startswith("occlusion")
    # this FHIR stay has no code the trees know; occluding its age/sex may move no leaf, so the features
    # that drive predictions are checked on MIMIC admissions, whose codes the trees split on
    explained = [
        r for r in predict(out / "bundle", require_data("ehr/mimic-iv-demo")) if "probabilities" in r
    ]
    assert sum(bool(r["explanation"]["top_features"]) for r in explained) > len(explained) / 2
    # the reloaded tensors give the scores written at training time
    evaluated = runner.invoke(
        app,
        ["evaluate", str(out / "bundle"), "--out", str(tmp_path / "ev"), "--quiet"],
        catch_exceptions=False,
    )
    assert evaluated.exit_code == 0, evaluated.output
    trained_metrics = json.loads((out / "metrics.json").read_text())
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["metrics"]["kappa_linear"]["value"] == pytest.approx(
        trained_metrics["metrics"]["kappa_linear"]["value"]
    )
