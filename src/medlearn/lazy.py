"""Lazy package exports: ``import medlearn.signals.io`` must not import wfdb, pyEDFlib or MONAI until a
name that needs them is used (PEP 562 module ``__getattr__``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``name`` from ``package.<exports[name]>`` on first use."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__


def require_extra(module: str, purpose: str, extra: str) -> ModuleType:
    """Import an optional library, or raise MissingDependencyError naming the extra that provides it, in the
    registry's one-line form (``wfdb is needed to read WFDB records: pip install "medlearn[signals]"``)."""
    from medlearn.errors import MissingDependencyError

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f'{module} is needed {purpose}: pip install "medlearn[{extra}]"'
        ) from exc
