"""The engine's typed contract for what a run leaves on disk: ``bundle.json`` and the run outputs.

:class:`BundleMeta` is to a bundle what :class:`~medlearn.config.ExperimentConfig` is to a config: the one
place that says which fields a bundle holds, their types, and which format version they belong to. Every
run that writes a bundle (a predictive run, a generative run, guided generation) builds it with
:func:`build_bundle_meta` and writes it with :func:`save_bundle`; every reader (``predict``, ``evaluate``,
``info``, serving, export) gets attributes instead of string keys. A bundle with an unknown or missing
field is a :class:`~medlearn.errors.BundleError` naming the field, not a ``KeyError`` three modules later.

Format history (see ``docs/conventions.md#model-bundles``):

- **v1** (medlearn ≤ 0.1.0 before issue 13): ``kind``, ``class_names`` and ``unit`` at the top level; a
  generative run's ``n_train`` at the top level. Read through :func:`migrate_v1`.
- **v2**: the task's :class:`~medlearn.engine.target.Target` (plus ``unit``) under ``target``; the number
  of training units under ``data.n_train``.

The writers of the other run outputs (``metrics.json``, ``predictions.csv``, ``config.yaml``) and
:class:`RunOutputs`, which the Python API returns, live here too, so a run module only decides *what* to
write.
"""

from __future__ import annotations

import csv
import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medlearn.errors import BundleError

if TYPE_CHECKING:
    from torch import nn

    from medlearn.config import ExperimentConfig
    from medlearn.engine.callbacks import FitResult
    from medlearn.engine.data import UnitTable
    from medlearn.engine.target import Target
    from medlearn.engine.task import Task

FORMAT = "medlearn-bundle"
FORMAT_VERSION = 2
_VERSIONED = ("medlearn", "torch", "numpy", "monai", "pydicom", "scikit-learn", "safetensors")


class _Record(BaseModel):
    """A part of ``bundle.json``: unknown keys are an error (a typo or a newer medlearn), never ignored."""

    model_config = ConfigDict(extra="forbid")


class TaskRef(_Record):
    """The task as the registry looks it up (``package.module:Name`` for an out-of-tree task)."""

    name: str
    options: dict[str, Any]


class ModelRef(_Record):
    """The model factory's name and the keyword arguments that rebuild the saved weights' shapes."""

    name: str
    params: dict[str, Any]


class TargetRecord(_Record):
    """What the model predicts (the task's :class:`~medlearn.engine.target.Target`) and for which unit."""

    kind: Literal["binary", "multiclass", "regression", "generative"]
    class_names: list[str]
    unit: str
    monitor: str
    ordinal: bool = False
    f1_groups: dict[str, list[str]] = Field(default_factory=dict)
    value_range: tuple[float | None, float | None] = (None, None)


class DataRecord(_Record):
    """The data the model was trained on: where (as configured), which version, how many units."""

    root: str
    fingerprint: str
    n_units: int
    n_train: int


_Finite = Annotated[float, Field(allow_inf_nan=False)]


class OperatingPointRecord(_Record):
    """The binary decision threshold, the split it was chosen on and the rule that chose it."""

    threshold: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    chosen_on: str
    rule: str


class CalibrationRecord(_Record):
    """``logit / temperature + bias``, fitted on validation (identity when not calibrated)."""

    temperature: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 1.0
    bias: _Finite = 0.0


class PredictionInterval(_Record):
    """A regression bundle's split-conformal interval: ``prediction ± half_width``."""

    coverage: Annotated[float, Field(gt=0.0, le=1.0)]
    half_width: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    method: str
    n_residuals: int | None = None


class PredictionSetsRecord(_Record):
    """A classifier's split-conformal prediction sets (:class:`medlearn.engine.conformal.ConformalSets`)."""

    coverage: Annotated[float, Field(gt=0.0, lt=1.0)]
    score: Literal["aps", "class_conditional"]
    #: APS: one threshold; class_conditional: one per class; None = no finite threshold (every class)
    thresholds: list[float | None]
    n_calibration: int
    method: str


class RefitRecord(_Record):
    """How a cross-validated run's shipped model was refit on all units."""

    units: int
    groups: int
    one_pass: bool
    epochs: int | None
    fold_best_epochs: list[int]
    rule: str


