"""The append-only audit log (``--audit-log FILE``): one JSON line per request that reached a model.

Each line holds the UTC time, the key id, the endpoint, the model name and version, the SHA-256 of the
input (the uploaded files' bytes, or the JSON body), the HTTP status and, for a prediction, the **redacted**
output: per unit only the label, the probability/probabilities/value (and interval) — never file names,
unit, patient or admission ids, admission or prediction times, warnings or explanations, which can carry
them. Refused requests (401, 403, 413, 429, 422) are logged with their status and no output.

The file is opened in append mode (``O_APPEND``: every write lands at the end, and a line is written with
one ``write`` call under a lock), flushed after each line, and never truncated or rewritten by medlearn.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Keys of a prediction record that may enter the log (everything else may identify a patient).
OUTPUT_KEYS = ("label", "probability", "probabilities", "threshold", "value", "interval")


def input_sha256(parts: Iterable[bytes]) -> str:
    """SHA-256 over the input's bytes, in upload order (names are not part of it)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def redact(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The prediction records reduced to what the audit log may hold (a skipped unit: ``{"skipped": true}``)."""
    out = []
    for record in records:
        if "skipped" in record:
            out.append({"skipped": True})
            continue
        out.append({k: record[k] for k in OUTPUT_KEYS if k in record})
    return out


class AuditLog:
    """Appends JSON lines to ``path`` (created with its folder if missing); a no-op when ``path`` is None."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8")  # held open for the app's life

    def write(
        self,
        *,
        key_id: str | None,
        endpoint: str,
        status: int,
        model: str | None = None,
        version: str | None = None,
        input_sha256: str | None = None,
        output: Any = None,
    ) -> None:
        if self._fh is None:
            return
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "key_id": key_id,
            "endpoint": endpoint,
            "model": model,
            "model_version": version,
            "input_sha256": input_sha256,
            "status": status,
        }
        if output is not None:
            line["output"] = output
        text = json.dumps(line, separators=(",", ":")) + "\n"
        with self._lock:
            self._fh.write(text)
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
