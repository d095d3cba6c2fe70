"""``medlearn deid``: de-identify DICOM, EHR tables and FHIR bundles (argument parsing only; the work is in
:mod:`medlearn.privacy.deid`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from medlearn.cli import Force, Quiet, _setup, app, handles_errors
from medlearn.engine.progress import info


@app.command("deid")
@handles_errors
def deid(
    input_: Annotated[
        Path, typer.Argument(metavar="INPUT", help="A DICOM/CSV/FHIR JSON file, or a folder (recursive).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder (mirrors INPUT) or, for one input file, output file.")
    ],
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="File holding the secret as hex (e.g. `openssl rand -hex 32`); default: $MEDLEARN_DEID_KEY. "
            "The same key gives the same pseudonyms, UIDs and date shifts; keep it secret.",
        ),
    ] = None,
    skip_burned_in: Annotated[
        bool,
        typer.Option(
            "--skip-burned-in",
            help="Do not write DICOM files that may carry burned-in text (they are listed in the report).",
        ),
    ] = False,
    force: Force = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the report's counts as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    """De-identify INPUT into --out: DICOM by the PS3.15 Basic Profile (UIDs remapped, dates shifted per
    patient, private tags dropped), EHR tables and FHIR with keyed pseudonyms, date shifts and text scrubbing.
    The input is never modified; deid_report.json lists what was done."""
    from medlearn.privacy.deid import deidentify
    from medlearn.privacy.keys import Keyring, load_key

    _setup(quiet)
    keys = Keyring(load_key(key_file))
    run = deidentify(input_, out, keys, force=force, skip_burned_in=skip_burned_in)
    for flagged in run.burned_in:
        info(
            f"[yellow]warning:[/] {flagged['path']}: {flagged['reason']}: check the pixels for burned-in text"
        )
    if json_:
        sys.stdout.write(json.dumps(run.report["counts"]) + "\n")
        return
    counts = run.report["counts"]
    info(
        f"de-identified {counts['dicom']} DICOM, {counts['tables']} table and {counts['fhir']} FHIR file(s) "
        f"into {out} ({counts['skipped']} skipped, {counts['burned_in_flagged']} flagged for burned-in text); "
        f"report: {run.report_path}"
    )
