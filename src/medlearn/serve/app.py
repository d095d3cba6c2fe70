"""The FastAPI app: :func:`create_app` serves already-loaded bundles (:func:`~medlearn.serve.models.load_models`).

Routes (every error body is ``{"error": "..."}``; see :mod:`.errors`):

- ``GET /health``: ``{"status": "ok", "models": [...]}`` (no key needed, for load balancers).
- ``GET /models``: name, version, task, kind, class names, unit, test metrics with CIs, operating point,
  predict options of every model the key may use. ``GET /models/{name}/card``: the model card (Markdown).
- ``POST /predict/{name}[?explain=true][&strict=true]``: the input as multipart files or a JSON body
  (:mod:`.inputs`); options as form fields or query parameters. Answers the records of
  ``medlearn predict --json``, each with ``model_version``; with ``explain=true`` an imaging record also
  carries ``explanation_png`` (the Grad-CAM picture named in ``explanation``, base64).
- ``POST /generate/{name}``: ``{"n", "seed", "temperature"}`` (JSON body or query) → samples.
- ``POST /molecules/score``: ``{"smiles": [...], "table": true}`` → the MOSES table and per-molecule
  QED/SA/logP/weight/filters.
- ``WS /stream/{name}`` (an ecg_af model) and ``WS /stream`` (no model: rate and asystole alarms only): a live
  ECG analysed by ``medlearn monitor``'s Monitor (:mod:`.stream`).
- ``GET /``: the web page (``static/``: plain HTML, JS and CSS shipped in the package, nothing fetched from
  elsewhere).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from medlearn import __version__
from medlearn.errors import InputError, MedlearnError
from medlearn.serve.audit import AuditLog, redact
from medlearn.serve.chemistry import MoleculeScorer
from medlearn.serve.errors import ServeError, install_error_handlers, status_of
from medlearn.serve.inputs import (
    PreparedInput,
    ScratchFolder,
    UploadLimits,
    from_json,
    from_multipart,
    refuse_server_paths,
)
from medlearn.serve.models import GENERATION_LOCK, ServedModel
from medlearn.serve.security import ANONYMOUS, HEADER, ApiKey, BodySizeLimit, KeyRing, RateLimiter

log = logging.getLogger(__name__)

#: the web page's files (index.html, app.js, app.css), shipped as package data
STATIC = Path(__file__).parent / "static"
#: the page loads only its own files: no inline script, nothing from another host
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "style-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class ServeSettings:
    """The security and limit options of ``medlearn serve`` (see :mod:`.security`)."""

    api_keys: list[ApiKey] | None = None
    #: requests per second per key (``--rate-limit 60/min`` = 1.0); None: no limit
    rate_per_s: float | None = None
    max_request_mb: float = 64.0
    audit_log: Path | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_generate: int = 1000
    max_smiles: int = 10_000
    upload_limits: UploadLimits = field(default_factory=UploadLimits)
    #: builds the MOSES reference for /molecules/score's table (default: ``MosesReference.load``)
    molecule_reference: Callable[[], Any] | None = None


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(10, ge=1)
    seed: int = 0
    temperature: float | None = Field(None, gt=0)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    smiles: list[str] = Field(min_length=1)
    table: bool = True


def _pydantic_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())


def create_app(models: dict[str, ServedModel], settings: ServeSettings | None = None) -> FastAPI:
    """The app serving ``models`` (name → loaded bundle) with ``settings``' keys, limits and audit log."""
    settings = settings or ServeSettings()
    keys = KeyRing(settings.api_keys)
    rates = RateLimiter(settings.rate_per_s)
    audit = AuditLog(settings.audit_log)
    scorer = MoleculeScorer(settings.molecule_reference)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        audit.close()

    app = FastAPI(
        lifespan=lifespan,
        title="medlearn",
        version=__version__,
        description="medlearn models: predictions with each bundle's own preprocessing (research use, "
        "not a medical device).",
    )
    app.state.models = models
    app.state.audit = audit
    install_error_handlers(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=[HEADER, "Content-Type"],
        )
    app.add_middleware(BodySizeLimit, max_bytes=int(settings.max_request_mb * 1e6))

    def guard(
        request: Request, endpoint: str, name: str | None = None
    ) -> tuple[ApiKey | None, ServedModel | None]:
        """Key (401), then the model (404), its permission (403) and the key's rate (429), in that order, so
        that a caller without a key learns nothing about which models exist; refusals are audit-logged."""
        return guard_key(request.headers.get(HEADER), endpoint, name)

    def guard_key(
        presented: str | None, endpoint: str, name: str | None = None
    ) -> tuple[ApiKey | None, ServedModel | None]:
        key: ApiKey | None = None
        model: ServedModel | None = None
        try:
            key = keys.identify(presented)
            if name is not None:
                model = models.get(name)
                if model is None:
                    raise ServeError(404, f"no model {name!r}; served: {', '.join(sorted(models))}")
                keys.check_model(key, model.name)
            key_id = key.key_id if key is not None else ANONYMOUS
            rates.check(key_id, key.rate_per_s if key is not None else None)
        except ServeError as exc:
            audit.write(
                key_id=None if key is None else key.key_id,
                endpoint=endpoint,
                status=exc.status,
                model=None if model is None else model.name,
                version=None if model is None else model.version,
            )
            raise
        return key, model

    def key_id(key: ApiKey | None) -> str:
        return ANONYMOUS if key is None else key.key_id

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "models": sorted(models)}

    @app.get("/models")
    def list_models(request: Request) -> list[dict[str, Any]]:
        key, _ = guard(request, "/models")
        return [
            {**m.summary(), "explains": m.explains, "streams": "AF" in (m.bundle.class_names or [])}
            for name, m in sorted(models.items())
            if key is None or key.may_use(name)
        ]

    @app.get("/models/{name}/card", response_class=PlainTextResponse)
    def model_card(name: str, request: Request) -> PlainTextResponse:
        _, model = guard(request, "/models/{name}/card", name)
        assert model is not None  # guard() found it (404 otherwise)
        return PlainTextResponse(model.model_card(), media_type="text/markdown; charset=utf-8")

    @app.post("/predict/{name}")
    async def predict(name: str, request: Request, explain: bool = False, strict: bool = False) -> Any:
        key, model = guard(request, "/predict/{name}", name)
        assert model is not None  # guard() found it (404 otherwise)
        if model.generative:
            raise ServeError(422, f"model {name!r} is a generator: POST /generate/{name}")
        if explain and not model.explains:
            why = (
                "it is served with onnxruntime (no gradients)"
                if model.bundle.model is None
                else "it has no Grad-CAM layer"
            )
            raise ServeError(422, f"explain=true: model {name!r} cannot explain its predictions: {why}")
        query = dict(request.query_params)
        scratch = ScratchFolder()
        try:
            prepared: PreparedInput | None = None
            try:
                prepared = await _read_input(request, query, scratch, settings.upload_limits)
                refuse_server_paths(prepared, model.bundle.task.PredictOptions)
                out_dir = None
                if explain:
                    out_dir = scratch.path / "explain"
                    out_dir.mkdir()
                records = await run_in_threadpool(_predict, model, prepared, out_dir, strict)
            except Exception as exc:  # audit-logged whatever it is; MedlearnErrors are the user's to fix
                status = (
                    status_of(exc) if isinstance(exc, MedlearnError) else getattr(exc, "status_code", 500)
                )
                audit.write(
                    key_id=key_id(key),
                    endpoint="/predict/{name}",
                    status=status,
                    model=model.name,
                    version=model.version,
                    input_sha256=None if prepared is None else prepared.sha256,
                )
                if not isinstance(exc, MedlearnError):
                    raise
                raise ServeError(status, scratch.shown(str(exc))) from None
            audit.write(
                key_id=key_id(key),
                endpoint="/predict/{name}",
                status=200,
                model=model.name,
                version=model.version,
                input_sha256=prepared.sha256,
                output=redact(records),
            )
            if "application/fhir+json" in request.headers.get("accept", ""):
                resources = model.bundle.task.fhir_resources(records, model.version)
                if resources is None:
                    raise ServeError(
                        406, f"model {name!r} has no FHIR form (RiskAssessments are for EHR models)"
                    )
                return JSONResponse(resources, media_type="application/fhir+json")
            return records
        finally:
            scratch.close()

    @app.post("/generate/{name}")
    async def generate(name: str, request: Request) -> dict[str, Any]:
        key, model = guard(request, "/generate/{name}", name)
        assert model is not None  # guard() found it (404 otherwise)
        if not model.generative:
            raise ServeError(422, f"model {name!r} is a {model.bundle.kind} model, not a generator")
        raw = await _json_or_query(request)
        try:
            asked = GenerateRequest.model_validate(raw)
        except ValidationError as exc:
            raise ServeError(422, _pydantic_message(exc)) from None
        if asked.n > settings.max_generate:
            raise ServeError(422, f"n: at most {settings.max_generate} samples per request")

        def run() -> list[Any]:
            with GENERATION_LOCK:
                return model.bundle.generate(asked.n, seed=asked.seed, temperature=asked.temperature)

        samples = [None if s is None else str(s) for s in await run_in_threadpool(run)]
        audit.write(
            key_id=key_id(key),
            endpoint="/generate/{name}",
            status=200,
            model=model.name,
            version=model.version,
            input_sha256=None,
            output={"n": asked.n, "seed": asked.seed, "temperature": asked.temperature},
        )
        return {
            "model": model.bundle.model_name,
            "model_version": model.version,
            "n": asked.n,
            "seed": asked.seed,
            "temperature": asked.temperature,
            "samples": samples,
        }

    @app.post("/molecules/score")
    async def score(request: Request) -> dict[str, Any]:
        key, _ = guard(request, "/molecules/score")
        body = await request.body()
        try:
            asked = ScoreRequest.model_validate_json(body or b"{}")
        except ValidationError as exc:
            raise ServeError(422, _pydantic_message(exc)) from None
        if len(asked.smiles) > settings.max_smiles:
            raise ServeError(422, f"smiles: at most {settings.max_smiles} molecules per request")
        result = await run_in_threadpool(scorer.score, asked.smiles, asked.table)
        from medlearn.serve.audit import input_sha256

        audit.write(
            key_id=key_id(key),
            endpoint="/molecules/score",
            status=200,
            input_sha256=input_sha256([body]),
            output={"n": len(asked.smiles), "valid": sum(r["valid"] for r in result["molecules"])},
        )
        return result

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(
            STATIC / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def stream(websocket: WebSocket, name: str | None) -> None:
        from medlearn.serve.stream import (
            FIRST_MESSAGE_S,
            StreamRefused,
            StreamSession,
            check_streamable,
            origin_allowed,
        )

        endpoint = "/stream" if name is None else "/stream/{name}"
        await websocket.accept()
        key: ApiKey | None = None
        session: StreamSession | None = None
        status = 200
        try:
            if not origin_allowed(
                websocket.headers.get("origin"), websocket.headers.get("host"), settings.cors_origins
            ):
                raise StreamRefused(4403, "a page of another origin may not open this stream (--cors-origin)")
            presented = websocket.headers.get(HEADER) or websocket.query_params.get("key")
            try:
                key, model = guard_key(presented, endpoint, name)
            except ServeError as exc:
                raise StreamRefused(4000 + exc.status, exc.message) from None
            if model is not None:
                check_streamable(model)
            session = StreamSession(model=model)
            first = True
            while True:
                if first:
                    try:
                        text = await asyncio.wait_for(websocket.receive_text(), FIRST_MESSAGE_S)
                    except TimeoutError:
                        raise StreamRefused(4408, f"no first message within {FIRST_MESSAGE_S:g} s") from None
                    first = False
                else:
                    text = await websocket.receive_text()
                for message in await run_in_threadpool(session.handle, text):
                    await websocket.send_json(message)
        except StreamRefused as exc:
            status = exc.code - 4000
            with contextlib.suppress(Exception):  # the client may be gone already
                await websocket.send_json({"error": exc.message})
                await websocket.close(code=exc.code, reason=exc.message[:120])
        except WebSocketDisconnect:
            pass
        except Exception:  # a bug, not the client's doing: say so, close as the protocol's internal error
            log.exception("stream %s failed", endpoint)
            status = 500
            with contextlib.suppress(Exception):
                await websocket.send_json({"error": "internal error; the stream is closed"})
                await websocket.close(code=1011)
        finally:
            if session is not None and session.messages:
                model_ = session.model
                audit.write(
                    key_id=key_id(key),
                    endpoint=endpoint,
                    status=status,
                    model=None if model_ is None else model_.name,
                    version=None if model_ is None else model_.version,
                    input_sha256=session.digest.hexdigest(),
                    output=session.summary(),
                )

    @app.websocket("/stream")
    async def stream_rate_only(websocket: WebSocket) -> None:
        await stream(websocket, None)

    @app.websocket("/stream/{name}")
    async def stream_model(websocket: WebSocket, name: str) -> None:
        await stream(websocket, name)

    return app


async def _read_input(
    request: Request, query: dict[str, str], scratch: ScratchFolder, limits: UploadLimits
) -> PreparedInput:
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=limits.max_entries)  # a CT series: hundreds of files
        except StarletteHTTPException as exc:  # Starlette's 400 for a body that is not multipart
            if exc.status_code != 400:
                raise
            raise InputError(f"the multipart body does not parse ({exc.detail})") from None
        try:
            return await from_multipart(form, query, scratch.path, limits)
        finally:
            await form.close()
    if content_type.startswith("application/json") or "+json" in content_type:
        body = await request.body()  # parsed in a worker thread: a long signal takes ms of CPU
        return await run_in_threadpool(from_json, body, query, scratch, limits)
    raise InputError(
        f"unsupported Content-Type {content_type or '(none)'!r}: send multipart/form-data files or a JSON body"
    )


