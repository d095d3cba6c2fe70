"""The typed bundle contract: format v1 bundles migrate and predict the same numbers, v2 round-trips, and
a bundle.json with an unknown, missing or mistyped field is a BundleError naming the field."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medlearn.engine.artifacts import FORMAT_VERSION, BundleMeta, save_bundle
from medlearn.engine.bundle import load_bundle
from medlearn.engine.integrity import write_manifest
from medlearn.errors import BundleError

V1 = Path(__file__).parents[1] / "fixtures" / "bundle_v1_ehr_linear"


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(V1, folder)
    return folder


def _edit(folder: Path, change) -> None:
    raw = json.loads((folder / "bundle.json").read_text())
    replaced = change(raw)  # edits in place; a lambda returning a list replaces the whole document
    raw = replaced if isinstance(replaced, list) else raw
    (folder / "bundle.json").write_text(json.dumps(raw))


def test_a_v1_bundle_is_read_through_the_migration_with_its_task_target():
    bundle = load_bundle(V1)
    meta = bundle.meta
    assert isinstance(meta, BundleMeta) and meta.format_version == FORMAT_VERSION == 2
    raw = json.loads((V1 / "bundle.json").read_text())
    assert raw["format_version"] == 1 and "kind" in raw and "target" not in raw
    assert meta.target.kind == "multiclass" and meta.class_names == raw["class_names"]
    assert meta.unit == "admission"
    # what v1 never recorded comes from the task: LOS bins are ordered
    assert meta.target.ordinal and meta.target.monitor == raw["training"]["monitor"] == "kappa_linear"
    assert meta.data.n_train == len(raw["splits"]["train"]) and meta.data.n_units == raw["data"]["n_units"]
    assert meta.training.best_epoch == raw["training"]["best_epoch"]


def test_a_migrated_v1_bundle_predicts_what_the_v1_code_predicted(tmp_path):
    from medlearn.ehr.synthetic import write_synthetic_mimic4
    from medlearn.engine.evaluate import evaluate_bundle

    data = write_synthetic_mimic4(tmp_path / "data", n_patients=60, seed=0)
    out = tmp_path / "eval"
    out.mkdir()
    evaluate_bundle(V1, out, data_path=data, split="test", device="cpu")
    with (V1 / "predictions_test_v1.csv").open() as f:
        before = {r["id"]: r for r in csv.DictReader(f)}
    with (out / "predictions.csv").open() as f:
        after = {r["id"]: r for r in csv.DictReader(f)}
    assert set(after) == set(before) and len(before) == 31
    columns = [c for c in next(iter(before.values())) if c.startswith("prob_")]
    for uid, row in before.items():
        np.testing.assert_allclose(
            [float(after[uid][c]) for c in columns], [float(row[c]) for c in columns], atol=2e-6
        )
        assert after[uid]["prediction"] == row["prediction"]


def test_a_v2_bundle_round_trips_and_keeps_the_same_predictions(tmp_path):
    old = load_bundle(V1)
    save_bundle(tmp_path / "v2", old.model, old.meta)
    raw = json.loads((tmp_path / "v2" / "bundle.json").read_text())
    assert raw["format_version"] == 2 and raw["target"]["kind"] == "multiclass"
    assert not {"kind", "class_names", "unit", "n_train"} & set(raw)
    new = load_bundle(tmp_path / "v2")
    assert new.meta == old.meta
    assert (tmp_path / "v2" / "model_card.md").read_text().startswith("# Model card: los_classification")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(surprise=1), "unknown field 'surprise'"),
        (lambda m: m["training"].pop("best_epoch"), "missing field 'training.best_epoch'"),
        (lambda m: m["calibration"].update(temperature="abc"), "field 'calibration.temperature'"),
        (lambda m: m["data"].pop("fingerprint"), "missing field 'data.fingerprint'"),
        (lambda m: m.pop("task"), "missing field 'task'"),
        (lambda m: [m], "holds a list, not an object"),
        (lambda m: m.update(format_version=3), "unsupported bundle format 'medlearn-bundle' v3"),
        (lambda m: m.update(format_version="1"), "unsupported bundle format"),
    ],
)
def test_a_bad_field_is_a_bundle_error_naming_it(v1_copy, change, message):
    _edit(v1_copy, change)
    with pytest.raises(BundleError, match="bundle.json") as caught:
        load_bundle(v1_copy)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_field_in_a_v2_bundle_is_named_too(tmp_path):
    old = load_bundle(V1)
    folder = save_bundle(tmp_path / "v2", old.model, old.meta)
    _edit(folder, lambda m: m["target"].update(kind="ranking"))
    write_manifest(folder)  # an intact but invalid bundle: the schema names the field
    with pytest.raises(BundleError, match=r"field 'target.kind'"):
        load_bundle(folder)


def test_a_bundle_naming_out_of_tree_code_is_refused_unless_allowed(v1_copy):
    _edit(v1_copy, lambda m: m["model"].update(name="hospital_ext.models:tiny_mlp"))
    with pytest.raises(
        BundleError, match=r"hospital_ext.models:tiny_mlp.*allow_external=True.*--allow-external"
    ):
        load_bundle(v1_copy)


# --- integrity (issue 14): a manifest of SHA-256s, checked on every load; optional Ed25519 signatures


@pytest.fixture
def v2_bundle(tmp_path: Path) -> Path:
    old = load_bundle(V1)
    return save_bundle(tmp_path / "v2", old.model, old.meta)


def test_a_v2_bundle_carries_a_manifest_of_every_file(v2_bundle):
    from medlearn.engine.integrity import sha256_file

    manifest = json.loads((v2_bundle / "manifest.json").read_text())
    assert set(manifest["files"]) == {"bundle.json", "model.safetensors", "model_card.md", "model_card.json"}
    assert manifest["files"]["model.safetensors"] == sha256_file(v2_bundle / "model.safetensors")


def test_a_v1_bundle_without_a_manifest_loads_with_a_warning(caplog):
    with caplog.at_level("WARNING", logger="medlearn.engine.integrity"):
        load_bundle(V1)
    assert "has no manifest.json; its files are not verified" in caplog.text


def _flip_a_byte(path: Path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (lambda b: _flip_a_byte(b / "model.safetensors"), "model.safetensors"),
        (
            lambda b: _edit(b, lambda m: m["target"]["class_names"].reverse()),
            "bundle.json",
        ),
        (
            lambda b: _edit(b, lambda m: m["preprocessing"][0]["params"].update(max_codes=1)),
            "bundle.json",
        ),
        (lambda b: (b / "model_card.md").write_text("# a better model\n"), "model_card.md"),
        (lambda b: (b / "model.safetensors").unlink(), "model.safetensors"),
        (lambda b: (b / "manifest.json").unlink(), "no manifest.json"),
    ],
)
def test_a_tampered_bundle_is_refused_naming_the_file(v2_bundle, tamper, named):
    tamper(v2_bundle)
    with pytest.raises(BundleError) as caught:
        load_bundle(v2_bundle)
    message = str(caught.value)
    assert named in message and "\n" not in message


def test_edited_class_names_are_refused_even_with_a_recomputed_manifest(v2_bundle):
    _edit(v2_bundle, lambda m: m["target"].update(class_names=m["target"]["class_names"][:-1]))
    write_manifest(v2_bundle)  # someone who knows the format covers their tracks
    with pytest.raises(BundleError, match="is not what task los_classification predicts"):
        load_bundle(v2_bundle)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m["calibration"].update(temperature=0.0), "calibration.temperature"),
        (lambda m: m["calibration"].update(temperature=-2.0), "calibration.temperature"),
        (
            lambda m: m.update(operating_point={"threshold": "abc", "chosen_on": "val", "rule": "x"}),
            "threshold",
        ),
        (
            lambda m: m.update(operating_point={"threshold": 1.5, "chosen_on": "val", "rule": "x"}),
            "threshold",
        ),
        (
            lambda m: m.update(prediction_interval={"coverage": 0.9, "half_width": -1, "method": "x"}),
            "half_width",
        ),
    ],
)
def test_an_impossible_value_is_named_even_in_an_intact_bundle(v2_bundle, change, field):
    _edit(v2_bundle, change)
    write_manifest(v2_bundle)
    with pytest.raises(BundleError, match=field):
        load_bundle(v2_bundle)


def test_a_signed_bundle_loads_only_with_the_key_that_signed_it(v2_bundle, tmp_path):
    from medlearn.engine.integrity import generate_keypair, sign_bundle

    private, public = generate_keypair(tmp_path / "keys")
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(BundleError, match="not signed"):
        load_bundle(v2_bundle, public_key=public)
    sign_bundle(v2_bundle, private)
    assert load_bundle(v2_bundle, public_key=public).kind == "multiclass"
    _, other = generate_keypair(tmp_path / "other")
    with pytest.raises(BundleError, match="does not verify"):
        load_bundle(v2_bundle, public_key=other)
    # a re-signed manifest after tampering still fails on the file itself
    _flip_a_byte(v2_bundle / "model.safetensors")
    with pytest.raises(BundleError, match="model.safetensors: SHA-256 differs"):
        load_bundle(v2_bundle, public_key=public)


def test_a_model_giving_nan_is_an_error_naming_the_bundle(v2_bundle):
    import torch

    bundle = load_bundle(v2_bundle)
    with torch.no_grad():
        next(bundle.model.parameters()).fill_(float("nan"))
    with pytest.raises(BundleError, match=r"v2: the model's output is NaN or inf for input\(s\) \[0, 1\]"):
        bundle.predict_arrays([np.zeros((12, bundle.meta.model.params["in_features"]), np.float32)] * 2)
