"""Cross-validated bundles, conformal residuals and reproducible weights on a tiny synthetic task.

The task lives in this module and is registered for the test only (``medlearn.registry.TASKS``), so the
whole ``train_experiment`` path — folds, refit, bundle, report — runs in seconds without real data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from medlearn.config import ExperimentConfig
from medlearn.engine import run
from medlearn.engine.data import UnitTable, halve_by_group
from medlearn.engine.target import Target
from medlearn.engine.task import Task
from medlearn.engine.trainer import Trainer

N_GROUPS, PER_GROUP = 24, 5


def _table(kind: str) -> UnitTable:
    """24 groups of 5 units; raw inputs (2 bins, 4 features) whose first value is the unit's index, so a
    dataset's units can be told apart; one informative feature."""
    rng = np.random.default_rng(0)
    n = N_GROUPS * PER_GROUP
    signal = rng.normal(size=n)
    raw = rng.normal(size=(n, 2, 4)).astype(np.float32)
    raw[:, :, 1] += signal[:, None].astype(np.float32)
    raw[:, 0, 0] = np.arange(n)
    targets = (
        (signal > 0).astype(np.int64)
        if kind == "binary"
        else (3.0 * signal + rng.normal(0, 0.5, n)).astype(np.float32)
    )
    return UnitTable(
        ids=[f"u{i}" for i in range(n)],
        targets=targets,
        groups=np.repeat([f"g{g}" for g in range(N_GROUPS)], PER_GROUP),
        raw=list(raw),
        fingerprint="0" * 32,
    )


class SyntheticBinary(Task):
    name: ClassVar[str] = "synthetic_binary"
    target: ClassVar[Target] = Target("binary", ("neg", "pos"))
    unit: ClassVar[str] = "case"
    default_model: ClassVar[str] = "linear_baseline"

    def load(self, root: Path) -> UnitTable:
        return _table(self.kind)

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        return []


class SyntheticRegression(SyntheticBinary):
    name: ClassVar[str] = "synthetic_regression"
    target: ClassVar[Target] = Target("regression", monitor="mae")


@pytest.fixture
def synthetic_tasks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    from medlearn import registry

    monkeypatch.setitem(registry.TASKS, "synthetic_binary", f"{__name__}:SyntheticBinary")
    monkeypatch.setitem(registry.TASKS, "synthetic_regression", f"{__name__}:SyntheticRegression")
    monkeypatch.setenv("MEDLEARN_DATA", str(tmp_path))
    (tmp_path / "synthetic").mkdir()
    return tmp_path


def _config(task: str, model: str = "linear_baseline", **split: Any) -> ExperimentConfig:
    params = {"in_features": 4} if model == "linear_baseline" else {"in_features": 4, "max_iter": 20}
    return ExperimentConfig.model_validate(
        {
            "name": task,
            "task": task,
            "data": {"root": "synthetic", "cache": False, "split": split},
            "model": {"name": model, "params": params},
            "train": {
                "epochs": 5,
                "batch_size": 16,
                "lr": 0.05,
                "scheduler": "none",
                "augment": False,
                "early_stopping": {"patience": 2},
            },
            "eval": {"n_bootstrap": 50},
        }
    )


def _meta(out: Path) -> dict[str, Any]:
    return json.loads((out / "bundle" / "bundle.json").read_text())


def test_cv_bundle_is_refit_on_every_unit_for_the_median_best_epoch(
    synthetic_tasks, tmp_path, one_torch_thread
):
    out = tmp_path / "cv"
    out.mkdir()
    result = run.train_experiment(_config("synthetic_binary", folds=3), out, device="cpu")
    meta = _meta(out)
    assert meta["splits"] == {"train": [f"u{i}" for i in range(N_GROUPS * PER_GROUP)]}
    folds = result.metrics["folds"]
    refit = meta["training"]["refit"]
    assert refit["fold_best_epochs"] == [f["best_epoch"] for f in folds]
    assert refit["epochs"] == run.median_epoch(refit["fold_best_epochs"]) == meta["training"]["epochs_run"]
    assert all("val_loss" not in row for row in meta["training"]["history"])  # no validation in the refit
    assert meta["operating_point"]["chosen_on"] == "pooled fold-validation"
    assert meta["operating_point"] == result.metrics["operating_point"]  # metrics.json scores what ships
    summary = meta["training"]["summary"]
    assert summary.startswith(
        f"refit on all {N_GROUPS * PER_GROUP} cases ({N_GROUPS} groups) for {refit['epochs']} epochs"
    )
    assert "calibration and operating point from the pooled fold-validation predictions" in summary
    assert summary in (out / "bundle" / "model_card.md").read_text()
    assert set(result.metrics["folds_summary"]["auroc"]) == {"mean", "sd", "min", "max", "n_folds"}


