"""Check a whole experiment config before any data file is read.

A typo in ``model.params`` used to surface after the dataset had loaded (minutes, for MIMIC or LIDC);
:func:`validate_experiment` finds it first. It resolves every name the config leads to (task, model,
transforms), validates the task's options, binds ``model.params`` and each preprocessing step's parameters
against the signature of what they construct — without constructing it — and checks that the metric
``train.early_stopping.monitor`` names exists for the task's target. Nothing here opens a data file.

:func:`check_params` is the one signature check: :func:`medlearn.engine.models.build_model` runs it too,
so a parameter accepted here is never rejected there, and the other way round.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import PydanticSchemaGenerationError, TypeAdapter, ValidationError

from medlearn.config import ExperimentConfig
from medlearn.engine.task import Task
from medlearn.errors import ConfigError, InputError
from medlearn.registry import is_external, model_factory, task_class, transform_class

__all__ = ["check_params", "validate_experiment"]


def _accepted(fn: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    """The keyword parameters ``fn`` (a function or a class) takes, and whether it takes ``**kwargs``."""
    parameters = inspect.signature(fn).parameters
    keywords = {
        name: p
        for name, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return keywords, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of ``fn``'s parameters (of ``__init__`` for a class); empty when they do not
    resolve (a forward reference to a type only imported for type checkers): then only names are checked."""
    try:
        return typing.get_type_hints(fn.__init__ if isinstance(fn, type) else fn, include_extras=True)
    except Exception:
        return {}


def _type_problem(hint: Any, value: Any) -> str | None:
    """Why ``value`` does not fit annotation ``hint`` (pydantic's lax rules: a YAML list fits a tuple),
    or None. Constraints declared with ``Annotated[int, Field(gt=0)]`` are enforced too."""
    try:
        adapter = TypeAdapter(hint)
    except (PydanticSchemaGenerationError, TypeError, NameError):
        return None  # an annotation pydantic cannot check (e.g. a torch module): leave it to the factory
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "".join(f"[{p}]" for p in err["loc"])
        return f"{err['msg']}{f' at {where}' if where else ''} (got {value!r})"
    return None


def check_params(fn: Callable[..., Any], params: Mapping[str, Any], key: str, owner: str) -> None:
    """Bind ``params`` against the signature of ``fn`` without calling it.

    Args:
        fn: a model factory or a transform class.
        params: keyword arguments from a config (``model.params``) or a preprocessing spec.
        key: the key path errors name, e.g. ``model.params`` (a bad key ``width`` is ``model.params.width``).
        owner: what ``fn`` is, for messages, e.g. ``model cnn1d``.

    Raises:
        ConfigError: a parameter ``fn`` does not take (listing those it does), or a value that does not fit
            the parameter's annotation.
    """
    accepted, takes_any = _accepted(fn)
    for name in params:
        if name not in accepted and not takes_any:
            raise ConfigError(
                f"{key}.{name}: unknown parameter for {owner} (accepted: {', '.join(accepted)})"
            )
    hints = _type_hints(fn)
    for name, value in params.items():
        if name in hints:
            problem = _type_problem(hints[name], value)
            if problem is not None:
                raise ConfigError(f"{key}.{name}: {owner} rejects the value: {problem}")


def _check_model(cfg: ExperimentConfig, task: Task) -> str:
    name = cfg.model.name or task.default_model
    where = "model.name" if cfg.model.name else f"task {task.name}'s default model"
    try:
        factory = model_factory(name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    check_params(factory, cfg.model.params, "model.params", f"model {name}")
    return name


def _check_preprocessing(task: Task, model_name: str) -> None:
    """The task's preprocessing for this model names resolvable transforms with parameters they take.

    A task whose preprocessing is fitted on the training split (a vocabulary, normalisation statistics) has
    no spec before data is read (its ``preprocessing_spec`` raises); its transforms are checked when fitted.
    """
    try:
        spec = task.preprocessing_spec(model_name)
    except (NotImplementedError, InputError):
        if type(task).fit_preprocessing is Task.fit_preprocessing:
            raise
        return
    for i, step in enumerate(spec):
        where = f"task {task.name}: preprocessing[{i}]"
        try:
            cls = transform_class(step["name"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        check_params(cls, step.get("params", {}), f"{where}.params", f"transform {step['name']}")


def _check_monitor(cfg: ExperimentConfig, task: Task) -> None:
    """``train.early_stopping.monitor`` is a validation metric the task's target reports.

    A generative task's validation metrics are whatever its sample scorer returns (e.g. ``validity``),
    known only once a model samples; any name is accepted for it.
    """
    monitor = cfg.train.early_stopping.monitor
    if monitor is None or task.target.kind == "generative":
        return
    names = task.target.metric_names()
    if monitor not in names:
        raise ConfigError(
            f"train.early_stopping.monitor: {monitor!r} is not a validation metric of task {task.name} "
            f"({task.target.kind}; choose from {', '.join(names)})"
        )


def validate_experiment(cfg: ExperimentConfig) -> None:
    """Check ``cfg`` whole, before any data file is opened.

    Resolves the task (``task``) and validates its ``data.options``; resolves the model (``model.name`` or
    the task's default) and binds ``model.params`` against the factory's signature; checks that the task's
    preprocessing for that model names registered transforms whose parameters bind; and checks that
    ``train.early_stopping.monitor`` is a metric the task can monitor. Task constructors read no files, so
    this is fast (importing the modality is the slowest part).

    Raises:
        ConfigError: naming the key path (``model.params.widht: unknown parameter for model seed_cnn
            (accepted: ...)``).
        MissingDependencyError: the task's or model's modality needs an extra that is not installed.

    Examples:
        >>> from medlearn.config import load_config
        >>> validate_experiment(load_config("lung_nodule"))  # no error: the shipped config is whole
    """
    try:
        cls = task_class(cfg.task)
    except ConfigError as exc:
        raise ConfigError(f"task: {exc}") from None
    if is_external(cfg.task) and cls.name != cfg.task:
        # bundles record the task's name and look it up again by it
        raise ConfigError(
            f"task: {cfg.task} declares name {cls.name!r}; an out-of-tree task must be named as it is looked up "
            f"(name = {cfg.task!r}) so that its bundles find it again"
        )
    task = cls(cfg.data.options)
    model_name = _check_model(cfg, task)
    _check_preprocessing(task, model_name)
    _check_monitor(cfg, task)
