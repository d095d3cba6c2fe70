"""Size limits (413), per-key rate limits (429), CORS when configured, TLS through ``medlearn serve``'s
certificate options, start-up refusals, and ``medlearn serve-key``."""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.serve.conftest import ALL_KEY, ECG, LiveServer, write_key_file

runner = CliRunner()


def _app(models, **settings):
    from medlearn.serve.app import ServeSettings, create_app

    return create_app(models, ServeSettings(**settings))


def test_a_body_over_the_limit_is_413_with_or_without_content_length(models):
    with LiveServer(_app(models, max_request_mb=0.01)) as server:
        big = {"fs": 300, "samples": [0.123456] * 3000}  # ~30 kB of JSON
        response = httpx.post(f"{server.url}/predict/{ECG}", json=big)
        assert response.status_code == 413
        assert response.json() == {
            "error": "request body larger than the limit of 0.01 MB (--max-request-mb)"
        }

        def chunks():  # sent chunked: no Content-Length, counted while the body is read
            for _ in range(30):
                yield b"x" * 1000

        files = {"files": ("big.txt", b"0\n" * 20_000)}
        assert httpx.post(f"{server.url}/predict/{ECG}", files=files).status_code == 413
        chunked = httpx.post(
            f"{server.url}/predict/{ECG}", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status_code == 413 and "error" in chunked.json()
        small = httpx.post(f"{server.url}/predict/{ECG}", json={"fs": 300, "samples": [0.0] * 600})
        assert small.status_code == 200


def test_rate_limit_per_key_is_429_with_retry_after(models, tmp_path):
    from medlearn.serve.security import load_key_file, parse_rate

    keys = load_key_file(write_key_file(tmp_path / "keys.yaml"))
    with LiveServer(_app(models, api_keys=keys, rate_per_s=parse_rate("3/min"))) as server:
        statuses = [
            httpx.get(f"{server.url}/models", headers={"X-API-Key": ALL_KEY}).status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        response = httpx.get(f"{server.url}/models", headers={"X-API-Key": ALL_KEY})
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
        assert "rate limit for key 'everything' exceeded (3/min)" in response.json()["error"]
        assert httpx.get(f"{server.url}/health").status_code == 200  # health is not rate-limited


def test_rate_parsing():
    from medlearn.errors import ConfigError
    from medlearn.serve.security import RateLimiter, parse_rate

    assert parse_rate("60/min") == 1.0 and parse_rate("2/s") == 2.0 and parse_rate(None) is None
    with pytest.raises(ConfigError, match="expected N/min"):
        parse_rate("fast")
    now = [0.0]
    limiter = RateLimiter(parse_rate("2/min"), clock=lambda: now[0])
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(Exception, match="rate limit"):
        limiter.check("k")
    now[0] = 30.0  # half a minute refills one request
    limiter.check("k")


def test_cors_when_configured_allows_that_origin_only(models):
    origin = "https://viewer.hospital.example"
    with LiveServer(_app(models, cors_origins=[origin])) as server:
        allowed = httpx.get(f"{server.url}/health", headers={"Origin": origin})
        assert allowed.headers["access-control-allow-origin"] == origin
        preflight = httpx.options(
            f"{server.url}/predict/{ECG}",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-API-Key",
            },
        )
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin
        other = httpx.get(f"{server.url}/health", headers={"Origin": "https://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (cryptography), valid for a day."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_medlearn_serve_over_tls_with_a_self_signed_certificate(bundles, tmp_path):
    """The command as a user runs it, in its own process: HTTPS with the certificate, keys, audit log."""
    cert, key = self_signed(tmp_path)
    port = _free_port()
    audit = tmp_path / "audit.jsonl"
    command = [
        sys.executable,
        "-m",
        "medlearn",
        "serve",
        str(bundles.ecg),
        "--port",
        str(port),
        "--api-key-file",
        str(write_key_file(tmp_path / "keys.yaml")),
        "--audit-log",
        str(audit),
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(key),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/health", verify=str(cert))
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        process.stderr.read().decode() if process.poll() is not None else "timeout"
                    ) from None
                time.sleep(0.2)
        assert health.json()["models"] == [ECG]
        response = httpx.post(
            f"{url}/predict/{ECG}",
            json={"fs": 300, "samples": [0.0] * 3000},
            headers={"X-API-Key": ALL_KEY},
            verify=str(cert),
        )
        assert response.status_code == 200 and response.json()[0]["model_version"]
        with pytest.raises(httpx.ConnectError):  # an unknown certificate is refused by a verifying client
            httpx.get(f"{url}/health")
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/health")
        assert json.loads(audit.read_text().splitlines()[-1])["key_id"] == "everything"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # never leave a server behind
            process.kill()
            process.wait()
    assert process.returncode is not None


def test_two_bundles_with_one_name_are_refused_at_start_up(bundles):
    from medlearn.cli import app

    result = runner.invoke(app, ["serve", str(bundles.ecg), str(bundles.ecg), "--port", "1"])
    assert result.exit_code == 2
    assert f"two bundles are named '{ECG}'" in result.output


def test_serve_refuses_bad_key_files_and_half_tls(bundles, tmp_path):
    from medlearn.cli import app

    bad = tmp_path / "keys.yaml"
    bad.write_text("keys:\n  a: {sha256: nothex, models: ['*']}\n")
    result = runner.invoke(app, ["serve", str(bundles.ecg), "--api-key-file", str(bad)])
    assert result.exit_code == 2 and "keys.a.sha256: expected 64 hex digits" in result.output
    result = runner.invoke(app, ["serve", str(bundles.ecg), "--ssl-certfile", str(bad)])
    assert result.exit_code == 2 and "--ssl-certfile and --ssl-keyfile go together" in result.output


def test_serve_key_prints_a_key_whose_hash_is_the_entry(tmp_path):
    import yaml

    from medlearn.cli import app
    from medlearn.serve.security import KeyRing, load_key_file

    result = runner.invoke(app, ["serve-key", "--id", "ward-7", "--model", ECG, "--rate-limit", "30/min"])
    assert result.exit_code == 0, result.output
    key = result.stdout.splitlines()[0].removeprefix("key: ")
    entry = yaml.safe_load(result.stdout.splitlines()[-1])
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"keys": entry}))
    (loaded,) = load_key_file(path)
    assert KeyRing([loaded]).identify(key).key_id == "ward-7"
    assert loaded.models == frozenset({ECG}) and loaded.rate_per_s == 0.5
    assert key not in path.read_text()
