"""``medlearn evaluate``: score a saved bundle on its own held-out split or on other data, with its own
preprocessing, writing ``metrics.json``, ``predictions.csv`` and ``report.html``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medlearn.engine import metrics as M
from medlearn.engine.artifacts import RunOutputs, write_json, write_predictions
from medlearn.engine.bundle import load_bundle
from medlearn.engine.experiment import score_split
from medlearn.engine.run_report import write_run_report
from medlearn.errors import InputError
from medlearn.paths import resolve_config_data_path

log = logging.getLogger(__name__)


def evaluate_bundle(
    bundle_path: Path,
    out: Path,
    data_path: Path | None = None,
    split: str | None = None,
    device: str = "auto",
    allow_external: bool = False,
    public_key: str | Path | None = None,
) -> RunOutputs:
    """Score a bundle: its own test split by default; the whole dataset at ``data_path`` (split "all")
    unless ``split`` names one of the bundle's splits. Uses the bundle's preprocessing only.

    Args:
        bundle_path: the bundle (or its run folder).
        out: where ``metrics.json``, ``predictions.csv`` and ``report.html`` are written.
        data_path: other data of the same layout to score (external validation); default the bundle's own.
        split: one of the bundle's splits (``test``, ``val``, ``train``) to score.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        allow_external: load a bundle that runs out-of-tree code (see :func:`~medlearn.engine.bundle.load_bundle`).
        public_key: require a signature by this Ed25519 public key's private key.

    Returns:
        :class:`~medlearn.engine.artifacts.RunOutputs` with the scored split's metrics and the report.
    """
    bundle = load_bundle(bundle_path, device, allow_external=allow_external, public_key=public_key)
    meta, task = bundle.meta, bundle.task
    if bundle.kind == "generative":
        raise InputError(
            f"{bundle_path}: a generator is scored by its generated set, not on a split; use "
            "medlearn generate, then medlearn mol-metrics"
        )
    cfg_root = resolve_config_data_path(meta.data.root)
    root = data_path or cfg_root
    if not root.exists():
        raise InputError(f"{root}: evaluation data does not exist (pass --data PATH)")
    table = task.load(root)
    if table.fingerprint != meta.data.fingerprint:
        log.warning(
            "data at %s differs from the data this bundle was trained on (fingerprint %s, bundle %s)",
            root,
            table.fingerprint[:12],
            meta.data.fingerprint[:12],
        )
    if data_path is not None and split is None:
        split_name, subset = "all", table
    else:
        split_name = split or "test"
        if split_name not in meta.splits and meta.training.folds > 1:
            raise InputError(
                f"{bundle_path}: refit on all the data after {meta.training.folds}-fold "
                "cross-validation, so it has no held-out split (its cross-validated metrics are in "
                "bundle.json); pass --data PATH to score other data"
            )
        if split_name not in meta.splits:
            raise InputError(f"--split {split_name}: the bundle has splits {', '.join(meta.splits)}")
        wanted = set(meta.splits[split_name])
        index = np.flatnonzero([uid in wanted for uid in table.ids])
        if len(index) == 0:
            raise InputError(f"{root}: none of the bundle's {split_name} units are in this dataset")
        subset = table.subset(index)
    pred = bundle.predict_raw(list(subset.raw))
    op = M.OperatingPoint(**meta.operating_point.model_dump()) if meta.operating_point else None
    n_boot = meta.config["eval"]["n_bootstrap"]
    scored = score_split(task, subset, pred, split_name, op, n_boot)
    scored["data"] = {
        "root": str(root),
        "fingerprint": table.fingerprint,
        "matches_training_data": table.fingerprint == meta.data.fingerprint,
    }
    write_json(out / "metrics.json", scored)
    write_predictions(
        out / "predictions.csv",
        task.kind,
        task.class_names,
        {split_name: subset},
        {split_name: pred},
        op.threshold if op else None,
    )
    report = write_run_report(
        out / "report.html",
        bundle,
        {split_name: subset},
        {split_name: pred},
        {split_name: scored},
        meta.training.history,
        None,
        task.data_sections(),
    )
    return RunOutputs(out, scored, report=report)
