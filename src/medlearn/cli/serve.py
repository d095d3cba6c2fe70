"""``medlearn serve`` (bundles behind a REST service) and ``medlearn serve-key`` (a new API key and the hash
the key file stores). Argument parsing only: the service is :mod:`medlearn.serve`."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated

import typer

from medlearn.cli import AllowExternal, Device, _setup, app, handles_errors
from medlearn.engine.progress import info
from medlearn.errors import ConfigError, InputError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command("serve")
@handles_errors
def serve(
    bundles: Annotated[
        list[Path], typer.Argument(help="Bundle directories; each served under its config name.")
    ],
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            help="JSON/YAML file of key ids with the SHA-256 of each key and the models it may use "
            "(medlearn serve-key makes entries). Without it the service is open.",
        ),
    ] = None,
    max_request_mb: Annotated[
        float, typer.Option("--max-request-mb", min=0.001, help="Largest request body (MB); larger is 413.")
    ] = 64.0,
    rate_limit: Annotated[
        str | None,
        typer.Option(
            "--rate-limit", help="Requests per key, e.g. 60/min (also N/s, N/h); default: no limit."
        ),
    ] = None,
    audit_log: Annotated[
        Path | None,
        typer.Option("--audit-log", help="Append-only JSON-lines log of every request (no patient data)."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin", help="Browser origin allowed to call the API (repeatable); CORS is off without."
        ),
    ] = None,
    ssl_certfile: Annotated[
        Path | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM): serve HTTPS.")
    ] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM).")] = None,
    runtime: Annotated[
        str, typer.Option("--runtime", help="torch, or onnx (each bundle's ONNX export; medlearn export).")
    ] = "torch",
    require_signature: Annotated[
        Path | None,
        typer.Option(
            "--require-signature", help="Ed25519 public key (PEM) every bundle must be signed with."
        ),
    ] = None,
    allow_external: AllowExternal = False,
    device: Device = "cpu",
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            min=1,
            help="torch (or onnxruntime) threads per prediction. Concurrent requests already run in "
            "parallel threads, so 1 (the default) uses the cores without oversubscribing them; raise it "
            "for a large model that gets few requests at a time.",
        ),
    ] = 1,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes sharing the port, each with its own copy of the models: Python runs one "
            "thread at a time, so one process uses about one core. Not with a rate limit (counted per "
            "process).",
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve bundles over HTTP(S): /health, /models, /models/{name}/card, /predict/{name}, /generate/{name},
    /molecules/score. Answers with the records of medlearn predict --json plus model_version."""
    from medlearn.serve.launch import ServeSpec, check_spec, run

    _setup(False, device, threads)
    _check_serve_options(host, max_request_mb, log_level, api_key_file)
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
    for tls_file in (ssl_certfile, ssl_keyfile):
        if tls_file is not None and not tls_file.is_file():
            raise ConfigError(f"{tls_file}: TLS file not found")
    spec = ServeSpec(
        bundles=bundles,
        runtime=runtime,
        device=device,
        threads=threads,
        allow_external=allow_external,
        public_key=require_signature,
        api_key_file=api_key_file,
        rate_limit=rate_limit,
        max_request_mb=max_request_mb,
        audit_log=audit_log,
        cors_origins=list(cors_origin or []),
        workers=workers,
    )
    models = check_spec(spec)
    for m in models.values():
        info(f"serving {m.name} (version {m.version}, {m.bundle.meta.task.name}) from {m.bundle.path}")
    if workers > 1:
        info(f"{workers} worker processes, each with its own copy of the models")
    if api_key_file is None:
        info("no --api-key-file: the service is open to anyone who can reach it")
    if not _is_loopback(host) and (api_key_file is None or ssl_certfile is None):
        info(
            f"[yellow]warning:[/] listening on {host} without API keys and TLS exposes the models to the network"
        )
    run(
        spec,
        models,
        host=host,
        port=port,
        ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
        ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile),
        log_level=log_level,
    )


#: uvicorn's log levels (``--log-level``).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _check_serve_options(host: str, max_request_mb: float, log_level: str, api_key_file: Path | None) -> None:
    """What uvicorn would only refuse with a traceback, once the bundles are loaded: one line each."""
    import math

    if not host.strip() or not host.isprintable() or any(c.isspace() for c in host):
        raise InputError(f"--host {host!r}: expected an address or host name, e.g. 127.0.0.1")
    if not math.isfinite(max_request_mb):
        raise InputError(f"--max-request-mb {max_request_mb}: expected a finite number of MB, e.g. 64")
    if log_level not in LOG_LEVELS:
        raise InputError(f"--log-level {log_level!r}: expected one of {', '.join(LOG_LEVELS)}")
    if api_key_file is not None and api_key_file.is_file():
        try:
            api_key_file.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{api_key_file}: not a text (UTF-8) JSON/YAML API key file") from None


@app.command("serve-key")
@handles_errors
def serve_key(
    key_id: Annotated[str, typer.Option("--id", help="The key's id (what the audit log records).")],
    models: Annotated[
        list[str] | None,
        typer.Option("--model", help="A model name the key may use (repeatable; default: all)."),
    ] = None,
    rate_limit: Annotated[
        str | None, typer.Option("--rate-limit", help="This key's own rate limit, e.g. 120/min.")
    ] = None,
) -> None:
    """Make a new API key: prints the key once (give it to the client) and the entry for --api-key-file,
    which holds only its SHA-256."""
    from medlearn.serve.security import hash_key, new_key, parse_rate

    if not key_id.strip():
        raise InputError("--id '': give the key an id (what the audit log records), e.g. --id radiology-pacs")
    if any(not m.strip() for m in models or []):
        raise InputError("--model '': give a model name (see GET /models), or leave --model out for all")
    parse_rate(rate_limit)
    key = new_key()
    entry = {"sha256": hash_key(key), "models": list(models or ["*"])}
    if rate_limit:
        entry["rate_limit"] = rate_limit
    typer.echo(f"key: {key}")
    typer.echo("# add under 'keys:' in the API key file (YAML; JSON takes the same structure):")
    typer.echo(f"{json.dumps(key_id)}: {json.dumps(entry)}")
