"""Which units each hospital of a federation holds, and each hospital's own train/val/test split.

Three sources (``federated.hospitals.source``):

- ``eicu_region``: the real hospitals of an eICU folder, grouped by ``hospital.csv``'s ``region``. A
  patient belongs to the region most of their ICU stays were in (ties: the first region alphabetically);
  patients with no region at all are left out; a region with fewer than ``min_patients`` patients is
  dropped. Both are said in a log line and recorded in ``federated.json``.
- ``roots``: one data folder per hospital (e.g. MIMIC-IV, eICU and MIMIC-III as three hospital systems, on
  harmonised concepts). Unit ids and patient ids are prefixed with the hospital's name, so two sources
  that number their patients alike never merge them.
- ``dirichlet``: one dataset dealt to ``count`` hospitals by patient, the label mix of each drawn from a
  Dirichlet(``alpha``) distribution per class (the label-skew split of Hsu et al., 2019); small alpha =
  strong skew. For regression the target's quartile stands for the label.

Everything is patient-level: a patient's units all go to one hospital, and each hospital's own split (the
task's ``data.split`` fractions and seed, or its predefined split) never separates a patient.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.config import ExperimentConfig, HospitalsConfig
from medlearn.engine.data import UnitTable, group_split
from medlearn.engine.progress import info
from medlearn.engine.task import Task
from medlearn.errors import ConfigError, InputError
from medlearn.paths import resolve_config_data_path

__all__ = ["Hospital", "Federation", "build_federation", "dirichlet_assignment", "eicu_patient_regions"]


@dataclass
class Hospital:
    """One hospital: its name, data folder and its units split into train/val/test."""

    name: str
    root: Path
    tables: dict[str, UnitTable]

    @property
    def n_patients(self) -> int:
        return len({g for t in self.tables.values() for g in t.groups})

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "patients": self.n_patients,
            **{f"{s}_units": len(t) for s, t in self.tables.items()},
        }


@dataclass
class Federation:
    """The hospitals of a run, how they were formed, and what was left out (and why)."""

    hospitals: list[Hospital]
    source: str
    notes: list[str] = field(default_factory=list)

    def pooled(self, split: str) -> UnitTable:
        """The units of ``split`` of every hospital in order (the centralised comparison's data)."""
        return UnitTable.concat([h.tables[split] for h in self.hospitals])


def _group_labels(table: UnitTable, kind: str) -> np.ndarray:
    """One label per unit for stratifying patients: the class, or the target's quartile (regression)."""
    if kind == "regression":
        edges = np.quantile(table.targets, [0.25, 0.5, 0.75])
        return np.searchsorted(edges, table.targets)
    return np.asarray(table.targets).astype(int)


def dirichlet_assignment(
    groups: np.ndarray, labels: np.ndarray, count: int, alpha: float, seed: int
) -> np.ndarray:
    """A hospital index per unit: each patient (by its first unit's label) goes to hospital ``k`` with the
    share Dirichlet(``alpha``) drew for its class; every hospital gets at least one patient of the set.

    Raises:
        ConfigError: fewer patients than hospitals.
    """
    first: dict[Any, int] = {}
    for i, g in enumerate(groups):
        first.setdefault(g, int(labels[i]))
    patients = np.array(list(first))
    if len(patients) < count:
        raise ConfigError(
            f"federated.hospitals.count: {count} hospitals but the data has {len(patients)} patients"
        )
    patient_labels = np.array([first[g] for g in patients])
    rng = np.random.default_rng(seed)
    where = np.empty(len(patients), dtype=int)
    for c in np.unique(patient_labels):
        members = rng.permutation(np.flatnonzero(patient_labels == c))
        shares = rng.dirichlet(np.full(count, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).round().astype(int)
        for k, part in enumerate(np.split(members, cuts)):
            where[part] = k
    # an empty hospital takes a patient from the largest one (deterministic; keeps the skew otherwise)
    for k in range(count):
        if not (where == k).any():
            sizes = np.bincount(where, minlength=count)
            donor = np.flatnonzero(where == int(sizes.argmax()))
            where[donor[rng.integers(len(donor))]] = k
    site_of = dict(zip(patients.tolist(), where.tolist()))
    return np.array([site_of[g] for g in groups.tolist()])


def eicu_patient_regions(root: Path) -> dict[str, str]:
    """``uniquepid`` → region, from an eICU folder's ``patient.csv`` and ``hospital.csv``: the region most
    of the patient's ICU stays were in (ties: alphabetical); patients with no region are absent."""
    files = {name: _find(root, name) for name in ("patient", "hospital")}
    with files["hospital"].open(newline="") as fh:
        region_of = {r["hospitalid"]: (r.get("region") or "").strip() for r in csv.DictReader(fh)}
    stays: dict[str, Counter[str]] = {}
    with files["patient"].open(newline="") as fh:
        for r in csv.DictReader(fh):
            region = region_of.get(r["hospitalid"], "")
            counts = stays.setdefault(r["uniquepid"], Counter())
            if region:
                counts[region] += 1
    return {pid: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for pid, c in stays.items() if c}


def _find(root: Path, name: str) -> Path:
    for suffix in (".csv", ".csv.gz"):
        if (root / f"{name}{suffix}").is_file():
            if suffix == ".csv.gz":
                raise InputError(f"{root / (name + suffix)}: unpack it (eICU regions read plain CSV)")
            return root / f"{name}{suffix}"
    raise InputError(f"{root}: no {name}.csv (federated.hospitals.source eicu_region needs an eICU folder)")


def _site_split(cfg: ExperimentConfig, table: UnitTable, name: str) -> dict[str, UnitTable]:
    """A hospital's own train/val/test (its predefined split, or a patient-level split)."""
    s = cfg.data.split
    n_groups = len(set(table.groups.tolist()))
    if table.split is not None:
        split = np.asarray(table.split)
    else:
        if n_groups < 3:
            raise ConfigError(f"hospital {name}: {n_groups} patients cannot make train, val and test splits")
        try:
            split = group_split(table.targets, table.groups, s.val_fraction, s.test_fraction, s.seed)
        except ValueError:  # every class rarer than the folds (a small hospital): split unstratified
            info(f"hospital {name}: too few units per class to stratify its split; split by patient only")
            zeros = np.zeros(len(table), dtype=int)
            split = group_split(zeros, table.groups, s.val_fraction, s.test_fraction, s.seed)
    tables = {k: table.subset(np.flatnonzero(split == k)) for k in ("train", "val", "test")}
    for k, t in tables.items():
        if len(t) == 0:
            raise ConfigError(
                f"hospital {name}: its {k} split is empty ({len(table)} units of {n_groups} patients); "
                "use fewer hospitals or a lower federated.hospitals.min_patients only with more data"
            )
    return tables


def _prefixed(table: UnitTable, name: str) -> UnitTable:
    """``table`` with ids and patient ids prefixed ``<name>/`` (hospitals from separate sources)."""
    return UnitTable(
        ids=[f"{name}/{i}" for i in table.ids],
        targets=table.targets,
        groups=np.array([f"{name}/{g}" for g in table.groups.tolist()]),
        raw=table.raw,
        fingerprint=table.fingerprint,
        split=table.split,
        meta=dict(table.meta),
    )


def build_federation(cfg: ExperimentConfig, task: Task, root: Path) -> Federation:
    """The hospitals ``cfg.federated.hospitals`` describes, each with its own train/val/test.

    Raises:
        ConfigError: more hospitals than patients, a hospital too small for its three splits, fewer than
            two hospitals left, or ``roots`` without ``sites``.
        InputError: a hospital's data folder is missing or unreadable.
    """
    assert cfg.federated is not None
    h: HospitalsConfig = cfg.federated.hospitals
    notes: list[str] = []
    parts: list[tuple[str, Path, UnitTable]] = []
    if h.source == "roots":
        if len(h.sites) < 2:
            raise ConfigError("federated.hospitals.sites: list at least two {name, root} hospitals")
        if len({s.name for s in h.sites}) < len(h.sites):
            raise ConfigError("federated.hospitals.sites: two hospitals have the same name")
        for site in h.sites:
            site_root = resolve_config_data_path(site.root)
            if not site_root.exists():
                raise InputError(f"{site_root}: hospital {site.name}'s data folder does not exist")
            parts.append((site.name, site_root, _prefixed(task.load(site_root), site.name)))
    else:
        table = task.load(root)
        if h.source == "eicu_region":
            regions = eicu_patient_regions(root)
            site_of = np.array([regions.get(str(g), "") for g in table.groups.tolist()])
            n_none = len({g for g, s in zip(table.groups.tolist(), site_of) if not s})
            if n_none:
                notes.append(f"{n_none} patients whose ICU stays have no region in hospital.csv left out")
            names = sorted({s for s in site_of if s})
        else:
            n_patients = len(set(table.groups.tolist()))
            if n_patients < h.count:
                raise ConfigError(
                    f"federated.hospitals.count: {h.count} hospitals but {root} has {n_patients} patients"
                )
            labels = _group_labels(table, task.kind)
            index = dirichlet_assignment(table.groups, labels, h.count, h.alpha, cfg.data.split.seed)
            names = [f"hospital{k + 1}" for k in range(h.count)]
            site_of = np.array([names[k] for k in index])
        for name in names:
            parts.append((name, root, table.subset(np.flatnonzero(site_of == name))))
    hospitals: list[Hospital] = []
    for name, site_root, site_table in parts:
        n = len(set(site_table.groups.tolist()))
        if n < h.min_patients:
            message = f"{name}: {n} patients, fewer than federated.hospitals.min_patients={h.min_patients}"
            if h.source == "eicu_region":
                notes.append(message + "; left out")
                continue
            raise ConfigError(f"hospital {message} (lower alpha skew, fewer hospitals or more data)")
        hospitals.append(Hospital(name, site_root, _site_split(cfg, site_table, name)))
    if len(hospitals) < 2:
        raise ConfigError(
            f"federated.hospitals: {len(hospitals)} hospital(s) left with at least "
            f"{h.min_patients} patients; a federation needs two ({'; '.join(notes)})"
        )
    for note in notes:
        info(f"hospitals: {note}")
    for hosp in hospitals:
        s = hosp.summary()
        info(
            f"hospital {hosp.name}: {s['patients']} patients; train {s['train_units']}, "
            f"val {s['val_units']}, test {s['test_units']} {task.unit}s"
        )
    return Federation(hospitals, h.source, notes)
