"""Experiment configuration: pydantic models, YAML load/save, ``--set`` overrides.

One config format serves every pipeline. Common sections (``data``, ``model``, ``train``, ``eval``) are
validated here; the task-specific ``data.options`` and the model's ``model.params`` are validated by the
task and model they belong to (see :mod:`medlearn.registry`). Every error names the key path
(``train.epochs: ...``) because a user fixing a YAML file needs to know where to look.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medlearn.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(_Strict):
    """Group-level (patient/exam) split fractions; the seed fixes which groups land where."""

    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    seed: int = 0
    #: k-fold cross-validation over groups instead of one test split (small sets): every group is
    #: tested once, the metrics pool the out-of-fold predictions; the bundle holds a model refit on all
    #: units for the median of the folds' best epochs, calibrated (and thresholded) on the pooled
    #: fold-validation predictions
    folds: int | None = Field(None, ge=3, le=20)


class DataConfig(_Strict):
    """Where the dataset is and how the task reads it.

    ``root`` relative paths resolve against ``MEDLEARN_DATA`` (see :mod:`medlearn.paths`).
    ``options`` are task-specific and validated by the task's ``Options`` model.
    """

    root: str
    split: SplitConfig = Field(default_factory=SplitConfig)
    options: dict[str, Any] = Field(default_factory=dict)
    cache: bool = True


class ModelConfig(_Strict):
    """A registered model name and its constructor parameters (``null`` name = the task's default)."""

    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class EarlyStoppingConfig(_Strict):
    monitor: str | None = None  # validation metric; None = the task's default (e.g. auroc)
    patience: int = Field(8, ge=1)


class TrainConfig(_Strict):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["none", "cosine", "plateau"] = "cosine"
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    class_weighting: Literal["none", "balanced"] = "balanced"
    augment: bool = True
    seed: int = 0
    max_train_batches: int | None = Field(None, ge=1)  # cap per epoch (smoke runs; sub-epochs of big sets)
    time_limit_minutes: float | None = Field(None, gt=0)  # no new epoch starts once training took this long
    grad_clip: float | None = Field(None, gt=0)  # clip the gradient norm (recurrent generators)


class ConformalConfig(_Strict):
    """Split-conformal prediction sets for a classifier (:mod:`medlearn.engine.conformal`).

    Half of the validation groups are held out: the Trainer's early stopping, the temperature/Platt
    calibration and the operating point use the other half only, so the sets are calibrated on units no
    choice looked at. ``coverage`` is the share of new units whose true class the set should hold."""

    coverage: float = Field(0.9, gt=0, lt=1)
    score: Literal["aps", "class_conditional"] = "aps"


class EvalConfig(_Strict):
    operating_point: str = "sensitivity>=0.90"
    n_bootstrap: int = Field(1000, ge=0)
    calibrate: bool = (
        True  # temperature (+ bias for binary) scaling fitted on the validation split (pooled over folds)
    )
    conformal: ConformalConfig | None = None  # prediction sets (classification); None = no sets


class PrivacyConfig(_Strict):
    """Train with differential privacy (DP-SGD, Opacus): an (ε, δ) guarantee for each training unit.

    The noise is calibrated so that ``train.epochs`` epochs spend at most ``epsilon``; what the
    accountant says was spent (early stopping spends less) is recorded in the bundle. Without ``delta``,
    δ = 1/(10·n_train), a tenth of the reciprocal of the number of training units; a ``delta`` of
    1/n_train or more is refused (it would allow one unit to be published outright). See
    ``docs/privacy.md``.
    """

    epsilon: float = Field(gt=0, allow_inf_nan=False)  # target ε over the configured epochs
    delta: float | None = Field(None, gt=0, lt=1)  # None = 1/(10·n_train)
    max_grad_norm: float = Field(1.0, gt=0, allow_inf_nan=False)  # per-unit gradient clipping bound (L2)
    accountant: Literal["prv", "rdp"] = "prv"  # Opacus' PRV (tighter, its default) or RDP accountant


class HospitalSiteConfig(_Strict):
    """One hospital of a federation by its own data folder (``federated.hospitals.source: roots``)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    root: str = Field(min_length=1)  # resolved like data.root (relative = under MEDLEARN_DATA)


class HospitalsConfig(_Strict):
    """Which units each hospital of a federation holds (:mod:`medlearn.federated.hospitals`).

    ``eicu_region``: eICU's regions (``hospital.csv``); ``roots``: one data folder per hospital
    (``sites``); ``dirichlet``: ``count`` hospitals whose label mix is drawn from Dirichlet(``alpha``)
    (small alpha = more skew). A hospital with fewer than ``min_patients`` patients is dropped (regions)
    or refused (Dirichlet)."""

    source: Literal["dirichlet", "eicu_region", "roots"] = "dirichlet"
    count: int = Field(3, ge=2, le=64)
    alpha: float = Field(0.5, gt=0, allow_inf_nan=False)
    min_patients: int = Field(10, ge=3)
    sites: list[HospitalSiteConfig] = Field(default_factory=list)


class FederatedConfig(_Strict):
    """``medlearn federate``: Flower rounds of local epochs through the same Trainer (docs/federated.md)."""

    rounds: int = Field(3, ge=1, le=1000)
    local_epochs: int = Field(1, ge=1, le=1000)
    strategy: Literal["fedavg", "fedprox", "fedadam"] = "fedavg"
    proximal_mu: float = Field(0.01, ge=0, allow_inf_nan=False)  # FedProx's proximal weight
    server_lr: float = Field(0.01, gt=0, allow_inf_nan=False)  # FedAdam's server learning rate (eta)
    fraction_train: float = Field(1.0, gt=0, le=1)  # share of hospitals sampled each round
    min_hospitals: int = Field(2, ge=1)  # fewer replies in a round (or connected at its start) = failure
    round_timeout_seconds: float = Field(
        600, gt=0, allow_inf_nan=False
    )  # a hospital silent longer is left out
    baselines: bool = True  # also train centralised and local-only models for the comparison
    hospitals: HospitalsConfig = Field(default_factory=HospitalsConfig)


class ExperimentConfig(_Strict):
    """A whole experiment: what to learn (task), from what (data), with what (model), how (train), and
    whether with differential privacy (``privacy``, absent = not private)."""

    name: str = "experiment"
    task: str
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    privacy: PrivacyConfig | None = None
    federated: FederatedConfig | None = None  # read by ``medlearn federate`` only


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice: PyYAML keeps the last value
    silently, so a config with two ``epochs:`` lines would train with whichever came last."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_yaml(text: str) -> Any:
    """Parse YAML text as ``yaml.safe_load`` does, but refuse duplicate keys (a ``yaml.YAMLError`` whose
    ``problem`` names the key)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``line N not valid YAML (<what PyYAML found>)`` for a one-line message."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    where = f"line {mark.line + 1} " if mark is not None else ""
    return f"{where}not valid YAML" + (f" ({problem})" if problem else "")


def format_validation_error(exc: ValidationError, source: str, prefix: str = "") -> str:
    """One line naming the first bad key path, e.g. ``lung.yaml: train.epochs: Input should be ...``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *err["loc"]))
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    more = f" (and {len(parts) - 1} more)" if len(parts) > 1 else ""
    return f"{source}: {parts[0]}{more}"


def shipped_configs() -> dict[str, Path]:
    """Configs that ship inside the package, by name (``lung_nodule`` → ``.../configs/lung_nodule.yaml``)."""
    folder = resources.files("medlearn") / "configs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def locate_config(name_or_path: str) -> Path:
    """A YAML path as given, or the shipped config of that name."""
    path = Path(name_or_path).expanduser()
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    shipped = shipped_configs()
    if name_or_path in shipped:
        return shipped[name_or_path]
    raise ConfigError(
        f"{name_or_path}: neither a YAML file nor a shipped config (shipped: {', '.join(sorted(shipped))})"
    )


def parse_override(item: str) -> tuple[list[str], Any]:
    """``train.epochs=3`` → (["train", "epochs"], 3); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key=value, e.g. --set train.epochs=3")
    key, raw = item.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"--set {item}: empty key")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item}: value {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"--set {item}: value is nested too deeply") from None
    return keys, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` items to a raw config dict (before validation, so errors name the key)."""
    for item in overrides:
        keys, value = parse_override(item)
        node = raw
        for k in keys[:-1]:
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item}: {k} is not a section")
            node = child
        node[keys[-1]] = value
    return raw


#: A config is a few kB; a bigger file is not one (and would be read whole into memory).
MAX_CONFIG_BYTES = 1 << 20


def load_raw(path: Path) -> dict[str, Any]:
    """A config file's sections as a dict, before validation.

    Raises:
        ConfigError: the file cannot be read, is bigger than :data:`MAX_CONFIG_BYTES`, is not UTF-8 text,
            is not valid YAML, holds a key twice in one mapping (naming the key and line) or is not a
            mapping of sections.
    """
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: {size:,} bytes is too big for a config (at most {MAX_CONFIG_BYTES:,})"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text (UTF-8) YAML file (byte {exc.start} is not UTF-8)") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: not a text YAML file (it holds NUL bytes)")
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a config (nested too deeply)") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping of sections")
    return raw


def validate(raw: dict[str, Any], source: str) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load, override and validate a config; the name of a shipped config also works."""
    path = locate_config(name_or_path)
    raw = apply_overrides(load_raw(path), overrides or [])
    raw.setdefault("name", path.stem)
    return validate(raw, str(path))


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML (what ``<out>/config.yaml`` holds)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