def test_cv_calibration_is_fitted_on_pooled_fold_validation_logits_not_test(
    synthetic_tasks, tmp_path, monkeypatch, one_torch_thread
):
    seen: list[int] = []
    fit_calibration = run.fit_calibration

    def spy(logits: np.ndarray, targets: np.ndarray, kind: str):
        seen.append(len(targets))
        return fit_calibration(logits, targets, kind)

    monkeypatch.setattr(run, "fit_calibration", spy)
    out = tmp_path / "cv"
    out.mkdir()
    result = run.train_experiment(_config("synthetic_binary", folds=3), out, device="cpu")
    n_val = json.loads((out / "metrics_val.json").read_text())["n"]
    assert seen == [n_val] and n_val != result.metrics["n"]  # one fit, on the pooled fold-validation units


def test_one_pass_models_are_refit_once_without_epochs(synthetic_tasks, tmp_path, one_torch_thread):
    out = tmp_path / "gb"
    out.mkdir()
    run.train_experiment(_config("synthetic_binary", "gradient_boosting", folds=3), out, device="cpu")
    meta = _meta(out)
    assert meta["training"]["refit"]["one_pass"] and meta["training"]["refit"]["epochs"] is None
    assert (
        "in one pass" in meta["training"]["summary"] and len(meta["splits"]["train"]) == N_GROUPS * PER_GROUP
    )


def test_evaluate_of_a_cv_bundle_without_data_explains_it_has_no_held_out_split(
    synthetic_tasks, tmp_path, one_torch_thread
):
    from medlearn.errors import InputError

    out = tmp_path / "cv"
    out.mkdir()
    run.train_experiment(_config("synthetic_binary", folds=3), out, device="cpu")
    with pytest.raises(InputError, match="no held-out split"):
        run.evaluate_bundle(out / "bundle", tmp_path / "ev")


def test_conformal_residuals_come_from_units_the_trainer_did_not_monitor(
    synthetic_tasks, tmp_path, monkeypatch, one_torch_thread
):
    monitored: list[set[int]] = []
    fit = Trainer.fit

    def spy(self, model, train_ds, val_ds, *args, **kwargs):
        monitored.append({int(x[0, 0]) for x in val_ds.raw})
        return fit(self, model, train_ds, val_ds, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", spy)
    out = tmp_path / "reg"
    out.mkdir()
    run.train_experiment(_config("synthetic_regression", val_fraction=0.3), out, device="cpu")
    meta = _meta(out)
    parts = meta["validation_parts"]
    conformal = {int(u[1:]) for u in parts["conformal"]}
    assert monitored == [{int(u[1:]) for u in parts["early_stopping"]}]
    assert conformal and not conformal & monitored[0]
    assert conformal | monitored[0] == {int(u[1:]) for u in meta["splits"]["val"]}
    groups = {u: g for u, g in zip(_table("regression").ids, _table("regression").groups)}
    assert not {groups[u] for u in parts["conformal"]} & {groups[u] for u in parts["early_stopping"]}
    interval = meta["prediction_interval"]
    assert interval["n_residuals"] == len(conformal) and "kept out of early stopping" in interval["method"]


def test_halve_by_group_keeps_groups_whole_and_needs_two():
    groups = np.repeat(["a", "b", "c", "d", "e"], 3)
    half = halve_by_group(groups, seed=0)
    assert half.sum() == 6 and all(len(set(half[groups == g])) == 1 for g in set(groups))
    assert halve_by_group(np.array(["a", "a"]), seed=0) is None


def test_two_one_thread_trainings_give_bit_identical_weights(tmp_path):
    """Bit-exact with one torch thread (the bundle records the count: training.threads)."""
    from medlearn.config import TrainConfig
    from medlearn.engine.data import CachedDataset, Preprocessing
    from medlearn.engine.target import Target

    table = _table("binary")
    ds = CachedDataset(table.raw, table.targets, Preprocessing([]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        states = []
        for _ in range(2):
            torch.manual_seed(0)
            model = torch.nn.Sequential(
                torch.nn.Flatten(), torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
            )
            trainer = Trainer(
                TrainConfig(epochs=3, batch_size=16, scheduler="cosine"), Target("binary", ("n", "p"))
            )
            result = trainer.fit(model, ds, None)
            states.append(model.state_dict())
        assert result.extra == {"threads": 1, "deterministic": True}
        assert len(result.history) == 3 and result.best_epoch == 3
    finally:
        torch.set_num_threads(threads)
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
