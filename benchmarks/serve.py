"""``medlearn serve`` under load: requests/s and whole-request latency for an ECG AF model on loopback,
torch eager against onnxruntime in the same run.

    python benchmarks/serve.py [--bundle runs/ecg_af/bundle] [--requests 3000] [--concurrency 16]
                               [--workers 2] [--server-threads 1] [--runtimes torch,onnx]
    python benchmarks/serve.py --websocket [--streams 4] [--speed 1]   # the live ECG monitor's latency

For each runtime the server is the real command (``medlearn serve BUNDLE --runtime R --workers W``: uvicorn
worker processes sharing the port, FastAPI, no API key file, no rate limit, no audit log) started in a
subprocess on a free loopback port; the load generator runs in this process (``--client lean``, the default: a
minimal keep-alive HTTP/1.1 client on asyncio streams, ~10x less CPU per request than ``--client httpx``, CPU
the server would otherwise lose on a shared machine) keeping ``--concurrency`` requests in flight until
``--requests`` have completed, after ``--warmup`` requests that are not counted; then ``--single`` requests
are sent one at a time (the per-request latency without queueing). **Server and load generator share the
machine's cores** (2 here), so the figures are a lower bound for a server with the cores to itself.

Input: a real 30 s single-lead ECG of the PhysioNet/CinC 2017 set (``A00021``, 300 Hz, 9,000 samples) as a
JSON body ``{"fs": 300, "samples": [...]}`` (~65 kB), the way a bedside system would post it; each request
is parsed, band-passed, resampled to 100 Hz, standardised, given its RR channel, padded to the model's
60 s, checked against the bundle's input profile and classified (``Bundle.predict_samples``: what
``medlearn predict`` does with a file of the same samples). Latency is the whole request as the client
sees it (connections reused, so no TCP handshake per request).

Without ``--bundle`` the model is the shipped ``ecg_af_cinc2017`` architecture (1D ResNet, width 16, 4
stages; 60 s at 100 Hz + RR channel) trained for one epoch on synthetic ECGs: the cost of a prediction does
not depend on how well the model was trained. The onnxruntime run needs the bundle's ONNX export: a given
bundle without one is copied and exported (never modified). Figures are printed; benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np


def train_default_bundle(folder: Path) -> Path:
    """The shipped ecg_af_cinc2017 architecture, one epoch on 60 synthetic 30 s records."""
    import medlearn
    from medlearn.signals.synthetic import write_synthetic_cinc

    data = write_synthetic_cinc(folder / "data", n_records=60, seconds=30.0)
    run = medlearn.train(
        "ecg_af_cinc2017",
        out=folder / "run",
        data=data,
        overrides=["name=ecg_af_bench", "train.epochs=1", "eval.n_bootstrap=20"],
    )
    return run.bundle


def ecg_payload() -> tuple[dict, str]:
    """A real 30 s CinC 2017 record as the JSON body, or a synthetic one when the data is absent."""
    from medlearn.paths import data_root

    try:
        record = data_root() / "signals" / "cinc2017" / "A00021"
        import wfdb

        signal = wfdb.rdrecord(str(record))
        samples, fs, what = signal.p_signal[:, 0], float(signal.fs), "CinC 2017 A00021 (real, 30 s at 300 Hz)"
    except Exception:  # data not present: the same length of synthetic ECG
        from medlearn.signals.synthetic import FS_HZ, beat_templates, synthetic_ecg

        rng = np.random.default_rng(0)
        samples = synthetic_ecg("N", 30, beat_templates(0, n=1)[0], rng)
        fs, what = FS_HZ, "synthetic 30 s ECG at 300 Hz"
    payload = {"fs": fs, "samples": [round(float(v), 4) for v in samples]}
    return payload, f"{what}, {len(samples):,} samples as JSON ({len(json.dumps(payload)) / 1e3:.0f} kB)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    bundle: Path, port: int, threads: int | None, runtime: str, workers: int = 1
) -> subprocess.Popen:
    command = [sys.executable, "-m", "medlearn", "serve", str(bundle), "--port", str(port)]
    command += ["--log-level", "warning", "--runtime", runtime, "--workers", str(workers)]
    if threads is not None:
        command += ["--threads", str(threads)]
    log_path = Path(tempfile.gettempdir()) / f"medlearn-serve-bench-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    process.stderr_log = str(log_path)  # type: ignore[attr-defined]
    return process


async def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120.0) -> str:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                response = await client.get(f"{url}/health")
                return response.json()["models"][0]
            except httpx.TransportError:
                if process.poll() is not None:
                    raise SystemExit(f"server exited: {Path(process.stderr_log).read_text()}") from None
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start") from None
                await asyncio.sleep(0.2)


async def load(url: str, body: bytes, n: int, concurrency: int) -> tuple[list[float], list[str], float]:
    """``n`` POSTs with ``concurrency`` in flight; per-request latency (s), errors, wall time."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    remaining = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json"}

    async with httpx.AsyncClient(limits=limits, timeout=120.0) as client:

        async def worker() -> None:
            for _ in remaining:
                start = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc} after {time.perf_counter() - start:.1f} s")
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - started


