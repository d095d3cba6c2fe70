"""Optional readers' libraries (the ``medlearn[signals]`` extra), imported only when a reader runs."""

from __future__ import annotations

import importlib
from types import ModuleType

from medlearn.errors import MissingDependencyError


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is needed {purpose}; install it with: pip install 'medlearn[signals]'") from exc
