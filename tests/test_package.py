"""Package-level promises: a light import, and a README whose commands exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_importing_medlearn_and_its_cli_loads_no_heavy_library():
    code = (
        "import sys, medlearn, medlearn.cli, medlearn.config; "
        "heavy = [m for m in ('torch', 'monai', 'pydicom', 'rdkit', 'flwr', 'fastapi') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_readme_names_the_two_setup_commands_and_ci_calls_the_test_one():
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert "-c constraints.txt" in makefile and "torch==2.13.0" in (REPO / "constraints.txt").read_text()
