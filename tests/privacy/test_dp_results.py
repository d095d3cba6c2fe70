"""The committed ε–utility result (benchmarks/privacy_utility.py) is coherent, and README.md shows it as it is."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULT = REPO / "results" / "privacy_utility"
BLOCK = re.compile(
    r"<!-- privacy-utility: results/privacy_utility/table\.md -->\n(?P<body>.*?)<!-- /privacy-utility -->",
    re.S,
)


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location(
        "privacy_utility", REPO / "benchmarks" / "privacy_utility.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def table():
    return json.loads((RESULT / "table.json").read_text())


def test_every_private_row_spent_at_most_its_target_and_the_last_row_is_not_private(table, benchmark):
    rows = table["rows"]
    assert [r["epsilon_target"] for r in rows] == benchmark.EPSILONS == [1.0, 3.0, 8.0, None]
    for r in rows[:-1]:
        assert 0 < r["epsilon_spent"] <= r["epsilon_target"]
        assert r["delta"] == pytest.approx(1 / (10 * 4708)) and r["replaced_layers"] == 12
        assert r["overrides"][-1] == f"privacy.epsilon={r['epsilon_target']:g}"
    assert rows[-1]["epsilon_spent"] is None and rows[-1]["overrides"][-1] == benchmark.SAME_NETWORK
    assert all(r["test"]["n"] == 624 and r["test"]["auroc"]["ci95"] for r in rows)  # scored once, with CIs


def test_table_md_is_what_table_json_and_provenance_give(table, benchmark):
    provenance = json.loads((RESULT / "provenance.json").read_text())
    epochs = int(next(o for o in table["common_overrides"] if o.startswith("train.epochs=")).split("=")[1])
    expected = benchmark.markdown(table["rows"], epochs, provenance["threads"], provenance["commit"])
    assert (RESULT / "table.md").read_text() == expected
    assert len(provenance["commit"]) == 40 and provenance["wall_seconds"] < 20 * 60


def test_the_readme_shows_the_committed_table():
    found = BLOCK.search((REPO / "README.md").read_text())
    assert found, "README.md has no privacy-utility block"
    assert found["body"] == (RESULT / "table.md").read_text(), (
        "README.md's differential-privacy table differs from results/privacy_utility/table.md: copy it in"
    )
