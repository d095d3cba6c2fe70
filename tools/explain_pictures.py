"""Write the README's explanation pictures, one per modality, from small bundles trained on real data.

For each case below the script trains the shipped config briefly (the overrides cap the work; the models
are for illustration, not the README's results), picks one test unit whose explanation is readable (the
rule is recorded), runs :func:`medlearn.explain.api.explain_bundle` on its input with the checks, and
copies the unit's picture to ``docs/img/explain-<case>.png``. ``docs/img/explain-pictures.json`` records
per picture the config, overrides, data, input, unit, method, explained class and the model-randomisation
and faithfulness figures of that run, so that every figure the README states beside a picture comes from a
committed file.

    MEDLEARN_DATA=/path/to/data python tools/explain_pictures.py [--only ct,ecg] [--work DIR]

Measured: 9 min 15 s on 2 shared, busy CPU cores, most of it the ECG training (6 epochs of 40 batches;
its epochs took 9 s each when the cores were free). The first ECG run also reads and caches the CinC records.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
THREADS = 2


@dataclass
class Case:
    """One picture: the shipped config, the overrides that keep training short, what to explain."""

    key: str
    config: str
    data: str  # relative to MEDLEARN_DATA (the config's data.root)
    overrides: list[str]
    #: the class whose correctly predicted test units are preferred (None: any class)
    prefer_class: str | None
    #: the input path for a predictions.csv row (relative to MEDLEARN_DATA), given the data root
    input_for: Callable[[Path, dict[str, str], Path], Path]
    what: str
    #: "chosen": the chosen test unit's picture; "most_evidence": of the units the input holds (the
    #: chosen unit's patient), the one whose picture shows the most features with a contribution
    pick: str = "chosen"
    options: dict[str, Any] = field(default_factory=dict)


def _nodule_folder(root: Path, row: dict[str, str], _work: Path) -> Path:
    """A mark's PNG folder, from ``labels.csv`` (predictions name marks ``exam_id/nodule_id``)."""
    with (root / "labels.csv").open(newline="") as fh:
        for label in csv.DictReader(fh):
            if f"{label['exam_id']}/{label['nodule_id']}" == row["id"]:
                return root / label["image_dir"]
    raise SystemExit(f"{row['id']}: not in {root / 'labels.csv'}")


def _wfdb_record(root: Path, row: dict[str, str], _work: Path) -> Path:
    return root / row["id"]


def _one_patient(root: Path, row: dict[str, str], work: Path) -> Path:
    """A copy of the MIMIC-IV folder holding only the admission's patient (``group`` is the subject id):
    explain then sees that patient's admissions, not the 245 of the demo. Tables without a
    ``subject_id`` column (the dictionaries) are copied whole."""
    import polars as pl

    subject = row["group"]
    dest = work / f"mimic4-{subject}"
    if dest.exists():
        return dest
    for path in sorted(root.rglob("*.csv.gz")):
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pl.read_csv(path, infer_schema_length=0)
        if "subject_id" not in table.columns:
            shutil.copyfile(path, target)
            continue
        with gzip.open(target, "wb") as fh:
            table.filter(pl.col("subject_id") == subject).write_csv(fh)
    return dest


CASES = [
    Case(
        key="ct",
        config="lung_nodule_seed_cnn",
        data="imaging/lidc-segmented-nodules-2d",
        overrides=["train.epochs=8", "eval.n_bootstrap=0"],
        prefer_class="malignant",
        input_for=_nodule_folder,
        what="Grad-CAM on the middle slice of a segmented LIDC-IDRI nodule (seed CNN)",
    ),
    Case(
        key="ecg",
        config="ecg_af_cinc2017",
        data="signals/cinc2017",
        overrides=["train.epochs=6", "train.max_train_batches=40", "eval.n_bootstrap=0"],
        prefer_class="AF",
        input_for=_wfdb_record,
        what="integrated gradients on a CinC 2017 single-lead ECG (1D ResNet, ECG and RR channels)",
    ),
    Case(
        key="ehr",
        config="ehr_los_mimic4",
        data="ehr/mimic-iv-demo",
        overrides=["eval.n_bootstrap=0"],
        prefer_class=None,
        input_for=_one_patient,
        what="integrated gradients over the first 24 h of a MIMIC-IV demo admission (LSTM, length of stay)",
    ),
    Case(
        key="gbm",
        config="ehr_los_mimic4_gbm",
        data="ehr/mimic-iv-demo",
        overrides=["eval.n_bootstrap=0"],
        prefer_class=None,
        input_for=_one_patient,
        what="Shapley-sampling contributions for a MIMIC-IV demo admission (gradient boosting, length of stay)",
        pick="most_evidence",
    ),
]


