"""``medlearn explain``: attributions for a bundle's predictions, with their sanity and faithfulness
checks (argument parsing only; the work is in :mod:`medlearn.explain`)."""

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
    RequireSignature,
    Threads,
    _out_dir,
    _positive_finite,
    _setup,
    app,
    handles_errors,
)


@app.command("explain")
@handles_errors
def explain(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory.")],
    inputs: Annotated[list[Path], typer.Argument(help="Input files or folders (as for predict).")],
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help="gradcam, gradcam++, integrated_gradients, occlusion or shapley (repeatable; default: "
            "the first that suits the model: Grad-CAM for images, integrated gradients for signals and "
            "EHR sequences, Shapley sampling for tree models).",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="Class to explain, by name or index (default: the predicted one)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory for the pictures and explanations.json.")
    ] = None,
    shuffled_bundle: Annotated[
        Path | None,
        typer.Option(
            "--shuffled-bundle", help="A bundle of the same task trained on shuffled labels (sanity check)."
        ),
    ] = None,
    checks: Annotated[
        bool,
        typer.Option("--checks/--no-checks", help="Sanity (model randomisation) and faithfulness checks."),
    ] = True,
    annotations: Annotated[
        Path | None, typer.Option("--annotations", help="LIDC XML with reader contours.")
    ] = None,
    reader: Annotated[str | None, typer.Option("--reader", help="Reader mark id or reading session.")] = None,
    nodule: Nodule = None,
    diameter: Diameter = None,
    series: Annotated[
        str | None, typer.Option("--series", help="SeriesInstanceUID when a folder holds several.")
    ] = None,
    fs: Annotated[
        float | None, typer.Option("--fs", help="Sampling rate (Hz) of header-less signal files.")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print explanations.json on stdout.")] = False,
    allow_external: AllowExternal = False,
    require_signature: RequireSignature = None,
    device: Device = "auto",
    threads: Threads = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Explain a bundle's predictions: one picture per unit and explanations.json with sanity checks."""
    from medlearn.explain.api import explain_bundle
    from medlearn.explain.run import summary_line

    _setup(quiet, device, threads)
    _positive_finite(fs, "--fs", "300")
    _positive_finite(diameter, "--diameter", "10")
    out_dir = out if out is not None else _out_dir(None, "explain", force)
    result = explain_bundle(
        bundle,
        inputs,
        out_dir,
        methods=method,
        target=target,
        checks=checks,
        shuffled_bundle=shuffled_bundle,
        device=device,
        force=force,
        allow_external=allow_external,
        public_key=require_signature,
        annotations=annotations,
        reader=reader,
        nodule=nodule,
        diameter=diameter,
        series=series,
        fs=fs,
    )
    if json_:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    sys.stdout.write(f"{out_dir}: {summary_line(result['summary'])}\n")