async def _json_or_query(request: Request) -> dict[str, Any]:
    body = await request.body()
    raw: dict[str, Any] = dict(request.query_params)
    if body.strip():
        import json

        try:
            parsed = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ServeError(422, f"the JSON body does not parse ({exc.msg})") from None
        if not isinstance(parsed, dict):
            raise ServeError(422, "the JSON body must be an object")
        raw.update(parsed)
    return raw


def _predict(model: ServedModel, prepared: PreparedInput, out_dir: Path | None, strict: bool) -> list[dict]:
    """Bundle.predict on the prepared files; inputs shown by their uploaded names, pictures inlined."""
    with model.lock.exclusive() if out_dir is not None else model.lock.shared():
        if prepared.samples is not None:
            records = model.bundle.predict_samples(
                prepared.samples, out_dir=out_dir, strict=strict, **prepared.options
            )
        else:
            records = model.bundle.predict(prepared.paths, out_dir=out_dir, strict=strict, **prepared.options)
    for record in records:
        record["model_version"] = model.version
        if isinstance(record.get("input"), str):
            record["input"] = prepared.shown(record["input"])
        skipped = record.get("skipped")
        if isinstance(skipped, dict) and isinstance(skipped.get("input"), str):
            skipped["input"] = prepared.shown(skipped["input"])
        picture = record.get("explanation")
        if isinstance(picture, dict):  # an admission's top features, with the picture among them
            picture = picture.get("picture")
        if out_dir is not None and isinstance(picture, str) and (out_dir / picture).is_file():
            record["explanation_png"] = base64.b64encode((out_dir / picture).read_bytes()).decode("ascii")
    return records
