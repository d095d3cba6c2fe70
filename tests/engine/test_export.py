"""ONNX export (issue 15, item 7): onnxruntime predicts what torch predicts (calibration folded in) for an
imaging, an ECG, an EHR sequence and a gradient-boosting bundle; the export is recorded in the bundle and
its manifest; ECG and EHR bundles predict through onnxruntime in a process where torch cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import medlearn
from medlearn.engine.bundle import load_bundle
from medlearn.engine.export import MAX_ABS_DIFF, export_onnx
from medlearn.engine.onnx_runtime import load_onnx_bundle
from medlearn.errors import BundleError, InputError


@pytest.fixture(scope="module")
def ehr_data(tmp_path_factory) -> Path:
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    return write_synthetic_mimic4(tmp_path_factory.mktemp("ehr") / "data", n_patients=40, seed=0)


@pytest.fixture(scope="module")
def ehr_lstm(ehr_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lstm") / "run"
    return medlearn.train(
        "ehr_los_mimic4", out=out, data=ehr_data, overrides=["train.epochs=1"], device="cpu"
    ).bundle


@pytest.fixture(scope="module")
def ehr_gbm(ehr_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gbm") / "run"
    return medlearn.train("ehr_los_mimic4_gbm", out=out, data=ehr_data, device="cpu").bundle


@pytest.fixture(scope="module")
def ecg(tmp_path_factory) -> tuple[Path, list[Path]]:
    from medlearn.engine.run import train_experiment
    from medlearn.signals.demo import demo_config
    from medlearn.signals.synthetic import write_synthetic_cinc

    folder = tmp_path_factory.mktemp("ecg")
    data = write_synthetic_cinc(folder / "data", n_records=40)
    bundle = train_experiment(demo_config(data, epochs=2), folder / "run", device="cpu").bundle
    return bundle, sorted(data.glob("*.hea"))[:6]


@pytest.fixture(scope="module")
def ct(tmp_path_factory) -> tuple[Path, list[Path], dict[str, str]]:
    """An untrained CT-nodule CNN over one phantom study, saved as a real bundle."""
    from medlearn.engine.artifacts import save_bundle
    from medlearn.engine.data import Preprocessing
    from medlearn.engine.models import build_model
    from medlearn.registry import task_class
    from tests.engine.minimal_meta import meta_for_task
    from tests.test_task_contract import ct_phantom

    folder = tmp_path_factory.mktemp("ct")
    fixture = ct_phantom(folder / "data")
    task = task_class("ct_nodule_malignancy")(fixture.options)
    model, kwargs = build_model("cnn3d", {}, task.model_kwargs("cnn3d"))
    pre = Preprocessing(task.preprocessing_spec("cnn3d"))
    unit = task.load_inputs(fixture.predict_paths, task.predict_options(**fixture.predict_flags)).units[0]
    meta = meta_for_task(task, "cnn3d", kwargs)
    meta.preprocessing = pre.spec
    meta.input_shape = list(np.shape(pre(unit.raw)))
    return save_bundle(folder / "bundle", model.eval(), meta), fixture.predict_paths, fixture.predict_flags


def _same_records(torch_records: list[dict], onnx_records: list[dict]) -> None:
    """The same units predicted with the same labels and probabilities (within MAX_ABS_DIFF)."""
    assert len(torch_records) == len(onnx_records) > 0

    def by_unit(records: list[dict], skipped: bool) -> dict[str, dict]:
        return {
            (r["skipped"]["unit"] if skipped else r["unit"]): r
            for r in records
            if ("skipped" in r) == skipped
        }

    assert by_unit(torch_records, True) == by_unit(onnx_records, True)
    theirs = by_unit(onnx_records, False)
    ours = by_unit(torch_records, False)
    assert set(ours) == set(theirs) and ours
    for unit, a in ours.items():
        b = theirs[unit]
        assert a["label"] == b["label"]
        if "probabilities" in a:
            for name, p in a["probabilities"].items():
                assert b["probabilities"][name] == pytest.approx(p, abs=MAX_ABS_DIFF)
        else:
            assert b["probability"] == pytest.approx(a["probability"], abs=MAX_ABS_DIFF)


def test_ehr_sequence_bundle_exports_and_onnxruntime_predicts_the_same(ehr_lstm, ehr_data):
    record = export_onnx(ehr_lstm, int8=True)
    assert record["file"] == "model.onnx" and record["max_abs_diff"] <= MAX_ABS_DIFF
    assert record["int8"]["label_agreement"] >= 0.99
    meta = json.loads((ehr_lstm / "bundle.json").read_text())
    assert meta["exports"]["onnx"]["file"] == "model.onnx"
    manifest = json.loads((ehr_lstm / "manifest.json").read_text())
    assert {"model.onnx", "model.int8.onnx"} <= set(manifest["files"])
    _same_records(load_bundle(ehr_lstm).predict(ehr_data), load_onnx_bundle(ehr_lstm).predict(ehr_data))


def test_gradient_boosting_bundle_exports_through_its_tensor_form(ehr_gbm, ehr_data):
    record = export_onnx(ehr_gbm)
    assert record["max_abs_diff"] <= MAX_ABS_DIFF
    _same_records(load_bundle(ehr_gbm).predict(ehr_data), load_onnx_bundle(ehr_gbm).predict(ehr_data))


def test_ecg_bundle_exports_with_real_records_as_examples(ecg):
    bundle, records = ecg
    record = export_onnx(bundle, int8=True, examples=records)
    assert record["checked_on"] == f"{len(records)} example inputs" and record["max_abs_diff"] <= MAX_ABS_DIFF
    assert record["int8"]["label_agreement"] >= 0.99
    # int8 is calibrated, and its agreement measured, on the bundle's own validation split
    n_val = len(json.loads((bundle / "bundle.json").read_text())["splits"]["val"])
    assert record["int8"]["calibrated_on"] == f"{n_val} validation units"
    assert record["int8"]["quantization"].startswith(("static QDQ", "dynamic"))
    _same_records(load_bundle(bundle).predict(records), load_onnx_bundle(bundle).predict(records))


def test_ct_bundle_exports_and_carries_its_contract_in_the_onnx_metadata(ct, tmp_path):
    import onnx

    bundle, paths, flags = ct
    target = tmp_path / "edge" / "nodule.onnx"
    record = export_onnx(bundle, out=target)
    assert record["file"] == str(target) and record["max_abs_diff"] <= MAX_ABS_DIFF
    props = {p.key: p.value for p in onnx.load(str(target)).metadata_props}
    assert props["medlearn.task"] == "ct_nodule_malignancy" and props["medlearn.kind"] == "binary"
    assert json.loads(props["medlearn.class_names"]) == ["benign", "malignant"]
    assert json.loads(props["medlearn.preprocessing"])[0]["name"]
    assert len(props["medlearn.bundle_manifest_sha256"]) == 64
    # written outside the bundle: the bundle itself is unchanged and does not point at it
    assert "onnx" not in json.loads((bundle / "bundle.json").read_text())["exports"]
    with pytest.raises(BundleError, match="has no an ONNX export|has no an|run medlearn export"):
        load_onnx_bundle(bundle)


def test_a_tampered_onnx_file_is_refused(ehr_lstm):
    export_onnx(ehr_lstm)
    onnx_file = ehr_lstm / "model.onnx"
    original = onnx_file.read_bytes()
    data = bytearray(original)
    data[-10] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.onnx: SHA-256 differs"):
        load_onnx_bundle(ehr_lstm)
    with pytest.raises(BundleError, match="model.onnx: SHA-256 differs"):
        export_onnx(ehr_lstm)  # a tampered bundle is not exported (or re-signed) either
    onnx_file.write_bytes(original)


TORCH_FREE = """
import importlib.abc, json, sys


