"""API keys, per-key rate limits and the request size limit.

**API keys** (``--api-key-file``): a JSON or YAML file that stores only the SHA-256 of each key::

    keys:
      ecg-ward:                       # the key id: what the audit log records, never the key itself
        sha256: 9f86d081884c7d65...   # medlearn serve-key prints a new key and this line
        models: [ecg_af_cinc2017]     # the model names this key may use ("*": all)
        rate_limit: 120/min           # optional: this key's own limit (default: --rate-limit)

A request without ``X-API-Key`` or with an unknown key is 401; a model the key may not use is 403. Without a
key file the service is open (key id ``anonymous``) and says so at start-up.

**Rate limits**: a token bucket per key id (``N/min``, also ``N/s`` and ``N/h``) that holds at most N
requests and refills continuously; an empty bucket is 429 with ``Retry-After``.

**Size limit**: a request body larger than ``--max-request-mb`` is 413, decided from ``Content-Length``
before anything is read, or while reading a body sent without one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from medlearn.errors import ConfigError
from medlearn.serve.errors import ServeError

HEADER = "X-API-Key"
ANONYMOUS = "anonymous"
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


def hash_key(key: str) -> str:
    """The SHA-256 (hex) of an API key, as the key file stores it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def parse_rate(text: str | None) -> float | None:
    """``"60/min"`` → requests per second (1.0); None or ``"off"`` → no limit."""
    if text is None or str(text).strip().lower() in ("", "off", "none", "0"):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*", str(text).lower())
    if match is None or match.group(2) not in _PERIODS or float(match.group(1)) <= 0:
        raise ConfigError(f"rate limit {text!r}: expected N/min (or N/s, N/h) with N > 0, e.g. 60/min")
    return float(match.group(1)) / _PERIODS[match.group(2)]


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    sha256: str
    models: frozenset[str]
    rate_per_s: float | None = None
    rate_text: str | None = None

    def may_use(self, model: str) -> bool:
        return "*" in self.models or model in self.models


def load_key_file(path: Path) -> list[ApiKey]:
    """Read ``--api-key-file`` (JSON or YAML, ``keys:`` mapping key ids to sha256/models/rate_limit)."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: API key file not found")
    try:
        raw = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid JSON/YAML ({exc})") from None
    keys = raw.get("keys") if isinstance(raw, dict) else None
    if not isinstance(keys, dict) or not keys:
        raise ConfigError(f"{path}: expected a 'keys' mapping of key ids to {{sha256, models}}")
    result = []
    for key_id, entry in keys.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: keys.{key_id}: expected a mapping with sha256 and models")
        unknown = set(entry) - {"sha256", "models", "rate_limit"}
        if unknown:
            raise ConfigError(f"{path}: keys.{key_id}: unknown field(s) {', '.join(sorted(unknown))}")
        digest = str(entry.get("sha256", "")).lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ConfigError(f"{path}: keys.{key_id}.sha256: expected 64 hex digits (medlearn serve-key)")
        models = entry.get("models")
        if isinstance(models, str):
            models = [models]
        if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
            raise ConfigError(f"{path}: keys.{key_id}.models: expected a list of model names (or ['*'])")
        rate_text = entry.get("rate_limit")
        try:
            rate = parse_rate(rate_text)
        except ConfigError as exc:
            raise ConfigError(f"{path}: keys.{key_id}.rate_limit: {exc}") from None
        result.append(ApiKey(str(key_id), digest, frozenset(models), rate, rate_text))
    return result


class KeyRing:
    """Who a request is: the key id for an ``X-API-Key`` header (401 when missing or unknown)."""

    def __init__(self, keys: list[ApiKey] | None) -> None:
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def identify(self, presented: str | None) -> ApiKey | None:
        """The key the header names; None when the service runs without a key file."""
        if self.keys is None:
            return None
        if not presented:
            raise ServeError(401, f"missing API key: send it in the {HEADER} header")
        digest = hash_key(presented)
        found = None
        for key in self.keys:  # compare every entry in constant time, so timing does not tell which
            if hmac.compare_digest(key.sha256, digest):
                found = key
        if found is None:
            raise ServeError(401, f"invalid API key ({HEADER})")
        return found

    @staticmethod
    def check_model(key: ApiKey | None, model: str) -> None:
        if key is not None and not key.may_use(model):
            raise ServeError(403, f"API key {key.key_id!r} may not use model {model!r}")


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """Token buckets per key id: ``rate_per_s`` refill, capacity one minute of requests (at least 1)."""

    default_per_s: float | None
    clock: Any = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, key_id: str, per_s: float | None = None) -> None:
        rate = per_s if per_s is not None else self.default_per_s
        if rate is None:
            return
        capacity = max(1.0, rate * 60.0)
        now = self.clock()
        with self._lock:
            bucket = self._buckets.setdefault(key_id, _Bucket(capacity, now))
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens < 1.0:
                wait = math.ceil((1.0 - bucket.tokens) / rate)
                raise ServeError(
                    429,
                    f"rate limit for key {key_id!r} exceeded ({rate * 60:g}/min); retry in {wait} s",
                    {"Retry-After": str(wait)},
                )
            bucket.tokens -= 1.0


class RequestTooLarge(HTTPException):
    """Raised from the body stream when a request exceeds the size limit (an HTTPException, so that
    FastAPI's body parsing passes it on instead of turning it into a 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


class BodySizeLimit:
    """ASGI middleware: 413 for a request body above ``max_bytes`` (Content-Length first, then counted)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit_mb = self.max_bytes / 1e6
        message = f"request body larger than the limit of {limit_mb:g} MB (--max-request-mb)"
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _send_error(send, 413, message)
            return
        seen = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal seen
            event = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.max_bytes:
                    raise RequestTooLarge(message)
            return event

        async def tracking_send(event: dict) -> None:
            nonlocal started
            if event["type"] == "http.response.start":
                started = True
            await send(event)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except RequestTooLarge:
            if not started:
                await _send_error(send, 413, message)


async def _send_error(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
