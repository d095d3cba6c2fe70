"""Experiment tracking: a run's config, epochs, final metrics and outputs in MLflow (``--track mlflow``).

Optional (the ``track`` extra): MLflow is imported only when a logger is made. By default each run keeps
its own store beside its outputs, ``sqlite:///<out>/mlflow.db`` with artifacts under ``<out>/mlartifacts``
(recent MLflow refuses a plain file store unless told); ``MLFLOW_TRACKING_URI`` or ``tracking_uri`` points
several runs at one store or server instead. The logger talks to MLflow through an ``MlflowClient`` with
an explicit run id, never the process-global active run, so it cannot log into someone else's run.

TensorBoard is not offered: ``torch.utils.tensorboard`` needs the ``tensorboard`` package (and its
protobuf/gRPC stack), which this project does not otherwise depend on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlearn.engine.callbacks import Callback, FitResult, FitState, HistoryCSV, ProgressLines
from medlearn.errors import ConfigError, MissingDependencyError

#: MLflow's limit on a parameter value's length (longer values are cut, with a marker).
MAX_PARAM_CHARS = 6000
#: Outputs of a run logged as artifacts when present (``bundle`` as a folder).
RUN_ARTIFACTS = (
    "metrics.json",
    "metrics_val.json",
    "config.yaml",
    "history.csv",
    "predictions.csv",
    "report.html",
)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config → ``{"train.lr": "0.001", ...}`` (MLflow parameters are flat strings).

    Examples:
        >>> flatten({"train": {"lr": 0.001, "early_stopping": {"patience": 5}}})
        {'train.lr': '0.001', 'train.early_stopping.patience': '5'}
    """
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[name] = text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."
    return flat


