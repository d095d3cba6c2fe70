"""Reference sets of the MOSES metrics (Test and TestSF), their statistics computed once and cached.

MOSES scores a generated set against statistics of a reference set: fingerprints (SNN), BRICS
fragment and Murcko scaffold counts (Frag, Scaf), ChemNet activation mean/covariance (FCD) and
property values (logP, SA, QED, weight). The FCD and property statistics of the MOSES test sets ship
with the data (``test_stats_fcd_props.npz``, ``test_scaffolds_stats_fcd.npz``: the molsets values);
the rest is recomputed from the SMILES with RDKit (≈ 1-3 min per 176k molecules on 2 cores) and cached
under ``MEDLEARN_CACHE/molecules/reference/`` keyed by the SMILES file's content hash, the RDKit version
and the definition version, so a changed file or RDKit never serves stale statistics.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.engine.progress import info
from medlearn.errors import InputError
from medlearn.molecules.io import read_smiles, require, too_large
from medlearn.molecules.metrics.chemnet import ChemNetEmbedder, activation_statistics
from medlearn.molecules.metrics.descriptors import PROPERTY_NAMES, Descriptors, describe_chunk, init_worker
from medlearn.molecules.metrics.filters import read_filter_smarts
from medlearn.molecules.metrics.parallel import ChunkPool, pool_processes
from medlearn.molecules.metrics.similarity import SortedFingerprints
from medlearn.paths import cache_dir, data_root

#: Bumped whenever a cached statistic would change meaning (fingerprint, fragment or scaffold rules).
DEFINITION_VERSION = "moses-0.3.1/morgan2-1024/brics/murcko-min2-rings/v1"
_CHUNK = 1000


def _counts(items: Any) -> dict[str, int]:
    return dict(Counter(items))


def _as_counts(keys: np.ndarray, counts: np.ndarray) -> dict[str, int]:
    return dict(zip(keys.tolist(), counts.tolist(), strict=True))


@dataclass(frozen=True)
class ReferenceStats:
    """Everything a metric needs of one reference set (``name`` is the MOSES key suffix, e.g. ``Test``)."""

    name: str
    n_molecules: int
    fingerprints: SortedFingerprints
    fragments: dict[str, int]
    scaffolds: dict[str, int]
    fcd_mu: np.ndarray | None = None
    fcd_sigma: np.ndarray | None = None
    properties: dict[str, np.ndarray] | None = None

    @classmethod
    def from_smiles(
        cls,
        name: str,
        smiles: list[str | None],
        stats_npz: str | Path | None = None,
        with_properties: bool = True,
        n_jobs: int | None = None,
        cache_key: str | None = None,
    ) -> ReferenceStats:
        """Statistics of a reference SMILES list; FCD and properties come from ``stats_npz`` when given.

        Args:
            stats_npz: ``fcd_mu``/``fcd_sigma`` (and optionally per-molecule ``logP SA QED weight``);
                what it lacks is computed (ChemNet on 176k molecules takes ≈ 10 min on 2 cores).
            with_properties: compute property values if the npz has none (only ``Test`` needs them).
            cache_key: content key of ``smiles``; computed from the list when ``None``.
        """
        given = _load_stats_npz(Path(stats_npz)) if stats_npz is not None else {}
        need_fcd = "fcd_mu" not in given
        need_props = with_properties and not all(k in given for k in PROPERTY_NAMES)
        key = cache_key or hashlib.sha256("\n".join(s or "" for s in smiles).encode()).hexdigest()
        path = _cache_path(name, key, need_fcd, need_props)
        if path.is_file():
            computed = _read_cache(path)
        else:
            info(f"computing reference statistics {name} ({len(smiles)} SMILES; cached after this run)")
            computed = _compute(name, smiles, need_fcd, need_props, n_jobs)
            _write_cache(path, computed)
        props = (
            {k: given[k] for k in PROPERTY_NAMES if k in given}
            if not need_props
            else {k: computed[f"prop_{k}"] for k in PROPERTY_NAMES}
        )
        return cls(
            name=name,
            n_molecules=int(computed["n_molecules"]),
            fingerprints=SortedFingerprints(
                *(computed[f"fp_{k}"] for k in ("packed", "counts", "groups", "starts"))
            ),
            fragments=_as_counts(computed["frag_keys"], computed["frag_counts"]),
            scaffolds=_as_counts(computed["scaf_keys"], computed["scaf_counts"]),
            fcd_mu=computed["fcd_mu"] if need_fcd else given["fcd_mu"],
            fcd_sigma=computed["fcd_sigma"] if need_fcd else given["fcd_sigma"],
            properties=props or None,
        )

    @classmethod
    def from_file(
        cls,
        name: str,
        smiles_path: str | Path,
        stats_npz: str | Path | None = None,
        with_properties: bool = True,
        n_jobs: int | None = None,
    ) -> ReferenceStats:
        """:meth:`from_smiles` of a SMILES file, cached by the file's content hash."""
        smiles_path = Path(smiles_path)
        if not smiles_path.is_file():
            raise InputError(f"{smiles_path}: reference SMILES file not found")
        key = hashlib.sha256(smiles_path.read_bytes()).hexdigest()
        return cls.from_smiles(name, read_smiles(smiles_path), stats_npz, with_properties, n_jobs, key)


