"""The README's results tables are what the committed result files say (issue 12, item 7)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("readme_tables", REPO / "tools" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_readme_results_block_equals_its_result_files(tables):
    readme = (REPO / "README.md").read_text()
    assert tables.BLOCK.search(readme), "README.md has no generated results block"
    assert tables.render(readme) == readme, (
        "README results differ from results/: run python tools/readme_tables.py"
    )


def test_every_generator_has_a_block_in_the_readme(tables):
    found = {m["name"] for m in tables.BLOCK.finditer((REPO / "README.md").read_text())}
    assert found == set(tables.BLOCKS)


def test_a_changed_result_file_changes_the_readme(tables, tmp_path, monkeypatch):
    """The check can fail: alter one committed figure and the rendered README differs."""
    import shutil

    shutil.copytree(REPO / "results", tmp_path / "results")
    path = tmp_path / "results" / "lung_nodule" / "metrics.json"
    scored = json.loads(path.read_text())
    scored["metrics"]["auroc"]["value"] += 0.01
    path.write_text(json.dumps(scored))
    readme = (REPO / "README.md").read_text()
    monkeypatch.setattr(tables.common, "RESULTS", tmp_path / "results")
    assert tables.render(readme) != readme


def test_variants_carry_no_test_figures():
    """A variant exists to be chosen on validation; the test split is scored once, for the shipped config."""
    variants = [p for p in (REPO / "results").iterdir() if "+" in p.name]
    assert variants
    for folder in variants:
        assert not (folder / "metrics.json").exists(), folder
        if (folder / "predictions.csv").exists():
            assert ",test," not in (folder / "predictions.csv").read_text(), folder


def test_every_result_names_the_commit_that_produced_it():
    for provenance in (REPO / "results").glob("*/provenance.json"):
        data = json.loads(provenance.read_text())
        assert len(data["commit"]) == 40 and data["tree_clean"] in (True, False), provenance
        assert data["threads"] >= 1 and data["wall_seconds"] > 0, provenance
