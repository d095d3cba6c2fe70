"""HTML reports and their figures (medlearn.engine.report / plots)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from medlearn.engine import plots
from medlearn.engine.metrics import OperatingPoint, evaluate_predictions
from medlearn.engine.report import ReportSection, metrics_table_html, standard_sections, write_report

INTENDED_USE = "Research use only, not a medical device: ranks cases for review in a toy study."
HISTORY = [
    {"epoch": e, "train_loss": 1 / (e + 1), "val_loss": 1.1 / (e + 1), "val_auroc": 0.6 + 0.05 * e}
    for e in range(4)
]


@pytest.fixture
def binary_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, OperatingPoint, dict]:
    y = rng.integers(0, 2, 120)
    prob = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    op = OperatingPoint(0.4, "val", "sensitivity>=0.90")
    metrics = evaluate_predictions(
        "toy", "test", "case", "binary", y, prob, ["negative", "positive"], op, n_boot=100
    )
    return y, prob, op, metrics


def _external_references(document: str) -> list[str]:
    """Anything that would make a browser fetch from elsewhere."""
    patterns = [
        r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""",
        r"url\(",
        r"@import",
        r"<link\b",
        r"<script\b",
        r"<iframe\b",
    ]
    return [m.group(0) for p in patterns for m in re.finditer(p, document, flags=re.IGNORECASE)]


def test_report_is_self_contained_and_shows_use_metrics_and_figures(binary_case, tmp_path: Path) -> None:
    y, prob, op, metrics = binary_case
    sections = standard_sections("binary", y, prob, ["negative", "positive"], op, HISTORY)
    n_figures = sum(len(s.figures) for s in sections)
    path = write_report(
        tmp_path / "out" / "report.html",
        "Toy report",
        {"test": metrics},
        sections,
        INTENDED_USE,
        ["Toy data set (CC BY 4.0), please cite Doe et al. 2024"],
        config_yaml="train:\n  epochs: 3\n",
        provenance={"medlearn": "0.1.0", "seed": 0},
    )
    assert path == tmp_path / "out" / "report.html" and path.is_file()
    document = path.read_text(encoding="utf-8")
    assert INTENDED_USE in document
    assert document.index(INTENDED_USE) < document.index("Metrics: test")  # stated before any result
    assert f"{metrics['metrics']['auroc']['value']:.3f}" in document
    lo, hi = metrics["metrics"]["auroc"]["ci95"]
    assert f"{lo:.3f} – {hi:.3f}" in document
    assert document.count('<img src="data:image/png;base64,') == n_figures == 5
    assert "Data and credits" in document and "please cite Doe et al. 2024" in document
    assert "epochs: 3" in document
    assert _external_references(document) == []


def test_user_strings_are_escaped(binary_case, tmp_path: Path) -> None:
    *_, metrics = binary_case
    evil = "<script>alert('x')</script>"
    section = ReportSection(f"Notes {evil}", figures=[(f"caption {evil}", "data:image/png;base64,AAAA")])
    document = write_report(
        tmp_path / "r.html",
        f"Title {evil}",
        {"test": metrics},
        [section],
        f"Research use only {evil}",
        [f"credit {evil}"],
        config_yaml=evil,
        provenance={evil: evil},
    ).read_text()
    assert "<script" not in document.lower()
    assert document.count("&lt;script&gt;") >= 7


def test_figures_must_be_embedded_data_uris(binary_case, tmp_path: Path) -> None:
    *_, metrics = binary_case
    section = ReportSection("Remote", figures=[("remote", "https://example.org/x.png")])
    with pytest.raises(ValueError, match="data:image"):
        write_report(tmp_path / "r.html", "t", {"test": metrics}, [section], INTENDED_USE, [])


def test_report_requires_an_intended_use_statement(binary_case, tmp_path: Path) -> None:
    *_, metrics = binary_case
    with pytest.raises(ValueError, match="intended-use"):
        write_report(tmp_path / "r.html", "t", {"test": metrics}, [], "  ", [])


def test_metrics_table_shows_ci_per_class_operating_point_and_method(binary_case) -> None:
    *_, metrics = binary_case
    table = metrics_table_html(metrics)
    assert "<th>95% CI</th>" in table
    assert "sensitivity&gt;=0.90" in table and "0.4" in table
    assert "<td>negative</td>" in table and "<td>positive</td>" in table
    assert "n = 120" in table and "unit: case" in table
    assert "percentile bootstrap, 100 resamples of cases" in table
    undefined = {
        "task": "t",
        "split": "cv",
        "unit": "case",
        "n": 3,
        "operating_point": None,
        "per_class": {},
        "metrics": {"auroc": {"value": None, "ci95": None}},
        "ci_method": "x",
    }
    assert "n/a" in metrics_table_html(undefined)


def test_standard_sections_for_multiclass_and_regression(rng: np.random.Generator) -> None:
    y = rng.integers(0, 3, 90)
    prob = rng.dirichlet([1, 1, 1], 90)
    multi = standard_sections("multiclass", y, prob, ["a", "b", "c"], None, None)
    assert [s.title for s in multi] == ["Discrimination", "Calibration", "Confusion matrix"]
    regression = standard_sections("regression", rng.normal(size=40), rng.normal(size=40), [], None, HISTORY)
    assert [s.title for s in regression] == ["Training", "Predicted vs true"]
    assert all(uri.startswith("data:image/png;base64,") for s in multi + regression for _, uri in s.figures)
    with pytest.raises(ValueError, match="kind"):
        standard_sections("ranking", y, prob, [], None, None)


