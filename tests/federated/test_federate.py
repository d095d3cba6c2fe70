"""``medlearn federate``: Flower's simulation and deployment engines around the one Trainer, hospitals,
drop-outs, bad configs, and no process left behind (also after Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_data, require_module

require_module("flwr")

MEDLEARN = str(Path(sys.executable).parent / "medlearn")
FAST = [
    "train.epochs=2",
    "eval.n_bootstrap=20",
    "federated.rounds=2",
    "federated.hospitals.count=3",
    "federated.hospitals.alpha=5",
    "federated.hospitals.min_patients=5",
    "federated.round_timeout_seconds=60",
]


@pytest.fixture(scope="module")
def mimic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    return write_synthetic_mimic4(tmp_path_factory.mktemp("fed") / "mimic", n_patients=60, seed=0)


def run(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDLEARN_CACHE": os.environ.get("MEDLEARN_CACHE", "/tmp/medlearn-test-cache")}
    return subprocess.run(
        [MEDLEARN, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )


def federate_args(mimic: Path, out: Path, *extra: str) -> list[str]:
    args = ["federate", "ehr_los_mimic4_linear", "--data", str(mimic), "--out", str(out), "--threads", "1"]
    for item in [*FAST, *extra]:
        args += ["--set", item]
    return [*args, "--quiet"]


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def process_groups_alive(pgids: list[int]) -> list[str]:
    """Live (non-zombie) processes whose process group is one of ``pgids`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) in pgids:
            found.append(text.split(")")[0])
    return found


def check_outputs(out: Path, rounds: int, n_hospitals: int) -> dict:
    """The same outputs as train, and a federated section whose pooled figures pool the hospitals."""
    for name in ("metrics.json", "metrics_val.json", "predictions.csv", "report.html", "federated.json"):
        assert (out / name).is_file(), name
    assert (out / "bundle" / "bundle.json").is_file()
    assert not (out / "federated" / "work").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    fed = metrics["federated"]
    assert len(fed["per_round"]) == rounds and len(fed["hospitals"]) == n_hospitals
    names = [h["name"] for h in fed["hospitals"]]
    for arm in ("federated", "centralised", "local-only"):
        scopes = fed["comparison"][arm]
        assert scopes["pooled"]["n"] == sum(scopes[n]["n"] for n in names)  # pooled predictions
        assert scopes["pooled"]["ci95"] is not None
    # the federated arm's pooled figure is the run's own test metric (same model, same calibration)
    assert fed["comparison"]["federated"]["pooled"]["value"] == metrics["metrics"][fed["metric"]]["value"]
    assert metrics["n"] == fed["comparison"]["federated"]["pooled"]["n"]
    assert "Federated learning: per hospital" in (out / "report.html").read_text()
    return metrics


def test_simulation_two_rounds_three_hospitals(mimic, tmp_path):
    ray_before = set(process_groups_alive([]))
    proc = run(*federate_args(mimic, tmp_path / "sim"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = check_outputs(tmp_path / "sim", rounds=2, n_hospitals=3)
    fed = metrics["federated"]
    assert fed["engine"] == "simulation" and fed["strategy"] == "fedavg"
    assert all(len(r["hospitals"]) == 3 and r["silent"] == 0 for r in fed["per_round"])
    assert set(process_groups_alive([])) == ray_before
    # the federated model is the bundle: medlearn evaluate reproduces its test metric
    proc = run("evaluate", tmp_path / "sim" / "bundle", "--out", tmp_path / "ev", "--quiet", "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    name = fed["metric"]
    assert again["metrics"][name]["value"] == pytest.approx(metrics["metrics"][name]["value"], abs=1e-4)


def test_deployment_superlink_and_three_supernodes_leave_no_process(mimic, tmp_path):
    proc = run(*federate_args(mimic, tmp_path / "dep", "federated.strategy=fedprox"), "--deploy")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = check_outputs(tmp_path / "dep", rounds=2, n_hospitals=3)
    assert metrics["federated"]["engine"] == "deployment"
    pids = json.loads((tmp_path / "dep" / "federated" / "processes.json").read_text())
    assert sorted(pids) == ["superlink", "supernode-hospital1", "supernode-hospital2", "supernode-hospital3"]
    assert process_groups_alive(list(pids.values())) == []
    logs = tmp_path / "dep" / "federated" / "logs"
    assert (logs / "superlink.log").stat().st_size > 0


def _start_deploy(mimic: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "MEDLEARN_CACHE": os.environ.get("MEDLEARN_CACHE", "/tmp/medlearn-test-cache")}
    return subprocess.Popen(
        [MEDLEARN, *federate_args(mimic, out, *extra), "--deploy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(path: Path, process: subprocess.Popen, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.2)


def test_ctrl_c_stops_every_process(mimic, tmp_path):
    process = _start_deploy(mimic, tmp_path / "int", "federated.rounds=50")
    try:
        _wait_for(tmp_path / "int" / "federated" / "processes.json", process, 120)
        pids = json.loads((tmp_path / "int" / "federated" / "processes.json").read_text())
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0
    assert "Traceback" not in stderr
    assert process_groups_alive(list(pids.values())) == []


@pytest.mark.slow
def test_a_client_that_disappears_does_not_stop_the_round(mimic, tmp_path):
    """One SuperNode is killed after round 1: the next rounds time out on it and go on with the others."""
    out = tmp_path / "drop"
    process = _start_deploy(mimic, out, "federated.rounds=3", "federated.round_timeout_seconds=15")
    try:
        _wait_for(out / "federated" / "work" / "rounds" / "round_1.json", process, 180)
        pids = json.loads((out / "federated" / "processes.json").read_text())
        os.killpg(pids["supernode-hospital3"], signal.SIGKILL)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    assert "hospital(s) did not answer within 15 s" in stderr
    rounds = json.loads((out / "metrics.json").read_text())["federated"]["per_round"]
    assert (
        rounds[0]["hospitals"] == ["hospital1", "hospital2", "hospital3"] or len(rounds[0]["hospitals"]) == 3
    )
    assert all(sorted(r["hospitals"]) == ["hospital1", "hospital2"] for r in rounds[1:])
    assert all(r["silent"] == 1 for r in rounds[1:])
    assert process_groups_alive(list(pids.values())) == []


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["federated.strategy=fedsgd"], ["federated.strategy", "fedavg"]),
        (["federated.hospitals.count=61"], ["61 hospitals", "60 patients"]),
        (["federated.hospitals.count=3", "federated.min_hospitals=4"], ["federated.min_hospitals"]),
        (["federated.hospitals.alpha=0"], ["federated.hospitals.alpha"]),
        (["federated.rounds=0"], ["federated.rounds"]),
        (["federated.hospitals.source=roots"], ["federated.hospitals.sites"]),
    ],
)
def test_bad_configs_are_one_line(mimic, tmp_path, extra, needles):
    proc = run(*federate_args(mimic, tmp_path / "bad", *extra))
    assert_one_line_error(proc, *needles)


def test_a_config_without_federated_section_is_one_line(mimic, tmp_path):
    args = ["federate", "ehr_los_mimic4_linear", "--data", mimic, "--out", tmp_path / "o", "--quiet"]
    assert_one_line_error(run(*args), "no federated section")


def test_missing_flower_is_one_line(mimic, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medlearn.cli import app

    monkeypatch.setitem(sys.modules, "flwr", None)  # import flwr raises ImportError
    args = federate_args(mimic, tmp_path / "noflwr")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert 'pip install "medlearn[federated]"' in result.output


def test_dirichlet_skew_follows_alpha():
    from medlearn.federated.hospitals import dirichlet_assignment

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 600)
    groups = np.arange(600)

    def spread(alpha: float) -> float:
        site = dirichlet_assignment(groups, labels, 4, alpha, seed=1)
        assert set(site) == {0, 1, 2, 3}
        shares = [labels[site == k].mean() for k in range(4)]
        return float(np.std(shares))

    assert spread(0.1) > 3 * spread(100.0)  # small alpha: hospitals differ in their label mix


def test_more_hospitals_than_patients_is_refused():
    from medlearn.errors import ConfigError
    from medlearn.federated.hospitals import dirichlet_assignment

    with pytest.raises(ConfigError, match="5 hospitals but the data has 4 patients"):
        dirichlet_assignment(np.array([1, 1, 2, 3, 4]), np.zeros(5), 5, 1.0, 0)


def test_eicu_regions_are_patient_level():
    from medlearn.federated.hospitals import eicu_patient_regions

    root = require_data("ehr/eicu-demo")
    regions = eicu_patient_regions(root)
    counts = {r: list(regions.values()).count(r) for r in set(regions.values())}
    assert counts == {"Midwest": 28, "South": 37, "West": 19, "Northeast": 7}  # 91 of 100 patients have one
    assert len(regions) == 91


@pytest.mark.slow
def test_fedadam_with_dp_sgd_records_the_composed_epsilon(mimic, tmp_path):
    """Each hospital's DP-SGD spends epsilon / rounds per round; the bundle records the sum (<= epsilon)."""
    pytest.importorskip("opacus")
    out = tmp_path / "dp"
    extra = ["federated.strategy=fedadam", "federated.server_lr=0.05", "privacy={epsilon: 4}"]
    proc = run(*federate_args(mimic, out, *extra, "federated.baselines=false"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    spent = metrics["federated"]["privacy"]["epsilon_per_round"]
    assert len(spent) == 2 and all(0 < e <= 2.0 + 1e-6 for e in spent)
    bundle = json.loads((out / "bundle" / "bundle.json").read_text())
    assert (
        bundle["privacy"]["epsilon"] == pytest.approx(sum(spent), abs=1e-3)
        and bundle["privacy"]["epsilon"] <= 4
    )
    assert "comparison" in metrics["federated"] and list(metrics["federated"]["comparison"]) == ["federated"]
    proc = run("evaluate", out / "bundle", "--out", tmp_path / "ev", "--quiet", "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["metrics"]["kappa_linear"]["value"] == metrics["metrics"]["kappa_linear"]["value"]


def test_fedprox_with_dp_sgd_is_one_line(mimic, tmp_path):
    proc = run(*federate_args(mimic, tmp_path / "o", "federated.strategy=fedprox", "privacy={epsilon: 4}"))
    assert_one_line_error(proc, "fedprox", "private")


@pytest.mark.slow
def test_one_data_folder_per_hospital(tmp_path):
    """``hospitals.source: roots``: each hospital reads its own folder; ids never merge across them."""
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    roots = [write_synthetic_mimic4(tmp_path / f"site{k}", n_patients=30, seed=k) for k in (1, 2)]
    sites = "[" + ", ".join(f"{{name: site{k}, root: {r}}}" for k, r in zip((1, 2), roots)) + "]"
    args = federate_args(roots[0], tmp_path / "roots", "federated.hospitals.source=roots")
    proc = run(*args, "--set", f"federated.hospitals.sites={sites}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = check_outputs(tmp_path / "roots", rounds=2, n_hospitals=2)
    assert [h["name"] for h in metrics["federated"]["hospitals"]] == ["site1", "site2"]
    ids = [
        line.split(",")[0] for line in (tmp_path / "roots" / "predictions.csv").read_text().splitlines()[1:]
    ]
    assert {i.split("/")[0] for i in ids} == {"site1", "site2"}