def choose_unit(run: Path, prefer_class: str | None, positive: str) -> tuple[dict[str, str], str]:
    """The test unit to explain, and the rule that chose it: among test units predicted correctly (of
    ``prefer_class`` when given), the one with the highest probability for its class; without any, the
    test unit of that class with the highest probability for it. ``positive``: a binary model's positive
    class (its ``probability`` column)."""
    with (run / "predictions.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))

    def probability(row: dict[str, str]) -> float:
        cls = row["target"]
        if f"prob_{cls}" in row:
            return float(row[f"prob_{cls}"])
        p = float(row["probability"])
        return p if cls == positive else 1 - p

    test = [r for r in rows if r["split"] == "test"]
    wanted = [r for r in test if prefer_class is None or r["target"] == prefer_class]
    correct = [r for r in wanted if r["prediction"] == r["target"]]
    what = f"{prefer_class} " if prefer_class else ""
    if correct:
        return max(correct, key=probability), (
            f"the correctly predicted {what}test unit with the highest probability for its class"
        )
    return max(wanted, key=probability), (
        f"no {what}test unit predicted correctly: the one with the highest probability for its true class"
    )


def _unit_id(case: Case, row: dict[str, str]) -> str:
    """The explain record's unit for a predictions.csv row (EHR units are ``subject/admission``)."""
    return row["id"] if case.key in ("ct", "ecg") else f"{row['group']}/{row['id']}"


def _pick(case: Case, records: list[dict[str, Any]], row: dict[str, str]) -> dict[str, Any]:
    """The explained record to publish (see :attr:`Case.pick`)."""
    if case.pick == "most_evidence":
        return max(
            records,
            key=lambda r: (sum(f["contribution"] != 0 for f in r.get("top_features", [])), r["probability"]),
        )
    wanted = _unit_id(case, row)
    for record in records:
        if record["unit"] == wanted or Path(record["input"]).name == Path(row["id"]).name == record["unit"]:
            return record
        if case.key == "ct" and Path(record["unit"]).parts[-2:] == tuple(row["id"].split("/")):
            return record
    raise SystemExit(f"{case.key}: unit {wanted} not among the explained {[r['unit'] for r in records]}")


def _row_of(run: Path, unit: str) -> dict[str, str]:
    """The predictions.csv row of an EHR unit ``subject/admission``."""
    with (run / "predictions.csv").open(newline="") as fh:
        return next(r for r in csv.DictReader(fh) if f"{r['group']}/{r['id']}" == unit)


def _headline(run: Path) -> dict[str, Any]:
    metrics = json.loads((run / "metrics.json").read_text())
    values = {k: v["value"] for k, v in metrics["metrics"].items() if isinstance(v, dict) and "value" in v}
    keep = ("auroc", "challenge_f1", "kappa_linear", "accuracy")
    return {"split": metrics["split"], "n": metrics["n"], **{k: values[k] for k in keep if k in values}}


def _figures(record: dict[str, Any]) -> dict[str, Any]:
    """The checks of one explained unit, without the curves' points."""
    randomised = record["model_randomisation"]
    faith = {k: v for k, v in record["faithfulness"].items() if not k.endswith("_curve")}
    return {
        "model_randomisation": {
            k: randomised[k]
            for k in ("judged_on", "final", "final_signed", "passes", "threshold")
            if k in randomised
        },
        "faithfulness": faith,
    }


def run_case(case: Case, data_root: Path, work: Path, out_dir: Path) -> dict[str, Any]:
    import torch

    import medlearn
    from medlearn.explain.api import explain_bundle

    run_dir = work / case.key
    started = time.time()
    trained = medlearn.train(
        case.config, out=run_dir, overrides=case.overrides, threads=THREADS, device="cpu", force=True
    )
    train_s = time.time() - started
    bundle = medlearn.load_bundle(trained.bundle, device="cpu")
    row, rule = choose_unit(run_dir, case.prefer_class, bundle.class_names[-1])
    root = data_root / case.data
    source = case.input_for(root, row, work)
    if source.is_relative_to(data_root):  # units named by their path under MEDLEARN_DATA, not this machine's
        source = source.relative_to(data_root)
    torch.set_num_threads(THREADS)
    started = time.time()
    here = Path.cwd()
    os.chdir(data_root)
    try:
        result = explain_bundle(bundle, source, work / f"{case.key}-explain", force=True, **case.options)
    finally:
        os.chdir(here)
    explain_s = time.time() - started
    record = _pick(case, result["units"], row)
    if case.pick == "most_evidence":
        rule += (
            f"; then, of the {len(result['units'])} admissions of that patient, the one whose picture shows "
            "the most features with a non-zero contribution"
        )
        row = _row_of(run_dir, record["unit"])
    picture = out_dir / f"explain-{case.key}.png"
    shutil.copyfile(work / f"{case.key}-explain" / record["picture"], picture)
    inside = source if not source.is_absolute() else None
    print(
        f"{case.key}: trained {train_s:.0f} s, explained {explain_s:.0f} s -> {picture.name}", file=sys.stderr
    )
    return {
        "picture": picture.name,
        "what": case.what,
        "config": case.config,
        "overrides": case.overrides,
        "threads": THREADS,
        "data": case.data,
        "input": str(inside) if inside else f"{case.data} restricted to subject_id {row['group']}",
        "unit": record["unit"],
        "unit_selection": rule,
        "true_class": row["target"],
        "method": record["method"],
        "target_class": record["target_class"],
        "predicted_class": record["predicted_class"],
        "probability": record.get("probability", record.get("value")),
        **_figures(record),
        "units_explained_in_run": len(result["units"]),
        "run_summary": result["summary"],
        "test_metrics": _headline(run_dir),
        "note": "trained for illustration with these overrides (fewer epochs or batches than the shipped "
        "config where listed, no bootstrap); not the README's results",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="folder for the pictures")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--only", default="", help="comma-separated cases (ct, ecg, ehr, gbm)")
    args = parser.parse_args(argv)
    if "MEDLEARN_DATA" not in os.environ:
        parser.error("set MEDLEARN_DATA to the shared data folder (see its README.md)")
    data_root = Path(os.environ["MEDLEARN_DATA"]).resolve()
    only = {k.strip() for k in args.only.split(",") if k.strip()}
    unknown = only - {c.key for c in CASES}
    if unknown:
        parser.error(f"--only {','.join(sorted(unknown))}: choose from {', '.join(c.key for c in CASES)}")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    record_path = args.out / "explain-pictures.json"
    recorded = json.loads(record_path.read_text()) if record_path.is_file() else {}
    pictures = dict(recorded.get("pictures", {}))
    with tempfile.TemporaryDirectory(prefix="explain-pictures-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        for case in CASES:
            if not only or case.key in only:
                pictures[case.key] = run_case(case, data_root, work, args.out)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    recorded = {
        "written_by": "tools/explain_pictures.py",
        "commit": commit or None,
        "pictures": {k: pictures[k] for k in sorted(pictures, key=[c.key for c in CASES].index)},
    }
    record_path.write_text(json.dumps(recorded, indent=2) + "\n")
    print(f"wrote {record_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
