"""Report sections of a generator's run: the metric table beside the published MOSES baselines, property
distributions against the training set, a grid of sampled molecules, and what the training data lost."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from medlearn.engine.report import ReportSection

#: Rows of the comparison table, in MOSES's order.
_TABLE_ROWS = (
    "validity",
    "unique_1k",
    "unique_10k",
    "fcd_test",
    "fcd_testsf",
    "snn_test",
    "snn_testsf",
    "frag_test",
    "frag_testsf",
    "scaf_test",
    "scaf_testsf",
    "int_div1",
    "int_div2",
    "filters",
    "novelty",
    "qed_w",
    "sa_w",
    "logp_w",
    "weight_w",
)


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def _reference_of(key: str, reference: dict[str, str]) -> str | None:
    """What metric ``key`` was scored against: ``_testsf`` → TestSF, ``_test`` and ``_w`` → Test, novelty →
    train; None for metrics of the generated set alone."""
    if key.endswith("_testsf"):
        return reference.get("test_scaffolds")
    if key.endswith("_test") or key.endswith("_w"):
        return reference.get("test")
    if key == "novelty":
        return reference.get("train")
    return None


def is_moses_reference(reference: dict[str, str]) -> bool:
    """Whether the _test metrics were scored against the MOSES Test set (the baselines' reference)."""
    return str(reference.get("test", "")).startswith("MOSES Test")


def baseline_table_html(metrics: dict[str, Any], model_name: str) -> str:
    """This run's metrics next to the MOSES paper's CharRNN, VAE and LatentGAN (30k samples each).

    Row names keep the metric keys (``fcd_test``...) and say what each was scored against, from the
    metrics' ``reference``; when that is not the MOSES Test set the table says the baselines do not
    compare.
    """
    from medlearn.molecules.tasks import MOSES_BASELINES

    reference = metrics.get("reference") or {}
    head = "".join(f"<th>{html.escape(n)} (MOSES paper)</th>" for n in MOSES_BASELINES)
    rows = []
    for key in _TABLE_ROWS:
        if key not in metrics["metrics"]:
            continue
        ours = metrics["metrics"][key]["value"]
        against = _reference_of(key, reference)
        name = key + (f' <span class="meta">vs {html.escape(against)}</span>' if against else "")
        cells = "".join(f'<td class="num">{_fmt(b.get(key))}</td>' for b in MOSES_BASELINES.values())
        rows.append(f'<tr><th>{name}</th><td class="num"><b>{_fmt(ours)}</b></td>{cells}</tr>')
    if not reference:
        comparable = (
            "Baselines are the published means; they are only comparable when this run was scored "
            "against the MOSES Test set."
        )
    elif is_moses_reference(reference):
        comparable = (
            "Scored against the MOSES Test set, as the published baselines were (their means over 3 "
            "runs of 30,000 samples)."
        )
    else:
        comparable = (
            f"<strong>Not comparable with the baselines:</strong> the _test metrics here were scored "
            f"against {html.escape(reference.get('test', '?'))}, the baselines against the MOSES "
            "Test set; the metric names are MOSES's, the reference is not."
        )
    return (
        f"<p>{metrics['n']:,} molecules sampled from the bundle; split <code>{html.escape(metrics['split'])}"
        "</code>. FCD and the property distances (_w) are lower-is-better; the rest higher. "
        f"{comparable}</p>"
        f"<table><tr><th>metric</th><th>{html.escape(model_name)} (this run)</th>{head}</tr>"
        + "".join(rows)
        + "</table>"
    )


def generation_sections(
    samples: Sequence[str],
    metrics: dict[str, Any],
    train: Sequence[str],
    model_name: str,
    canonicalization: dict[str, Any] | None,
) -> list[ReportSection]:
    from medlearn.engine.plots import figure_to_data_uri
    from medlearn.molecules.io import canonicalize
    from medlearn.molecules.plots import molecule_grid, property_histograms

    reference = metrics.get("reference") or {}
    title = (
        "Against the MOSES baselines"
        if not reference or is_moses_reference(reference)
        else "MOSES metrics (own reference) beside the MOSES baselines"
    )
    sections = [ReportSection(title, html=baseline_table_html(metrics, model_name))]
    sections.append(
        ReportSection(
            "Property distributions",
            html=(
                "<p>QED, SA score, logP and molecular weight of the valid generated molecules against the training "
                "set (up to 5,000 of each); the _w metrics above are Wasserstein distances of these against the "
                f"test reference ({html.escape(reference.get('test', 'Test'))}).</p>"
            ),
            figures=[("Generated vs training set", figure_to_data_uri(property_histograms(samples, train)))],
        )
    )
    canonical, _ = canonicalize(list(samples[:2000]))
    distinct = list(dict.fromkeys(c for c in canonical if c is not None))[:24]
    if distinct:
        sections.append(
            ReportSection(
                "Sample molecules",
                html=(
                    "<p>The first distinct valid molecules of the sample, as drawn by RDKit (not selected for quality)."
                    "</p>"
                ),
                figures=[("Generated molecules", molecule_grid(distinct))],
            )
        )
    if canonicalization:
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in canonicalization.items()
        )
        sections.append(
            ReportSection(
                "Training molecules",
                html=(
                    "<p>What canonicalisation of the sampled training records kept and rejected (RDKit parse and "
                    f"sanitisation, MOSES's validity rule).</p><table>{rows}</table>"
                ),
            )
        )
    return sections