class TrainingRecord(_Record):
    """How the shipped weights were trained, and what a bit-exact re-training must match."""

    best_epoch: int
    best_val_score: float | None = None
    monitor: str | None = None
    epochs_run: int
    seconds: float
    history: list[dict[str, Any]] = Field(default_factory=list)
    folds: int = 1
    one_pass: bool = False
    monitored_units: int | None = None
    calibrated_on: str | None = None
    refit: RefitRecord | None = None
    samples_per_second: float | None = None
    threads: int | None = None
    deterministic: bool | None = None
    reproducibility: str | None = None
    summary: str | None = None


class LayerReplacement(_Record):
    """A layer DP-SGD cannot train (e.g. batch norm, which mixes the units of a batch), replaced before
    training by Opacus' ``ModuleValidator.fix``; ``params`` rebuild the replacement when the bundle loads."""

    path: str
    replaced: str
    by: str
    params: dict[str, Any] = Field(default_factory=dict)


class PrivacyRecord(_Record):
    """How the weights were trained with differential privacy (DP-SGD with Opacus) and what it spent.

    ``epsilon`` is what the accountant reports for the steps actually taken (at most ``target_epsilon``;
    less when early stopping ended training sooner), at ``delta``.
    """

    mechanism: Literal["dp-sgd"] = "dp-sgd"
    library: str
    accountant: Literal["prv", "rdp"]
    epsilon: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    target_epsilon: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    delta: Annotated[float, Field(gt=0.0, lt=1.0)]
    delta_rule: str
    max_grad_norm: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    noise_multiplier: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    sample_rate: Annotated[float, Field(gt=0.0, le=1.0)]
    expected_batch_size: int
    steps: int
    epochs_planned: int
    n_train: int
    poisson_sampling: bool = True
    per_sample_gradients: str
    secure_rng: bool = False
    replaced_layers: list[LayerReplacement] = Field(default_factory=list)


