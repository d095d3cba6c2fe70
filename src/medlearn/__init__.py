"""medlearn: clinical deep learning from raw hospital data to a trustworthy, deployed model.

The Python API mirrors the command line (see :mod:`medlearn.api`): :func:`train` is ``medlearn train``,
:func:`evaluate` is ``medlearn evaluate``, :func:`load_bundle` ``(path).predict(inputs)`` and
:func:`predict` are ``medlearn predict --json``.

Examples:
    >>> import medlearn
    >>> run = medlearn.train("ehr_los_mimic4", data="mimic-iv-demo", out="runs/los")  # doctest: +SKIP
    >>> medlearn.load_bundle(run.bundle).predict("patient_bundle.json")  # doctest: +SKIP

Importing the package stays light (no torch, MONAI or RDKit import); heavy modules load on first use.
"""

from __future__ import annotations

from medlearn.api import evaluate, load_bundle, predict, train

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "load_bundle", "predict", "train"]