def _load_stats_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InputError(f"{path}: reference statistics file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            stats = {k: np.asarray(data[k], dtype=np.float64) for k in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable npz of reference statistics ({exc})") from exc
    if "fcd_mu" not in stats or "fcd_sigma" not in stats:
        raise InputError(f"{path}: needs arrays 'fcd_mu' and 'fcd_sigma', found {sorted(stats)}")
    return stats


def _cache_path(name: str, key: str, fcd: bool, props: bool) -> Path:
    rdkit = require("rdkit", "for molecule metrics")
    spec = f"{DEFINITION_VERSION}|rdkit {rdkit.__version__}|fcd {fcd}|props {props}|{key}"
    digest = hashlib.sha256(spec.encode()).hexdigest()[:24]
    return cache_dir("molecules", "reference") / f"{name}-{digest}.npz"


def _compute(
    name: str, smiles: list[str | None], fcd: bool, props: bool, n_jobs: int | None
) -> dict[str, Any]:
    present = [s for s in smiles if s]
    large = sum(too_large(s) for s in present)
    if large:  # not parsed at all: one hostile row must not stall the reference statistics
        present = [s for s in present if not too_large(s)]
        info(f"reference {name}: skipped {large} SMILES over the size limits (too_large)")
    with ChunkPool(pool_processes(n_jobs), init_worker) as pool:
        parts = pool.map_chunks(
            partial(describe_chunk, properties=props, filters=False, skip_invalid=True),
            present,
            _CHUNK,
            f"reference {name}",
        )
    desc = Descriptors.concat(parts)
    if desc.n_invalid or len(present) + large < len(smiles):
        skipped = desc.n_invalid + len(smiles) - len(present) - large
        info(f"reference {name}: skipped {skipped} invalid or empty SMILES")
    fps = SortedFingerprints.from_packed(desc.fingerprints)
    fragments = _counts(f for frags in desc.fragments for f in frags)
    scaffolds = _counts(s for s in desc.scaffolds if s is not None)
    out: dict[str, Any] = {
        "n_molecules": np.int64(len(desc.fingerprints)),
        "fp_packed": fps.packed,
        "fp_counts": fps.counts,
        "fp_groups": fps.group_counts,
        "fp_starts": fps.group_starts,
        "frag_keys": np.array(list(fragments), dtype=str),
        "frag_counts": np.array(list(fragments.values())),
        "scaf_keys": np.array(list(scaffolds), dtype=str),
        "scaf_counts": np.array(list(scaffolds.values())),
    }
    if fcd:
        activations = ChemNetEmbedder()(present)  # MOSES feeds the reference SMILES as given
        out["fcd_mu"], out["fcd_sigma"] = activation_statistics(activations)
    if props:
        for column, prop in enumerate(PROPERTY_NAMES):
            out[f"prop_{prop}"] = desc.properties[:, column]
    return out


