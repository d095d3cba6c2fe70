"""`medlearn mol-metrics`: any SMILES file scored into CONVENTIONS.md's metrics.json; bad input is one line."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from medlearn.cli import app
from tests.conftest import require_data

runner = CliRunner()


@pytest.fixture(scope="module")
def small_moses(tmp_path_factory):
    moses = require_data("molecules/moses")
    root = tmp_path_factory.mktemp("moses")
    with gzip.open(moses / "test.csv.gz", "rt") as fh:
        test = [line.strip() for line in fh][1:401]
    with gzip.open(moses / "train.csv.gz", "rt") as fh:
        train = [line.strip() for line in fh][1:301]
    (root / "test.csv").write_text("SMILES\n" + "\n".join(test[:200]) + "\n")
    (root / "scaffolds.csv").write_text("SMILES\n" + "\n".join(test[200:]) + "\n")
    (root / "train.csv").write_text("SMILES\n" + "\n".join(train) + "\n")
    return root, train, test


def _run(root, generated, out, *extra):
    return runner.invoke(
        app,
        [
            "mol-metrics",
            str(generated),
            "--out",
            str(out),
            "--train",
            str(root / "train.csv"),
            "--test",
            str(root / "test.csv"),
            "--test-scaffolds",
            str(root / "scaffolds.csv"),
            "--n-jobs",
            "1",
            "--quiet",
            *extra,
        ],
    )


def test_scores_a_file_with_invalid_smiles_into_metrics_json(small_moses, tmp_path):
    root, train, test = small_moses
    generated = tmp_path / "gen.csv"
    # 100 training molecules (not novel), 98 test molecules, 2 invalid strings
    generated.write_text("smiles\n" + "\n".join(train[:100] + test[:98] + ["C1CC", "not_a_smiles"]) + "\n")
    result = _run(root, generated, tmp_path / "metrics.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    m = {k: v["value"] for k, v in metrics["metrics"].items()}
    assert metrics["n"] == 200 and m["validity"] == pytest.approx(0.99)
    assert m["novelty"] == pytest.approx(98 / 198, abs=1e-6)
    # 98 of the 198 valid molecules are reference molecules themselves (similarity 1), the rest are not
    assert 0.0 < m["int_div1"] < 1.0 and 98 / 198 < m["snn_test"] < 1.0
    assert {"fcd_test", "frag_testsf", "qed_w", "unique_1k"} <= set(m)
    assert all(v["ci95"] is None for v in metrics["metrics"].values())
    # fcd_test keeps its name; "reference" says it was scored against the given file, not MOSES Test
    assert metrics["reference"] == {
        "test": f"{root / 'test.csv'}, 200 molecules",
        "test_scaffolds": f"{root / 'scaffolds.csv'}, 200 molecules",
        "train": str(root / "train.csv"),
    }
    again = _run(root, generated, tmp_path / "metrics.json")
    assert again.exit_code == 2 and "--force" in again.output


def test_a_file_without_a_smiles_column_is_one_clear_error(small_moses, tmp_path):
    root, _, _ = small_moses
    bad = tmp_path / "bad.csv"
    bad.write_text("molecule,score\nCCO,1\n")
    result = _run(root, bad, tmp_path / "m.json")
    assert result.exit_code == 2 and "bad.csv" in result.output and "Traceback" not in result.output