class BundleMeta(_Record):
    """``bundle.json``, format v2: everything needed to rebuild, run, trust and describe the model.

    Examples:
        >>> meta = BundleMeta.model_validate_json(Path("runs/x/bundle/bundle.json").read_text())  # doctest: +SKIP
        >>> meta.target.kind, meta.model.name  # doctest: +SKIP
        ('binary', 'resnet18_3d')
    """

    format: Literal["medlearn-bundle"] = FORMAT
    format_version: Literal[2] = FORMAT_VERSION
    created: str
    versions: dict[str, str]
    task: TaskRef
    target: TargetRecord
    model: ModelRef
    preprocessing: list[dict[str, Any]]
    operating_point: OperatingPointRecord | None = None
    calibration: CalibrationRecord = Field(default_factory=CalibrationRecord)
    prediction_interval: PredictionInterval | None = None
    #: a classifier's conformal prediction sets (``eval.conformal``); None = the bundle returns no sets
    prediction_sets: PredictionSetsRecord | None = None
    metrics: dict[str, dict[str, Any]]
    data: DataRecord
    splits: dict[str, list[str]]
    validation_parts: dict[str, list[str]] | None = None
    training: TrainingRecord
    config: dict[str, Any]
    intended_use: str
    credits: list[str]
    guided: dict[str, Any] | None = None
    #: What the training inputs looked like (the task's :meth:`~medlearn.engine.task.Task.input_profile`:
    #: e.g. modality, HU and spacing ranges, sampling rates and durations, value ranges, ages), against
    #: which ``predict`` flags an input the model was not built for.
    input_profile: dict[str, Any] = Field(default_factory=dict)
    #: The shape of one preprocessed unit (the model's input without the batch axis), so that the model
    #: can be exported (ONNX) without its data.
    input_shape: list[int] | None = None
    #: Exported forms of the model inside the bundle folder, by format (``onnx``: file, opset, parity).
    exports: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Differentially private training (DP-SGD): the guarantee spent and the layers replaced; None = the
    #: model was not trained privately (every bundle before issue 16).
    privacy: PrivacyRecord | None = None

    @property
    def kind(self) -> str:
        return self.target.kind

    @property
    def class_names(self) -> list[str]:
        return list(self.target.class_names)

    @property
    def unit(self) -> str:
        return self.target.unit

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def library_versions() -> dict[str, str]:
    """Python and the versions of the libraries a bundle's numbers depend on."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def target_record(target: Target, unit: str) -> TargetRecord:
    return TargetRecord(unit=unit, **target.to_dict())


def build_bundle_meta(
    cfg: ExperimentConfig,
    task: Task,
    *,
    model_name: str,
    model_params: Mapping[str, Any],
    preprocessing: Sequence[Mapping[str, Any]],
    data_root: str,
    fingerprint: str,
    n_units: int,
    splits: Mapping[str, Sequence[str]],
    n_train: int,
    training: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    operating_point: Mapping[str, Any] | None = None,
    calibration: Mapping[str, float] | None = None,
    prediction_interval: Mapping[str, Any] | None = None,
    prediction_sets: Mapping[str, Any] | None = None,
    validation_parts: Mapping[str, Sequence[str]] | None = None,
    input_profile: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    privacy: Mapping[str, Any] | None = None,
) -> BundleMeta:
    """The one builder of a bundle's metadata, for every run that trains a model.

    The task is recorded under the name the config looked it up by (``cfg.task``), so an out-of-tree
    ``package.module:Name`` task is found again when the bundle loads.
    """
    return BundleMeta(
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        versions=library_versions(),
        task=TaskRef(name=cfg.task, options=task.options_dict()),
        target=target_record(task.target, task.unit),
        model=ModelRef(name=model_name, params=dict(model_params)),
        preprocessing=[dict(step) for step in preprocessing],
        operating_point=None if operating_point is None else OperatingPointRecord(**operating_point),
        calibration=CalibrationRecord(**(calibration or {})),
        prediction_interval=None
        if prediction_interval is None
        else PredictionInterval(**prediction_interval),
        prediction_sets=None if prediction_sets is None else PredictionSetsRecord(**prediction_sets),
        metrics={k: dict(v) for k, v in metrics.items()},
        data=DataRecord(root=str(data_root), fingerprint=fingerprint, n_units=n_units, n_train=n_train),
        splits={k: list(v) for k, v in splits.items()},
        validation_parts=None
        if validation_parts is None
        else {k: list(v) for k, v in validation_parts.items()},
        training=TrainingRecord(**training),
        config=cfg.model_dump(mode="json"),
        intended_use=task.intended_use,
        credits=list(task.credits),
        input_profile=dict(input_profile or {}),
        input_shape=None if input_shape is None else [int(n) for n in input_shape],
        privacy=None if privacy is None else PrivacyRecord(**privacy),
    )


def migrate_v1(raw: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """A format-v1 ``bundle.json`` as v2: ``kind``/``class_names``/``unit`` → ``target`` (completed from the
    task's own :class:`~medlearn.engine.target.Target`: v1 did not record ordinal, F1 groups or range), a
    generative run's top-level ``n_train`` → ``data.n_train`` (else the size of the train split)."""
    meta = {k: v for k, v in raw.items() if k not in ("kind", "class_names", "unit", "n_train")}
    for key in ("kind", "class_names", "unit"):
        if key not in raw:
            raise BundleError(f"bundle.json (format v1): missing field {key!r}")
    monitor = (raw.get("training") or {}).get("monitor") or target.monitor
    meta["target"] = {
        **target.to_dict(),
        "kind": raw["kind"],
        "class_names": list(raw["class_names"]),
        "unit": raw["unit"],
        "monitor": monitor,
    }
    data = dict(raw.get("data") or {})
    data.setdefault("n_train", raw.get("n_train", len((raw.get("splits") or {}).get("train", []))))
    meta["data"] = data
    training = dict(raw.get("training") or {})
    meta["training"] = training
    meta.setdefault("calibration", {})
    meta["calibration"] = meta["calibration"] or {}
    meta["format_version"] = FORMAT_VERSION
    return meta


def parse_bundle_meta(raw: Any, where: Path | str) -> BundleMeta:
    """Validate a (v2) ``bundle.json`` mapping; the first problem is a BundleError naming its field."""
    if not isinstance(raw, dict):
        raise BundleError(f"{where}: bundle.json holds a {type(raw).__name__}, not an object")
    try:
        return BundleMeta.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown field {field!r}")
            elif err["type"] == "missing":
                problems.append(f"missing field {field!r}")
            else:
                problems.append(f"field {field!r}: {err['msg']}")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BundleError(f"{where}: {problems[0]}{more}") from None


def save_bundle(path: Path, model: nn.Module, meta: BundleMeta, card_extra: str = "") -> Path:
    """Write ``model.safetensors`` (no pickle), ``bundle.json``, ``model_card.md`` (and its facts as
    ``model_card.json``) and the SHA-256 ``manifest.json`` (:mod:`medlearn.engine.integrity`) into ``path``.

    ``card_extra`` is appended to the model card (e.g. how guided generation changed a prior).
    """
    from safetensors.torch import save_file

    from medlearn.engine.card_trust import card_facts
    from medlearn.engine.integrity import write_manifest
    from medlearn.engine.model_card import model_card

    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"))
    (path / "bundle.json").write_text(meta.to_json())
    (path / "model_card.md").write_text(model_card(meta) + card_extra)
    if meta.kind != "generative":  # the card's facts for machines (a generator's card is its sample figures)
        (path / "model_card.json").write_text(json.dumps(card_facts(meta), indent=2, default=str) + "\n")
    write_manifest(path)  # last: it vouches for the files above as they are now
    return path


@dataclass
class RunOutputs:
    """What a run wrote: its folder, the scored split's ``metrics.json`` (and validation's), the bundle
    directory, the report, and the final fit (None for ``evaluate``).

    Examples:
        >>> outputs = medlearn.train("ehr_los", overrides=["train.epochs=1"])  # doctest: +SKIP
        >>> outputs.metrics["metrics"]["mae"]["value"]  # doctest: +SKIP
    """

    out: Path
    metrics: dict[str, Any]
    metrics_val: dict[str, Any] | None = None
    bundle: Path | None = None
    report: Path | None = None
    fit: FitResult | None = None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: Path, data: Any) -> None:
    """``metrics.json``, ``metrics_val.json`` and the like: indented, numpy values as plain numbers."""
    path.write_text(json.dumps(data, indent=2, default=_json_default))


