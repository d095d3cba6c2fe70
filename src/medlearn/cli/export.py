"""``medlearn export``: a bundle's model as ONNX for onnxruntime (argument parsing only; the work is in
:mod:`medlearn.engine.export`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from medlearn.cli import AllowExternal, Quiet, _setup, app, handles_errors
from medlearn.engine.progress import info
from medlearn.errors import InputError


@app.command("export")
@handles_errors
def export(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (<out>/bundle).")],
    format_: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="ONNX file (default: <bundle>/model.onnx, recorded in the bundle)."),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option("--int8", help="Also write an int8 copy, calibrated on the bundle's validation split."),
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Dataset for --int8's validation split (default: the training data)."),
    ] = None,
    example: Annotated[
        list[Path] | None,
        typer.Option("--example", help="Input file(s) to check parity on (default: random inputs)."),
    ] = None,
    allow_external: AllowExternal = False,
    json_: Annotated[bool, typer.Option("--json", help="Print what was exported as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    """Export a bundle's model (calibration folded in) to ONNX, checked against torch with onnxruntime."""
    from medlearn.engine.export import export_onnx

    _setup(quiet)
    if format_ != "onnx":
        raise InputError(f"--format {format_}: medlearn exports onnx")
    if data is not None and not int8:
        raise InputError(f"--data {data}: the dataset calibrates --int8; add --int8 or leave --data out")
    record = export_onnx(
        bundle, out=out, int8=int8, examples=example or None, allow_external=allow_external, data=data
    )
    if json_:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        return
    info(f"exported {record['file']} (max abs difference to torch {record['max_abs_diff']:.1e})")
    if "int8" in record:
        int8_ = record["int8"]
        info(
            f"int8: {int8_['file']} ({int8_['quantization']}, calibrated on {int8_['calibrated_on']}; "
            f"label agreement {int8_['label_agreement']:.1%})"
        )