def _write_cache(path: Path, arrays: dict[str, Any]) -> None:
    """Write atomically: a killed run must not leave a truncated cache that later loads as valid."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _read_cache(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@dataclass
class MosesReference:
    """The MOSES evaluation context: Test and TestSF statistics, filter SMARTS and the training set.

    ``sources`` names what each set is (keys ``test``, ``test_scaffolds``, ``train``), e.g. "MOSES Test
    (…/test.csv.gz, 176,074 molecules)" or "1,000 molecules held out from first_5K.smi": the metric keys
    keep MOSES's names (``fcd_test``...) whatever they were scored against, so metrics.json and reports
    carry these as its ``reference``.
    """

    test: ReferenceStats
    test_scaffolds: ReferenceStats | None
    filter_smarts: tuple[str, ...]
    train_path: Path | None = None
    train: frozenset[str] | None = field(default=None, repr=False)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def references(self) -> list[ReferenceStats]:
        return [r for r in (self.test, self.test_scaffolds) if r is not None]

    def train_smiles(self) -> frozenset[str] | None:
        """The training SMILES for Novelty, as stored (MOSES compares them uncanonicalised)."""
        if self.train is None and self.train_path is not None:
            self.train = frozenset(s for s in read_smiles(self.train_path) if s)
        return self.train

    @classmethod
    def from_smiles(
        cls,
        test_smiles: list[str | None],
        filter_smarts: tuple[str, ...],
        test_scaffolds_smiles: list[str | None] | None = None,
        train_smiles: list[str] | None = None,
        n_jobs: int | None = None,
        sources: dict[str, str] | None = None,
    ) -> MosesReference:
        """A reference from in-memory SMILES (a custom benchmark, or a small one for tests); FCD and
        property statistics are computed from the SMILES. ``sources`` names the sets (see the class);
        unnamed ones are described by their size only."""
        test = ReferenceStats.from_smiles("Test", test_smiles, n_jobs=n_jobs)
        scaffolds = (
            None
            if test_scaffolds_smiles is None
            else ReferenceStats.from_smiles(
                "TestSF", test_scaffolds_smiles, with_properties=False, n_jobs=n_jobs
            )
        )
        named = {"test": f"{len(test_smiles):,} SMILES given in memory"}
        if test_scaffolds_smiles is not None:
            named["test_scaffolds"] = f"{len(test_scaffolds_smiles):,} SMILES given in memory"
        if train_smiles is not None:
            named["train"] = f"{len(train_smiles):,} SMILES given in memory"
        return cls(
            test=test,
            test_scaffolds=scaffolds,
            filter_smarts=tuple(filter_smarts),
            train=None if train_smiles is None else frozenset(train_smiles),
            sources={**named, **(sources or {})},
        )

    @classmethod
    def load(
        cls,
        test_path: str | Path | None = None,
        test_scaffolds_path: str | Path | None = None,
        test_stats: str | Path | None = None,
        test_scaffolds_stats: str | Path | None = None,
        mcf_path: str | Path | None = None,
        pains_path: str | Path | None = None,
        train_path: str | Path | None = None,
        scaffold_split: bool = True,
        novelty: bool = True,
        n_jobs: int | None = None,
        sources: dict[str, str] | None = None,
    ) -> MosesReference:
        """The MOSES reference; every path defaults to its file under ``MEDLEARN_DATA/molecules/moses``.

        The shipped FCD/property statistics are used by default only with the default SMILES files: a
        custom ``test_path`` without ``test_stats`` gets them computed from its SMILES. The first call
        computes fingerprint/fragment/scaffold statistics (progress bar) and caches them. ``sources``
        names the sets (see the class); by default "MOSES Test (path, n molecules)" for a default file
        and "path (n molecules)" for another.
        """
        test_file = Path(test_path) if test_path is not None else _moses_file("test.csv.gz")
        if test_stats is None and test_path is None:
            test_stats = _moses_file("test_stats_fcd_props.npz")
        test = ReferenceStats.from_file("Test", test_file, test_stats, with_properties=True, n_jobs=n_jobs)
        scaffolds = None
        if scaffold_split:
            sf_file = (
                Path(test_scaffolds_path)
                if test_scaffolds_path is not None
                else _moses_file("test_scaffolds.csv.gz")
            )
            if test_scaffolds_stats is None and test_scaffolds_path is None:
                test_scaffolds_stats = _moses_file("test_scaffolds_stats_fcd.npz")
            scaffolds = ReferenceStats.from_file(
                "TestSF", sf_file, test_scaffolds_stats, with_properties=False, n_jobs=n_jobs
            )
        smarts = read_filter_smarts(
            mcf_path or _moses_file("mcf.csv"), pains_path or _moses_file("wehi_pains.csv")
        )
        train = None
        if novelty:
            train = Path(train_path) if train_path is not None else _moses_file("train.csv.gz")

        def named(moses: str, path: Path, given: Any, stats: ReferenceStats | None = None) -> str:
            where = str(path) if stats is None else f"{path}, {stats.n_molecules:,} molecules"
            return f"MOSES {moses} ({where})" if given is None else where

        described = {"test": named("Test", test_file, test_path, test)}
        if scaffolds is not None:
            described["test_scaffolds"] = named("TestSF", sf_file, test_scaffolds_path, scaffolds)
        if train is not None:
            described["train"] = named("train", train, train_path)
        return cls(
            test=test,
            test_scaffolds=scaffolds,
            filter_smarts=smarts,
            train_path=train,
            sources={**described, **(sources or {})},
        )


def _moses_file(name: str) -> Path:
    """A default MOSES file; ``MEDLEARN_DATA`` is resolved only when a default is actually used."""
    return data_root() / "molecules" / "moses" / name
