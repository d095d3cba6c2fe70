"""Build a registered model from its name, config params and what the task's data dictates."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from medlearn.engine.protocols import RebuildableFromParams
from medlearn.engine.validate import check_params
from medlearn.errors import ConfigError
from medlearn.registry import model_factory


def build_model(
    name: str, params: dict[str, Any], data_kwargs: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Instantiate model ``name``; return it and the full keyword set (stored in the bundle).

    ``params`` come from ``model.params`` in the config; unknown ones, or values that do not fit the
    factory's annotations, are a ConfigError naming the key (the check
    :func:`~medlearn.engine.validate.validate_experiment` runs before data is read). ``data_kwargs`` (input
    channels, outputs) come from the task and win over the config. The returned keyword set includes the
    defaults in force now.
    """
    factory = model_factory(name)
    check_params(factory, params, "model.params", f"model {name}")
    accepted = inspect.signature(factory).parameters
    kwargs = {**params, **{k: v for k, v in data_kwargs.items() if k in accepted}}
    try:
        model = factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.params: model {name} rejected its parameters: {exc}") from None
    # Store every argument, defaults included, so a later change of a default cannot alter the
    # architecture a saved bundle is rebuilt with.
    bound = inspect.signature(factory).bind(**kwargs)
    bound.apply_defaults()
    # A model built from files (e.g. a GAN around a trained autoencoder bundle) names the arguments that
    # rebuild it without those files.
    arguments = (
        model.init_params
        if isinstance(model, RebuildableFromParams) and model.init_params
        else bound.arguments
    )
    return model, {k: list(v) if isinstance(v, tuple) else v for k, v in arguments.items()}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
