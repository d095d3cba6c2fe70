"""Fixtures of the service tests: tiny bundles trained once per session (an ECG AF model on synthetic
CinC-layout ECGs, an EHR length-of-stay model on synthetic MIMIC-IV tables, a 3D CT model on phantom DICOM
studies), the models loaded once, and the real server — uvicorn on a free loopback port in a thread,
stopped after its tests (:class:`LiveServer`)."""

from __future__ import annotations

import csv
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_module

require_module("fastapi")
require_module("uvicorn")
require_module("httpx")
require_module("python_multipart")

import httpx  # noqa: E402
import uvicorn  # noqa: E402

#: API keys of the test key file: one may use every model, one only the ECG model.
ALL_KEY = "key-for-everything-0123456789"
ECG_KEY = "key-for-the-ecg-model-only-987"
ECG, EHR, CT = "serve_ecg_af", "serve_ehr_los", "serve_ct_nodule"


@dataclass
class Bundles:
    ecg: Path
    ehr: Path
    ct: Path
    ecg_data: Path
    ct_data: Path
    ct_nodule: str


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    """Three tiny bundles, each trained for 2 epochs on data the repository generates (≈ 12 s in all)."""
    import torch

    import medlearn
    from medlearn.ehr.synthetic import write_synthetic_mimic4
    from medlearn.imaging.demo import DEMO_CREDITS as CT_CREDITS
    from medlearn.imaging.demo import write_phantom_dataset
    from medlearn.signals.demo import DEMO_CREDITS as ECG_CREDITS
    from medlearn.signals.synthetic import write_synthetic_cinc

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("serve-bundles")
    try:
        ecg_data = write_synthetic_cinc(root / "ecg-data", n_records=40, seconds=20.0)
        ecg = medlearn.train(
            "ecg_af_cinc2017",
            out=root / "ecg",
            data=ecg_data,
            overrides=[
                f"name={ECG}",
                f"data.options.credits={json.dumps(ECG_CREDITS)}",
                "data.options.seconds=20",
                "model.params.width=8",
                "train.epochs=2",
                "train.batch_size=16",
                "eval.n_bootstrap=20",
            ],
        )
        mimic = write_synthetic_mimic4(root / "mimic", n_patients=40, seed=0)
        ehr = medlearn.train(
            "ehr_los_mimic4_linear",
            out=root / "ehr",
            data=mimic,
            overrides=[f"name={EHR}", "train.epochs=2", "eval.n_bootstrap=20"],
        )
        table = write_phantom_dataset(root / "ct-data", n_patients=8)
        ct = medlearn.train(
            "demo_ct",
            out=root / "ct",
            data=root / "ct-data",
            overrides=[
                f"name={CT}",
                f"data.options.credits={json.dumps(CT_CREDITS)}",
                "data.options.cube_px=16",
                "model.params.channels=[4,8]",
                "train.epochs=2",
                "eval.n_bootstrap=20",
            ],
        )
    finally:
        torch.set_num_threads(threads)
    with table.open(newline="") as fh:
        first = next(csv.DictReader(fh))
    return Bundles(
        ecg=ecg.bundle,
        ehr=ehr.bundle,
        ct=ct.bundle,
        ecg_data=ecg_data,
        ct_data=root / "ct-data" / first["series"],
        ct_nodule=",".join(first[k] for k in ("x_mm", "y_mm", "z_mm")),
    )


@pytest.fixture(scope="session")
def models(bundles: Bundles) -> dict[str, Any]:
    from medlearn.serve.models import load_models

    return load_models([bundles.ecg, bundles.ehr, bundles.ct])


def write_key_file(path: Path) -> Path:
    """The key file the tests serve with: hashes only, as ``medlearn serve-key`` prints them."""
    from medlearn.serve.security import hash_key

    path.write_text(
        "keys:\n"
        f"  everything: {{sha256: {hash_key(ALL_KEY)}, models: ['*']}}\n"
        f"  ecg-ward: {{sha256: {hash_key(ECG_KEY)}, models: [{ECG}]}}\n"
    )
    return path


class LiveServer:
    """uvicorn serving ``app`` on a free loopback port in a thread; ``with`` starts it and stops it."""

    def __init__(self, app: Any, ssl_certfile: Path | None = None, ssl_keyfile: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        scheme = "https" if ssl_certfile else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
            ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def served(models: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The service as deployed: API keys, an audit log, no rate limit, CORS off."""
    from medlearn.serve.app import ServeSettings, create_app
    from medlearn.serve.security import load_key_file

    folder = tmp_path_factory.mktemp("served")
    settings = ServeSettings(
        api_keys=load_key_file(write_key_file(folder / "keys.yaml")),
        audit_log=folder / "audit.jsonl",
        max_request_mb=32,
    )
    with LiveServer(create_app(models, settings)) as server:
        server.audit_log = folder / "audit.jsonl"  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def client(served: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers={"X-API-Key": ALL_KEY}, timeout=60) as c:
        yield c
