"""MOSES-grade metrics of generated molecules, vectorised (see :mod:`.moses` for the definitions).

Usage::

    from medlearn.molecules.metrics import MosesReference, compute_metrics
    reference = MosesReference.load()           # MOSES Test/TestSF; statistics cached on first use
    table = compute_metrics(generated_smiles, reference)
    table["FCD/Test"], table["SNN/Test"], table["Novelty"]

Names are imported lazily so that a worker process importing :mod:`.descriptors` does not pay for
torch and the ChemNet code.
"""

from __future__ import annotations

from medlearn.lazy import lazy_getattr

_EXPORTS = {
    "compute_metrics": "moses",
    "cosine_similarity": "moses",
    "fraction_unique": "moses",
    "METRICS_JSON_NAMES": "moses",
    "MosesReference": "reference",
    "ReferenceStats": "reference",
    "ChemNetEmbedder": "chemnet",
    "frechet_distance": "chemnet",
    "MosesFilters": "filters",
    "read_filter_smarts": "filters",
    "SortedFingerprints": "similarity",
    "internal_diversity": "similarity",
    "nearest_neighbour_similarity": "similarity",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
