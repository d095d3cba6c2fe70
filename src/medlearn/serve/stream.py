"""``/stream[/{name}]``: a live ECG over a WebSocket, analysed by ``medlearn monitor``'s own
:class:`~medlearn.signals.stream.Monitor` (the same windows, rate, rhythm model and alarm hysteresis; none of
it is re-implemented here).

Protocol (JSON text messages):

- client → server, first: ``{"fs": 300, "samples": [...]}`` (one lead, in the unit of the recording, e.g.
  mV); then ``{"samples": [...]}`` as samples arrive. ``fs`` may be repeated only with the same value.
- server → client: ``{"type": "ready", ...}`` once the first message is accepted (model, version, fs, the
  monitor's window and step); ``{"type": "vitals", ...}`` after each chunk that triggered an analysis (heart
  rate, signal quality, rhythm and the rhythm model's probability per class, the alarms on, the analysis'
  latency); ``{"type": "alarm", "alarm": "asystole", ...}`` for each alarm raised (``state: "on"``) or
  cleared (``"off"``), with ``sample``: how many samples had arrived when it was decided (the client's
  clock for the latency).
- a malformed message (not JSON, not an object, no ``samples`` list, an unknown key, another ``fs``) gets
  ``{"error": "message N: ..."}`` and is skipped; the stream continues, as ``monitor --stdin`` skips a
  malformed line. A sample that is not a finite number of plausible size is a *missing* sample (NaN: the
  monitor sees poor signal, never a flat line), reported the same way.
- refusals close the socket after an ``{"error": ...}`` message, with code 4000 + the HTTP status: 4401
  (no or an unknown API key: the ``X-API-Key`` header, or ``?key=`` since a browser cannot set headers on a
  WebSocket), 4403 (a key that may not use the model, or a page from another origin), 4404 (no such model),
  4422 (a model without an AF class, or a first message without a valid ``fs``), 4429 (rate limit), 4408
  (no first message within :data:`FIRST_MESSAGE_S`).

The signals code is reached by name at run time (as :mod:`.chemistry` reaches the molecules code), so the
service imports no modality package statically.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_STREAM = "medlearn.signals.stream"

#: seconds a client has to send its first message
FIRST_MESSAGE_S = 30.0
#: the sampling rates accepted (Hz): bedside monitors sample at 125–1000 Hz
FS_RANGE = (50.0, 5000.0)
#: at most this many seconds of signal in one message
MAX_MESSAGE_S = 60.0
#: a text message above this size is refused (and skipped) before it is parsed
MAX_MESSAGE_BYTES = 4_000_000


class StreamRefused(Exception):
    """A refusal that closes the socket: ``code`` (4000 + HTTP status) and the message sent before."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def signals_stream() -> Any:
    """``medlearn.signals.stream`` (Monitor, MonitorSettings, bundle_rhythm_model), imported by name."""
    return importlib.import_module(_STREAM)


def check_streamable(model: Any) -> None:
    """A bundle the monitor can use: one with an AF class (``medlearn monitor``'s own rule), served with
    torch or onnxruntime (both predict raw windows through the bundle's own preprocessing)."""
    if "AF" not in (model.bundle.class_names or []):
        raise StreamRefused(
            4422,
            f"model {model.name!r} has no AF class: stream an ecg_af model, or /stream without a model "
            "(rate and asystole alarms only)",
        )


def _number(value: Any, digits: int = 3) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


