"""Shared fixtures: real-data folders skip cleanly when absent, except under CI=true where they fail."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


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
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own MEDLEARN_CACHE so caches never leak between tests or into $HOME."""
    monkeypatch.setenv("MEDLEARN_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny trainings (faster; their results do not depend on it). The
    setting is process-wide, so the previous count is restored after the module for the tests that follow."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