class MLflowLogger(Callback):
    """Log a run to MLflow: parameters, every epoch's metrics, the final metrics and the run's outputs.

    One MLflow run per medlearn run. Parameters are the flattened config (from :meth:`on_run_start`, or
    the ``train`` section and target when the run gives none); each epoch's history row is logged with
    ``step=epoch`` (``val_auroc``, ``train_loss``, ``lr``, …; a cross-validated run's later fits as
    ``fit2/val_auroc`` …, the first fit unprefixed); at :meth:`on_run_end` the values of
    ``metrics.json`` / ``metrics_val.json`` as ``<split>/<metric>`` (e.g. ``test/auroc``) and the outputs
    (``metrics.json``, ``report.html``, ``history.csv``, …, ``bundle/``) as artifacts.

    Args:
        run_dir: the run's output directory: the default store ``sqlite:///<run_dir>/mlflow.db`` lives
            there, and its outputs are logged from there at the end.
        tracking_uri: an MLflow store or server; default ``MLFLOW_TRACKING_URI`` if set, else the
            ``run_dir`` store.
        experiment: the MLflow experiment (created if missing).
        run_name: the MLflow run's name (default: the ``run_dir`` folder name).

    Raises:
        MissingDependencyError: MLflow is not installed.
        ValueError: neither a ``run_dir`` nor a tracking URI says where to log.
    """

    def __init__(
        self,
        run_dir: Path | None = None,
        tracking_uri: str | None = None,
        experiment: str = "medlearn",
        run_name: str | None = None,
    ):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise MissingDependencyError(
                'experiment tracking needs MLflow: pip install "medlearn[track]"'
            ) from exc
        self.run_dir = None if run_dir is None else Path(run_dir)
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if uri is None:
            if self.run_dir is None:
                raise ValueError("MLflowLogger needs a run_dir (for its default store) or a tracking_uri")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{self.run_dir.resolve() / 'mlflow.db'}"
        self.tracking_uri = uri
        # MLflow announces its database set-up at INFO on stderr; the run's own lines (and --quiet) decide
        # what a user sees, so only its warnings come through.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        self.client = MlflowClient(uri)
        self.experiment = experiment
        self.run_name = run_name or (self.run_dir.name if self.run_dir is not None else None)
        self.run_id: str | None = None
        self.params_logged = False
        self.fits, self.prefix = 0, ""

    def _run(self) -> str:
        """The MLflow run id, creating the experiment (artifacts beside a local store) and run on first use."""
        if self.run_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                experiment_id = found.experiment_id
            else:
                local = self.tracking_uri.startswith("sqlite:") and self.run_dir is not None
                location = (self.run_dir.resolve() / "mlartifacts").as_uri() if local else None
                experiment_id = self.client.create_experiment(self.experiment, artifact_location=location)
            self.run_id = self.client.create_run(experiment_id, run_name=self.run_name).info.run_id
        return self.run_id

    def _log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit
            self.client.log_batch(self._run(), params=items[i : i + 100])
        self.params_logged = True

    def on_run_start(self, config: Mapping[str, Any]) -> None:
        self._log_params(flatten(config))

    def on_fit_start(self, state: FitState) -> None:
        self.fits += 1
        self.prefix = "" if self.fits == 1 else f"fit{self.fits}/"
        if not self.params_logged:
            trainer = state.trainer
            self._log_params(
                flatten(
                    {
                        "train": trainer.cfg.model_dump(mode="json"),
                        "target": {"kind": trainer.target.kind, "monitor": trainer.monitor},
                    }
                )
            )

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = _millis()
        metrics = [
            Metric(f"{self.prefix}{k}", float(v), now, epoch)
            for k, v in row.items()
            if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v)
        ]
        self.client.log_batch(self._run(), metrics=metrics)

    def on_fit_end(self, result: FitResult) -> None:
        """Mark the run finished after each fit, so a run whose caller never reaches :meth:`on_run_end`
        does not stay "running"; later fits and the final metrics still log into it."""
        self.client.set_terminated(self._run(), "FINISHED")

    def on_run_end(self, out: Path) -> None:
        from mlflow.entities import Metric

        out = Path(out)
        run_id, now = self._run(), _millis()
        for name in ("metrics.json", "metrics_val.json"):
            path = out / name
            if path.is_file():
                scored = json.loads(path.read_text())
                metrics = [
                    Metric(f"{scored.get('split', name)}/{k}", float(m["value"]), now, 0)
                    for k, m in scored.get("metrics", {}).items()
                    if isinstance(m, Mapping)
                    and isinstance(m.get("value"), (int, float))
                    and math.isfinite(m["value"])
                ]
                self.client.log_batch(run_id, metrics=metrics)
        for name in RUN_ARTIFACTS:
            if (out / name).is_file():
                self.client.log_artifact(run_id, str(out / name))
        if (out / "bundle").is_dir():
            self.client.log_artifacts(run_id, str(out / "bundle"), "bundle")
        self.client.set_terminated(run_id, "FINISHED")


def _millis() -> int:
    """Now, in the milliseconds MLflow timestamps metrics with."""
    return int(time.time() * 1000)


def run_callbacks(out: Path, track: str | None = None) -> list[Callback]:
    """The callbacks every run passes to its Trainers: ``<out>/history.csv``, progress lines on a
    non-terminal stderr, and the experiment tracker ``track`` names (None or ``"mlflow"``).

    Args:
        out: the run's output directory.
        track: ``None`` (no tracker) or ``"mlflow"`` (a local ``sqlite:///<out>/mlflow.db`` store unless
            ``MLFLOW_TRACKING_URI`` is set). TensorBoard is not offered: ``torch.utils.tensorboard`` needs
            the ``tensorboard`` package, which this project does not depend on.

    Raises:
        ConfigError: ``track`` names no known tracker.
        MissingDependencyError: ``track="mlflow"`` without MLflow installed.
    """
    callbacks: list[Callback] = [HistoryCSV(Path(out) / "history.csv"), ProgressLines()]
    if track == "mlflow":
        callbacks.append(MLflowLogger(run_dir=Path(out)))
    elif track is not None:
        raise ConfigError(f"--track {track}: unknown tracker (choose mlflow)")
    return callbacks
