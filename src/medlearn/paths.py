"""Where data, caches and run outputs live (see docs/conventions.md#data-paths).

``MEDLEARN_DATA`` is the root of the shared real datasets; relative ``data.root`` values in configs
resolve against it. ``MEDLEARN_CACHE`` holds derived, re-creatable files (preprocessed arrays), keyed by
content fingerprints so that a changed input never serves a stale cache.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from medlearn.errors import InputError, OutputExistsError

#: The repository root when running from a checkout (``src/medlearn/paths.py`` → three levels up).
_CHECKOUT_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The folder of shared datasets: ``$MEDLEARN_DATA`` or, in a checkout, ``../shared/data``."""
    env = os.environ.get("MEDLEARN_DATA")
    if env:
        return Path(env).expanduser().resolve()
    if (_CHECKOUT_ROOT / "pyproject.toml").is_file():
        return (_CHECKOUT_ROOT.parent / "shared" / "data").resolve()
    raise InputError(
        "MEDLEARN_DATA is not set: set it to the folder that holds the datasets "
        "(e.g. export MEDLEARN_DATA=/data/medlearn) or pass an absolute data.root"
    )


def resolve_config_data_path(value: str | os.PathLike[str]) -> Path:
    """Resolve a ``data.root`` from a config file: relative paths are relative to ``MEDLEARN_DATA``."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else data_root() / path


def resolve_cli_path(value: str | os.PathLike[str]) -> Path:
    """Resolve a path typed on the command line: relative to the current directory."""
    return Path(value).expanduser().resolve()


def cache_dir(*parts: str) -> Path:
    """A folder under ``$MEDLEARN_CACHE`` (default ``~/.cache/medlearn``), created on demand."""
    root = Path(os.environ.get("MEDLEARN_CACHE", Path.home() / ".cache" / "medlearn")).expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_out_dir(name: str) -> Path:
    """``runs/<name>-<YYYYmmdd-HHMMSS>`` in the current directory."""
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_out_dir(path: Path, force: bool) -> Path:
    """Create an output directory; refuse to reuse a non-empty one unless ``force``."""
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputExistsError(f"{path}: output directory is not empty; pass --force to overwrite it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_out_file(path: Path, force: bool) -> Path:
    """Check that an output file may be written (parent created, existing file needs ``force``)."""
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: file exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
