"""What every README results block is built from: the result folders and how a figure is written."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"


# ---------------------------------------------------------------------------------------------- reading
class Result:
    """One folder of ``results/``: the files record_result.py wrote."""

    def __init__(self, name: str):
        self.name = name
        self.path = RESULTS / name
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: no such result (run tools/record_result.py)")
        self.provenance = self._json("provenance.json")
        self.val = self._json("metrics_val.json")
        self.bundle = self._json("bundle.json")
        test = self.path / "metrics.json"
        self.test = json.loads(test.read_text()) if test.is_file() else None

    def _json(self, name: str) -> dict[str, Any]:
        return json.loads((self.path / name).read_text())

    @property
    def minutes(self) -> float:
        return self.provenance["wall_seconds"] / 60

    def predictions(self, split: str) -> list[dict[str, str]]:
        with (self.path / "predictions.csv").open(newline="") as fh:
            return [row for row in csv.DictReader(fh) if row["split"] == split]


def metric(scored: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if scored is None:
        return None
    return scored["metrics"].get(name) or scored.get("per_class", {}).get(name)


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def ci(entry: dict[str, Any] | None, digits: int = 3, bold: bool = False) -> str:
    """``0.876 (0.806–0.934)``; a CI the bootstrap did not give (too few clusters) is left out."""
    if entry is None:
        return "–"
    text = num(entry["value"], digits)
    text = f"**{text}**" if bold else text
    bounds = entry.get("ci95")
    return text + (f" ({num(bounds[0], digits)}–{num(bounds[1], digits)})" if bounds else "")


def value(scored: dict[str, Any] | None, name: str, digits: int = 3) -> str:
    entry = metric(scored, name)
    return "–" if entry is None else num(entry["value"], digits)


def per_class(scored: dict[str, Any], name: str, cls: str, digits: int = 2) -> str:
    return num(scored.get("per_class", {}).get(cls, {}).get(name, {}).get("value"), digits)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def commits(names: list[str]) -> str:
    """Where the figures came from: the commits that ran, and whether each tree was clean."""
    seen: dict[str, bool] = {}
    for n in names:
        p = Result(n).provenance
        seen[p["commit"][:7]] = seen.get(p["commit"][:7], True) and p["tree_clean"]
    return ", ".join(f"`{c}`" + ("" if clean else " (uncommitted changes)") for c, clean in seen.items())


#: The columns :func:`binary_cells` fills, after a table's own first two.
BINARY_HEADER = [
    "test n",
    "val AUROC",
    "test AUROC (95% CI)",
    "test sensitivity / specificity at the operating point",
    "test ECE",
    "train time (1 thread)",
]


def binary_cells(r: Result) -> list[str]:
    """A binary classifier's result as the :data:`BINARY_HEADER` cells (imaging and fusion tables)."""
    sens = metric(r.test, "sensitivity")["value"]
    spec = metric(r.test, "specificity")["value"]
    return [
        f"{r.test['n']} {r.test['unit']}s",
        value(r.val, "auroc"),
        ci(metric(r.test, "auroc"), bold=True),
        f"{num(sens)} / {num(spec)}",
        value(r.test, "ece"),
        f"{r.minutes:.1f} min",
    ]
