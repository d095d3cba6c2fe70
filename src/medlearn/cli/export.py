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
        bool, typer.Option("--int8", help="Also write a dynamically quantised int8 copy.")
    ] = False,
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
    record = export_onnx(bundle, out=out, int8=int8, examples=example or None, allow_external=allow_external)
    if json_:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        return
    info(f"exported {record['file']} (max abs difference to torch {record['max_abs_diff']:.1e})")
    if "int8" in record:
        info(f"int8: {record['int8']['file']} (label agreement {record['int8']['label_agreement']:.1%})")
