"""MLflow tracking against a real local sqlite store: the run, its parameters, per-epoch metric history,
final metrics and artifacts are found back through MLflow's own client."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from medlearn.engine.tracking import MLflowLogger, flatten, run_callbacks
from medlearn.errors import MissingDependencyError
from tests.conftest import require_module
from tests.engine.test_trainer import tiny_datasets, tiny_model, tiny_trainer


def test_flatten_names_nested_keys_with_dots():
    assert flatten(
        {"model": {"name": "cnn", "params": {}}, "train": {"early_stopping": {"patience": 5}}}
    ) == {"model.name": "cnn", "model.params": "{}", "train.early_stopping.patience": "5"}


def test_a_missing_mlflow_names_the_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "medlearn\[track\]"'):
        MLflowLogger(run_dir=tmp_path)


def test_a_tiny_training_is_found_in_the_local_mlflow_store(tmp_path, monkeypatch):
    require_module("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    callbacks = run_callbacks(out, "mlflow")
    logger = callbacks[-1]
    assert isinstance(logger, MLflowLogger) and logger.tracking_uri == f"sqlite:///{out / 'mlflow.db'}"
    logger.on_run_start({"task": "toy", "train": {"epochs": 3, "lr": 0.01}})
    train, val = tiny_datasets()
    result = tiny_trainer(out / "checkpoints", callbacks=callbacks, epochs=3).fit(tiny_model(), train, val)
    (out / "metrics.json").write_text(
        json.dumps(
            {
                "task": "toy",
                "split": "test",
                "unit": "unit",
                "n": 80,
                "metrics": {
                    "auroc": {"value": 0.91, "ci95": [0.85, 0.96]},
                    "ece": {"value": None, "ci95": None},
                },
            }
        )
    )
    (out / "report.html").write_text("<html></html>")
    (out / "bundle").mkdir()
    (out / "bundle" / "bundle.json").write_text("{}")
    logger.on_run_end(out)

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("medlearn")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["train.epochs"] == "3" and run.data.params["task"] == "toy"
    history = client.get_metric_history(run.info.run_id, "val_auroc")
    assert [(m.step, m.value) for m in history] == [(h["epoch"], h["val_auroc"]) for h in result.history]
    assert run.data.metrics["test/auroc"] == pytest.approx(0.91) and "test/ece" not in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "report.html", "history.csv", "bundle"} <= artifacts
    assert (out / "mlartifacts").is_dir()  # artifacts stay beside the run, not in the working directory


def test_a_cli_run_under_nohup_prints_its_epochs_and_writes_history_and_an_mlflow_run(tmp_path):
    """The job a hospital leaves running on a server: ``nohup medlearn train ... --track mlflow`` with
    stderr in a file shows one line per epoch, and the run folder holds history.csv and an MLflow run."""
    import csv
    import os
    import re
    import shutil
    import subprocess

    require_module("mlflow")
    from mlflow.tracking import MlflowClient

    from medlearn.ehr.synthetic import write_synthetic_mimic4

    nohup = shutil.which("nohup")
    assert nohup is not None, "coreutils nohup is part of every Debian install"
    data = write_synthetic_mimic4(tmp_path / "data", n_patients=60, seed=0)
    out, log = tmp_path / "run", tmp_path / "nohup.out"
    medlearn = Path(sys.executable).with_name("medlearn")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = [nohup, str(medlearn), "train", "ehr_los_mimic4_linear", "--out", str(out), "--data", str(data)]
    command += ["--set", "train.epochs=3", "--track", "mlflow", "--device", "cpu"]
    with log.open("w") as fh:
        done = subprocess.run(
            command, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, timeout=300
        )
    text = log.read_text()
    assert done.returncode == 0, text
    epochs = re.findall(r"^epoch (\d+)/3  loss \d+\.\d+  val_kappa_linear ", text, flags=re.MULTILINE)
    assert epochs == ["1", "2", "3"], text
    assert "mlflow.store" not in text  # MLflow's own INFO chatter stays out of the run's log
    with (out / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("medlearn").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["task"] == "los_classification"
    history = client.get_metric_history(run.info.run_id, "val_kappa_linear")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([float(r["val_kappa_linear"]) for r in rows], abs=1e-6)
    assert "test/kappa_linear" in run.data.metrics
