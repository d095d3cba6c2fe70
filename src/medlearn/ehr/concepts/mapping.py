"""Source codes → harmonised concept events, with values converted to each concept's canonical unit.

:func:`map_concepts` turns a reader's event table (:data:`medlearn.ehr.io.schema.EVENT_SCHEMA`) into
concept events of the same schema: ``code_system`` ``CONCEPT`` (numeric: ``value_num`` in the concept's
unit, ``unit`` the canonical spelling) or ``CONCEPT_EVENT`` (a drug given, ventilation started: no value),
``code`` the concept name, the event's time, ids, ``value_text`` and ``source_table`` unchanged.

Units are converted, never guessed: a row's unit (or, when the row has none, the unit the table says the
source uses) must be listed under the concept's ``units``; a value in any other unit is **not** emitted
and is counted by :func:`unconvertible_units` (the task logs the count and the report lists it). A numeric
row without a number (``"<0.5"``, ``"ERROR"``) is not emitted either.

How codes are matched, and why it stays lazy: the table's exact codes and regular expressions are
resolved once against the source's *distinct* codes (a few thousand, collected), giving a small
(code_system, code) → concept lookup; the event table itself is joined to it lazily, in one pass.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from medlearn.ehr.concepts.table import (
    CONCEPT_EVENT_SYSTEM,
    CONCEPT_SYSTEM,
    SOURCES,
    Concept,
    load_concepts,
)
from medlearn.ehr.io.schema import EVENT_SCHEMA, conform

#: Raw code systems kept beside the concept events in ``features: concepts``: ICD-9-CM and ICD-10-CM are
#: one vocabulary in MIMIC-III, MIMIC-IV and FHIR (Condition codings in ICD), so diagnosis history
#: stays shared. eICU's diagnosis strings and FHIR's SNOMED conditions have no checked crosswalk here.
SHARED_SYSTEMS = ("ICD9CM", "ICD10CM")
_LOOKUP_SCHEMA = {
    "code_system": pl.String(),
    "code": pl.String(),
    "concept": pl.String(),
    "kind": pl.String(),
    "assumed_unit": pl.String(),
}


def _rules(kind: str) -> list[tuple[Concept, Any]]:
    """(concept, source map) pairs that apply to a source of ``kind`` (every source's for MEDS or an
    unknown kind: their code systems tell them apart)."""
    kinds = [kind] if kind in SOURCES else list(SOURCES)
    return [
        (concept, rule)
        for concept in load_concepts().values()
        if concept.kind != "static"
        for source in kinds
        for rule in concept.map.get(source, [])
    ]


def concept_lookup(events: pl.LazyFrame, kind: str, codes: pl.LazyFrame | None = None) -> pl.DataFrame:
    """(code_system, code) → (concept, kind, assumed_unit) for the codes ``events`` holds.

    Exact codes come from the table; patterns are matched case-insensitively on the code (or, with
    ``by_name``, on the code's description in ``codes``: an NDC's or RxNorm code's drug name). A code that
    two concepts claim is mapped to both (e.g. an eICU lab that is two analytes); none does in the table.
    """
    rules = _rules(kind)
    systems = sorted({rule.system for _, rule in rules if rule.system})
    distinct = events.filter(pl.col("code_system").is_in(systems)).select("code_system", "code").unique()
    if codes is not None:
        names = codes.select("code_system", "code", pl.col("description").alias("name")).unique(
            ["code_system", "code"], keep="first"
        )
        distinct = distinct.join(names, on=["code_system", "code"], how="left")
    else:
        distinct = distinct.with_columns(name=pl.lit(None, pl.String))
    found = distinct.collect()
    rows: list[dict[str, Any]] = []
    by_system: dict[str, pl.DataFrame] = {
        s: g for (s,), g in found.partition_by("code_system", as_dict=True).items()
    }
    for concept, rule in rules:
        frame = by_system.get(rule.system)
        if frame is None:
            continue
        hits: set[str] = (
            set(frame.filter(pl.col("code").is_in(list(rule.codes)))["code"]) if rule.codes else set()
        )
        if rule.pattern is not None:
            target = "name" if rule.by_name else "code"
            text = frame[target].fill_null("")
            mask = text.str.contains(f"(?i){rule.pattern}")
            if rule.exclude is not None:
                mask &= ~text.str.contains(f"(?i){rule.exclude}")
            hits |= set(frame.filter(mask)["code"])
        rows += [
            {
                "code_system": rule.system,
                "code": code,
                "concept": concept.name,
                "kind": concept.kind,
                "assumed_unit": rule.unit or concept.unit,
            }
            for code in sorted(hits)
        ]
    return pl.DataFrame(rows, schema=_LOOKUP_SCHEMA).unique(["code_system", "code", "concept"], keep="first")


def _unit_table() -> pl.DataFrame:
    rows = []
    for concept in load_concepts().values():
        for spelling in concept.units:
            factor, offset = concept.conversion(spelling) or (None, None)
            rows.append(
                {
                    "concept": concept.name,
                    "unit_key": spelling,
                    "factor": factor,
                    "offset": offset,
                    "canonical_unit": concept.unit,
                }
            )
    schema = {
        "concept": pl.String(),
        "unit_key": pl.String(),
        "factor": pl.Float64(),
        "offset": pl.Float64(),
        "canonical_unit": pl.String(),
    }
    return pl.DataFrame(rows, schema=schema)


def unit_key(column: str = "unit") -> pl.Expr:
    """:func:`medlearn.ehr.concepts.table.normalise_unit` as a polars expression."""
    return (
        pl.col(column)
        .str.strip_chars()
        .str.to_lowercase()
        .str.replace_all("&#176;", "°", literal=True)
        .str.replace_all("µ", "u", literal=True)
        .str.replace_all("μ", "u", literal=True)
        .str.replace_all(r"\s+", " ")
    )


def concept_rows(events: pl.LazyFrame, kind: str, codes: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Every event a concept claims, with ``concept``, ``concept_kind``, ``source_unit`` (the row's unit,
    else the one assumed for the source), ``factor``/``offset`` (null: unit not convertible) and
    ``converted`` (the value in the canonical unit). The basis of :func:`map_concepts` and the counts."""
    lookup = concept_lookup(events, kind, codes).lazy()
    has_unit = pl.col("unit").is_not_null() & (pl.col("unit").str.strip_chars() != "")
    joined = events.join(lookup, on=["code_system", "code"], how="inner").with_columns(
        source_unit=pl.when(has_unit).then(pl.col("unit")).otherwise(pl.col("assumed_unit")),
    )
    return (
        joined.with_columns(unit_key=unit_key("source_unit"))
        .join(_unit_table().lazy(), on=["concept", "unit_key"], how="left")
        .with_columns(
            concept_kind=pl.col("kind"),
            converted=pl.col("value_num") * pl.col("factor") + pl.col("offset"),
        )
        .drop("kind", "unit_key", "assumed_unit")
    )


def map_concepts(events: pl.LazyFrame, source_kind: str, codes: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Concept events (:data:`EVENT_SCHEMA`) of ``events`` read from a ``source_kind`` source ("mimic4",
    "mimic3", "eicu", "fhir"; any other kind, e.g. MEDS, uses every source's mappings). ``codes`` is the
    reader's codes table: NDC and RxNorm drugs are matched by the name it gives them."""
    rows = concept_rows(events, source_kind, codes)
    numeric = rows.filter((pl.col("concept_kind") == "numeric") & pl.col("converted").is_not_null())
    happened = rows.filter(pl.col("concept_kind") == "event")
    frames = [
        numeric.with_columns(
            code_system=pl.lit(CONCEPT_SYSTEM),
            code=pl.col("concept"),
            value_num=pl.col("converted"),
            unit=pl.col("canonical_unit"),
        ),
        happened.with_columns(
            code_system=pl.lit(CONCEPT_EVENT_SYSTEM),
            code=pl.col("concept"),
            value_num=pl.lit(None, pl.Float64),
            unit=pl.lit(None, pl.String),
        ),
    ]
    return pl.concat([conform(f, EVENT_SCHEMA) for f in frames], how="vertical")


def concept_events(events: pl.LazyFrame, source_kind: str, codes: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """What ``features: concepts`` feeds the featurizer: the concept events plus the raw events of the
    shared vocabularies (:data:`SHARED_SYSTEMS`, diagnosis history)."""
    shared = events.filter(pl.col("code_system").is_in(SHARED_SYSTEMS))
    return pl.concat([map_concepts(events, source_kind, codes), shared], how="vertical")


def unconvertible_units(events: pl.LazyFrame, kind: str, codes: pl.LazyFrame | None = None) -> pl.DataFrame:
    """Numeric values a concept claims but whose unit it cannot convert: concept, code_system, code,
    unit, n (sorted by n). These are left out of the concept events, never passed through."""
    rows = concept_rows(events, kind, codes)
    return (
        rows.filter(
            (pl.col("concept_kind") == "numeric")
            & pl.col("value_num").is_not_null()
            & pl.col("factor").is_null()
        )
        .group_by("concept", "code_system", "code", pl.col("source_unit").alias("unit"))
        .agg(n=pl.len())
        .sort("n", "concept", descending=[True, False])
        .collect()
    )


def describe_unconvertible(counts: pl.DataFrame, limit: int = 5) -> str:
    """One sentence on :func:`unconvertible_units`' counts (empty when there are none)."""
    if counts.is_empty():
        return ""
    total = int(counts["n"].sum())
    parts = [
        f"{r['concept']} in {r['unit']!s} ({r['code_system']}//{r['code']}): {r['n']:,}"
        for r in counts.head(limit).to_dicts()
    ]
    more = "; …" if counts.height > limit else ""
    return (
        f"{total:,} value(s) in a unit the concept table cannot convert were left out: "
        + "; ".join(parts)
        + more
    )


def pattern_matches(pattern: str, text: str) -> bool:
    """Whether a table pattern matches ``text`` (case-insensitive, as :func:`concept_lookup` applies it)."""
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def admission_type_categories(admissions: pl.LazyFrame, source_kind: str) -> pl.LazyFrame:
    """``admissions`` with ``admission_type`` replaced by the concept table's categories (``emergency``,
    ``elective``, ``urgent``, ``observation``; any other value or none: ``other``), so the admission-type
    feature means the same in every source."""
    concept = load_concepts()["admission_type"]
    kinds = [source_kind] if source_kind in SOURCES else list(SOURCES)
    spelling = {
        value: category
        for kind in kinds
        for rule in concept.map.get(kind, [])
        for category, values in rule.values.items()
        for value in values
    }
    category = pl.col("admission_type").str.strip_chars().replace_strict(spelling, default="other")
    return admissions.with_columns(category.fill_null("other").alias("admission_type"))


def feature_admissions(admissions: pl.LazyFrame, source_kind: str, features: str) -> pl.LazyFrame:
    """The admission table an admission task uses under ``data.options.features``: as read for "codes",
    with :func:`admission_type_categories` for "concepts"."""
    return admission_type_categories(admissions, source_kind) if features == "concepts" else admissions


def feature_events(source: Any, features: str) -> tuple[pl.LazyFrame, list[str]]:
    """The events an admission task featurizes from ``source`` (an :class:`~medlearn.ehr.io.EHRSource`)
    under ``data.options.features`` — the raw events for "codes", :func:`concept_events` for "concepts" —
    and notes for the data-quality report (values left out for an unconvertible unit, also logged)."""
    if features == "codes":
        return source.events, []
    if features != "concepts":
        raise ValueError(f"features must be 'codes' or 'concepts', not {features!r}")
    import logging

    events = concept_events(source.events, source.kind, source.codes)
    note = describe_unconvertible(unconvertible_units(source.events, source.kind, source.codes))
    if note:
        logging.getLogger(__name__).warning("%s: %s", source.root, note)
    return events, [note] if note else []
