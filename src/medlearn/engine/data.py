"""Modality-agnostic data plumbing: unit tables, group splits, preprocessing specs, cached datasets.

A *unit* is what one prediction is made for (a reader's nodule mark, an X-ray, an admission, an ECG
record). A task loads its dataset into a :class:`UnitTable`; the engine splits it by *group* (patient or
exam, so no group appears in two splits), applies the saved :class:`Preprocessing` and caches the result
so that epoch 2 onward skips it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.errors import ConfigError, InputError
from medlearn.paths import cache_dir

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class UnitTable:
    """Everything a task knows about its units, before preprocessing.

    Attributes:
        ids: one string id per unit (written to predictions.csv).
        targets: class index (int) or value (float) per unit.
        groups: the unit's patient/exam id; splits never separate a group.
        raw: per-unit raw inputs (arrays, or anything the task's preprocessing accepts).
        split: predefined split name per unit ("train"/"val"/"test"), or None to split by group here.
        fingerprint: content hash of the input files (see :func:`fingerprint_files`).
        meta: per-unit extra columns for predictions.csv (same length as ids).
    """

    ids: list[str]
    targets: np.ndarray
    groups: np.ndarray
    raw: Sequence[Any]
    fingerprint: str
    split: np.ndarray | None = None
    meta: dict[str, Sequence[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def concat(tables: Sequence[UnitTable]) -> UnitTable:
        """The units of ``tables`` in order (e.g. the test folds of a cross-validation)."""
        if len(tables) == 1:
            return tables[0]
        keys = set(tables[0].meta)
        return UnitTable(
            ids=[i for t in tables for i in t.ids],
            targets=np.concatenate([t.targets for t in tables]),
            groups=np.concatenate([t.groups for t in tables]),
            raw=[r for t in tables for r in t.raw],
            fingerprint=tables[0].fingerprint,
            meta={k: [v for t in tables for v in t.meta[k]] for k in keys},
        )

    def subset(self, index: np.ndarray) -> UnitTable:
        index = np.asarray(index, dtype=int)
        return UnitTable(
            ids=[self.ids[i] for i in index],
            targets=self.targets[index],
            groups=self.groups[index],
            raw=[self.raw[i] for i in index],
            fingerprint=self.fingerprint,
            split=None if self.split is None else self.split[index],
            meta={k: [v[i] for i in index] for k, v in self.meta.items()},
        )


def fingerprint_files(paths: Iterable[Path], extra: str = "") -> str:
    """A content hash of files (sorted by path relative to their common root), so moved data still matches."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(extra.encode())
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def group_split(
    targets: np.ndarray, groups: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Assign every unit to train/val/test so that each group lands in exactly one split.

    Uses scikit-learn's StratifiedGroupKFold so that class balance is kept as far as the groups allow
    (classification); regression targets are binned into quartiles for stratification.
    """
    return cv_group_splits(
        targets, groups, max(2, round(1 / test_fraction)), val_fraction, seed, only_first=True
    )[0]


def halve_by_group(groups: np.ndarray, seed: int) -> np.ndarray | None:
    """A boolean mask over units: True for a random half of the groups (rounded down), False for the rest,
    so no group straddles the halves; None with fewer than 2 groups (nothing to halve).

    Used to carve a conformal-calibration part out of a validation split: the other half is what the
    Trainer monitors for early stopping, so the conformal residuals come from units model selection never
    looked at.
    """
    groups = np.asarray(groups)
    unique = np.unique(groups)
    if len(unique) < 2:
        return None
    chosen = np.random.default_rng(seed).permutation(unique)[: len(unique) // 2]
    return np.isin(groups, chosen)


def cv_group_splits(
    targets: np.ndarray,
    groups: np.ndarray,
    n_folds: int,
    val_fraction: float,
    seed: int,
    only_first: bool = False,
) -> list[np.ndarray]:
    """k-fold cross-validation over groups: split ``k`` tests fold ``k`` and validates on a
    ``val_fraction`` of the other groups; every group is tested exactly once over the folds."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(targets)
    if y.dtype.kind == "f":
        y = np.digitize(y, np.quantile(y, [0.25, 0.5, 0.75]))
    test_fraction = 1 / n_folds
    n_groups = len(set(np.asarray(groups).tolist()))
    if n_groups < n_folds:
        raise InputError(
            f"{n_folds} folds need at least {n_folds} groups (patients/records); the data has {n_groups}"
        )
    n_val_folds = max(2, round((1 - test_fraction) / val_fraction))
    splits = []
    with warnings.catch_warnings():  # rare classes: stratification is best effort, groups are exact
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for _, test_idx in folds.split(np.zeros(len(y)), y, groups):
            split = np.full(len(y), "train", dtype=object)
            split[test_idx] = "test"
            rest = np.flatnonzero(split == "train")
            n_rest_groups = len(set(groups[rest]))
            if n_rest_groups < 2:
                raise InputError(
                    f"{n_rest_groups} group(s) left for training and validation: too few to split"
                )
            inner = StratifiedGroupKFold(
                n_splits=min(n_val_folds, n_rest_groups), shuffle=True, random_state=seed + 1
            )
            _, val_local = next(inner.split(np.zeros(len(rest)), y[rest], groups[rest]))
            split[rest[val_local]] = "val"
            splits.append(split.astype(str))
            if only_first:
                break
    return splits


class Preprocessing:
    """A deterministic chain of registered transforms, rebuilt from a JSON spec.

    The spec (``[{"name": "hu_window", "params": {...}}, ...]``) is what a bundle stores, so serving,
    evaluation and explanation run exactly the preprocessing training ran.
    """

    def __init__(self, spec: list[dict[str, Any]]):
        from medlearn.registry import transform_class

        self.spec = [{"name": s["name"], "params": dict(s.get("params", {}))} for s in spec]
        self._steps: list[Callable[[Any], Any]] = []
        for i, step in enumerate(self.spec):
            cls = transform_class(step["name"])
            try:
                self._steps.append(cls(**step["params"]))
            except TypeError as exc:
                raise ConfigError(f"preprocessing[{i}] {step['name']}: {exc}") from None

    @property
    def steps(self) -> list[Callable[[Any], Any]]:
        """The instantiated transforms, in order (e.g. to ask a fitted step for its vocabulary)."""
        return list(self._steps)

    def __call__(self, raw: Any) -> np.ndarray:
        out = raw
        for step in self._steps:
            out = step(out)
        return np.ascontiguousarray(out, dtype=np.float32)

    def digest(self) -> str:
        return hashlib.blake2b(json.dumps(self.spec, sort_keys=True).encode(), digest_size=8).hexdigest()


class CachedDataset:
    """A torch-style dataset that preprocesses each unit once and serves the cached array after.

    With ``cache_key`` the stacked arrays also persist under ``MEDLEARN_CACHE`` (keyed by data
    fingerprint, preprocessing digest and unit ids), so a second run skips preprocessing entirely.
    ``augment`` (random, training only) runs after the cache on every access.
    """

    def __init__(
        self,
        raw: Sequence[Any],
        targets: np.ndarray,
        preprocess: Preprocessing,
        augment: Callable[[np.ndarray], np.ndarray] | None = None,
        cache_key: str | None = None,
    ):
        self.raw = raw
        self.targets = np.asarray(targets)
        self.preprocess = preprocess
        self.augment = augment
        self._items: list[np.ndarray | None] = [None] * len(raw)
        self._disk_path: Path | None = None
        if cache_key is not None:
            self._disk_path = cache_dir("preprocessed") / f"{cache_key}.npy"
            if self._disk_path.is_file():
                stacked = np.load(self._disk_path)
                if len(stacked) == len(raw):
                    self._items = list(stacked)
                    log.info("loaded %d preprocessed units from cache %s", len(raw), self._disk_path)

    def __len__(self) -> int:
        return len(self.raw)

    def array(self, i: int) -> np.ndarray:
        item = self._items[i]
        if item is None:
            item = self._items[i] = self.preprocess(self.raw[i])
            if self._disk_path is not None and all(x is not None for x in self._items):
                self._persist()
        return item

    def _persist(self) -> None:
        shapes = {x.shape for x in self._items if x is not None}
        if len(shapes) == 1 and self._disk_path is not None:
            tmp = self._disk_path.with_suffix(".tmp.npy")
            np.save(tmp, np.stack(self._items))  # type: ignore[arg-type]
            tmp.replace(self._disk_path)

    def __getitem__(self, i: int) -> tuple[np.ndarray, Any]:
        x = self.array(i)
        if self.augment is not None:
            x = np.ascontiguousarray(self.augment(x), dtype=np.float32)
        return x, self.targets[i]


def dataset_cache_key(
    fingerprint: str, preprocess: Preprocessing, ids: Sequence[str], task_options: str = ""
) -> str:
    """Cache key of preprocessed units: the data's content, the preprocessing, which units, and the task
    options that shaped the raw units (e.g. a prediction window), so no option change serves stale arrays."""
    ids_digest = hashlib.blake2b("\n".join([task_options, *ids]).encode(), digest_size=8).hexdigest()
    return f"{fingerprint[:16]}-{preprocess.digest()}-{ids_digest}"
