"""Flower's deployment engine on loopback: a SuperLink and one SuperNode per hospital, as processes.

``medlearn federate --deploy`` starts, in their own process groups and with free ports on 127.0.0.1:

- ``flower-superlink --insecure`` (Fleet, ServerAppIo and Control APIs; runtime dependency installation
  off; its ServerApp runs as a ``flwr-serverapp`` subprocess),
- ``flower-supernode --insecure`` per hospital, with node config ``partition-id=<k>`` (the hospital's
  index in the plan); each runs its ClientApp in a ``flwr-clientapp`` subprocess,

writes a Flower App folder (a ``pyproject.toml`` naming ``medlearn.federated.apps:server_app`` and
``client_app``, the run config key ``work``) and submits it with ``flwr run`` to the SuperLink, in a
``FLWR_HOME`` of its own (no ``~/.flwr``). Telemetry and Ray's usage statistics are off
(:data:`~medlearn.federated.simulation.QUIET_FLOWER_ENV`). It waits for the ServerApp's ``status.json``,
never longer than the rounds' timeouts allow, and, whatever happens (an error, Ctrl-C, SIGTERM), stops
every process group it started: SIGTERM, then SIGKILL after a grace period. TLS and SuperNode
authentication are not set up: loopback only. Logs: ``<out>/federated/logs/``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medlearn.engine.progress import info
from medlearn.errors import InputError
from medlearn.federated.plan import STATUS_FILE, load_plan, write_json_atomic
from medlearn.federated.simulation import QUIET_FLOWER_ENV, check_status

__all__ = ["free_ports", "run_deployment"]

#: Seconds for the SuperLink and SuperNodes to come up before the run is submitted.
STARTUP_SECONDS = 60.0
#: Seconds a process group gets between SIGTERM and SIGKILL.
GRACE_SECONDS = 5.0

APP_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "medlearnfederate"
version = "1.0.0"
description = "medlearn federate: the run's Flower App (its code is the installed medlearn)"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "medlearn"

[tool.flwr.app.components]
serverapp = "medlearn.federated.apps:server_app"
clientapp = "medlearn.federated.apps:client_app"

[tool.flwr.app.config]
work = "{work}"
"""


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 now (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _bin(name: str) -> str:
    """A Flower console script beside this Python (the venv's), or on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        raise InputError(
            f'{name}: not found beside {sys.executable} or on PATH (pip install "medlearn[federated]")'
        )
    return found


class Processes:
    """The process groups of a deployment, stopped together (:meth:`stop`)."""

    def __init__(self, logs: Path, env: dict[str, str]):
        self.logs = logs
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                start_new_session=True,
            )  # fmt: skip
        self.procs[name] = proc
        return proc

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def stop(self) -> None:
        """SIGTERM every group, SIGKILL what is left after :data:`GRACE_SECONDS`, reap everything."""
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGKILL)  # children (flwr-serverapp/clientapp) share the group
            try:
                proc.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while the deployment runs, so its processes are stopped too."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait_listening(port: int, deadline: float, procs: Processes, who: str) -> None:
    while time.monotonic() < deadline:
        for name, proc in procs.procs.items():
            if proc.poll() is not None:
                raise InputError(
                    f"federate --deploy: {name} exited at start-up (see {procs.logs / (name + '.log')})"
                )
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise InputError(
        f"federate --deploy: {who} did not listen on 127.0.0.1:{port} within {STARTUP_SECONDS:g} s"
    )


def run_deployment(work: Path, n_hospitals: int) -> None:
    """The rounds of the run in ``work`` on a loopback SuperLink and ``n_hospitals`` SuperNodes."""
    plan = load_plan(str(work))
    fed = plan.federated
    logs = work.parent / "logs"
    home = work / "flwr-home"
    app = work / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(APP_PYPROJECT.format(work=str(work).replace("\\", "/")))
    fleet, serverappio, control, *clientappio = free_ports(3 + n_hospitals)
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "medlearn"\n\n[superlink.medlearn]\naddress = "127.0.0.1:{control}"\n'
        "insecure = true\n"
    )
    env = {**os.environ, **QUIET_FLOWER_ENV, "FLWR_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    # the SuperLink and SuperNodes start flower-superexec, flwr-serverapp and flwr-clientapp by name
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    procs = Processes(logs, env)
    # the whole run may take every round's timeout plus start-up; past that something is wrong
    budget = STARTUP_SECONDS + fed.rounds * (fed.round_timeout_seconds + 60.0) + 120.0
    with _sigterm_as_interrupt():
        try:
            procs.start(
                "superlink",
                [
                    _bin("flower-superlink"), "--insecure", "--isolation", "subprocess",
                    "--fleet-api-address", f"127.0.0.1:{fleet}",
                    "--serverappio-api-address", f"127.0.0.1:{serverappio}",
                    "--control-api-address", f"127.0.0.1:{control}",
                    "--database", str(work / "superlink.db"),
                    "--disable-runtime-dependency-installation",
                ],
            )  # fmt: skip
            deadline = time.monotonic() + STARTUP_SECONDS
            _wait_listening(fleet, deadline, procs, "the SuperLink")
            _wait_listening(control, deadline, procs, "the SuperLink's Control API")
            for k, port in enumerate(clientappio):
                procs.start(
                    f"supernode-{plan.hospitals[k]}",
                    [
                        _bin("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{fleet}",
                        "--clientappio-api-address", f"127.0.0.1:{port}", "--isolation", "subprocess",
                        "--node-config", f"partition-id={k} num-partitions={n_hospitals}",
                    ],
                )  # fmt: skip
            for port in clientappio:
                _wait_listening(port, deadline, procs, "a SuperNode")
            write_json_atomic(work.parent / "processes.json", procs.pids())
            info(
                f"federate --deploy: SuperLink on 127.0.0.1:{fleet} and {n_hospitals} SuperNodes "
                f"({', '.join(plan.hospitals)}); logs in {logs}"
            )
            submit = procs.start("flwr-run", [_bin("flwr"), "run", str(app), "medlearn", "--stream"])
            end = time.monotonic() + budget
            while not (work / STATUS_FILE).is_file():
                if submit.poll() is not None and submit.returncode != 0:
                    raise InputError(
                        f"federate --deploy: flwr run failed (exit {submit.returncode}; see {logs / 'flwr-run.log'})"
                    )
                if procs.procs["superlink"].poll() is not None:
                    raise InputError(
                        f"federate --deploy: the SuperLink exited (see {logs / 'superlink.log'})"
                    )
                if time.monotonic() > end:
                    raise InputError(
                        f"federate --deploy: no result after {budget:g} s (rounds x federated.round_timeout_seconds "
                        f"and start-up); stopped (see {logs})"
                    )
                time.sleep(0.5)
        finally:
            procs.stop()
    check_status(work)
