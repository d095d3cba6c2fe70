"""Shared fixtures: real data and optional dependencies skip cleanly when absent, except under CI=true
where they fail; ``--dummy-model`` swaps every predictive model for the training prevalence."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import pytest


def skip_or_fail_in_ci(reason: str) -> NoReturn:
    """Skip the test (or module) locally; under CI=true, fail it: CI installs ``.[all]`` and has the data,
    so anything missing there is a broken environment, not an optional extra."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_data(relative: str) -> Path:
    """Path of a dataset under MEDLEARN_DATA; skip (or fail under CI=true) when it is absent."""
    from medlearn.paths import data_root

    try:
        path = data_root() / relative
    except Exception as exc:  # MEDLEARN_DATA unset outside a checkout
        path = None
        reason = str(exc)
    else:
        reason = f"real dataset {path} is not present (set MEDLEARN_DATA)"
    if path is None or not path.exists():
        skip_or_fail_in_ci(reason)
    return path


def require_module(name: str) -> ModuleType:
    """Import optional dependency ``name`` (e.g. ``"rdkit"``, ``"fcd"``); skip when it is missing, fail
    under CI=true. Use in place of ``pytest.importorskip``, also at module level."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip_or_fail_in_ci(
            f"optional dependency {name!r} is not installed ({exc}); install it with: pip install -e '.[all]'"
        )


# -- --dummy-model: prove that the pipeline tests fail when nothing is learned -------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--dummy-model",
        action="store_true",
        default=False,
        help="replace every predictive model trained or loaded in this session by the registered 'dummy' "
        "(the training prevalence for every unit); every test asserting model quality must then fail",
    )


def _is_generative(name: str) -> bool:
    """Generative models (molecule generators) keep their own objective; the dummy is predictive only."""
    from medlearn.registry import MODELS

    return MODELS.get(name, "").startswith("medlearn.molecules.generators.")


@pytest.fixture(scope="session", autouse=True)
def _dummy_model(request: pytest.FixtureRequest):
    """With ``--dummy-model``, ``build_model`` (as the engine trains with it and as bundles are loaded
    with it) builds the prevalence model instead of the configured one. The configured name stays in
    the config and the bundle, so preprocessing, splits and outputs are exactly those of the real run:
    only what the model learned is taken away."""
    if not request.config.getoption("--dummy-model"):
        yield
        return
    import medlearn.engine.models as models
    import medlearn.engine.run as run

    original = models.build_model

    def build_prevalence_model(name: str, params: dict[str, Any], data_kwargs: dict[str, Any]):
        if name == "dummy" or _is_generative(name):
            return original(name, params, data_kwargs)
        out_channels = data_kwargs.get("out_channels", params.get("out_channels", 1))
        return original("dummy", {}, {"out_channels": out_channels})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, "build_model", build_prevalence_model)
        patch.setattr(run, "build_model", build_prevalence_model)
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own MEDLEARN_CACHE so caches never leak between tests or into $HOME."""
    monkeypatch.setenv("MEDLEARN_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _progress_not_quiet() -> Iterator[None]:
    """``--quiet`` is process-wide state: a CLI test run in-process (CliRunner) must not silence the
    progress lines of the tests after it."""
    from medlearn.engine.progress import set_quiet

    set_quiet(False)
    yield
    set_quiet(False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny trainings (faster; their results do not depend on it). The
    setting is process-wide, so the previous count is restored after the module for the tests that follow."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
