"""Physiologically impossible values: find them in any source's event table, count them per lab and source,
and say how the pipeline handles them (``data.options.impossible_values``: ``drop`` | ``clip`` | ``keep``).

Why a table per source and not per lab name: the same analyte has a different id in every source (MIMIC-IV
``itemid`` 50912, eICU ``labname`` "creatinine", LOINC 2160-0) and sometimes several (serum and whole
blood). The ids, the unit each source stores them in and the bounds (with where each bound comes from) are
in :mod:`medlearn.ehr.plausibility_limits`.

A value is checked only when its unit is the one the table expects (or one of its equal spellings, e.g.
mEq/L for sodium) or the source gives none; a value in another unit is counted as *not checked* — values
are never converted. Flags travel with each lab value into the raw unit (``lab_flags``: -1 below the
impossible bound, +1 above, 0 plausible or not checked, beside ``lab_units``), and the featurizer applies
the policy recorded in the bundle's preprocessing, so training, evaluation and prediction treat them
alike; bundles written before the policy existed keep every value (``keep``), as they were trained.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any, Literal

import polars as pl

from medlearn.ehr.plausibility_limits import BOUNDS, Limit, limits

log = logging.getLogger(__name__)

ImpossiblePolicy = Literal["drop", "clip", "keep"]
POLICIES: tuple[str, ...] = ("drop", "clip", "keep")


def concept_limits() -> list[Limit]:
    """One :class:`Limit` per numeric concept of :mod:`medlearn.ehr.concepts` (code_system ``CONCEPT``): its
    range, in its canonical unit, from the concept table. Concept events carry converted values, so the
    same flags, policy and report apply to them as to raw codes."""
    from medlearn.ehr.concepts import CONCEPT_SYSTEM, load_concepts

    return [
        Limit(f"concept:{c.name}", CONCEPT_SYSTEM, c.name, c.unit, c.range[0], c.range[1], c.low_inclusive)
        for c in load_concepts().values()
        if c.kind == "numeric" and c.unit is not None and c.range is not None
    ]


def _accepted_units(row: Limit) -> list[str]:
    if row.lab in BOUNDS:
        return list(BOUNDS[row.lab][4])
    from medlearn.ehr.concepts import normalise_unit

    return [normalise_unit(row.unit)]


def limits_frame() -> pl.DataFrame:
    """The limits table as a frame: lab, code_system, code, table_unit, low, high, low_inclusive and the
    unit spellings accepted as the table's unit (lower case). Raw codes (:mod:`.plausibility_limits`)
    and the numeric concepts (:func:`concept_limits`)."""
    rows = limits() + concept_limits()
    return pl.DataFrame(
        {
            "lab": [r.lab for r in rows],
            "code_system": [r.code_system for r in rows],
            "code": [r.code for r in rows],
            "table_unit": [r.unit for r in rows],
            "low": [float(r.low) for r in rows],
            "high": [float(r.high) for r in rows],
            "low_inclusive": [r.low_inclusive for r in rows],
            "accepted_units": [_accepted_units(r) for r in rows],
        },
        schema_overrides={"accepted_units": pl.List(pl.String)},
    )


def limits_by_key() -> dict[str, tuple[float, float, bool]]:
    """``code_system//code`` → (low, high, low_inclusive): what the featurizer clips to."""
    return {
        f"{r.code_system}//{r.code}": (r.low, r.high, r.low_inclusive) for r in limits() + concept_limits()
    }


def flag_events(events: pl.LazyFrame) -> pl.LazyFrame:
    """``events`` with ``lab`` (null for codes outside the table), ``unit_checked`` (the unit is the
    table's, or absent) and ``impossible``: -1 below the bound, +1 above, 0 otherwise (Int8)."""
    table = limits_frame().lazy()
    unit = pl.col("unit").str.strip_chars().str.to_lowercase()
    unit_ok = pl.col("unit").is_null() | (unit == "") | pl.col("accepted_units").list.contains(unit)
    value = pl.col("value_num")
    checked = pl.col("lab").is_not_null() & value.is_not_null() & unit_ok
    below = (value < pl.col("low")) | (pl.col("low_inclusive") & (value == pl.col("low")))
    return (
        events.join(table, on=["code_system", "code"], how="left", maintain_order="left")
        .with_columns(
            unit_checked=checked,
            impossible=pl.when(checked & below)
            .then(pl.lit(-1, pl.Int8))
            .when(checked & (value > pl.col("high")))
            .then(pl.lit(1, pl.Int8))
            .otherwise(pl.lit(0, pl.Int8)),
        )
        .drop("table_unit", "low", "high", "low_inclusive", "accepted_units")
    )


