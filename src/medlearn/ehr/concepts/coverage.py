"""How much of a real source the concept table reaches: per concept, the ids the table maps, the source
codes found, the rows emitted and the unit conversions applied; per source, the share of events and of
distinct codes that map to a concept.

The figures come from the data, not from the table: ``tools/concept_coverage.py`` runs
:func:`source_coverage` over the shared demos and commits ``results/concepts/coverage.json``, which the
README's coverage table is generated from.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from medlearn.ehr.concepts.mapping import concept_lookup, concept_rows
from medlearn.ehr.concepts.table import SOURCES, load_concepts


def _table_ids(kind: str) -> dict[str, dict[str, int]]:
    """Concept → {"ids": exact codes the table lists for ``kind``, "patterns": regular expressions}."""
    out = {}
    for concept in load_concepts().values():
        rules = [r for r in concept.map.get(kind, []) if r.system is not None]
        out[concept.name] = {
            "ids": sum(len(r.codes) for r in rules),
            "patterns": sum(r.pattern is not None for r in rules),
        }
    return out


def source_coverage(source: Any) -> dict[str, Any]:
    """Coverage of one :class:`~medlearn.ehr.io.EHRSource` (its ``kind`` picks the table's mappings)."""
    kind = source.kind
    events, codes = source.events, source.codes
    lookup = concept_lookup(events, kind, codes)
    rows = concept_rows(events, kind, codes).collect()
    numeric = pl.col("concept_kind") == "numeric"
    emitted = rows.filter(~numeric | pl.col("converted").is_not_null())
    per_unit = (
        rows.filter(numeric & pl.col("value_num").is_not_null())
        .group_by("concept", "source_unit", "factor", "offset")
        .agg(n=pl.len())
        .sort("concept", "n", descending=[False, True])
    )
    units: dict[str, list[dict[str, Any]]] = {}
    for r in per_unit.to_dicts():
        units.setdefault(r["concept"], []).append(
            {
                "unit": r["source_unit"],
                "rows": r["n"],
                "factor": r["factor"],
                "offset": r["offset"],
                "converted": r["factor"] is not None,
            }
        )
    found = lookup.group_by("concept").agg(n=pl.len())
    matched = dict(zip(found["concept"].to_list(), found["n"].to_list()))
    counts = emitted.group_by("concept").agg(n=pl.len())
    emitted_by = dict(zip(counts["concept"].to_list(), counts["n"].to_list()))
    concepts = {}
    table = load_concepts()
    for name, listed in _table_ids(kind if kind in SOURCES else "").items():
        concepts[name] = {
            "kind": table[name].kind,
            "unit": table[name].unit,
            **listed,
            "codes_found": int(matched.get(name, 0)),
            "rows": int(emitted_by.get(name, 0)),
            "units": units.get(name, []),
        }
    totals = events.select(n_events=pl.len(), n_codes=pl.struct("code_system", "code").n_unique()).collect()
    claimed = events.join(lookup.lazy().select("code_system", "code").unique(), on=["code_system", "code"])
    mapped = claimed.select(n_events=pl.len(), n_codes=pl.struct("code_system", "code").n_unique()).collect()
    by_system = (
        events.group_by("code_system")
        .agg(n=pl.len())
        .join(claimed.group_by("code_system").agg(mapped=pl.len()), on="code_system", how="left")
        .with_columns(pl.col("mapped").fill_null(0))
        .sort("n", descending=True)
        .collect()
    )
    return {
        "kind": kind,
        "name": source.name,
        "fingerprint": source.fingerprint,
        "events": int(totals["n_events"][0]),
        "events_mapped": int(mapped["n_events"][0]),
        "distinct_codes": int(totals["n_codes"][0]),
        "distinct_codes_mapped": int(mapped["n_codes"][0]),
        "by_code_system": {
            r["code_system"]: {"events": r["n"], "mapped": r["mapped"]} for r in by_system.to_dicts()
        },
        "concepts": concepts,
    }
