"""Every error the service returns has the body ``{"error": "<one line>"}`` (CONVENTIONS "serve").

FastAPI's own bodies (``{"detail": [...]}`` for a request that does not validate, ``{"detail": "..."}`` for
an HTTPException) are replaced here; errors the user can fix (:class:`~medlearn.errors.MedlearnError`) keep
their message, with the request's temporary folder cut out of it so that only the uploaded names show.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medlearn.errors import BundleError, InputError, MedlearnError, MissingDependencyError

log = logging.getLogger(__name__)


class ServeError(Exception):
    """An error with its HTTP status, raised by the service's own checks (keys, sizes, rates, routes)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def status_of(exc: MedlearnError) -> int:
    """422 for an input or option the user can fix; 503 for a missing optional library; 500 for a bundle
    that fails at prediction time (its weights give NaN, the wrong width...), unless its input caused it."""
    if isinstance(exc, MissingDependencyError):
        return 503
    if isinstance(exc, BundleError) and "its input holds NaN or inf" not in str(exc):
        return 500
    if isinstance(exc, InputError | MedlearnError):
        return 422
    return 500


def _validation_message(exc: RequestValidationError) -> str:
    """FastAPI's list of problems as one line naming each field: ``query.n: Input should be ...``."""
    parts = []
    for problem in exc.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the ``{"error": ...}`` body."""

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail
        message = detail if isinstance(detail, str) else str(detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_message(exc))

    @app.exception_handler(MedlearnError)
    async def _medlearn_error(request: Request, exc: MedlearnError) -> JSONResponse:
        return error_response(status_of(exc), str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log")
