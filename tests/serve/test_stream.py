"""``/stream``: a live ECG over a real WebSocket (uvicorn on loopback), analysed by the monitor's Monitor:
alarms and vitals pushed, malformed messages reported while the stream goes on, keys and refusals."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from tests.conftest import require_module
from tests.serve.conftest import ALL_KEY, ECG, ECG_KEY, EHR, LiveServer

require_module("websockets")

from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

FS = 300


def flat_after_ecg(seconds_ecg: float = 14, seconds_flat: float = 8) -> np.ndarray:
    from medlearn.signals.synthetic import beat_templates, synthetic_ecg

    rng = np.random.default_rng(3)
    ecg = synthetic_ecg("N", seconds_ecg, beat_templates(3, n=1)[0], rng)
    return np.concatenate([ecg, np.zeros(int(seconds_flat * FS))])


def ws_url(server: LiveServer, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def run(ws: Any, signal: np.ndarray, chunk: int = 75) -> list[dict[str, Any]]:
    """Send ``signal`` in chunks (the first with fs); every message received until the last analysis."""
    for i in range(0, len(signal), chunk):
        part = [round(float(v), 4) for v in signal[i : i + chunk]]
        ws.send(json.dumps({"fs": FS, "samples": part} if i == 0 else {"samples": part}))
    got: list[dict[str, Any]] = []
    end = len(signal) - len(signal) % (2 * FS)  # the last analysis' sample (a step is 2 s)
    while True:
        message = json.loads(ws.recv(timeout=30))
        got.append(message)
        if message.get("type") == "vitals" and message["sample"] >= end:
            return got


def test_rate_only_stream_raises_asystole_on_a_flat_line(served: LiveServer) -> None:
    with connect(ws_url(served, "/stream"), additional_headers={"X-API-Key": ALL_KEY}) as ws:
        got = run(ws, flat_after_ecg())
    assert got[0]["type"] == "ready" and got[0]["model"] is None and got[0]["fs"] == FS
    vitals = [m for m in got if m.get("type") == "vitals"]
    assert vitals and vitals[0]["heart_rate_bpm"] is not None and 40 < vitals[0]["heart_rate_bpm"] < 140
    assert vitals[0]["probabilities"] is None  # no rhythm model
    alarms = [m for m in got if m.get("type") == "alarm" and m["state"] == "on"]
    assert [a["alarm"] for a in alarms] == ["asystole"]
    assert alarms[0]["severity"] == "critical" and alarms[0]["record_time_s"] > 14
    assert alarms[0]["sample"] == round(alarms[0]["record_time_s"] * FS)


def test_model_stream_pushes_rhythm_probabilities_and_malformed_messages_do_not_stop_it(
    served: LiveServer, bundles: Any
) -> None:
    signal = flat_after_ecg(32, 8)
    url = ws_url(served, f"/stream/{ECG}?key={ECG_KEY}")  # the browser's way: the key in the query
    with connect(url) as ws:
        ws.send(json.dumps({"fs": FS, "samples": [0.0] * 10}))
        ready = json.loads(ws.recv(timeout=30))
        assert ready["type"] == "ready" and ready["model"] == ECG and "AF" in ready["class_names"]
        for bad in ("not json", "[1, 2]", '{"samples": "x"}', '{"samples": [1], "lead": 2}', '{"fs": 250}'):
            ws.send(bad)
            assert "error" in json.loads(ws.recv(timeout=30)), bad
        ws.send(json.dumps({"samples": [1e300, None, "x", 0.1]}))
        assert "3 sample(s)" in json.loads(ws.recv(timeout=30))["error"]
        got = run(ws, signal[14:])
    vitals = [m for m in got if m.get("type") == "vitals" and m["probabilities"]]
    assert vitals, "the rhythm model ran on 30 s windows"
    probs = vitals[-1]["probabilities"]
    assert set(probs) == set(ready["class_names"]) and abs(sum(probs.values()) - 1) < 1e-3
    assert "asystole" in [m["alarm"] for m in got if m.get("type") == "alarm"]
    entry = stream_audit_entry(served)
    assert entry["model"] == ECG and entry["input_sha256"]
    assert set(entry["output"]) == {"messages", "samples", "alarms"}  # counts only: no samples, no times
    assert entry["output"]["alarms"].get("asystole") == 1


def stream_audit_entry(served: LiveServer) -> dict[str, Any]:
    """The audit line of the last model stream (written by the server once the socket has closed)."""
    deadline = time.monotonic() + 10
    while True:
        lines = served.audit_log.read_text().splitlines()  # type: ignore[attr-defined]
        found = [
            e
            for e in map(json.loads, lines)
            if e.get("endpoint") == "/stream/{name}" and e.get("status") == 200
        ]
        if found or time.monotonic() > deadline:
            assert found, "no audit line for the stream"
            return found[-1]
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("path", "headers", "code"),
    [
        ("/stream", {}, 4401),
        ("/stream?key=wrong", {}, 4401),
        (f"/stream/{EHR}", {"X-API-Key": ECG_KEY}, 4403),
        ("/stream/nope", {"X-API-Key": ALL_KEY}, 4404),
        (f"/stream/{EHR}", {"X-API-Key": ALL_KEY}, 4422),
        ("/stream", {"X-API-Key": ALL_KEY, "Origin": "http://evil.example"}, 4403),
    ],
)
def test_refusals_send_an_error_then_close_with_a_code(
    served: LiveServer, path: str, headers: dict[str, str], code: int
) -> None:
    with connect(ws_url(served, path), additional_headers=headers) as ws:
        message = json.loads(ws.recv(timeout=30))
        assert "error" in message
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


def test_a_first_message_without_fs_is_refused(served: LiveServer) -> None:
    with connect(ws_url(served, "/stream"), additional_headers={"X-API-Key": ALL_KEY}) as ws:
        ws.send(json.dumps({"samples": [0.0]}))
        assert "fs" in json.loads(ws.recv(timeout=30))["error"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4422
