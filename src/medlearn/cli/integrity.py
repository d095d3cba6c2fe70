"""Bundle signing commands: ``keygen`` and ``sign`` (argument parsing only; the work is in
:mod:`medlearn.engine.integrity`). Loading commands take ``--require-signature PUBLIC.pem``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlearn.cli import Force, Quiet, _setup, app, handles_errors
from medlearn.engine.progress import info


@app.command("keygen")
@handles_errors
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Folder for private.pem and public.pem.")],
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Make an Ed25519 key pair for signing bundles: keep private.pem where bundles are made, give
    public.pem to the sites that load them (--require-signature)."""
    from medlearn.engine.integrity import generate_keypair

    _setup(quiet)
    private, public = generate_keypair(out, force=force)
    info(f"private key: {private} (mode 0600; never share it)")
    info(f"public key: {public} (for --require-signature)")


@app.command("sign")
@handles_errors
def sign(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (<out>/bundle).")],
    key: Annotated[Path, typer.Option("--key", help="Ed25519 private key (PEM) from medlearn keygen.")],
    quiet: Quiet = False,
) -> None:
    """Sign a bundle's manifest (after checking every file against it): writes manifest.sig."""
    from medlearn.engine.integrity import sign_bundle

    _setup(quiet)
    folder = bundle / "bundle" if (bundle / "bundle" / "bundle.json").is_file() else bundle
    signature = sign_bundle(folder, key)
    info(f"signed: {signature}")
