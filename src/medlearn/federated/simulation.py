"""Flower's simulation engine: every hospital a virtual SuperNode in this process's Ray cluster.

Flower 1.32 simulates on Ray only (``flwr[simulation]`` pins ``ray``), so the ``federated`` extra installs
it. Ray is started for the run with at most 2 CPUs, one per ClientApp, no dashboard and no usage
statistics, and shut down by Flower when the run ends; :func:`run_simulation_engine` then checks that the
ServerApp reported its end (``status.json``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from medlearn.errors import InputError, MissingDependencyError
from medlearn.federated.plan import STATUS_FILE

__all__ = ["QUIET_FLOWER_ENV", "check_status", "run_simulation_engine"]

#: No telemetry, update checks or usage statistics from Flower or Ray (no network at run time).
QUIET_FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    "RAY_DEDUP_LOGS": "0",
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
    "GRPC_VERBOSITY": "ERROR",
    # Ray's FutureWarning about GPU visibility: this engine never asks for a GPU (num_gpus 0)
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}

#: Flower warnings about choices this engine makes on purpose (it drives ``run_simulation`` from Python and
#: evaluates on its own, after the rounds); shown to users they would read as problems.
EXPECTED_FLOWER_WARNINGS = ("DEPRECATED FEATURE", "fraction_evaluate is set to 0.0")


class _DropExpectedWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(expected in message for expected in EXPECTED_FLOWER_WARNINGS)


def check_status(work: Path) -> None:
    """Raise the ServerApp's own one-line reason when the run failed, or say it ended without one."""
    import json

    path = work / STATUS_FILE
    if not path.is_file():
        raise InputError(
            f"{work}: the Flower run ended without a result (the ServerApp did not finish; see the log above)"
        )
    status = json.loads(path.read_text())
    if not status.get("ok"):
        raise InputError(f"federated run failed: {status.get('message')}")


def run_simulation_engine(work: Path, n_hospitals: int) -> None:
    """The rounds of the run in ``work`` on Flower's simulation engine, one virtual SuperNode a hospital."""
    os.environ.update(QUIET_FLOWER_ENV)
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            'ray is needed for Flower\'s simulation engine: pip install "medlearn[federated]" '
            "(or run on the deployment engine: medlearn federate --deploy)"
        ) from None
    from flwr.simulation import run_simulation

    from medlearn.federated.apps import make_client_app, make_server_app

    cpus = max(1, min(2, os.cpu_count() or 1))
    for name in ("flwr", "ray"):
        logging.getLogger(name).setLevel(logging.WARNING)
    flower = logging.getLogger("flwr")
    if not any(isinstance(f, _DropExpectedWarnings) for f in flower.filters):
        flower.addFilter(_DropExpectedWarnings())
    try:
        run_simulation(
            server_app=make_server_app(str(work)),
            client_app=make_client_app(str(work)),
            num_supernodes=n_hospitals,
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {"num_cpus": cpus, "include_dashboard": False, "log_to_driver": False},
            },
        )
    finally:  # Flower shuts Ray down when the run ends; after Ctrl-C or an error this process does it
        if ray.is_initialized():
            ray.shutdown()
    check_status(work)