async def load_lean(url: str, body: bytes, n: int, concurrency: int) -> tuple[list[float], list[str], float]:
    """The same load as :func:`load` from a minimal HTTP/1.1 keep-alive client on asyncio streams: one
    pre-built request, the status line and ``Content-Length`` parsed, nothing else. httpx spends ~2 ms of
    CPU per request, and on a 2-core machine that CPU is taken from the server being measured."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors: list[str] = []
    remaining = iter(range(n))

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, bytes]:
        writer.write(request)
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        content = await reader.readexactly(length)
        if close:
            raise ConnectionResetError("the server closed the connection")
        return status, content

    async def worker() -> None:
        connection = None
        for _ in remaining:
            start = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(parts.hostname, parts.port)
                status, content = await asyncio.wait_for(exchange(*connection), timeout=120.0)
                if status != 200:
                    errors.append(f"{status}: {content[:200].decode(errors='replace')}")
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                errors.append(f"{type(exc).__name__}: {exc} after {time.perf_counter() - start:.1f} s")
                if connection is not None:
                    connection[1].close()
                connection = None
            latencies.append(time.perf_counter() - start)
        if connection is not None:
            connection[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


def stream_signal() -> tuple[np.ndarray, float, str]:
    """The demo's monitor stream (30 s normal, 40 s AF, 12 s flat line) at 300 Hz, as the live view replays it."""
    from medlearn.signals.demo import write_stream
    from medlearn.signals.io import read_recording

    with tempfile.TemporaryDirectory() as tmp:
        recording = read_recording(write_stream(Path(tmp)).with_suffix(".hea"))
    signal = recording.signal[:, 0].astype(np.float64)
    return (
        signal,
        float(recording.fs_hz),
        "the signals demo's stream: 30 s normal, 40 s AF, 12 s flat (300 Hz)",
    )


async def one_stream(
    url: str, signal: np.ndarray, fs: float, speed: float
) -> tuple[list[float], list[float]]:
    """Replay ``signal`` in 0.25 s chunks at ``speed`` × real time; per analysis and per alarm, the time from
    sending the chunk holding the sample that triggered it to receiving the server's message (s)."""
    import websockets

    chunk = int(round(fs / 4))
    sent_at: list[tuple[int, float]] = []  # (samples sent after this chunk, perf_counter when sent)
    analyses: list[float] = []
    alarms: list[float] = []
    async with websockets.connect(url, max_size=None) as ws:

        async def receive() -> None:
            async for text in ws:
                now = time.perf_counter()
                message = json.loads(text)
                if message.get("type") not in ("vitals", "alarm"):
                    continue
                sample = message["sample"]
                sent = next(t for n, t in sent_at if n >= sample)
                (alarms if message["type"] == "alarm" else analyses).append(now - sent)

        reader = asyncio.create_task(receive())
        start = time.perf_counter()
        for i in range(0, len(signal), chunk):
            due = start + (i / fs) / speed
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            part = [round(float(v), 4) for v in signal[i : i + chunk]]
            sent_at.append((i + len(part), time.perf_counter()))
            await ws.send(json.dumps({"fs": fs, "samples": part} if i == 0 else {"samples": part}))
        await asyncio.sleep(2.0)  # the last analyses' answers
        reader.cancel()
    return analyses, alarms


async def websocket_load(url: str, signal: np.ndarray, fs: float, streams: int, speed: float):
    results = await asyncio.gather(*(one_stream(url, signal, fs, speed) for _ in range(streams)))
    return [x for a, _ in results for x in a], [x for _, b in results for x in b]


