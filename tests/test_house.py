"""The packaging and house-rule promises of issue 13 (items 8-10): ``python -m medlearn --version``, the
LICENSE matching ``pyproject.toml``, ``py.typed`` shipped, and the import contracts of ``.importlinter``
kept (and able to fail)."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import medlearn

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    """The ``lint-imports`` script of this interpreter's environment (skipped where import-linter is not
    installed, except under CI, which must run the contracts)."""
    script = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    if script is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "lint-imports is missing under CI=true: install the dev extra (pip install -e '.[dev]')"
            )
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    return script


def test_python_m_medlearn_version_prints_the_installed_version():
    out = subprocess.run(
        [sys.executable, "-m", "medlearn", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == f"medlearn {medlearn.__version__}"
    assert medlearn.__version__ == importlib.metadata.version("medlearn")


def test_medlearn_script_version_matches_python_m():
    script = shutil.which("medlearn", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the medlearn console script is not installed beside this interpreter")
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == f"medlearn {medlearn.__version__}"


def test_license_file_is_the_apache_2_text_that_pyproject_declares():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    text = (REPO / "LICENSE").read_text()
    assert declared == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full licence, not a one-line pointer to it


def test_py_typed_ships_inside_the_installed_package():
    assert importlib.resources.files("medlearn").joinpath("py.typed").is_file()


def test_import_contracts_are_kept():
    result = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_contracts_catch_an_engine_import_of_a_modality(tmp_path):
    """A copy of the package with one planted import breaks the engine contract, naming the chain: the
    contract file checks real module names, not ones that match nothing."""
    shutil.copytree(
        REPO / "src" / "medlearn", tmp_path / "src" / "medlearn", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    with (tmp_path / "src" / "medlearn" / "engine" / "dummy.py").open("a") as module:
        module.write("\nimport medlearn.imaging.models  # planted by the test\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    result = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "medlearn.engine is not allowed to import medlearn.imaging" in result.stdout
    assert "medlearn.engine.dummy -> medlearn.imaging.models" in result.stdout


def test_the_engine_has_no_import_cycle():
    """No two engine (or explain) modules import each other, directly or through others, at run time
    (imports under ``TYPE_CHECKING`` are annotations only). A cycle is how run, generative, bundle and
    predict used to be tied: none of them could be read, tested or replaced alone."""
    import itertools

    import grimp  # installed with import-linter (the dev extra)

    graph = grimp.build_graph("medlearn", exclude_type_checking_imports=True)
    modules = sorted(m for m in graph.modules if m.startswith(("medlearn.engine", "medlearn.explain")))
    assert len(modules) > 20
    cycles = [
        (a, b)
        for a, b in itertools.combinations(modules, 2)
        if graph.find_shortest_chain(a, b) and graph.find_shortest_chain(b, a)
    ]
    assert cycles == []
