"""Out-of-tree extensions (``package.module:Name``) and missing optional extras, through the registry.

``tests/extensions/hospital_ext`` is a package outside medlearn with its own task, model and transform; a
config names them and they train, save a bundle and predict like built-in ones (issue 13 item 4). A
built-in name whose modality's extra is not installed is one line naming the extra (issue 13 item 8).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medlearn import registry
from medlearn.config import ExperimentConfig
from medlearn.errors import BundleError, ConfigError, MissingDependencyError

REPO = Path(__file__).resolve().parents[1]
EXTENSIONS = Path(__file__).resolve().parent / "extensions"


@pytest.fixture
def hospital_ext(monkeypatch: pytest.MonkeyPatch):
    """The example extension package, importable as an installed package would be."""
    monkeypatch.syspath_prepend(str(EXTENSIONS))
    from hospital_ext import task

    return task


def experiment(root: Path) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "name": "sepsis_flag",
            "task": "hospital_ext.task:SepsisFlag",
            "data": {"root": str(root), "split": {"val_fraction": 0.25, "test_fraction": 0.25, "seed": 0}},
            "model": {"name": "hospital_ext.models:tiny_mlp", "params": {"hidden": 8}},
            "train": {"epochs": 2, "batch_size": 16, "lr": 0.05, "scheduler": "none", "augment": False},
            "eval": {"n_bootstrap": 20},
        }
    )


@pytest.fixture(scope="module")
def sepsis_run(tmp_path_factory, one_torch_thread):
    """One tiny run of the out-of-tree task, model and transform, and new vitals to predict for."""
    from medlearn.engine.run import train_experiment

    root = tmp_path_factory.mktemp("ext")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXTENSIONS))
        from hospital_ext import task

        data = task.write_vitals(root / "vitals.csv")
        outputs = train_experiment(experiment(data), root / "run", device="cpu")
        new = task.write_vitals(root / "new.csv", n_patients=4, per_patient=2, seed=1, label=False)
    return outputs, new


def test_a_task_model_and_transform_from_outside_medlearn_train_and_predict(hospital_ext, sepsis_run):
    from medlearn.engine.bundle import load_bundle
    from medlearn.engine.validate import validate_experiment

    validate_experiment(experiment(Path("vitals.csv")))
    outputs, new = sepsis_run

    meta = json.loads((outputs.bundle / "bundle.json").read_text())
    assert meta["task"]["name"] == "hospital_ext.task:SepsisFlag"
    assert meta["model"]["name"] == "hospital_ext.models:tiny_mlp" and meta["model"]["params"]["hidden"] == 8
    assert [s["name"] for s in meta["preprocessing"]] == ["normalize", "hospital_ext.transforms:ClipOutliers"]
    assert outputs.metrics["metrics"]["auroc"]["value"] > 0.8  # lactate separates the classes

    records = load_bundle(outputs.bundle, allow_external=True).predict([new])
    assert len(records) == 8
    assert all(r["label"] in ("normal", "high") and 0 <= r["probability"] <= 1 for r in records)
    rows = new.read_text().splitlines()[1:]
    high = [r["probability"] for r, row in zip(records, rows) if float(row.split(",")[2]) > 2.5]
    normal = [r["probability"] for r, row in zip(records, rows) if float(row.split(",")[2]) < 1.8]
    assert high and normal and min(high) > max(normal)


def test_a_bundle_naming_out_of_tree_code_loads_only_when_allowed(hospital_ext, sepsis_run, tmp_path):
    """Loading such a bundle imports and runs the package it names: the user opts in (the API's
    ``allow_external=True``, the command's ``--allow-external``); otherwise one line says which names and how."""
    import medlearn
    from medlearn.cli import app
    from medlearn.engine.bundle import load_bundle

    outputs, new = sepsis_run
    for load in (load_bundle, medlearn.load_bundle):
        with pytest.raises(BundleError) as refused:
            load(outputs.bundle)
        message = str(refused.value)
        assert "\n" not in message and "hospital_ext.task:SepsisFlag" in message
        assert "allow_external=True" in message and "--allow-external" in message
    with pytest.raises(BundleError, match="allow_external=True"):
        medlearn.predict(outputs.bundle, new)
    assert len(medlearn.predict(outputs.bundle, new, allow_external=True)) == 8
    scored = medlearn.evaluate(outputs.bundle, out=tmp_path / "eval", device="cpu", allow_external=True)
    assert scored.metrics["metrics"]["auroc"]["value"] == outputs.metrics["metrics"]["auroc"]["value"]

    runner = CliRunner()
    refused_cli = runner.invoke(app, ["info", str(outputs.bundle)])
    assert refused_cli.exit_code == 2 and "--allow-external" in refused_cli.output
    assert runner.invoke(app, ["info", str(outputs.bundle), "--allow-external"]).exit_code == 0
    shown = runner.invoke(app, ["predict", str(outputs.bundle), str(new), "--json", "--allow-external"])
    assert shown.exit_code == 0, shown.output
    assert len(json.loads(shown.stdout)) == 8


def test_an_out_of_tree_name_is_imported_only_when_named_and_errors_say_what_is_wrong(hospital_ext):
    assert registry.is_external("hospital_ext.task:SepsisFlag") and not registry.is_external("ecg_af")
    assert (
        registry.model_factory("hospital_ext.models:tiny_mlp")(in_features=3).__class__.__name__
        == "Sequential"
    )
    with pytest.raises(
        ConfigError, match=r"^hospital_clinic\.tasks:MyTask: module hospital_clinic is not installed"
    ):
        registry.task_class("hospital_clinic.tasks:MyTask")
    with pytest.raises(
        ConfigError,
        match=r"^hospital_ext\.models:wide_mlp: module hospital_ext\.models has no "
        r"attribute wide_mlp",
    ):
        registry.model_factory("hospital_ext.models:wide_mlp")
    with pytest.raises(ConfigError, match=r"hospital_ext\.models:tiny_mlp: is not a task"):
        registry.task_class("hospital_ext.models:tiny_mlp")
    with pytest.raises(ConfigError, match="is named package.module:Name"):
        registry.transform_class("hospital_ext:transforms:ClipOutliers")


def test_an_out_of_tree_task_named_otherwise_than_its_import_name_is_rejected_before_training(
    hospital_ext, tmp_path, monkeypatch
):
    from medlearn.engine.validate import validate_experiment

    monkeypatch.setattr(hospital_ext.SepsisFlag, "name", "sepsis_flag")
    with pytest.raises(ConfigError, match="declares name 'sepsis_flag'; an out-of-tree task must be named"):
        validate_experiment(experiment(tmp_path / "absent.csv"))


@pytest.mark.parametrize(
    ("blocked", "name", "extra"),
    [
        ("wfdb", "ecg_af", "signals"),
        ("polars", "los_classification", "ehr"),
        ("monai", "lung_nodule_malignancy", "imaging"),
    ],
)
def test_a_task_whose_extra_is_missing_names_the_extra(monkeypatch, blocked, name, extra):
    monkeypatch.setitem(sys.modules, blocked, None)  # `import <blocked>` now raises ImportError
    with pytest.raises(MissingDependencyError) as caught:
        registry.task_class(name)
    assert str(caught.value) == f'{name} needs {blocked}: pip install "medlearn[{extra}]"'


def medlearn_info_without_wfdb(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``medlearn info`` in a fresh process where ``import wfdb`` fails, on a signals bundle (its committed
    v1 metadata; the weights file only has to exist: the task is looked up before the weights load)."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(REPO / "results" / "ecg_af_cinc2017" / "bundle.json", bundle / "bundle.json")
    (bundle / "model.safetensors").write_bytes(b"")
    script = (
        "import sys; sys.modules['wfdb'] = None; from medlearn.cli import main; "
        f"sys.argv = ['medlearn', 'info', {str(bundle)!r}]; main()"
    )
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )


def test_medlearn_info_without_the_signals_extra_is_one_line_and_exit_code_2(tmp_path):
    done = medlearn_info_without_wfdb(tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: ecg_af needs wfdb: pip install")


def test_medlearn_info_names_the_extra_to_install_verbatim(tmp_path):
    done = medlearn_info_without_wfdb(tmp_path)
    assert done.stderr.strip() == 'error: ecg_af needs wfdb: pip install "medlearn[signals]"'