class NoTorch(importlib.abc.MetaPathFinder):  # as on a device where torch is not installed
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}")


sys.meta_path.insert(0, NoTorch())
from medlearn.engine.onnx_runtime import load_onnx_bundle

records = load_onnx_bundle(sys.argv[1]).predict(sys.argv[2:])
assert "torch" not in sys.modules
print(json.dumps([r["label"] for r in records if "label" in r]))
"""


@pytest.mark.parametrize("which", ["ecg", "ehr"])
def test_ecg_and_ehr_bundles_predict_through_onnxruntime_without_torch(which, ecg, ehr_lstm, ehr_data):
    if which == "ecg":
        bundle, inputs = ecg[0], [str(p) for p in ecg[1]]
    else:
        bundle, inputs = ehr_lstm, [str(ehr_data)]
    export_onnx(bundle)
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(bundle), *inputs],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MEDLEARN_CACHE": os.environ.get("MEDLEARN_CACHE", "")},
    )
    assert done.returncode == 0, done.stderr
    labels = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(labels) == sorted(r["label"] for r in load_bundle(bundle).predict(inputs) if "label" in r)


def test_the_export_command_prints_what_it_exported_and_refuses_other_formats(ehr_gbm, tmp_path):
    from typer.testing import CliRunner

    from medlearn.cli import app

    runner = CliRunner()
    done = runner.invoke(
        app, ["export", str(ehr_gbm), "--out", str(tmp_path / "m.onnx"), "--json", "--quiet"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["max_abs_diff"] <= MAX_ABS_DIFF and (tmp_path / "m.onnx").is_file()
    bad = runner.invoke(app, ["export", str(ehr_gbm), "--format", "tflite"])
    assert bad.exit_code == 2 and "medlearn exports onnx" in bad.output


def test_int8_without_the_training_data_asks_for_it(ehr_gbm, tmp_path):
    with pytest.raises(InputError, match="pass --data DIR"):
        export_onnx(ehr_gbm, out=tmp_path / "m.onnx", int8=True, data=tmp_path / "nowhere")


def test_the_export_command_says_how_int8_was_quantized_and_calibrated(ehr_lstm, tmp_path):
    """The human-readable line of ``export --int8`` (not only --json): it once read a key the record lacks."""
    from typer.testing import CliRunner

    from medlearn.cli import app

    done = CliRunner().invoke(app, ["export", str(ehr_lstm), "--out", str(tmp_path / "m.onnx"), "--int8"])
    assert done.exit_code == 0, done.output
    n_val = len(json.loads((ehr_lstm / "bundle.json").read_text())["splits"]["val"])
    assert f"calibrated on {n_val} validation units" in done.output
    assert "label agreement" in done.output and (tmp_path / "m.int8.onnx").is_file()
