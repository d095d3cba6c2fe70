"""``medlearn explain`` end to end on trained bundles: a picture per unit, explanations.json with the
explained class, where the evidence is and the checks; bad input is one line and exit code 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medlearn.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["explain", *map(str, args), "--quiet"])


def test_ct_volume_gets_a_slice_montage_per_method_and_the_checks(ct, tmp_path):
    out = tmp_path / "out"
    result = run(
        ct.bundle,
        ct.series,
        f"--nodule={ct.nodule}",
        "--method",
        "gradcam",
        "--method",
        "gradcam++",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "model randomisation" in result.stdout and "deletion AUC" in result.stdout
    data = json.loads((out / "explanations.json").read_text())
    assert data["layout"] == "image" and data["methods"] == ["gradcam", "gradcam++"]
    for unit in data["units"]:
        assert (out / unit["picture"]).stat().st_size > 5000
        assert unit["target_class"] == unit["predicted_class"] in ("benign", "malignant")
        assert len(unit["peak_index"]) == 3  # slice, row, column of the 16-voxel cube
        assert unit["model_randomisation"]["steps"] and "deletion_auc" in unit["faithfulness"]


def test_target_chooses_the_class_and_bad_input_is_one_line(ct, tmp_path):
    out = tmp_path / "t"
    result = run(
        ct.bundle, ct.series, f"--nodule={ct.nodule}", "--target", "malignant", "--no-checks", "--out", out
    )
    assert result.exit_code == 0, result.output
    unit = json.loads((out / "explanations.json").read_text())["units"][0]
    assert unit["target_class"] == "malignant" and "faithfulness" not in unit
    again = run(ct.bundle, ct.series, f"--nodule={ct.nodule}", "--out", out)
    assert again.exit_code == 2 and "--force" in again.output
    for bad, said in [
        (["--method", "saliency"], "--method saliency"),
        (["--method", "shapley", "--target", "cancer"], "--target cancer"),
        (["--fs", "300"], "--fs"),
    ]:
        result = run(ct.bundle, ct.series, f"--nodule={ct.nodule}", *bad, "--out", tmp_path / "x", "--force")
        assert result.exit_code == 2 and said in result.output, result.output
    missing = run(ct.bundle, tmp_path / "nowhere", "--out", tmp_path / "y")
    assert missing.exit_code == 2 and "no such file" in missing.output


@pytest.mark.slow
def test_ecg_strips_name_the_class_and_the_time_ranges(ecg, tmp_path):
    bundle, records = ecg
    out = tmp_path / "ecg"
    result = run(bundle, *records, "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanations.json").read_text())
    assert data["layout"] == "signal" and data["methods"] == ["integrated_gradients"]
    assert len(data["units"]) == len(records)
    for unit in data["units"]:
        assert (out / unit["picture"]).is_file()
        ranges = unit["top_time_ranges"]
        assert len(ranges) == 3 and all(0 <= r["start_s"] < r["end_s"] <= 20 for r in ranges)
        assert unit["target_class"] in ("Normal", "AF", "Other", "Noisy")


@pytest.mark.slow
def test_ehr_sequence_heatmaps_name_features_with_units(ehr, tmp_path):
    out = tmp_path / "lstm"
    result = run(ehr["lstm"], ehr["data"], "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanations.json").read_text())
    assert data["layout"] == "sequence" and data["methods"] == ["integrated_gradients"]
    top = data["units"][0]["top_features"]
    assert top and all(f["unit"] and f["peak_bin"].endswith("h") for f in top)


@pytest.mark.slow
def test_gradient_boosting_gets_shapley_contributions(ehr, tmp_path):
    out = tmp_path / "gbm"
    result = run(ehr["gbm"], ehr["data"], "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanations.json").read_text())
    assert data["methods"] == ["shapley"]
    assert data["summary"]["shapley"]["checked"] > 0
    refused = run(ehr["gbm"], ehr["data"], "--method", "integrated_gradients", "--out", tmp_path / "z")
    assert refused.exit_code == 2 and "does not apply" in refused.output
