"""Project exceptions.

Every error a user can fix (a bad file, a wrong config key, a missing folder) is raised as a
:class:`MedlearnError` subclass whose message names the file or key and what to do. The CLI turns
these into one red line on stderr and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MedlearnError(Exception):
    """Base class of errors the user can fix."""


class InputError(MedlearnError):
    """A data file or folder is missing, unreadable or not what it claims to be."""


class ConfigError(MedlearnError):
    """A config key is unknown, has the wrong type, or names something that does not exist."""


class BundleError(MedlearnError):
    """A model bundle is missing, incomplete or from an incompatible format version."""


class OutputExistsError(MedlearnError):
    """An output would overwrite existing results and ``--force`` was not given."""


class MissingDependencyError(MedlearnError):
    """An optional dependency (an extra such as ``medlearn[imaging]``) is not installed."""


class RunInterrupted(KeyboardInterrupt):
    """``train`` was interrupted (Ctrl-C): a KeyboardInterrupt that knows the run's folder and whether a
    checkpoint lets ``medlearn train --resume OUT`` continue it. The CLI prints ``interrupted:`` and
    :attr:`message` as its one line and exits with code 130."""

    def __init__(self, out: object, resumable: bool):
        self.out = out
        self.resumable = resumable
        if resumable:
            message = f"{out} keeps its last checkpoint; continue with: medlearn train --resume {out}"
        else:
            message = f"before the first checkpoint, nothing to resume in {out}; start again with --out {out} --force"
        self.message = message
        super().__init__(f"interrupted: {message}")