def impossible_counts(events: pl.LazyFrame) -> pl.DataFrame:
    """One row per code of the limits table the source holds: lab, code_system, code, the units seen,
    ``n`` numeric values, ``below``/``above`` the impossible bounds, ``not_checked`` (another unit),
    with the bounds. Sorted by lab then code."""
    table = limits_frame()
    mine = events.filter(pl.col("value_num").is_not_null()).join(
        table.lazy().select("code_system", "code"), on=["code_system", "code"], how="semi"
    )
    counts = (
        flag_events(mine)
        .group_by("lab", "code_system", "code")
        .agg(
            n=pl.len(),
            below=(pl.col("impossible") == -1).sum(),
            above=(pl.col("impossible") == 1).sum(),
            not_checked=(~pl.col("unit_checked")).sum(),
            units=pl.col("unit").drop_nulls().unique().sort(),
        )
        .collect()
    )
    bounds = table.select("code_system", "code", "table_unit", "low", "high", "low_inclusive")
    return counts.join(bounds, on=["code_system", "code"], how="left").sort("lab", "code_system", "code")


def unit_flag_counts(units: Sequence[dict[str, Any]]) -> dict[str, int]:
    """``code_system//code`` → how many values the raw units (the cohort's prediction windows) flag."""
    found: dict[str, int] = {}
    for unit in units:
        for key, flag in zip(unit.get("lab_keys", []), unit.get("lab_flags", [])):
            if flag:
                found[key] = found.get(key, 0) + 1
    return found


def describe_policy(policy: str) -> str:
    """What ``policy`` does to an impossible value, in words."""
    return {
        "drop": "dropped (treated as not measured)",
        "clip": "clipped to the impossible bound it crossed",
        "keep": "kept as recorded (then clipped to the training 1st–99th percentile like any value)",
    }[policy]


def log_found(where: str, units: Sequence[dict[str, Any]], policy: str) -> dict[str, int]:
    """Log one line with the impossible values inside the cohort's windows and what is done with them."""
    found = unit_flag_counts(units)
    total = sum(found.values())
    detail = ", ".join(f"{key} {n}" for key, n in sorted(found.items())) or "none"
    if total:
        log.warning(
            "%s: %d physiologically impossible lab value(s) in the %d cohort units' windows (%s): %s "
            "(data.options.impossible_values=%s)",
            where,
            total,
            len(units),
            detail,
            describe_policy(policy),
            policy,
        )
    else:
        log.info("%s: no physiologically impossible lab value in the cohort's windows", where)
    return found


def plausibility_html(counts: pl.DataFrame, in_windows: dict[str, int], policy: str) -> str:
    """The report's table: per lab and source code, values checked, impossible ones below/above the bounds
    (in the whole source and in the cohort's windows) and values in another unit (not checked)."""
    rows = []
    for r in counts.to_dicts():
        low_op = "≤" if r["low_inclusive"] else "<"
        key = f"{r['code_system']}//{r['code']}"
        rows.append(
            f"<tr><td>{html.escape(r['lab'])}</td><td>{html.escape(key)}</td>"
            f"<td>{html.escape(', '.join(r['units']) or r['table_unit'])}</td>"
            f"<td>{low_op} {r['low']:g} or &gt; {r['high']:g} {html.escape(r['table_unit'])}</td>"
            f"<td class='num'>{r['n']:,}</td><td class='num'>{r['below']:,}</td>"
            f"<td class='num'>{r['above']:,}</td><td class='num'>{in_windows.get(key, 0):,}</td>"
            f"<td class='num'>{r['not_checked']:,}</td></tr>"
        )
    total = int(counts["below"].sum() + counts["above"].sum()) if counts.height else 0
    body = "".join(rows) or "<tr><td colspan='9'>none of the checked labs is in this source</td></tr>"
    return (
        f"<p>Physiologically impossible values: {total:,} in the source; those inside the cohort's prediction"
        f" windows are {html.escape(describe_policy(policy))} (<code>data.options.impossible_values: {policy}"
        "</code>). Bounds and item ids per source: <code>medlearn.ehr.plausibility_limits</code>. Values in"
        " another unit than the table's are not checked (never converted).</p>"
        "<table><thead><tr><th>lab</th><th>code</th><th>units</th><th>impossible</th><th>values</th>"
        "<th>below</th><th>above</th><th>in windows</th><th>not checked</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )
