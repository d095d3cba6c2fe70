"""``medlearn pacs``: predict on a study in a PACS and store the results back as DICOM (argument parsing
only; the work is in :mod:`medlearn.imaging.pacs`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from medlearn.cli import (
    AllowExternal,
    Device,
    Diameter,
    Force,
    Nodule,
    Quiet,
    Threads,
    _out_dir,
    _positive_finite,
    _setup,
    app,
    handles_errors,
)
from medlearn.engine.progress import info
from medlearn.errors import InputError


@app.command("pacs")
@handles_errors
def pacs(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (<out>/bundle) of a CT nodule model.")],
    url: Annotated[
        str, typer.Option("--url", help="DICOMweb root of the PACS, e.g. http://pacs:8042/dicom-web.")
    ],
    study: Annotated[str, typer.Option("--study", help="StudyInstanceUID of the study to predict on.")],
    annotations: Annotated[
        Path | None, typer.Option("--annotations", help="LIDC XML with the reader marks of the CT series.")
    ] = None,
    nodule: Nodule = None,
    diameter: Diameter = None,
    series: Annotated[
        str | None,
        typer.Option("--series", help="SeriesInstanceUID of the CT series (default: the largest)."),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain/--no-explain", help="Store a Grad-CAM Secondary Capture per nodule.")
    ] = True,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory to keep the Grad-CAM pictures in too.")
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the prediction records as JSON on stdout.")
    ] = False,
    allow_external: AllowExternal = False,
    device: Device = "auto",
    threads: Threads = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Pull a study from a PACS (DICOMweb), predict its nodules and store a TID 1500 SR and Grad-CAM
    Secondary Captures back into the study. Without --annotations or --nodule the nodules are read from a
    TID 1500 measurement report stored with the study."""
    from medlearn.engine.bundle import load_bundle
    from medlearn.imaging.pacs import pacs_predict

    _setup(quiet, device, threads)
    _positive_finite(diameter, "--diameter", "10")
    if out is not None:
        out = _out_dir(out, "pacs", force)
    loaded = load_bundle(bundle, device=device, allow_external=allow_external)
    records = pacs_predict(
        loaded,
        url,
        study,
        annotations=annotations,
        nodule=nodule,
        diameter=diameter,
        series_uid=series,
        explain=explain,
        out=out,
    )
    if json_:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    for r in records:  # the predictions are the command's output: stdout, also under --quiet
        if "skipped" in r:
            sys.stdout.write(f"skipped {r['skipped'].get('unit', r['input'])}: {r['skipped']['reason']}\n")
            continue
        stored = r.get("pacs", {})
        where = (
            f"  → SR {stored['sr']}" + (f", SC {stored['sc']}" if "sc" in stored else "") if stored else ""
        )
        sys.stdout.write(
            f"{r['unit']}: {r['label']} (p={r['probability']:.3f}, threshold {r['threshold']:.3f}){where}\n"
        )


@app.command("pacs-listen")
@handles_errors
def pacs_listen(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (<out>/bundle) of a CT nodule model.")],
    url: Annotated[
        str, typer.Option("--url", help="DICOMweb root of the PACS the results are stored into (STOW-RS).")
    ],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="DICOM port to listen on.")] = 11112,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    aet: Annotated[str, typer.Option("--aet", help="This node's AE title.")] = "MEDLEARN",
    settle: Annotated[
        float,
        typer.Option("--settle", help="Seconds without a new instance after which a study is complete."),
    ] = 5.0,
    explain: Annotated[
        bool, typer.Option("--explain/--no-explain", help="Store a Grad-CAM Secondary Capture per nodule.")
    ] = True,
    allow_external: AllowExternal = False,
    device: Device = "auto",
    threads: Threads = None,
    quiet: Quiet = False,
) -> None:
    """Listen as a DICOM node (C-STORE SCP): predict each study that arrives (nodules from its TID 1500
    report) and store the SR and Secondary Captures into the PACS at --url. Prints one JSON line per
    study on stdout; runs until Ctrl-C."""
    from medlearn.engine.bundle import load_bundle
    from medlearn.imaging.listener import StudyListener

    _setup(quiet, device, threads)
    _positive_finite(settle, "--settle", "5")
    if not 0 < len(aet.strip()) <= 16 or not aet.isascii() or not aet.isprintable() or "\\" in aet:
        raise InputError(f"--aet {aet!r}: an AE title has 1 to 16 printable ASCII characters (no backslash)")
    if not host.strip() or not host.isprintable() or any(c.isspace() for c in host):
        raise InputError(f"--host {host!r}: expected an address to listen on, e.g. 0.0.0.0")
    loaded = load_bundle(bundle, device=device, allow_external=allow_external)
    if loaded.kind != "binary":  # what pacs refuses too, said before listening rather than per study
        raise InputError(
            f"{bundle}: the PACS report holds binary nodule predictions; this is a {loaded.kind} model"
        )

    def report(study: str, records: list | None, error: str | None) -> None:
        line = {"study": study, "records": records} if error is None else {"study": study, "error": error}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    listener = StudyListener(
        loaded, url, aet=aet.strip(), host=host, port=port, settle=settle, explain=explain, on_study=report
    )
    info(f"listening as {aet.strip()} on {host}:{port}; results go to {url}")
    try:
        listener.serve_forever()
    except KeyboardInterrupt:
        info("stopped")
