"""medlearn: clinical deep learning from raw hospital data to a trustworthy, deployed model.

Importing the package stays light (no torch, MONAI or RDKit import); heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from medlearn.engine.bundle import Bundle


def load_bundle(path: Any) -> "Bundle":
    """Load a model bundle directory written by ``medlearn train`` (see :mod:`medlearn.engine.bundle`)."""
    from medlearn.engine.bundle import load_bundle as _load

    return _load(path)


__all__ = ["__version__", "load_bundle"]
