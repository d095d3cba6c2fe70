"""Self-contained HTML reports: one file a reviewer can open offline, archive or attach to an email.

Everything is inline (CSS, figures as PNG data URIs); nothing is fetched from the network, so a report
reads the same in ten years and leaks no access logs. Every report states the intended use at the top
(the caller words it, e.g. "Research use only, not a medical device") and credits the data it was made
from, as docs/conventions.md#reports requires. All caller strings are HTML-escaped; only ``ReportSection.html`` is
trusted markup, meant for HTML this module or the engine generated.
"""

from __future__ import annotations

import datetime as _dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.engine import plots
from medlearn.engine.calibration import OperatingPoint

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1f2933;
background:#f5f7fa;line-height:1.5}
main{max-width:1040px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:1.7em;margin:0.2em 0 0.4em}h2{border-bottom:2px solid #e4e7eb;padding-bottom:4px;margin-top:2em}
h3{margin-bottom:0.3em}
.intended-use{border-left:6px solid #d97706;background:#fff7e6;padding:12px 16px;margin:12px 0 20px;
font-size:1.05em}
.intended-use strong{display:block;text-transform:uppercase;letter-spacing:.04em;font-size:.8em;color:#92400e}
.warnings{border-left:6px solid #b91c1c;background:#fef2f2;padding:10px 16px;margin:12px 0 20px}
.warnings strong{display:block;text-transform:uppercase;letter-spacing:.04em;font-size:.8em;color:#991b1b}
.warnings ul{margin:4px 0;padding-left:18px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:.93em}
th,td{border:1px solid #d9e2ec;padding:4px 10px;text-align:left}th{background:#f0f4f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#52606d;font-size:.9em}
nav ul{columns:2;padding-left:18px}
figure{display:inline-block;margin:8px 14px 14px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #e4e7eb}figcaption{font-size:.85em;color:#52606d}
pre{background:#f0f4f8;padding:10px;overflow-x:auto;font-size:.85em}
footer{margin-top:3em;color:#7b8794;font-size:.8em}
"""


@dataclass
class ReportSection:
    """One titled part of a report: trusted HTML (e.g. from :func:`metrics_table_html`) and figures.

    ``figures`` holds (caption, data URI) pairs, e.g. from :func:`medlearn.engine.plots.figure_to_data_uri`;
    only ``data:image/...`` URIs are accepted so a report can never point at an external resource.
    """

    title: str
    html: str = ""
    figures: list[tuple[str, str]] = field(default_factory=list)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return _e(value)


def _ci(ci: Any) -> str:
    return f"{_fmt(ci[0])} – {_fmt(ci[1])}" if ci else "n/a"


def metrics_table_html(metrics_json: dict[str, Any]) -> str:
    """HTML for one ``metrics.json`` dict: split, n and unit; metric | value | 95 % CI; per class; method."""
    m = metrics_json
    out = [
        f'<p class="meta">Split <strong>{_e(m.get("split", "?"))}</strong>, n = {_e(m.get("n", "?"))} '
        f"(unit: {_e(m.get('unit', '?'))}); task {_e(m.get('task', '?'))}.</p>"
    ]
    reference = m.get("reference")
    if reference:  # what set metrics (e.g. the molecules' *_test) were scored against
        named = "; ".join(f"<code>{_e(k)}</code>: {_e(v)}" for k, v in reference.items())
        out.append(f'<p class="meta">Scored against — {named}.</p>')
    op = m.get("operating_point")
    if op:
        threshold = f"{float(op['threshold']):.4g}"
        out.append(
            f"<p>Operating point: threshold <strong>{_e(threshold)}</strong>, "
            f"rule <code>{_e(op.get('rule', '?'))}</code>, chosen on the "
            f"{_e(op.get('chosen_on', '?'))} split; thresholded metrics below are at this point.</p>"
        )
    rows = "".join(
        f'<tr><td>{_e(name)}</td><td class="num">{_fmt(v.get("value"))}</td>'
        f'<td class="num">{_ci(v.get("ci95"))}</td></tr>'
        for name, v in m.get("metrics", {}).items()
    )
    out.append(
        f"<table><thead><tr><th>metric</th><th>value</th><th>95% CI</th></tr></thead><tbody>{rows}"
        "</tbody></table>"
    )
    per_class = m.get("per_class") or {}
    if per_class:
        names = list(dict.fromkeys(k for stats in per_class.values() for k in stats))
        head = "".join(f"<th>{_e(n)}</th>" for n in names)
        body = "".join(
            f"<tr><td>{_e(cls)}</td>"
            + "".join(
                f'<td class="num">{_fmt(stats.get(n, {}).get("value"))} '
                f'<span class="meta">({_ci(stats.get(n, {}).get("ci95"))})</span></td>'
                for n in names
            )
            + "</tr>"
            for cls, stats in per_class.items()
        )
        out.append(f"<table><thead><tr><th>class</th>{head}</tr></thead><tbody>{body}</tbody></table>")
    out.append(f'<p class="meta">Confidence intervals: {_e(m.get("ci_method", "not stated"))}.</p>')
    if m.get("privacy"):
        out.append(privacy_html(m["privacy"]))
    return "\n".join(out)


def privacy_html(p: dict[str, Any]) -> str:
    """The differential-privacy figures of a private training (``metrics.json``'s ``privacy``)."""
    layers = p.get("replaced_layers") or []
    replaced = ", ".join(sorted({f"{r['replaced']} → {r['by']}" for r in layers}))
    rows = [
        ("ε spent (accountant)", f"{p['epsilon']:.3g} of target {p['target_epsilon']:g}"),
        ("δ", f"{p['delta']:.3g} ({p['delta_rule']})"),
        ("accountant", f"{p['accountant'].upper()}, {p['steps']:,} steps"),
        ("noise multiplier", f"{p['noise_multiplier']:.3g}"),
        ("per-unit gradient clip (L2)", f"{p['max_grad_norm']:g}"),
        ("Poisson sample rate", f"{p['sample_rate']:.4g} ({p['expected_batch_size']} units expected)"),
        ("layers replaced", f"{len(layers)} ({replaced})" if layers else "none"),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return (
        f"<h3>Differential privacy</h3><p>Trained with DP-SGD ({_e(p['library'])}); the guarantee covers "
        f"each training unit's influence on the weights, not what validation chose.</p><table>{body}</table>"
    )


def _slug(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


def _section_html(section: ReportSection, anchor: str) -> str:
    parts = [f'<section id="{anchor}"><h2>{_e(section.title)}</h2>', section.html]
    for caption, uri in section.figures:
        if not str(uri).startswith("data:image/"):
            raise ValueError(
                f"figure {caption!r} in section {section.title!r} is not a data:image URI; "
                "embed it with plots.figure_to_data_uri so the report stays self-contained"
            )
        parts.append(
            f'<figure><img src="{_e(uri)}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def write_report(
    path: Path,
    title: str,
    metrics_by_split: dict[str, dict[str, Any]],
    sections: list[ReportSection],
    intended_use: str,
    credits: list[str],
    config_yaml: str | None = None,
    provenance: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> Path:
    """Write the report to ``path`` (parents created, an existing file replaced) and return the path.

    Layout: title, intended use, warnings, contents, metrics per split (in the order given), the sections,
    data and credits, provenance, then the resolved config. ``warnings`` are things a reader must know
    before trusting the figures (e.g. a calibration temperature stopped by its search range), shown in a
    highlighted box under the intended use. Overwrite protection (``--force``) is the caller's job.
    """
    if not str(intended_use).strip():
        raise ValueError(
            "a report needs an intended-use statement (e.g. 'Research use only, not a medical device')"
        )
    used: set[str] = set()
    blocks: list[tuple[str, str, str]] = []  # (anchor, title, html)
    for split, metrics_json in metrics_by_split.items():
        title_ = f"Metrics: {split}"
        anchor = _slug(title_, used)
        blocks.append(
            (
                anchor,
                title_,
                f'<section id="{anchor}"><h2>{_e(title_)}</h2>{metrics_table_html(metrics_json)}</section>',
            )
        )
    for section in sections:
        anchor = _slug(section.title, used)
        blocks.append((anchor, section.title, _section_html(section, anchor)))
    credit_items = "".join(f"<li>{_e(c)}</li>" for c in credits) or "<li>No data credits were given.</li>"
    tail = [
        (
            "data-and-credits",
            "Data and credits",
            f'<section id="data-and-credits"><h2>Data and credits</h2><ul>{credit_items}</ul></section>',
        )
    ]
    if provenance:
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in provenance.items())
        tail.append(
            (
                "provenance",
                "Provenance",
                f'<section id="provenance"><h2>Provenance</h2><table>{rows}</table></section>',
            )
        )
    if config_yaml:
        tail.append(
            (
                "configuration",
                "Configuration",
                f'<section id="configuration"><h2>Configuration</h2><pre>{_e(config_yaml)}</pre></section>',
            )
        )
    blocks += tail
    toc = "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t, _ in blocks)
    created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    warning_box = ""
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        warning_box = f'<div class="warnings" role="alert"><strong>Warnings</strong><ul>{items}</ul></div>\n'
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body><main>
<h1>{_e(title)}</h1>
<div class="intended-use" role="note"><strong>Intended use</strong>{_e(intended_use)}</div>
{warning_box}<nav><h3>Contents</h3><ul>{toc}</ul></nav>
{"".join(block for _, _, block in blocks)}
<footer>Written {created} by medlearn. Self-contained: this file loads nothing from the network.</footer>
</main></body></html>
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


def training_section(
    history: list[dict[str, Any]], monitor: str | None = None, best_epoch: int | None = None
) -> ReportSection:
    """Loss by epoch with the monitored metric and the kept (best) epoch marked, and a caption saying so
    — or saying that the monitored metric is missing from the history, rather than showing another one."""
    key = plots.monitor_key(history, monitor)
    figure = plots.figure_to_data_uri(plots.loss_curves(history, monitor, best_epoch))
    best = f"epoch {_e(best_epoch)}" if best_epoch is not None else "the best epoch"
    if monitor is None:
        intro = "<p>Loss by epoch, and the first validation metric recorded.</p>"
        caption = "Training and validation loss"
    elif key is None:
        intro = (
            f"<p>Loss by epoch. The monitored metric <code>{_e(monitor)}</code> is not in the training "
            f"history, so it cannot be drawn; the kept weights are those of {best}.</p>"
        )
        caption = f"Training and validation loss (monitored {monitor} not in the history)"
    else:
        intro = (
            f"<p>Loss by epoch and <code>{_e(key)}</code>, the validation metric that early stopping and "
            f"the kept weights were chosen by; the dotted line marks {best}, whose weights the model "
            "keeps.</p>"
        )
        caption = f"Training and validation loss, {key} with the best epoch marked"
    return ReportSection("Training", intro, [(caption, figure)])


def standard_sections(
    kind: str,
    y_true: Any,
    prob: Any,
    class_names: list[str],
    operating_point: OperatingPoint | None,
    history: list[dict[str, Any]] | None,
    monitor: str | None = None,
    best_epoch: int | None = None,
) -> list[ReportSection]:
    """The usual figures for a task kind, embedded and ready for :func:`write_report`.

    binary: Training, Discrimination (ROC, PR), Calibration, Confusion matrix at the operating point
    (0.5 without one); multiclass: Training, Discrimination (one-vs-rest ROC), Calibration (top label),
    Confusion matrix; regression: Training, Predicted vs true (``prob`` holds the predictions). The
    Training section is left out when there is no history (e.g. ``evaluate`` of a bundle). ``monitor`` and
    ``best_epoch`` (a bundle's ``training.monitor`` and ``training.best_epoch``) name the metric that chose
    the kept weights; the training curve draws it with that epoch marked.
    """
    if kind not in ("binary", "multiclass", "regression"):
        raise ValueError(f"kind must be 'binary', 'multiclass' or 'regression', got {kind!r}")
    uri = plots.figure_to_data_uri
    sections: list[ReportSection] = []
    if history:
        sections.append(training_section(history, monitor, best_epoch))
    y = np.asarray(y_true)
    if kind == "binary":
        p = np.asarray(prob, dtype=float)
        p = p[:, 1] if p.ndim == 2 else p
        threshold = operating_point.threshold if operating_point is not None else 0.5
        roc = uri(plots.roc_curve(y, p, operating_point))
        pr = uri(plots.pr_curve(y, p, operating_point))
        reliability = uri(plots.reliability_diagram(y, p))
        confusion = uri(plots.confusion_matrix(y, (p >= threshold).astype(int), class_names))
        sections += [
            ReportSection("Discrimination", figures=[("ROC curve", roc), ("Precision-recall curve", pr)]),
            ReportSection("Calibration", figures=[("Reliability diagram", reliability)]),
            ReportSection(
                "Confusion matrix (at the operating point)",
                f"<p>Predicted positive when the probability is at least {threshold:.4g}.</p>",
                [("Confusion matrix", confusion)],
            ),
        ]
    elif kind == "multiclass":
        p = np.asarray(prob, dtype=float)
        pred = p.argmax(axis=1)
        roc = uri(plots.multiclass_roc(y, p, class_names))
        reliability = uri(
            plots.reliability_diagram((pred == y).astype(int), p.max(axis=1), label="top label")
        )
        confusion = uri(plots.confusion_matrix(y, pred, class_names))
        sections += [
            ReportSection("Discrimination", figures=[("ROC per class, one vs rest", roc)]),
            ReportSection(
                "Calibration",
                "<p>Top label: confidence of the predicted class against whether it was right.</p>",
                [("Reliability diagram (top label)", reliability)],
            ),
            ReportSection(
                "Confusion matrix",
                "<p>Predicted class is the most probable one.</p>",
                [("Confusion matrix", confusion)],
            ),
        ]
    else:
        scatter = uri(plots.predicted_vs_true(y, prob))
        sections.append(ReportSection("Predicted vs true", figures=[("Predicted vs true", scatter)]))
    return sections
