"""``medlearn serve --workers N`` (worker processes sharing the port, each with its own models) and the
onnxruntime route under the live monitor: what the benchmark's throughput rests on, checked as behaviour."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import require_module
from tests.serve.conftest import ECG, LiveServer

runner = CliRunner()
FS = 300


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(c) for c in text.split()]
    return found


def is_worker(pid: int) -> bool:
    """A uvicorn worker (started by multiprocessing's spawn), not its resource tracker."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.fixture
def onnx_ecg(bundles: Any, tmp_path: Path) -> Path:
    """A copy of the ECG bundle with its ONNX export (the session's bundle stays as it was)."""
    from medlearn.engine.export import export_onnx

    copy = Path(shutil.copytree(bundles.ecg, tmp_path / "ecg-bundle"))
    export_onnx(copy)
    return copy


def ecg_samples(seed: int) -> list[float]:
    from medlearn.signals.synthetic import beat_templates, synthetic_ecg

    rng = np.random.default_rng(seed)
    return [
        round(float(v), 4)
        for v in synthetic_ecg("N" if seed % 2 else "A", 20, beat_templates(seed, n=1)[0], rng)
    ]


def test_two_workers_share_the_port_answer_alike_and_leave_nothing_behind(onnx_ecg, tmp_path):
    from medlearn.engine.onnx_runtime import load_onnx_bundle

    port = _free_port()
    audit = tmp_path / "audit.jsonl"
    command = [sys.executable, "-m", "medlearn", "serve", str(onnx_ecg), "--port", str(port)]
    command += ["--runtime", "onnx", "--workers", "2", "--audit-log", str(audit), "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: list[int] = []
    spawned: list[int] = []
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, process)
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:  # the supervisor spawns them one by one
            workers = [pid for pid in children(process.pid) if is_worker(pid)]
            time.sleep(0.1)
        assert len(workers) == 2, f"worker processes: {workers}"
        spawned = children(process.pid)  # the workers and multiprocessing's resource tracker
        bodies = [{"fs": FS, "samples": ecg_samples(seed)} for seed in range(12)]
        with ThreadPoolExecutor(6) as pool:
            answers = list(
                pool.map(lambda body: httpx.post(f"{url}/predict/{ECG}", json=body, timeout=60), bodies)
            )
        assert [a.status_code for a in answers] == [200] * len(bodies), answers[0].text
        local = load_onnx_bundle(onnx_ecg)
        for body, answer in zip(bodies, answers):
            (served,) = answer.json()
            (expected,) = local.predict_samples(np.asarray(body["samples"]), fs=FS)
            assert served["label"] == expected["label"]
            for name, p in expected["probabilities"].items():
                assert served["probabilities"][name] == pytest.approx(p, abs=1e-5)
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C: the supervisor stops its workers, then itself
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # never leave a server behind
            for pid in [*children(process.pid), process.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in spawned) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in spawned if alive(pid)], "a process outlived the command"
    lines = [json.loads(line) for line in audit.read_text().splitlines()]  # two writers, whole lines
    predictions = [entry for entry in lines if entry["endpoint"] == "/predict/{name}"]
    assert len(predictions) == len(bodies) and all(e["status"] == 200 for e in predictions)


def test_workers_with_a_rate_limit_are_refused(bundles):
    from medlearn.cli import app

    result = runner.invoke(app, ["serve", str(bundles.ecg), "--workers", "2", "--rate-limit", "5/s"])
    assert result.exit_code == 2
    assert "--workers 2 with a rate limit" in result.output and "2x its limit" in result.output


def test_the_live_monitor_runs_on_an_onnx_served_model(onnx_ecg):
    require_module("websockets")
    from websockets.sync.client import connect

    from medlearn.serve.app import ServeSettings, create_app
    from medlearn.serve.models import load_models
    from medlearn.signals.synthetic import beat_templates, synthetic_ecg

    models = load_models([onnx_ecg], runtime="onnx", threads=1)
    assert next(iter(models.values())).bundle.model is None  # onnxruntime, no torch module
    assert not next(iter(models.values())).explains  # no gradients to explain with
    rng = np.random.default_rng(5)
    ecg = synthetic_ecg("A", 34, beat_templates(5, n=1)[0], rng)
    with LiveServer(create_app(models, ServeSettings())) as server:
        with connect(server.url.replace("http://", "ws://") + f"/stream/{ECG}") as ws:
            for i in range(0, len(ecg), 150):
                part = [round(float(v), 4) for v in ecg[i : i + 150]]
                ws.send(json.dumps({"fs": FS, "samples": part} if i == 0 else {"samples": part}))
            got = []
            while not any(m.get("type") == "vitals" and m.get("probabilities") for m in got):
                got.append(json.loads(ws.recv(timeout=30)))
    assert got[0]["type"] == "ready" and got[0]["model"] == ECG
    probs = next(m["probabilities"] for m in got if m.get("type") == "vitals" and m.get("probabilities"))
    assert set(probs) == {"Normal", "AF", "Other", "Noisy"} and sum(probs.values()) == pytest.approx(
        1, abs=1e-3
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(process.stderr.read().decode() if process.poll() is not None else "timeout")
        time.sleep(0.2)
