"""A small but complete :class:`BundleMeta` for tests of what reads one (model card, reports)."""

from __future__ import annotations

from typing import Any

from medlearn.engine.artifacts import BundleMeta


def minimal_meta(**overrides: Any) -> BundleMeta:
    """A binary bundle's metadata; ``overrides`` replace top-level fields (given as plain dicts)."""
    fields: dict[str, Any] = {
        "created": "2026-12-05T00:00:00+0000",
        "versions": {"medlearn": "test"},
        "task": {"name": "t", "options": {}},
        "target": {"kind": "binary", "class_names": ["no", "yes"], "unit": "unit", "monitor": "auroc"},
        "model": {"name": "m", "params": {}},
        "preprocessing": [],
        "metrics": {"test": {"split": "test", "n": 1, "unit": "unit", "metrics": {}}},
        "data": {"root": "r", "fingerprint": "f", "n_units": 10, "n_train": 1},
        "splits": {"train": ["a"]},
        "training": {"best_epoch": 1, "epochs_run": 1, "seconds": 0.0},
        "config": {},
        "intended_use": "research",
        "credits": [],
    }
    fields.update(overrides)
    return BundleMeta.model_validate(fields)


def meta_for_task(task: Any, model_name: str, model_params: dict[str, Any]) -> BundleMeta:
    """The metadata of an untrained in-memory bundle of ``task`` (tests that exercise predict's plumbing)."""
    from medlearn.engine.artifacts import target_record

    return minimal_meta(
        task={"name": task.name, "options": task.options_dict()},
        target=target_record(task.target, task.unit).model_dump(),
        model={"name": model_name, "params": model_params},
    )