@dataclass
class StreamSession:
    """One WebSocket's monitor: parses messages, pushes samples, returns the messages to send."""

    model: Any = None  # a ServedModel, or None for rate and asystole only
    settings: Any = None  # MonitorSettings; None: the monitor's defaults
    monitor: Any = None
    fs_hz: float | None = None
    messages: int = 0
    samples: int = 0
    alarms: Counter = field(default_factory=Counter)
    digest: Any = field(default_factory=hashlib.sha256)
    last_probabilities: dict[str, float] | None = None

    def _rhythm(self) -> Any:
        if self.model is None:
            return None
        classify = signals_stream().bundle_rhythm_model(self.model.bundle)
        lock = self.model.lock

        def recorded(window: Any, fs_hz: float) -> dict[str, float]:
            with lock.shared():
                probs = classify(window, fs_hz)
            self.last_probabilities = probs
            return probs

        return recorded

    def handle(self, text: str) -> list[dict[str, Any]]:
        """The answers to one text message (refusals of the first message raise :class:`StreamRefused`)."""
        self.messages += 1
        where = f"message {self.messages}"
        if len(text) > MAX_MESSAGE_BYTES:
            return self._malformed(f"{where}: larger than {MAX_MESSAGE_BYTES / 1e6:g} MB; skipped")
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            return self._malformed(f"{where}: not JSON ({reason}); skipped")
        if not isinstance(raw, dict):
            return self._malformed(f'{where}: expected an object {{"samples": [...]}}; skipped')
        unknown = sorted(set(raw) - {"fs", "samples"})
        if unknown:
            return self._malformed(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; skipped")
        out: list[dict[str, Any]] = []
        if self.monitor is None:
            out.append(self._start(raw.get("fs"), where))
        elif "fs" in raw and _fs(raw["fs"]) != self.fs_hz:
            return self._malformed(
                f"{where}: fs {raw['fs']!r} differs from the stream's {self.fs_hz:g} Hz; skipped"
            )
        values = raw.get("samples")
        if not isinstance(values, list):
            return [*out, *self._malformed(f"{where}: 'samples' must be a list of numbers; skipped")]
        assert self.fs_hz is not None
        if len(values) > MAX_MESSAGE_S * self.fs_hz:
            return [*out, *self._malformed(f"{where}: more than {MAX_MESSAGE_S:g} s of samples; skipped")]
        limit = signals_stream().MAX_ABS_SAMPLE
        samples, bad = [], 0
        for v in values:
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or abs(v) > limit
            ):
                samples.append(math.nan)
                bad += 1
            else:
                samples.append(float(v))
        self.digest.update(text.encode("utf-8"))
        if bad:
            out.append(
                {
                    "error": f"{where}: {bad} sample(s) not a finite number of plausible size "
                    "(counted as missing samples)"
                }
            )
        out += self.push(samples)
        return out

    def _malformed(self, message: str) -> list[dict[str, Any]]:
        if self.monitor is None:  # nothing to continue: the first message must set the stream up
            raise StreamRefused(
                4422, message.replace("; skipped", "") + " (the first message is {fs, samples})"
            )
        return [{"error": message}]

    def _start(self, fs: Any, where: str) -> dict[str, Any]:
        rate = _fs(fs)
        if rate is None:
            raise StreamRefused(
                4422,
                f"{where}: the first message needs 'fs', the sampling rate in Hz "
                f'({FS_RANGE[0]:g}–{FS_RANGE[1]:g}), e.g. {{"fs": 300, "samples": [...]}}',
            )
        stream = signals_stream()
        self.fs_hz = rate
        self.monitor = stream.Monitor(rate, self.settings, self._rhythm())
        s = self.monitor.s
        return {
            "type": "ready",
            "model": None if self.model is None else self.model.name,
            "model_version": None if self.model is None else self.model.version,
            "class_names": None if self.model is None else list(self.model.bundle.class_names),
            "fs": rate,
            "window_s": s.window_s,
            "step_s": s.step_s,
            "af_window_s": s.af_window_s if self.model is not None else None,
        }

    def push(self, samples: list[float]) -> list[dict[str, Any]]:
        """Feed samples to the monitor; the alarms it raised or cleared, then the latest vitals."""
        import numpy as np

        before = len(self.monitor.latencies_ms)
        alarms = self.monitor.push(np.asarray(samples, dtype=np.float64))
        self.samples += len(samples)
        out: list[dict[str, Any]] = []
        for alarm in alarms:
            record = alarm.to_dict()
            record["sample"] = int(round(alarm.record_time_s * self.fs_hz))
            if record["state"] == "on":
                self.alarms[record["type"]] += 1  # counted before the key moves to "alarm"
            out.append({"type": "alarm", "alarm": record.pop("type"), **record})
        if len(self.monitor.latencies_ms) > before:
            v = self.monitor.vitals
            probs = self.last_probabilities if v.af_probability is not None else None
            out.append(
                {
                    "type": "vitals",
                    "record_time_s": round(v.record_time_s, 3),
                    "sample": self.monitor.n_seen,
                    "heart_rate_bpm": _number(v.heart_rate_bpm, 1),
                    "quality": _number(v.quality),
                    "rhythm": v.rhythm,
                    "af_probability": _number(v.af_probability, 4),
                    "probabilities": None if probs is None else {k: _number(p, 4) for k, p in probs.items()},
                    "active": list(v.active),
                    "latency_ms": round(v.latency_ms, 2),
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        """What the audit log keeps of a stream: sizes and alarm counts, no samples and no times."""
        return {"messages": self.messages, "samples": self.samples, "alarms": dict(self.alarms)}


def _fs(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    rate = float(value)
    return rate if math.isfinite(rate) and FS_RANGE[0] <= rate <= FS_RANGE[1] else None


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """A WebSocket has no CORS: a page of another origin may open one, so refuse it unless configured
    (``--cors-origin``). Clients that are not browsers send no ``Origin``."""
    if not origin:
        return True
    if origin in allowed or "*" in allowed:
        return True
    from urllib.parse import urlsplit

    return bool(host) and urlsplit(origin).netloc.lower() == str(host).lower()
