"""``medlearn federate``: federated training on Flower (argument parsing only; the work is in
:mod:`medlearn.federated.run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.cli import Device, Force, Quiet, Threads, _setup, _summary, app, handles_errors
from medlearn.engine.progress import info


@app.command("federate")
@handles_errors
def federate(
    config: Annotated[
        str, typer.Argument(help="YAML file or shipped config with a federated: section.", show_default=False)
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default runs/<config>-<time>).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: --set federated.rounds=5.")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset path (overrides data.root).")] = None,
    deploy: Annotated[
        bool,
        typer.Option(
            "--deploy",
            help="Flower's deployment engine: a SuperLink and one SuperNode per hospital as processes on "
            "loopback (default: the simulation engine).",
        ),
    ] = False,
    device: Device = "auto",
    threads: Threads = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Train one model across hospitals with Flower (FedAvg, FedProx, FedAdam); writes the same bundle,
    metrics, predictions and report as train, plus federated.json (per hospital, per round, beside
    centralised and local-only training)."""
    from medlearn.federated.run import federate as federate_run

    _setup(quiet)
    outputs = federate_run(
        config,
        out=out,
        overrides=set_ or [],
        data=data,
        deploy=deploy,
        device=device,
        threads=threads,
        force=force,
    )
    _summary(outputs)
    info(f"bundle: {outputs.bundle}")
