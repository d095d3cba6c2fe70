"""``medlearn serve``: several bundles behind one FastAPI app, answering with ``predict --json``'s records.

One module per job: :mod:`.models` loads the bundles once and names them, :mod:`.inputs` turns uploads into
the files :meth:`~medlearn.engine.bundle.Bundle.predict` reads, :mod:`.security` checks API keys, request
sizes and rate limits, :mod:`.audit` writes the append-only log, :mod:`.errors` keeps every error body
``{"error": "..."}``, and :mod:`.app` puts them together (:func:`~medlearn.serve.app.create_app`).

FastAPI, uvicorn and python-multipart come with ``pip install "medlearn[serve]"``.
"""

from __future__ import annotations

from medlearn.lazy import lazy_getattr

_EXPORTS = {"create_app": "app", "ServeSettings": "app", "load_models": "models", "hash_key": "security"}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
