"""The building blocks every run shares, predictive or generative: the task a config names, its data
folder, cached datasets, the split tables, and the callbacks a run's Trainers hear."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.config import ExperimentConfig
from medlearn.engine import metrics as M
from medlearn.engine.data import CachedDataset, Preprocessing, UnitTable, dataset_cache_key
from medlearn.engine.progress import info
from medlearn.engine.task import Task
from medlearn.errors import InputError
from medlearn.paths import resolve_config_data_path
from medlearn.registry import task_class


def make_task(cfg: ExperimentConfig) -> Task:
    """The task the config names (registered or ``package.module:Name``), with its data options."""
    return task_class(cfg.task)(cfg.data.options)


def resolve_root(cfg: ExperimentConfig) -> Path:
    """The config's ``data.root`` as a folder on this machine (``$MEDLEARN_DATA``-relative names resolved)."""
    root = resolve_config_data_path(cfg.data.root)
    if not root.exists():
        raise InputError(f"{root}: data.root does not exist (config {cfg.name}; set MEDLEARN_DATA or --data)")
    return root


def make_dataset(
    task: Task, table: UnitTable, pre: Preprocessing, cache: bool, augment: Any = None
) -> CachedDataset:
    """The units of ``table`` preprocessed by ``pre``; with ``cache``, kept on disk under a key of the data
    fingerprint, preprocessing, unit ids and task options (any change makes a new cache)."""
    options = json.dumps(task.options_dict(), sort_keys=True)
    key = dataset_cache_key(table.fingerprint, pre, table.ids, options) if cache else None
    return CachedDataset(table.raw, table.targets, pre, augment=augment, cache_key=key)


def split_tables(
    table: UnitTable,
    split: np.ndarray,
    root: Path,
    unit: str,
    prefix: str = "",
    required: tuple[str, ...] = ("train", "val", "test"),
) -> dict[str, UnitTable]:
    """The units of each split named in ``split`` (those in ``required`` must not be empty), logged."""
    tables = {
        s: table.subset(np.flatnonzero(split == s)) for s in ("train", "val", "test") if (split == s).any()
    }
    for s in required:
        if s not in tables:
            raise InputError(
                f"{root}: the {s} split is empty ({len(table)} units in {len(set(table.groups))} groups)"
            )
    info(
        prefix
        + "units: "
        + ", ".join(f"{s} {len(t)} {unit}s in {len(set(t.groups))} groups" for s, t in tables.items())
    )
    return tables


def score_split(
    task: Task, table: UnitTable, pred: np.ndarray, split: str, op: M.OperatingPoint | None, n_boot: int
) -> dict[str, Any]:
    """``metrics.json`` for ``table``'s units scored by ``pred``, with group-bootstrap CIs (seed 0)."""
    return M.evaluate_predictions(
        task.name,
        split,
        task.unit,
        task.kind,
        table.targets,
        pred,
        task.class_names,
        op,
        groups=table.groups,
        n_boot=n_boot,
        seed=0,
        ordinal=task.target.ordinal,
        f1_groups=task.target.f1_groups,
    )
