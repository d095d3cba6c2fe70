"""Measure the concept table's coverage of the shared EHR demos and write ``results/concepts/coverage.json``.

    python tools/concept_coverage.py            # MEDLEARN_DATA/ehr/{mimic-iv-demo,mimic-iii-demo,eicu-demo,fhir/...}
    python tools/concept_coverage.py --out /tmp/coverage.json

Per source (:func:`medlearn.ehr.concepts.coverage.source_coverage`): per concept the ids and patterns the
table maps, the source codes found, the rows emitted and each unit met with its conversion; the share of
events and of distinct codes that map to a concept (for FHIR: over every encounter of the bundles, not
only the inpatient ones). ``tools/readme_tables.py`` renders the README's coverage table from the file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "concepts" / "coverage.json"
#: source kind → folder under MEDLEARN_DATA
DEMOS = {
    "mimic4": "ehr/mimic-iv-demo",
    "mimic3": "ehr/mimic-iii-demo",
    "eicu": "ehr/eicu-demo",
    "fhir": "ehr/fhir/synthea-r4-bundles",
}


def _commit() -> dict[str, object]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()

    # the code that runs: the EHR package and the engine (tracked files; other packages do not take part)
    status = git(
        "status", "--porcelain", "--untracked-files=no", "--", "src/medlearn/ehr", "src/medlearn/engine"
    )
    return {"commit": git("rev-parse", "HEAD"), "tree_clean": status == ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="JSON file to write")
    args = parser.parse_args()
    from medlearn.ehr.concepts.coverage import source_coverage
    from medlearn.ehr.io import read_source
    from medlearn.paths import data_root

    sources = {}
    for kind, relative in DEMOS.items():
        root = data_root() / relative
        if not root.exists():
            print(f"{root}: absent (set MEDLEARN_DATA)", file=sys.stderr)
            return 2
        got = source_coverage(read_source(root, kind=kind))
        got["folder"] = relative
        sources[kind] = got
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **_commit(),
        "sources": sources,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
    for kind, got in sources.items():
        share = got["events_mapped"] / max(got["events"], 1)
        print(f"{kind}: {got['events_mapped']:,} of {got['events']:,} events ({share:.1%}) map to a concept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
