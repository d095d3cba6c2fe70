"""The MOSES metrics table of a generated set (molsets 0.3.1 ``get_all_metrics``), vectorised.

Definitions, as in MOSES:

- ``valid``: fraction of generated SMILES that are non-empty and that RDKit parses and sanitises;
  everything below is computed on the valid ones, canonicalised, **duplicates included**. A SMILES over
  the per-molecule size limits (``io.MAX_HEAVY_ATOMS`` heavy atoms, ``io.MAX_SMILES_CHARS`` characters)
  is invalid (``too_large``) without being parsed, so one hostile record cannot hang the table; the
  reasons are counted in ``rejected`` (MOSES has no limit; its molecules are far below it);
- ``unique@k``: distinct canonical SMILES among the first ``k`` valid ones / ``k`` (all valid ones, with
  a warning, when fewer than ``k``);
- ``FCD/<ref>``: Fréchet ChemNet Distance of the ChemNet activations to the reference mean/covariance;
- ``SNN/<ref>``: mean over molecules of the highest Tanimoto similarity to a reference molecule
  (Morgan radius 2, 1024 bits);
- ``Frag/<ref>``, ``Scaf/<ref>``: cosine similarity of BRICS-fragment and Murcko-scaffold count vectors;
- ``IntDiv``, ``IntDiv2``: ``1 - mean_i (mean_j T_ij^p)^(1/p)`` over all pairs, p = 1, 2;
- ``Filters``: fraction passing the MOSES filters (:mod:`.filters`);
- ``logP``, ``SA``, ``QED``, ``weight``: Wasserstein-1 distance to the Test values of the property;
- ``Novelty``: fraction of the *distinct* valid molecules not in the training SMILES.

Every per-molecule quantity is a function of the canonical SMILES, so each distinct molecule is
computed once and weighted by its multiplicity — the same numbers as MOSES's duplicate-included lists.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from scipy.stats import wasserstein_distance

from medlearn.errors import InputError
from medlearn.molecules.metrics.chemnet import ChemNetEmbedder, activation_statistics, frechet_distance
from medlearn.molecules.metrics.descriptors import (
    PROPERTY_NAMES,
    Descriptors,
    canonicalize_chunk_reasons,
    describe_chunk,
    init_worker,
)
from medlearn.molecules.metrics.parallel import ChunkPool, default_jobs
from medlearn.molecules.metrics.reference import MosesReference, ReferenceStats
from medlearn.molecules.metrics.similarity import internal_diversity, nearest_neighbour_similarity

#: MOSES metric keys → the lower-snake-case names of ``metrics.json`` (docs/conventions.md#metricsjson).
METRICS_JSON_NAMES = {
    "valid": "validity",
    "unique@1000": "unique_1k",
    "unique@10000": "unique_10k",
    "FCD/Test": "fcd_test",
    "SNN/Test": "snn_test",
    "Frag/Test": "frag_test",
    "Scaf/Test": "scaf_test",
    "FCD/TestSF": "fcd_testsf",
    "SNN/TestSF": "snn_testsf",
    "Frag/TestSF": "frag_testsf",
    "Scaf/TestSF": "scaf_testsf",
    "IntDiv": "int_div1",
    "IntDiv2": "int_div2",
    "Filters": "filters",
    "logP": "logp_w",
    "SA": "sa_w",
    "QED": "qed_w",
    "weight": "weight_w",
    "Novelty": "novelty",
}
_NAN = float("nan")


def cosine_similarity(reference: dict[str, int], generated: dict[str, float]) -> float:
    """MOSES ``cos_similarity`` of two count dictionaries (missing keys count 0); NaN if either is empty."""
    if not reference or not generated:
        return _NAN
    dot = sum(count * reference.get(key, 0) for key, count in generated.items())
    norm_ref = math.sqrt(sum(float(c) ** 2 for c in reference.values()))
    norm_gen = math.sqrt(sum(float(c) ** 2 for c in generated.values()))
    return float(dot / (norm_ref * norm_gen))


def fraction_unique(valid: Sequence[str], k: int) -> float:
    """Distinct SMILES among the first ``k`` valid canonical ones, over their number."""
    if len(valid) < k:
        warnings.warn(
            f"Can't compute unique@{k}: only {len(valid)} valid molecules; using all of them", stacklevel=3
        )
    head = valid[:k]
    return len(set(head)) / len(head) if head else _NAN


@contextmanager
def _phase(timings: dict[str, float] | None, name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def compute_metrics(
    generated_smiles: Sequence[str | None],
    reference: MosesReference,
    train_smiles: Iterable[str] | None = None,
    n_jobs: int | None = None,
    k: Sequence[int] = (1000, 10000),
    batch_size: int = 1024,
    timings: dict[str, float] | None = None,
    rejected: dict[str, int] | None = None,
) -> dict[str, float]:
    """The MOSES metrics of ``generated_smiles`` against ``reference``, under MOSES's key names.

    Args:
        generated_smiles: as sampled; invalid or empty entries (or ``None``) count against validity.
        train_smiles: the training set for ``Novelty``; default the reference's (MOSES train) set. No
            ``Novelty`` key when neither exists.
        n_jobs: CPUs to use (default: all). With ``n_jobs > 1``, ``n_jobs - 1`` worker processes do the
            per-molecule RDKit work while ChemNet runs on the remaining CPU, then on all of them;
            ``1`` runs everything in this process.
        batch_size: ChemNet batch for FCD.
        timings: if given, filled with seconds per phase (``fcd`` overlaps the RDKit workers, so
            ``descriptors`` is only the time spent waiting for them afterwards).
        rejected: if given, filled with the number of invalid records per reason (``empty``,
            ``parse_failure``, ``sanitization_failure``, ``too_large``).

    Metrics that need at least one valid molecule (two for FCD) are NaN when there are not enough.
    """
    if len(generated_smiles) == 0:
        raise InputError("no generated SMILES to score")
    cpus = default_jobs() if n_jobs is None else max(1, int(n_jobs))
    metrics: dict[str, float] = {}
    with ChunkPool(0 if cpus == 1 else cpus - 1, init_worker, (reference.filter_smarts,)) as pool:
        with _phase(timings, "canonicalise"):
            checked = [
                c
                for part in pool.map_chunks(
                    canonicalize_chunk_reasons, list(generated_smiles), 2000, "validity"
                )
                for c in part
            ]
        canonical = [c for c, _ in checked]
        if rejected is not None:
            for reason in ("empty", "parse_failure", "sanitization_failure", "too_large"):
                rejected.setdefault(reason, 0)
            for c, reason in checked:
                if c is None:
                    rejected[reason or "parse_failure"] = rejected.get(reason or "parse_failure", 0) + 1
        valid = [c for c in canonical if c is not None]
        metrics["valid"] = len(valid) / len(canonical)
        for kk in k:
            metrics[f"unique@{kk}"] = fraction_unique(valid, kk)
        multiplicity = Counter(valid)
        unique = list(multiplicity)
        weights = np.array([multiplicity[s] for s in unique], dtype=np.float64)
        pending = pool.submit(describe_chunk, unique, 250)
        with _phase(timings, "fcd"):
            threads = None if cpus == 1 else (lambda: cpus if pending.done() else 1)
            activations = _chemnet_statistics(unique, weights, batch_size, threads)
        with _phase(timings, "descriptors"):
            desc = Descriptors.concat(pending.collect("molecule descriptors"))
    _reference_metrics(metrics, activations, weights, desc, reference, timings)
    with _phase(timings, "intdiv"):
        diversity = internal_diversity(desc.fingerprints, weights) if unique else {1: _NAN, 2: _NAN}
    metrics["IntDiv"], metrics["IntDiv2"] = diversity[1], diversity[2]
    metrics["Filters"] = float(np.average(desc.passes_filters, weights=weights)) if unique else _NAN
    ref_props = reference.test.properties or {}
    for column, name in enumerate(PROPERTY_NAMES):
        if unique and name in ref_props:
            metrics[name] = float(
                wasserstein_distance(ref_props[name], desc.properties[:, column], v_weights=weights)
            )
        else:
            metrics[name] = _NAN
    train = reference.train_smiles() if train_smiles is None else set(train_smiles)
    if train is not None:
        metrics["Novelty"] = sum(s not in train for s in unique) / len(unique) if unique else _NAN
    return metrics


def _chemnet_statistics(
    unique: list[str], weights: np.ndarray, batch_size: int, threads: Callable[[], int] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and covariance of the ChemNet activations of the valid molecules (duplicates weighted)."""
    if weights.sum() < 2:
        warnings.warn("Can't compute FCD for fewer than 2 valid molecules", stacklevel=3)
        return None
    return activation_statistics(ChemNetEmbedder(batch_size)(unique, threads=threads), weights)


