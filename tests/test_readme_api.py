"""The README's Python API examples run as written (issue 13 item 7): every fenced ``python`` block that follows
an ``<!-- api-example -->`` comment is executed in a fresh directory, where it writes its own synthetic data,
trains, evaluates and predicts, as a user who copies it would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import require_module

README = Path(__file__).resolve().parents[1] / "README.md"
MARKED = re.compile(r"<!-- api-example -->\s*\n```python\n(.*?)\n```", re.DOTALL)


def api_examples() -> list[str]:
    return MARKED.findall(README.read_text())


def test_the_readme_marks_its_python_api_example():
    (example,) = api_examples()
    for call in ("medlearn.train(", "medlearn.evaluate(", "medlearn.load_bundle(", ".predict("):
        assert call in example, call


@pytest.mark.parametrize("example", api_examples())
def test_the_readme_api_example_runs(example, tmp_path, monkeypatch, capsys, one_torch_thread):
    require_module("polars")  # the example's EHR data needs the ehr extra
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("{'value': ")  # the metric printed from run.metrics
    assert len(printed) > 1  # one line per admission of the new patients, predicted or skipped
    for out in ("runs/los", "runs/los-eval"):
        assert (tmp_path / out / "metrics.json").is_file(), out
    assert (tmp_path / "runs/los/bundle/bundle.json").is_file()
