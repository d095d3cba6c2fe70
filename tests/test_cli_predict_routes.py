"""``medlearn predict`` routes (issues 14, 15): --runtime onnx gives the torch route's records, --fhir
prints a FHIR Bundle of RiskAssessments, --strict refuses what is flagged, --require-signature refuses an
unsigned bundle; evaluate and info take --require-signature too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import medlearn
from medlearn.cli import app
from tests.conftest import require_module


@pytest.fixture(scope="module")
def ehr_run(tmp_path_factory) -> tuple[Path, Path]:
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    folder = tmp_path_factory.mktemp("routes")
    data = write_synthetic_mimic4(folder / "data", n_patients=40, seed=0)
    bundle = medlearn.train(
        "ehr_los_mimic4", out=folder / "run", data=data, overrides=["train.epochs=1"], device="cpu"
    ).bundle
    return bundle, data


def _predict(*args: str) -> list | dict:
    done = CliRunner().invoke(app, ["predict", *args, "--quiet"])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_runtime_onnx_gives_the_records_of_the_torch_route(ehr_run):
    bundle, data = ehr_run
    export = CliRunner().invoke(app, ["export", str(bundle), "--quiet"])
    assert export.exit_code == 0, export.output
    torch_records = _predict(str(bundle), str(data), "--json")
    onnx_records = _predict(str(bundle), str(data), "--json", "--runtime", "onnx")
    labels = {r["unit"]: r["label"] for r in torch_records if "label" in r}
    assert labels and labels == {r["unit"]: r["label"] for r in onnx_records if "label" in r}
    wrong = CliRunner().invoke(app, ["predict", str(bundle), str(data), "--runtime", "tensorrt"])
    assert wrong.exit_code == 2 and "choose torch or onnx" in wrong.output


def test_fhir_prints_a_bundle_of_risk_assessments_referencing_mimic_subjects(ehr_run):
    require_module("fhir.resources")
    bundle, data = ehr_run
    fhir = _predict(str(bundle), str(data), "--fhir")
    records = _predict(str(bundle), str(data), "--json")
    predicted = [r for r in records if "label" in r]
    assert fhir["resourceType"] == "Bundle" and fhir["type"] == "collection"
    assert len(fhir["entry"]) == len(predicted) > 0
    first = fhir["entry"][0]["resource"]
    assert first["resourceType"] == "RiskAssessment"
    assert first["subject"]["identifier"]["system"] == "urn:medlearn:mimic4:subject_id"
    assert len(first["method"]["coding"][0]["version"]) == 12


def test_strict_refuses_what_is_flagged_and_the_default_flags_it(ehr_run, tmp_path):
    """A patient born after the admission (negative age) is flagged, and refused with --strict."""
    import polars as pl

    bundle, data = ehr_run
    copy = tmp_path / "data"
    import shutil

    shutil.copytree(data, copy)
    patients = copy / "hosp" / "patients.csv.gz"
    table = pl.read_csv(patients)
    table = table.with_columns(pl.lit(2300).alias("anchor_year"), pl.lit(20).alias("anchor_age"))
    table.write_csv(patients.with_suffix(""))
    patients.unlink()
    import gzip

    with open(patients.with_suffix(""), "rb") as raw, gzip.open(patients, "wb") as packed:
        packed.write(raw.read())
    patients.with_suffix("").unlink()
    flagged = _predict(str(bundle), str(copy), "--json")
    assert any("out_of_scope" in r for r in flagged)
    refused = _predict(str(bundle), str(copy), "--json", "--strict")
    assert any("refused" in r for r in refused) and not any("out_of_scope" in r for r in refused)


def test_require_signature_refuses_an_unsigned_bundle_and_accepts_a_signed_one(ehr_run, tmp_path):
    bundle, data = ehr_run
    runner = CliRunner()
    assert runner.invoke(app, ["keygen", "--out", str(tmp_path / "keys"), "--quiet"]).exit_code == 0
    public = str(tmp_path / "keys" / "public.pem")
    for command in (["info", str(bundle)], ["predict", str(bundle), str(data)]):
        done = runner.invoke(app, [*command, "--require-signature", public])
        assert done.exit_code == 2 and "not signed" in done.output
    assert (
        runner.invoke(app, ["sign", str(bundle), "--key", str(tmp_path / "keys" / "private.pem")]).exit_code
        == 0
    )
    done = runner.invoke(app, ["info", str(bundle), "--json", "--require-signature", public])
    assert done.exit_code == 0, done.output
    scored = runner.invoke(
        app,
        ["evaluate", str(bundle), "--out", str(tmp_path / "eval"), "--require-signature", public, "--quiet"],
    )
    assert scored.exit_code == 0, scored.output
