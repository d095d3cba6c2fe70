"""Build the README's results tables from the committed result files under ``results/``.

Every figure in a README results table comes from a file that ``tools/record_result.py`` wrote (or, for
the molecule generators whose runs predate issue 12, from ``results/legacy/``, labelled as such). The
README holds each table between two markers::

    <!-- results:imaging -->
    ...generated...
    <!-- /results:imaging -->

``python tools/readme_tables.py`` checks that every block equals what the files give (exit 1 and a diff
otherwise); ``--write`` rewrites the blocks. ``tests/test_readme_results.py`` runs the check, so a README
figure that differs from its result file fails the suite.

Selection is shown, not hidden: each table puts the **validation** figure that made a choice beside the
single **test** figure of the shipped config; variants (``results/<config>+<variant>/``) have no test
figures at all.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # readme_blocks/, also when loaded by file path

from readme_blocks import common
from readme_blocks.deploy import conformal, serve_http, serve_stream, subgroups
from readme_blocks.hospitals import (
    concepts,
    external,
    federated,
    fusion,
    fusion_choices,
    fusion_ehr,
    fusion_missing,
)
from readme_blocks.imaging import calibration, imaging, imaging_choices, real_ct
from readme_blocks.pipelines import ehr, ehr_other, molecules, signals, signals_choices

REPO = common.REPO
README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


BLOCKS: dict[str, Callable[[], str]] = {
    "serve-http": serve_http,
    "serve-stream": serve_stream,
    "conformal": conformal,
    "subgroups": subgroups,
    "imaging": imaging,
    "imaging-choices": imaging_choices,
    "calibration": calibration,
    "real-ct": real_ct,
    "ehr": ehr,
    "ehr-other": ehr_other,
    "signals": signals,
    "signals-choices": signals_choices,
    "molecules": molecules,
    "concepts": concepts,
    "fusion": fusion,
    "fusion-choices": fusion_choices,
    "fusion-missing": fusion_missing,
    "fusion-ehr": fusion_ehr,
    "federated": federated,
    "external": external,
}


def render(readme: str) -> str:
    """The README with every results block regenerated from the files."""

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise KeyError(f"README block results:{name} has no generator in tools/readme_tables.py")
        return match[1] + BLOCKS[name]() + match[4]

    return BLOCK.sub(replace, readme)


def main() -> int:
    parser = argparse.ArgumentParser(description="Check (default) or rewrite the README's results tables.")
    parser.add_argument("--write", action="store_true", help="rewrite the blocks in README.md")
    args = parser.parse_args()
    current = README.read_text()
    fresh = render(current)
    if args.write:
        README.write_text(fresh)
        return 0
    if fresh != current:
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(True), fresh.splitlines(True), "README.md", "from results/"
            )
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
