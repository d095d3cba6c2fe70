"""What ``medlearn serve`` runs: one specification of the service, built into an app in this process or in
each of ``--workers`` uvicorn worker processes.

Python runs one thread at a time (the GIL), and a request's preprocessing, parsing and routing are Python:
a single process therefore tops out near one core whatever the model's runtime. Several worker processes
sharing the port are how a Python service uses several cores. uvicorn starts them itself and imports the
app in each, so the specification travels as JSON in :data:`SPEC_ENV` and every worker loads its own copy
of the bundles (memory × workers).

In-process state stays per worker: with more than one, a per-key rate limit would let each key through
N times (refused at start-up, see :func:`check_spec`), and each worker appends to the audit log on its own
(one ``write`` per line on a file opened for appending, so lines do not interleave).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from medlearn.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from medlearn.serve.models import ServedModel

#: the environment variable that hands the specification to uvicorn's worker processes
SPEC_ENV = "MEDLEARN_SERVE_SPEC"
#: more worker processes than this is a typo, not a deployment (each one loads every model)
MAX_WORKERS = 64


class ServeSpec(BaseModel):
    """Everything a worker needs to build the same service as ``medlearn serve``'s arguments."""

    model_config = ConfigDict(extra="forbid")

    bundles: list[Path]
    runtime: str = "torch"
    device: str = "cpu"
    threads: int = 1
    allow_external: bool = False
    public_key: Path | None = None
    api_key_file: Path | None = None
    rate_limit: str | None = None
    max_request_mb: float = 64.0
    audit_log: Path | None = None
    cors_origins: list[str] = []
    workers: int = 1


def check_spec(spec: ServeSpec) -> dict[str, ServedModel]:
    """Load what the service will serve once, here, so that a bad bundle, key file or option is one clear
    error before any worker starts; the loaded models (for the start-up lines).

    Raises:
        ConfigError: a rate limit (``--rate-limit``, or a key's own) with more than one worker.
        BundleError: a bundle that does not load (see :func:`~medlearn.serve.models.load_models`).
    """
    from medlearn.serve.security import load_key_file, parse_rate

    if spec.runtime not in ("torch", "onnx"):
        raise ConfigError(f"--runtime {spec.runtime}: choose torch or onnx")
    if not 1 <= spec.workers <= MAX_WORKERS:
        raise ConfigError(
            f"--workers {spec.workers}: from 1 to {MAX_WORKERS} (each worker process loads every model; one "
            "per core is the usual choice)"
        )
    keys = [] if spec.api_key_file is None else load_key_file(spec.api_key_file)
    limited = parse_rate(spec.rate_limit) is not None or any(k.rate_per_s for k in keys)
    if spec.workers > 1 and limited:
        raise ConfigError(
            f"--workers {spec.workers} with a rate limit: each worker process counts requests on its own, "
            f"so a key would get {spec.workers}x its limit. Serve with one worker, or limit the rate at a "
            "reverse proxy in front of the workers"
        )
    return load_spec_models(spec)


def load_spec_models(spec: ServeSpec) -> dict[str, ServedModel]:
    from medlearn.serve.models import load_models

    return load_models(
        spec.bundles,
        device=spec.device,
        allow_external=spec.allow_external,
        public_key=spec.public_key,
        runtime=spec.runtime,
        threads=spec.threads,
    )


def build_app(spec: ServeSpec, models: dict[str, ServedModel] | None = None) -> FastAPI:
    """The FastAPI app of ``spec`` (its bundles loaded now unless ``models`` are given)."""
    from medlearn.serve.app import ServeSettings, create_app
    from medlearn.serve.security import load_key_file, parse_rate

    settings = ServeSettings(
        api_keys=None if spec.api_key_file is None else load_key_file(spec.api_key_file),
        rate_per_s=parse_rate(spec.rate_limit),
        max_request_mb=spec.max_request_mb,
        audit_log=spec.audit_log,
        cors_origins=list(spec.cors_origins),
    )
    return create_app(models if models is not None else load_spec_models(spec), settings)


def app_from_environment() -> FastAPI:
    """uvicorn's app factory in each worker process: the specification from :data:`SPEC_ENV`."""
    text = os.environ.get(SPEC_ENV)
    if not text:
        raise ConfigError(f"{SPEC_ENV} is not set: start the workers with medlearn serve --workers N")
    spec = ServeSpec.model_validate_json(text)
    if spec.runtime == "torch" or spec.device != "cpu":
        import torch

        torch.set_num_threads(spec.threads)
    return build_app(spec)


def run(spec: ServeSpec, models: dict[str, ServedModel], **uvicorn_options: Any) -> None:
    """Serve ``spec``: in this process with the ``models`` already loaded, or in ``spec.workers`` worker
    processes that each load their own."""
    import uvicorn

    if spec.workers == 1:
        uvicorn.run(build_app(spec, models), **uvicorn_options)
        return
    models.clear()  # the workers load their own copies; this process only supervises them
    before = os.environ.get(SPEC_ENV)
    os.environ[SPEC_ENV] = spec.model_dump_json()  # the spawned workers inherit it
    try:
        uvicorn.run(
            "medlearn.serve.launch:app_from_environment",
            factory=True,
            workers=spec.workers,
            **uvicorn_options,
        )
    finally:
        if before is None:
            os.environ.pop(SPEC_ENV, None)
        else:
            os.environ[SPEC_ENV] = before
