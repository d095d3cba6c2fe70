"""Train one shipped config (or a named variant of it) and keep its outputs as a committed result.

Published figures come from files, never from a keyboard (CONVENTIONS "Results and selection"). This
script is the only way a figure enters ``results/``:

    python tools/record_result.py lung_nodule                                  # results/lung_nodule/
    python tools/record_result.py lung_nodule --variant no_tta --set model.params.tta=false
    python tools/record_result.py lung_nodule --code /tmp/wt                   # run the code of a clean worktree

It runs ``medlearn train`` with ``--threads 1`` (bit-exact reruns, see README "Reproducibility") in a
temporary directory and copies into ``results/<config>[+<variant>]/``: ``metrics.json`` (the test split,
or ``cv``; not kept for a variant, whose only use is a choice made on validation), ``metrics_val.json``,
``config.yaml`` (resolved), ``predictions.csv`` when it is small, ``federated.json`` (``--federate``: runs
``medlearn federate`` instead of ``train``), the
bundle's ``bundle.json`` minus its training history, and ``provenance.json``: the commit whose code ran
(and whether its tree was clean), the command, the machine (CPU model, cores, load average before and
after), library versions, the thread count and the wall time. ``tools/readme_tables.py`` builds the
README's results tables from these files, and a test fails when the README and the files disagree.

Run it on a clean checkout (``--code`` takes a git worktree of the commit to measure) so that the commit
in ``provenance.json`` is the code that produced the numbers; a dirty tree is recorded as such.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
#: predictions.csv is committed only below this size (CV runs of 27k sleep epochs are not).
MAX_PREDICTIONS_BYTES = 600_000


def _git(code: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(code), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions(python: str, code: Path) -> dict[str, str]:
    probe = (
        "import json, importlib.metadata as m, platform\n"
        "out = {'python': platform.python_version()}\n"
        "for p in ('torch', 'monai', 'numpy', 'scikit-learn', 'polars', 'scipy'):\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    env = {**os.environ, "PYTHONPATH": str(code / "src")}
    return json.loads(
        subprocess.run([python, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
    )


def _copy_predictions(source: Path, target: Path, only_val: bool) -> None:
    """predictions.csv when small enough to commit; a variant keeps its validation rows only."""
    with source.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if only_val:
        split_col = rows[0].index("split")
        rows = rows[:1] + [r for r in rows[1:] if r[split_col] == "val"]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    if len(buffer.getvalue().encode()) <= MAX_PREDICTIONS_BYTES:
        target.write_text(buffer.getvalue())


def _external_slug(root: str) -> str:
    """``ehr/eicu-demo`` → ``eicu-demo``: the file name of an external evaluation."""
    return Path(root.rstrip("/")).name


def _evaluate_external(
    python: str, env: dict[str, str], bundle: Path, roots: list[str], threads: int, tmp: Path
) -> dict[str, Path]:
    """``medlearn evaluate BUNDLE --data ROOT`` for every external dataset; its metrics.json by slug."""
    found = {}
    for root in roots:
        out = tmp / f"external-{_external_slug(root)}"
        command = [python, "-c", "from medlearn.cli import main; main()", "evaluate", str(bundle)]
        data = Path(root) if Path(root).is_absolute() else Path(env["MEDLEARN_DATA"]) / root
        command += ["--data", str(data), "--out", str(out), "--threads", str(threads), "--quiet"]
        subprocess.run(command, env=env, check=True, cwd=tmp)
        found[_external_slug(root)] = out / "metrics.json"
    return found


def record(
    config: str,
    variant: str | None,
    overrides: list[str],
    code: Path,
    threads: int,
    force: bool,
    external: list[str] | None = None,
    command_name: str = "train",
) -> Path:
    """Train, then copy the outputs and their provenance to ``results/<name>/``; returns that folder.

    ``external`` data roots (relative to MEDLEARN_DATA, or absolute) are scored with the trained bundle
    (``medlearn evaluate --data``, split "all") into ``results/<name>/external/<root name>.json`` (and its
    ``.predictions.csv`` when small): the external validation that sits beside the internal test figure.
    """
    external = external or []
    name = config + (f"+{variant}" if variant else "")
    target = RESULTS / name
    if target.exists() and any(target.iterdir()) and not force:
        sys.exit(f"{target}: exists (pass --force to replace it)")
    python = str(REPO / ".venv" / "bin" / "python")
    env = {
        **os.environ,
        "PYTHONPATH": str(code / "src"),
        "MEDLEARN_DATA": os.environ.get("MEDLEARN_DATA", str((REPO.parent / "shared" / "data").resolve())),
        "OMP_NUM_THREADS": str(threads),
    }
    dirty = _git(code, "status", "--porcelain", "--", "src", "pyproject.toml", "constraints.txt")
    with tempfile.TemporaryDirectory(prefix=f"result-{name}-") as tmp:
        out = Path(tmp) / "run"
        command = [
            python,
            "-c",
            "from medlearn.cli import main; main()",
            command_name,
            config,
            "--out",
            str(out),
            "--threads",
            str(threads),
            "--quiet",
            *[a for o in overrides for a in ("--set", o)],
        ]
        load_before = os.getloadavg()
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, cwd=tmp)
        wall = time.perf_counter() - started
        scored = _evaluate_external(python, env, out / "bundle", external, threads, Path(tmp))
        load_after = os.getloadavg()
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        # A variant is a choice made on validation: its test figures are not kept, so nobody can look.
        for f in (
            ("metrics_val.json", "config.yaml")
            if variant
            else ("metrics.json", "metrics_val.json", "config.yaml")
        ):
            shutil.copy2(out / f, target / f)
        if (out / "federated.json").is_file() and not variant:  # federate: per hospital and per round
            shutil.copy2(out / "federated.json", target / "federated.json")
        _copy_predictions(out / "predictions.csv", target / "predictions.csv", only_val=bool(variant))
        bundle = json.loads((out / "bundle" / "bundle.json").read_text())
        for heavy in ("metrics", "splits", "preprocessing", "config"):
            bundle.pop(heavy, None)
        bundle.get("training", {}).pop("history", None)
        (target / "bundle.json").write_text(json.dumps(bundle, indent=2) + "\n")
        if scored:
            (target / "external").mkdir()
            for slug, metrics in scored.items():
                shutil.copy2(metrics, target / "external" / f"{slug}.json")
                _copy_predictions(
                    metrics.parent / "predictions.csv",
                    target / "external" / f"{slug}.predictions.csv",
                    only_val=False,
                )
    provenance = {
        "config": config,
        "variant": variant,
        "overrides": overrides,
        "command": f"medlearn {command_name} "
        + config
        + f" --threads {threads}"
        + "".join(f" --set {o}" for o in overrides),
        "external": [f"medlearn evaluate BUNDLE --data {root} --threads {threads}" for root in external],
        "commit": _git(code, "rev-parse", "HEAD"),
        "tree_clean": not dirty,
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_seconds": round(wall, 1),
        "threads": threads,
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "os": platform.platform(),
            "load_average_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        },
        "versions": _versions(python, code),
    }
    (target / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a shipped config name (configs/*.yaml)")
    parser.add_argument("--variant", help="name of the variant (results/<config>+<variant>/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="config override key=value"
    )
    parser.add_argument(
        "--code", type=Path, default=REPO, help="checkout whose src/ runs (default: this one)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--federate", action="store_true", help="run medlearn federate (the config's federated section)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing result")
    parser.add_argument(
        "--external",
        action="append",
        default=[],
        help="a dataset (relative to MEDLEARN_DATA, or absolute) the trained bundle is also scored on",
    )
    args = parser.parse_args()
    if args.overrides and not args.variant:
        parser.error("--set needs --variant: a result folder holds the shipped config or a named variant")
    if args.external and args.variant:
        parser.error("--external scores a shipped config once, like its test split; a variant has neither")
    print(
        record(
            args.config,
            args.variant,
            args.overrides,
            args.code.resolve(),
            args.threads,
            args.force,
            args.external,
            "federate" if args.federate else "train",
        )
    )


if __name__ == "__main__":
    main()