def _reference_metrics(
    metrics: dict[str, float],
    fcd_stats: tuple[np.ndarray, np.ndarray] | None,
    weights: np.ndarray,
    desc: Descriptors,
    reference: MosesReference,
    timings: dict[str, float] | None,
) -> None:
    """FCD, SNN, Frag and Scaf against each reference set (Test, then TestSF), in MOSES's key order."""
    fragments: Counter[str] = Counter()
    scaffolds: Counter[str] = Counter()
    for frags, scaffold, weight in zip(desc.fragments, desc.scaffolds, weights, strict=True):
        for fragment in frags:
            fragments[fragment] += weight
        if scaffold is not None:
            scaffolds[scaffold] += weight
    for ref in reference.references:
        metrics[f"FCD/{ref.name}"] = _fcd(fcd_stats, ref)
        with _phase(timings, "snn"):
            nearest = nearest_neighbour_similarity(desc.fingerprints, ref.fingerprints)
        metrics[f"SNN/{ref.name}"] = float(np.average(nearest, weights=weights)) if len(weights) else _NAN
        metrics[f"Frag/{ref.name}"] = cosine_similarity(ref.fragments, fragments)
        metrics[f"Scaf/{ref.name}"] = cosine_similarity(ref.scaffolds, scaffolds)


def _fcd(stats: tuple[np.ndarray, np.ndarray] | None, ref: ReferenceStats) -> float:
    if stats is None or ref.fcd_mu is None or ref.fcd_sigma is None:
        return _NAN
    return frechet_distance(stats[0], stats[1], ref.fcd_mu, ref.fcd_sigma)