def websocket_benchmark(args: argparse.Namespace) -> None:
    """``--websocket``: ``--streams`` live ECGs replayed at ``--speed`` × real time through ``/stream/{name}``
    at once, for each runtime; the p50/p95 from a chunk sent to the server's answer for the analysis (or
    alarm) it triggered. One worker process: a stream's state lives in the process that holds its socket."""
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    signal, fs, described = stream_signal()
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="medlearn-serve-bench-") as tmp:
        bundle = ensure_onnx(args.bundle, Path(tmp)) if "onnx" in runtimes else args.bundle
        bundle = bundle or train_default_bundle(Path(tmp))
        for runtime in runtimes:
            port = free_port()
            process = start_server(bundle, port, args.server_threads, runtime)
            try:
                name = asyncio.run(wait_ready(f"http://127.0.0.1:{port}", process))
                url = f"ws://127.0.0.1:{port}/stream/{name}"
                analyses, alarms = asyncio.run(websocket_load(url, signal, fs, args.streams, args.speed))
            finally:
                stop_server(process)
            figures[runtime] = {"analysis": _latency(analyses), "alarm": _latency(alarms)}
    print(f"model: {name} ({args.bundle or 'the shipped ecg_af architecture, 1 epoch on synthetic ECGs'})")
    print(f"input: {described}, sent in 0.25 s chunks as JSON at {args.speed:g}x real time")
    print(f"load: {args.streams} streams at once; {os.cpu_count()} CPUs shared by the server and the clients")
    print("latency from the chunk holding the sample to the server's message (ms):")
    print(f"{'runtime':<8} {'what':<9} {'n':>4} {'p50':>7} {'p95':>7} {'max':>8}")
    for runtime, got in figures.items():
        for what, f in got.items():
            if f["n"]:
                print(
                    f"{runtime:<8} {what:<9} {f['n']:>4} {f['p50']:>7.1f} {f['p95']:>7.1f} {f['max']:>8.1f}"
                )
    print("analysis: 10 s rate window + 30 s rhythm model, every 2 s; alarm: raised or cleared")
    if args.out is not None:
        out = {
            "benchmark": "benchmarks/serve.py --websocket",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"cpus": os.cpu_count(), "load_1min_after": os.getloadavg()[0]},
            "input": described,
            "streams": args.streams,
            "speed": args.speed,
            "latency_ms": figures,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
        print(f"written: {args.out}")


def _latency(seconds: list[float]) -> dict[str, float | int]:
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds) * 1e3
    p50, p95 = np.percentile(ms, [50, 95])
    return {
        "n": len(ms),
        "p50": round(float(p50), 1),
        "p95": round(float(p95), 1),
        "max": round(float(ms.max()), 1),
    }


def stop_server(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:  # never leave a server behind
        process.kill()
        process.wait()
    log = Path(process.stderr_log).read_text()  # type: ignore[attr-defined]
    Path(process.stderr_log).unlink()  # type: ignore[attr-defined]
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bundle", type=Path, help="an ecg_af bundle (default: train the shipped architecture)"
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--server-threads", type=int, default=None, help="threads per prediction (serve --threads)"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="serve --workers (default: one per CPU)"
    )
    parser.add_argument(
        "--runtimes",
        default="torch,onnx",
        help="medlearn serve --runtime values, measured one after the other",
    )
    parser.add_argument(
        "--out", type=Path, help="also write the figures as JSON here (e.g. results/serve/...)"
    )
    parser.add_argument("--single", type=int, default=200, help="requests sent one at a time after the load")
    parser.add_argument(
        "--client",
        choices=("lean", "httpx"),
        default="lean",
        help="load generator: a minimal keep-alive HTTP/1.1 client (default) or httpx.AsyncClient",
    )
    parser.add_argument(
        "--websocket",
        action="store_true",
        help="the live ECG monitor over /stream/{name} instead of /predict",
    )
    parser.add_argument("--streams", type=int, default=4, help="--websocket: live ECGs at once")
    parser.add_argument("--speed", type=float, default=1.0, help="--websocket: x real time")
    args = parser.parse_args()
    if args.websocket:
        websocket_benchmark(args)
        return

    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    payload, described = ecg_payload()
    body = json.dumps(payload).encode()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="medlearn-serve-bench-") as tmp:
        bundle = ensure_onnx(args.bundle, Path(tmp)) if "onnx" in runtimes else args.bundle
        bundle = bundle or train_default_bundle(Path(tmp))
        for runtime in runtimes:
            results[runtime] = measure(bundle, runtime, body, args)
    name = next(iter(results.values()))["name"]
    print(f"model: {name} ({args.bundle or 'the shipped ecg_af architecture, 1 epoch on synthetic ECGs'})")
    print(f"input: {described}")
    threads = args.server_threads or 1
    print(
        f"server: medlearn serve --workers {args.workers} --threads {threads} (worker processes; threads per "
        "prediction, requests run in parallel); no API keys, rate limit off, audit log off; loopback HTTP"
    )
    print(
        f"load: {args.requests} requests with {args.concurrency} in flight, and {args.single} one at a time; "
        + ("a minimal keep-alive HTTP/1.1 client" if args.client == "lean" else "httpx.AsyncClient")
        + " in this process"
    )
    print(f"machine: {os.cpu_count()} CPUs shared by the server and the load generator")
    print()
    columns = ("req/s", "p50 ms", "p95 ms", "p99 ms")
    print(
        f"{'runtime':<8} "
        + " ".join(f"{c:>7}" for c in columns)
        + f" {'errors':>6}   {'one at a time p50 ms':>20}"
    )
    for runtime, r in results.items():
        ms = r["latency_ms"]
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        print(
            f"{runtime:<8} {r['throughput']:>7.1f} {p50:>7.1f} {p95:>7.1f} {p99:>7.1f} {len(r['errors']):>6}"
            f"   {np.median(r['single_ms']):>20.1f}"
        )
    if "torch" in results and "onnx" in results:
        torch_, onnx_ = results["torch"], results["onnx"]
        single = np.median(onnx_["single_ms"]) / np.median(torch_["single_ms"])
        loaded = np.median(onnx_["latency_ms"]) / np.median(torch_["latency_ms"])
        print(
            f"onnx/torch latency: one at a time {single:.2f}x, under load (p50) {loaded:.2f}x (goal <= 0.5x); "
            f"throughput onnx {onnx_['throughput']:.0f} req/s (goal >= 200, 0 errors)"
        )
    if args.out is not None:
        write_results(args, results, described)
    for runtime, r in results.items():
        if r["errors"]:
            kinds = Counter(e.split(":")[0] for e in r["errors"])
            print(f"{runtime} errors: {dict(kinds)} (first: {r['errors'][0]})")
            print("server log (last lines):\n" + "\n".join(r["server_log"].splitlines()[-15:]))


