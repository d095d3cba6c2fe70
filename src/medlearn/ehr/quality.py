"""The data-quality section of an EHR report: what the readers found and how each problem was handled.

Per numeric code: how often it was recorded, how many results were not numbers (kept as text, not fed to
the model), which units it came in (more than one unit is flagged: values are not converted), its range,
and how many cohort admissions have no measurement in the prediction window (missingness, filled by
forward fill and the training mean with a "measured" mask). Admissions the readers dropped (a repeated
id keeps its first row; no admission time, or a discharge before it) are listed first, with their counts.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import polars as pl

from medlearn.ehr.features import NUMERIC_SYSTEMS
from medlearn.ehr.io._tables import admission_notes


def lab_quality(
    events: pl.LazyFrame, units: Sequence[dict[str, Any]], top: int = 30, codes: pl.LazyFrame | None = None
) -> pl.DataFrame:
    """One row per most frequent numeric code: counts, non-numeric results, units, range, missingness
    (and the code's description when the source has a dictionary, e.g. MIMIC's d_labitems)."""
    stats = (
        events.filter(pl.col("code_system").is_in(NUMERIC_SYSTEMS))
        .with_columns(key=pl.col("code_system") + "//" + pl.col("code"))
        .group_by("key")
        .agg(
            n=pl.len(),
            non_numeric=(pl.col("value_num").is_null() & pl.col("value_text").is_not_null()).sum(),
            examples=pl.col("value_text")
            .filter(pl.col("value_num").is_null() & pl.col("value_text").is_not_null())
            .unique()
            .sort()
            .head(3),
            units=pl.col("unit").drop_nulls().unique().sort(),
            low=pl.col("value_num").min(),
            high=pl.col("value_num").max(),
        )
        .sort("n", descending=True)
        .head(top)
        .collect()
    )
    if codes is not None:
        names = (
            codes.select((pl.col("code_system") + "//" + pl.col("code")).alias("key"), "description")
            .unique("key")
            .collect()
        )
        stats = stats.join(names, on="key", how="left")
    else:
        stats = stats.with_columns(description=pl.lit(None, pl.String))
    seen: dict[str, int] = {}
    for unit in units:
        for key in set(unit["lab_keys"]):
            seen[key] = seen.get(key, 0) + 1
    n_units = max(len(units), 1)
    return stats.with_columns(
        missing_in_window=pl.col("key").map_elements(
            lambda k: 1 - seen.get(k, 0) / n_units, return_dtype=pl.Float64
        )
    )


def quality_html(notes: Sequence[str], table: pl.DataFrame, n_units: int, window_hours: float) -> str:
    """HTML for the report: the admissions the readers dropped (duplicated ids, impossible times) with
    their counts, the other notes, then the per-code table."""
    cohort = admission_notes(notes)
    dropped = "".join(f"<li>{html.escape(n)}</li>" for n in cohort) or (
        "<li>none: no duplicated admission id, no admission without a time or discharged before it</li>"
    )
    items = (
        "".join(f"<li>{html.escape(n)}</li>" for n in notes if n not in cohort)
        or "<li>no problems found</li>"
    )
    rows = []
    for r in table.to_dicts():
        flag = " ⚠" if len(r["units"]) > 1 else ""
        value_range = "" if r["low"] is None else f"{r['low']:g} – {r['high']:g}"
        rows.append(
            f"<tr><td>{html.escape(r['key'])}</td><td>{html.escape(r['description'] or '')}</td>"
            f"<td class='num'>{r['n']:,}</td>"
            f"<td class='num'>{r['non_numeric']:,}</td><td>{html.escape(', '.join(r['examples']))}</td>"
            f"<td>{html.escape(', '.join(r['units']))}{flag}</td>"
            f"<td class='num'>{value_range}</td>"
            f"<td class='num'>{100 * r['missing_in_window']:.0f}%</td></tr>"
        )
    return (
        "<p>Admissions left out by the readers (each reason counted; of the rest, the cohort keeps the"
        f" {n_units} admissions still in hospital and alive {window_hours:g} h after admission):</p>"
        f"<ul>{dropped}</ul>"
        "<p>What the readers found and did (each handled as stated, never silently):</p>"
        f"<ul>{items}</ul>"
        f"<p>Most frequent numeric codes. <em>Non-numeric</em> results (e.g. '&lt;0.5', 'ERROR') are kept as text and"
        f" not fed to the model; codes in more than one unit are flagged ⚠ (values are not converted); values are"
        f" clipped to the training 1st–99th percentile; <em>missing</em> is the share of the {n_units} cohort"
        f" admissions with no result in the first {window_hours:g} h (filled forward / with the training mean,"
        f" with a 'measured' mask).</p>"
        "<table><thead><tr><th>code</th><th>name</th><th>results</th><th>non-numeric</th><th>examples</th><th>units</th>"
        f"<th>range</th><th>missing</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