def test_figure_to_data_uri_encodes_a_png(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 50)
    fig = plots.roc_curve(y, rng.uniform(0, 1, 50), OperatingPoint(0.5, "val", "threshold=0.5"))
    assert isinstance(fig, Figure)
    uri = plots.figure_to_data_uri(fig)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_say_why_they_are_empty_with_one_class() -> None:
    fig = plots.roc_curve(np.zeros(10), np.linspace(0, 1, 10))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("one class" in t for t in texts)


def test_image_grid_takes_grayscale_and_rgb_and_rejects_other_shapes(rng: np.random.Generator) -> None:
    images = [
        rng.random((16, 16)),
        rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
        rng.normal(size=(16, 16, 3)),
    ]
    fig = plots.image_grid(images, ["gray", "rgb uint8", "rgb float"], ncols=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 3 and [ax.get_title() for ax in shown] == ["gray", "rgb uint8", "rgb float"]
    with pytest.raises(ValueError, match="HxWx3"):
        plots.image_grid([np.zeros((2, 2, 2, 2))], ["bad"])
    with pytest.raises(ValueError, match="titles"):
        plots.image_grid(images, ["one"])


def test_loss_curves_put_the_monitored_metric_on_a_twin_axis() -> None:
    fig = plots.loss_curves(HISTORY)
    assert len(fig.axes) == 2
    assert fig.axes[1].get_ylabel() == "val auroc"
    assert [line.get_label() for line in fig.axes[0].lines] == [
        "train loss",
        "val loss",
        "best epoch 3 (val_auroc=0.75)",
    ]


def test_loss_curves_mark_the_best_epoch_of_the_monitored_metric() -> None:
    fig = plots.loss_curves(HISTORY, monitor="auroc", best_epoch=2)
    loss_ax, metric_ax = fig.axes
    assert metric_ax.get_ylabel() == "val auroc"
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert labels == ["train loss", "val loss", "val auroc", "best epoch 2 (val_auroc=0.7)"]
    best_line = next(line for line in loss_ax.lines if line.get_label().startswith("best epoch"))
    assert list(best_line.get_xdata()) == [2, 2]
    star = [line for line in metric_ax.lines if line.get_marker() == "*"]
    assert (
        len(star) == 1
        and list(star[0].get_xdata()) == [2]
        and list(star[0].get_ydata()) == [pytest.approx(0.7)]
    )


def test_loss_curves_without_a_best_epoch_mark_the_best_value_and_loss_stays_on_the_loss_axis() -> None:
    history = [{"epoch": e, "train_loss": 1.0, "val_loss": v} for e, v in ((1, 0.9), (2, 0.5), (3, 0.7))]
    fig = plots.loss_curves(history, monitor="loss")
    assert len(fig.axes) == 1  # the validation loss is already drawn
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[-1] == "best epoch 2 (val_loss=0.5)"
    assert fig.axes[0].get_title() == "Training (monitored: loss)"


def test_a_monitored_metric_missing_from_the_history_is_said_not_replaced() -> None:
    fig = plots.loss_curves(HISTORY, monitor="kappa", best_epoch=3)
    assert len(fig.axes) == 1  # val_auroc is not drawn in its place
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["monitored metric 'kappa' is not in the history"]
    section = standard_sections("regression", [1.0, 2.0], [1.1, 2.1], [], None, HISTORY, "kappa", 3)[0]
    assert section.title == "Training" and "is not in the training history" in section.html
    assert section.figures[0][0] == "Training and validation loss (monitored kappa not in the history)"


def test_training_section_names_the_monitor_and_best_epoch() -> None:
    section = standard_sections("regression", [1.0, 2.0], [1.1, 2.1], [], None, HISTORY, "auroc", 2)[0]
    assert "<code>val_auroc</code>" in section.html and "epoch 2" in section.html
    assert section.figures[0][0] == "Training and validation loss, val_auroc with the best epoch marked"


def test_warnings_are_a_highlighted_box_before_the_contents(binary_case, tmp_path: Path) -> None:
    *_, metrics = binary_case
    document = write_report(
        tmp_path / "r.html",
        "t",
        {"test": metrics},
        [],
        INTENDED_USE,
        [],
        warnings=["calibration temperature 20 is at the upper bound <of> its range"],
    ).read_text()
    box = document.index('<div class="warnings" role="alert">')
    assert document.index(INTENDED_USE) < box < document.index("Contents")
    assert "calibration temperature 20 is at the upper bound &lt;of&gt; its range" in document
    plain = write_report(tmp_path / "p.html", "t", {"test": metrics}, [], INTENDED_USE, []).read_text()
    assert 'class="warnings"' not in plain


def test_metrics_table_names_the_reference_it_was_scored_against() -> None:
    html_ = metrics_table_html(
        {
            "split": "generated",
            "n": 10,
            "unit": "molecule",
            "metrics": {},
            "reference": {"test": "1,000 molecules held out from first_5K.smi"},
        }
    )
    assert "<code>test</code>: 1,000 molecules held out from first_5K.smi" in html_


def test_plotting_leaves_pyplot_and_the_backend_alone() -> None:
    """Drawing must not import pyplot nor pick a backend: the host application (a notebook, a GUI) decides."""
    code = (
        "import sys, matplotlib; raw = lambda: dict.__getitem__(matplotlib.rcParams, 'backend');"
        "before = raw(); import numpy as np; from medlearn.engine import plots, report;"
        "plots.figure_to_data_uri(plots.reliability_diagram(np.array([0, 1]), np.array([0.2, 0.7])));"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported';"
        "assert raw() is before, 'backend set'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
