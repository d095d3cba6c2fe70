"""How a recorded fused model does when a modality is missing: ``results/<config>/missing_modality.json``.

    python tools/record_fusion_missing.py lung_nodule_fusion --code /tmp/wt   # a clean worktree of the commit

``tools/record_result.py`` keeps no weights, so this retrains the shipped config with ``--threads 1`` from
the code of ``--code`` (bit-exact: the same commit gives the same weights) and refuses to go on unless its
validation predictions equal the recorded ``predictions.csv`` to 1e-6. It then predicts the validation and
test marks three ways — both parts, the image alone (radiomics absent), the radiomics alone (image absent)
— and writes AUROC with 95% bootstrap CIs (exams resampled, 1000 draws) per split and input. Nothing is
chosen from these figures: they describe the shipped model's missing-modality path.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose code runs (a clean worktree)")
    args = parser.parse_args()
    code = args.code.resolve()
    sys.path.insert(0, str(code / "src"))
    from medlearn import api
    from medlearn.config import load_config
    from medlearn.engine.metrics import binary_metrics, bootstrap_ci
    from medlearn.paths import resolve_config_data_path

    target = REPO / "results" / args.config
    with (target / "predictions.csv").open(newline="") as fh:
        recorded = {row["id"]: (row["split"], float(row["probability"])) for row in csv.DictReader(fh)}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = api.train(args.config, out=Path(tmp) / "run", threads=1)
        bundle = api.load_bundle(run.bundle)
        table = bundle.task.load(resolve_config_data_path(load_config(args.config).data.root))
        index = {uid: i for i, uid in enumerate(table.ids)}
        results: dict[str, dict[str, dict]] = {}
        for split in ("val", "test"):
            ids = [uid for uid, (s, _) in recorded.items() if s == split]
            units = table.subset(np.array([index[uid] for uid in ids]))
            y, groups = np.asarray(units.targets), np.asarray(units.groups)
            inputs = {
                "both": list(units.raw),
                "image only (radiomics absent)": [{"image": r["image"]} for r in units.raw],
                "radiomics only (image absent)": [{"radiomics": r["radiomics"]} for r in units.raw],
            }
            results[split] = {}
            for name, raws in inputs.items():
                prob = np.asarray(bundle.predict_raw(raws)).reshape(len(raws), -1)[:, -1]
                if name == "both" and split == "val":
                    expected = np.array([recorded[uid][1] for uid in ids])
                    if not np.allclose(prob, expected, atol=1e-6):
                        sys.exit("the retrained model's validation predictions differ from the recorded ones")
                auroc = binary_metrics(y, prob)["auroc"]
                low_high = bootstrap_ci(
                    lambda a, b: {"auroc": binary_metrics(a, b)["auroc"]}, (y, prob), groups=groups
                )
                results[split][name] = {
                    "value": round(float(auroc), 4),
                    "ci95": [round(v, 4) for v in low_high["auroc"]],
                    "n": len(ids),
                }
    commit = subprocess.run(
        ["git", "-C", str(code), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "-C", str(code), "status", "--porcelain"], capture_output=True, text=True
        ).stdout.strip()
    )
    (target / "missing_modality.json").write_text(
        json.dumps(
            {
                "config": args.config,
                "command": f"python tools/record_fusion_missing.py {args.config}",
                "commit": commit,
                "tree_clean": not dirty,
                "date_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "wall_seconds": round(time.perf_counter() - t0, 1),
                "auroc": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(target / "missing_modality.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
