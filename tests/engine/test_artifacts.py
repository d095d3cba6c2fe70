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
    with pytest.raises(BundleError, match=r"field 'target.kind'"):
        load_bundle(folder)


def test_a_bundle_naming_out_of_tree_code_is_refused_unless_allowed(v1_copy):
    _edit(v1_copy, lambda m: m["model"].update(name="hospital_ext.models:tiny_mlp"))
    with pytest.raises(
        BundleError, match=r"hospital_ext.models:tiny_mlp.*allow_external=True.*--allow-external"
    ):
        load_bundle(v1_copy)
