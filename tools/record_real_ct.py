"""Predict the LIDC DICOM series + XML shipped in the shared data with a recorded LIDC bundle, and keep
the prediction records beside that result (``results/<config>/real_ct.json``).

    python tools/record_real_ct.py lung_nodule /path/to/that/run/bundle

The bundle must be the one ``tools/record_result.py`` trained for ``results/<config>/`` (its creation time
and fingerprint are checked against the recorded ``bundle.json``). The README's real-CT table is built from
this file by ``tools/readme_tables.py``: a smoke test on three patients, not a validation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERIES = "imaging/lidc-idri-dicom-c2c"


def main() -> None:
    config, bundle = sys.argv[1], Path(sys.argv[2]).resolve()
    target = REPO / "results" / config
    recorded = json.loads((target / "bundle.json").read_text())
    actual = json.loads((bundle / "bundle.json").read_text())
    if (actual.get("created"), actual["data"]["fingerprint"]) != (
        recorded.get("created"),
        recorded["data"]["fingerprint"],
    ):
        sys.exit(f"{bundle}: not the bundle recorded in {target}/bundle.json")
    data = Path(os.environ.get("MEDLEARN_DATA", REPO.parent / "shared" / "data")).resolve()
    records = []
    for xml in sorted((data / SERIES).glob("LIDC-IDRI-*/*/*/*.xml")):
        out = subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "medlearn"),
                "predict",
                str(bundle),
                str(xml.parent),
                "--annotations",
                str(xml),
                "--json",
                "--quiet",
                "--threads",
                "1",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for record in json.loads(out):
            record["input"] = str(Path(record["input"]).relative_to(data))
            records.append(record)
    (target / "real_ct.json").write_text(
        json.dumps(
            {
                "command": (
                    f"medlearn predict BUNDLE <series> --annotations <xml> --json  (every series under {SERIES})"
                ),
                "bundle_created": actual.get("created"),
                "records": records,
            },
            indent=2,
        )
        + "\n"
    )
    print(target / "real_ct.json")


if __name__ == "__main__":
    main()