def write_config(path: Path, cfg: ExperimentConfig) -> None:
    """``config.yaml``: the resolved config, which ``medlearn train`` accepts again as it is."""
    from medlearn.config import dump_config

    path.write_text(dump_config(cfg))


def write_predictions(
    path: Path,
    kind: str,
    class_names: Sequence[str],
    tables: Mapping[str, UnitTable],
    preds: Mapping[str, np.ndarray],
    threshold: float | None,
) -> None:
    """``predictions.csv``: one row per scored unit — id, split, group, target, the prediction columns
    (binary: probability and label at ``threshold``; multiclass: a probability per class and the arg-max
    label; regression: the value), then the task's per-unit meta columns."""
    meta_keys = sorted({k for t in tables.values() for k in t.meta})
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        if kind == "binary":
            pred_cols = ["probability", "prediction"]
        elif kind == "multiclass":
            pred_cols = [f"prob_{c}" for c in class_names] + ["prediction"]
        else:
            pred_cols = ["prediction"]
        writer.writerow(["id", "split", "group", "target", *pred_cols, *meta_keys])
        for split, table in tables.items():
            for i, uid in enumerate(table.ids):
                p = preds[split][i]
                target = table.targets[i]
                if kind == "binary":
                    cols = [f"{p:.6f}", class_names[int(p >= (threshold or 0.5))]]
                    target = class_names[int(target)]
                elif kind == "multiclass":
                    cols = [f"{q:.6f}" for q in p] + [class_names[int(np.argmax(p))]]
                    target = class_names[int(target)]
                else:
                    cols = [f"{p:.6f}"]
                meta = [table.meta[k][i] if k in table.meta else "" for k in meta_keys]
                writer.writerow([uid, split, table.groups[i], target, *cols, *meta])


def write_samples(
    path: Path, samples: Sequence[str], columns: Mapping[str, Sequence[Any]] | None = None
) -> None:
    """A generator's ``predictions.csv``: one generated string per row under ``SMILES`` (what
    ``mol-metrics`` reads), invalid ones included, then any per-sample ``columns`` (e.g. validity)."""
    columns = columns or {}
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["SMILES", *columns])
        writer.writerows([s, *(values[i] for values in columns.values())] for i, s in enumerate(samples))
