"""EHR length of stay end to end through the CLI on the real demos: patient-level splits, ordinal
metrics with CIs, bundle reload, and bad inputs as one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medlearn.cli import app
from tests.conftest import require_data

runner = CliRunner()
FAST = ["--quiet", "--set", "train.epochs=3", "--set", "eval.n_bootstrap=100"]


@pytest.fixture(scope="module")
def mimic4_run(tmp_path_factory) -> Path:
    require_data("ehr/mimic-iv-demo")
    out = tmp_path_factory.mktemp("ehr") / "run"
    result = runner.invoke(app, ["train", "ehr_los_mimic4", "--out", str(out), *FAST], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_los_classification_reports_ordinal_metrics_with_cis(mimic4_run):
    metrics = json.loads((mimic4_run / "metrics.json").read_text())
    assert (metrics["task"], metrics["unit"], metrics["split"]) == ("los_classification", "admission", "test")
    for name in ("kappa_linear", "mad", "accuracy", "macro_f1"):
        assert metrics["metrics"][name]["ci95"] is not None, name
    assert -1 <= metrics["metrics"]["kappa_linear"]["value"] <= 1
    assert set(metrics["per_class"]) == {"<1d", "1-2d", "2-3d", "3-4d", "4-5d", "5-6d", "6-7d", "7-8d", "8-14d", ">=14d"}


def test_no_patient_is_in_two_splits(mimic4_run):
    meta = json.loads((mimic4_run / "bundle" / "bundle.json").read_text())
    with (mimic4_run / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    patients = {s: {r["group"] for r in rows if r["split"] == s} for s in ("val", "test")}
    assert patients["val"] and patients["test"] and not patients["val"] & patients["test"]
    assert sum(len(ids) for ids in meta["splits"].values()) == 245


def test_bundle_carries_the_fitted_featurisation_and_reproduces_predictions(mimic4_run):
    import medlearn
    from medlearn.registry import task_class

    bundle = medlearn.load_bundle(mimic4_run / "bundle")
    (step,) = bundle.meta["preprocessing"]
    assert step["name"] == "ehr_featurize" and len(step["params"]["lab_keys"]) == 50
    table = task_class("los_classification")().load(require_data("ehr/mimic-iv-demo"))
    test_ids = set(bundle.meta["splits"]["test"])
    index = [i for i, uid in enumerate(table.ids) if uid in test_ids]
    probs = bundle.predict_raw([table.raw[i] for i in index])
    with (mimic4_run / "predictions.csv").open() as fh:
        saved = {r["id"]: r for r in csv.DictReader(fh) if r["split"] == "test"}
    expected = np.array([[float(saved[table.ids[i]][f"prob_{c}"]) for c in bundle.class_names] for i in index])
    np.testing.assert_allclose(probs, expected, atol=1e-6)


@pytest.mark.parametrize("config, root", [("ehr_los_mimic3", "ehr/mimic-iii-demo"), ("ehr_los_eicu", "ehr/eicu-demo")])
def test_other_sources_train_with_the_same_task(config, root, tmp_path):
    require_data(root)
    result = runner.invoke(app, ["train", config, "--out", str(tmp_path / "run"), *FAST], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]["kappa_linear"]["value"] is not None


def test_missing_admittime_is_one_line_naming_file_and_column(tmp_path):
    from tests.ehr.helpers import MIMIC4_CORE, copy_tables

    src = require_data("ehr/mimic-iv-demo")
    copy_tables(src, tmp_path / "m4", MIMIC4_CORE, edit={"hosp/admissions.csv.gz": lambda df: df.drop("admittime")})
    result = runner.invoke(app, ["train", "ehr_los_mimic4", "--data", str(tmp_path / "m4"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].endswith("admissions.csv.gz: missing required column 'admittime'")


def test_report_has_the_data_quality_section(mimic4_run):
    report = (mimic4_run / "report.html").read_text()
    assert "Data quality: mimic4" in report
    assert "2,893 non-numeric lab result(s)" in report  # kept as text, said so
    assert "icu/chartevents.csv.gz absent" in report
    row = report[report.index("MIMIC4_LABITEM//51249"):][:400]  # MCHC is reported in % and g/dL
    assert "⚠" in row
