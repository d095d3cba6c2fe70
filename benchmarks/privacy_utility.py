"""ε–utility of differentially private training on a real task: PneumoniaMNIST (``cxr_pneumonia``, the
official MedMNIST split) trained with DP-SGD at ε = 1, 3 and 8, and without privacy (ε = ∞), everything
else equal.

Every row is one ``medlearn train cxr_pneumonia --threads 1`` with the same overrides (:data:`COMMON`): a
smaller ResNet than the shipped config's (widths 32-32-64-64, one block per stage) and fewer epochs, so the
four trainings fit in about a quarter of an hour on two cores; batch 256 (DP-SGD does better with large
batches), per-unit gradients clipped to L2 norm 1, δ = 1/(10·n_train). The private rows add
``privacy.epsilon``: their 12 batch norms are replaced by 32-group norms automatically. The ε = ∞ row sets
``model.params.norm=[group, {num_groups: 32}]``, the same network without DP-SGD, so the table shows what
the private training costs and not what group norm costs.

Selection stays on validation: each run keeps its best epoch by validation AUROC (early stopping, on the
validation units it monitors) and fits its calibration and operating point on validation. Nothing is
chosen on test; each row's test split is scored once, by the run itself, with the project's bootstrap
CIs (``eval.n_bootstrap``, seed 0). The ε reported is the accountant's for the steps taken (PRV).

Run: ``python benchmarks/privacy_utility.py [--epochs 6] [--jobs 1] [--code CHECKOUT]``. Writes
``results/privacy_utility/table.json`` (every figure, per ε), ``table.md`` (the table README.md shows)
and ``provenance.json`` (commit, machine, threads, wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "privacy_utility"
EPSILONS: list[float | None] = [1.0, 3.0, 8.0, None]  # None = not private (ε = ∞)
#: What every row shares (on top of configs/cxr_pneumonia.yaml).
COMMON = [
    "model.params={widths: [32, 32, 64, 64], layers: [1, 1, 1, 1]}",
    "train.batch_size=256",
    "eval.n_bootstrap=1000",
]
#: The non-private row's network: the private rows' after Opacus replaced the batch norms.
SAME_NETWORK = "model.params.norm=[group, {num_groups: 32}]"
METRICS = ("auroc", "auprc", "sensitivity", "specificity", "ece")


def overrides(epsilon: float | None, epochs: int) -> list[str]:
    """The ``--set`` items of one row."""
    extra = [f"privacy.epsilon={epsilon:g}"] if epsilon is not None else [SAME_NETWORK]
    return [*COMMON, f"train.epochs={epochs}", *extra]


def train(epsilon: float | None, epochs: int, code: Path, threads: int, tmp: Path) -> dict[str, Any]:
    """One ``medlearn train`` run in its own process; its metrics, privacy record and wall time."""
    name = "inf" if epsilon is None else f"{epsilon:g}"
    out = tmp / f"epsilon_{name}"
    env = {
        **os.environ,
        "PYTHONPATH": str(code / "src"),
        "MEDLEARN_DATA": os.environ.get("MEDLEARN_DATA", str((REPO.parent / "shared" / "data").resolve())),
        "MEDLEARN_CACHE": str(tmp / "cache"),
        "OMP_NUM_THREADS": str(threads),
    }
    sets = overrides(epsilon, epochs)
    command = [sys.executable, "-c", "from medlearn.cli import main; main()", "train", "cxr_pneumonia"]
    command += ["--out", str(out), "--threads", str(threads), "--quiet"]
    command += [a for item in sets for a in ("--set", item)]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, cwd=tmp)
    seconds = time.perf_counter() - started
    val = json.loads((out / "metrics_val.json").read_text())
    test = json.loads((out / "metrics.json").read_text())
    bundle = json.loads((out / "bundle" / "bundle.json").read_text())
    from medlearn.engine.posthoc import Calibration

    privacy = bundle.get("privacy")
    training = bundle["training"]

    def pick(scored: dict[str, Any]) -> dict[str, Any]:
        return {
            k: {"value": scored["metrics"][k]["value"], "ci95": scored["metrics"][k]["ci95"]} for k in METRICS
        }

    return {
        "epsilon_target": epsilon,
        "overrides": sets,
        "epsilon_spent": None if privacy is None else privacy["epsilon"],
        "delta": None if privacy is None else privacy["delta"],
        "noise_multiplier": None if privacy is None else privacy["noise_multiplier"],
        "max_grad_norm": None if privacy is None else privacy["max_grad_norm"],
        "sample_rate": None if privacy is None else privacy["sample_rate"],
        "steps": None if privacy is None else privacy["steps"],
        "accountant": None if privacy is None else privacy["accountant"],
        "replaced_layers": None if privacy is None else len(privacy["replaced_layers"]),
        "best_epoch": training["best_epoch"],
        "epochs_run": training["epochs_run"],
        "val": {"n": val["n"], **pick(val)},
        "test": {"n": test["n"], **pick(test)},
        "threshold": test["operating_point"]["threshold"],
        "calibration": bundle["calibration"],  # logit / temperature + bias, fitted on validation
        "calibration_warnings": Calibration(**bundle["calibration"]).at_bound(),  # as its report warns
        "minutes": round(seconds / 60, 2),
    }


def ci(entry: dict[str, Any]) -> str:
    low, high = entry["ci95"] or (None, None)
    return f"{entry['value']:.3f}" + (f" ({low:.3f}–{high:.3f})" if low is not None else "")


def markdown(rows: list[dict[str, Any]], epochs: int, threads: int, commit: str) -> str:
    """The table README.md shows (from table.json alone)."""
    lines = [
        "| ε target | ε spent | δ | noise σ | steps | val AUROC (95% CI) | test AUROC (95% CI) "
        "| test sensitivity / specificity | test ECE | train time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        private = r["epsilon_target"] is not None
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['epsilon_target']:g}" if private else "∞ (not private)",
                    f"{r['epsilon_spent']:.2f}" if private else "–",
                    f"{r['delta']:.1e}" if private else "–",
                    f"{r['noise_multiplier']:.2f}" if private else "0",
                    str(r["steps"]) if private else "–",
                    ci(r["val"]["auroc"]),
                    ci(r["test"]["auroc"]),
                    f"{r['test']['sensitivity']['value']:.3f} / {r['test']['specificity']['value']:.3f}",
                    f"{r['test']['ece']['value']:.3f}",
                    f"{r['minutes']:.1f} min",
                ]
            )
            + " |"
        )
    n_val, n_test = rows[0]["val"]["n"], rows[0]["test"]["n"]
    bounded = [r for r in rows if r["calibration_warnings"]]
    note = (
        " Calibration (fitted on validation) stopped at a bound of its search range for ε = "
        + ", ".join("∞" if r["epsilon_target"] is None else f"{r['epsilon_target']:g}" for r in bounded)
        + ": their reports warn that the calibrated probabilities, and so the ECE, are not trustworthy."
        if bounded
        else ""
    )
    return (
        "\n".join(lines)
        + "\n\n"
        + f"PneumoniaMNIST (`cxr_pneumonia`), ResNet 32-32-64-64 with one block per stage, {epochs} epoch"
        f"{'s' if epochs != 1 else ''}, batch "
        f"256 (Poisson-sampled when private), per-unit clip 1, PRV accountant, δ = 1/(10·n_train); the ∞ row is "
        "the same network (group norm) trained without DP-SGD. Smaller and shorter than the shipped config, to "
        f"fit four trainings in a quarter of an hour ({threads} torch thread{'s' if threads != 1 else ''} each). "
        f"Validation: {n_val} images; each "
        f"run's test split ({n_test} images) scored once, nothing chosen on it; sensitivity/specificity at the "
        "operating point chosen on validation (sensitivity ≥ 0.90). From "
        f"`results/privacy_utility/table.json`, code at commit `{commit[:7]}`.{note}\n"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in ("torch", "opacus", "monai", "numpy", "scikit-learn"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _git(code: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(code), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at once (each on --threads)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--code", type=Path, default=REPO, help="checkout whose src/ runs (default: this one)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    code = args.code.resolve()
    load_before, started = os.getloadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="privacy-utility-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda e: train(e, args.epochs, code, args.threads, Path(tmp)), EPSILONS))
    wall = time.perf_counter() - started
    commit = _git(code, "rev-parse", "HEAD")
    dirty = _git(code, "status", "--porcelain", "--", "src", "pyproject.toml", "constraints.txt")
    args.out.mkdir(parents=True, exist_ok=True)
    table = {
        "task": "cxr_pneumonia",
        "data": "imaging/pneumoniamnist.npz (PneumoniaMNIST, MedMNIST v2, official split)",
        "common_overrides": [*COMMON, f"train.epochs={args.epochs}"],
        "not_private_overrides": [SAME_NETWORK],
        "selection": "best epoch, calibration and operating point on validation; test scored once per row",
        "rows": rows,
    }
    (args.out / "table.json").write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")
    (args.out / "table.md").write_text(markdown(rows, args.epochs, args.threads, commit))
    provenance = {
        "command": "python benchmarks/privacy_utility.py "
        + f"--epochs {args.epochs} --jobs {args.jobs} --threads {args.threads}",
        "commit": commit,
        "tree_clean": not dirty,
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_seconds": round(wall, 1),
        "threads": args.threads,
        "jobs": args.jobs,
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "os": platform.platform(),
            "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        "versions": _versions(),
    }
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    main()