def write_results(args: argparse.Namespace, results: dict[str, dict], described: str) -> None:
    """The figures as JSON (``--out``), with the setup and machine, for the README to cite."""
    import platform
    import subprocess as sp

    commit = sp.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    load_1min = os.getloadavg()[0]
    table = {}
    for runtime, r in results.items():
        p50, p95, p99 = np.percentile(r["latency_ms"], [50, 95, 99])
        table[runtime] = {
            "requests_per_s": round(r["throughput"], 1),
            "latency_ms": {"p50": round(p50, 1), "p95": round(p95, 1), "p99": round(p99, 1)},
            "one_at_a_time_p50_ms": round(float(np.median(r["single_ms"])), 1),
            "errors": len(r["errors"]),
        }
    out = {
        "benchmark": "benchmarks/serve.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_1min_after": load_1min,
        },
        "input": described,
        "server": {"workers": args.workers, "threads_per_prediction": args.server_threads or 1},
        "load": {
            "requests": args.requests,
            "in_flight": args.concurrency,
            "one_at_a_time": args.single,
            "client": "minimal keep-alive HTTP/1.1 (asyncio streams)" if args.client == "lean" else "httpx",
        },
        "results": table,
    }
    if "torch" in table and "onnx" in table:
        onnx_, torch_ = table["onnx"], table["torch"]
        out["onnx_over_torch"] = {
            "one_at_a_time_p50": round(onnx_["one_at_a_time_p50_ms"] / torch_["one_at_a_time_p50_ms"], 2),
            "under_load_p50": round(onnx_["latency_ms"]["p50"] / torch_["latency_ms"]["p50"], 2),
        }
    out["goals"] = {"requests_per_s": ">= 200 with 0 errors", "onnx_over_torch_latency": "<= 0.5"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written: {args.out}")


def ensure_onnx(bundle: Path | None, tmp: Path) -> Path | None:
    """A bundle with an ONNX export: a given one is exported in a copy (never modified); the default one
    is trained and exported here."""
    import shutil

    from medlearn.engine.export import export_onnx

    if bundle is None:
        bundle = train_default_bundle(tmp)
    elif "onnx" not in json.loads((Path(bundle) / "bundle.json").read_text()).get("exports", {}):
        bundle = Path(shutil.copytree(bundle, tmp / "bundle-copy"))
    else:
        return Path(bundle)
    export_onnx(bundle)
    return Path(bundle)


def measure(bundle: Path, runtime: str, body: bytes, args: argparse.Namespace) -> dict:
    """One server on ``runtime``: the loaded run, then ``args.single`` requests one at a time."""
    port = free_port()
    process = start_server(bundle, port, args.server_threads, runtime, args.workers)
    try:
        base = f"http://127.0.0.1:{port}"
        name = asyncio.run(wait_ready(base, process))
        url = f"{base}/predict/{name}"
        client = load_lean if args.client == "lean" else load
        asyncio.run(client(url, body, args.warmup, args.concurrency))
        latencies, errors, wall = asyncio.run(client(url, body, args.requests, args.concurrency))
        single, single_errors, _ = asyncio.run(client(url, body, args.single, 1))
    finally:
        server_log = stop_server(process)
    return {
        "name": name,
        "throughput": args.requests / wall,
        "latency_ms": np.asarray(latencies) * 1e3,
        "single_ms": np.asarray(single) * 1e3,
        "errors": errors + single_errors,
        "server_log": server_log,
    }


if __name__ == "__main__":
    main()
