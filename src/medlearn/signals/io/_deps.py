"""Optional readers' libraries (the ``medlearn[signals]`` extra), imported only when a reader runs."""

from __future__ import annotations

from types import ModuleType

from medlearn.lazy import require_extra


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError saying that ``medlearn[signals]`` provides it."""
    return require_extra(module, purpose, "signals")
