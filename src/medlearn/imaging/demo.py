"""``medlearn demo``: the whole imaging pipeline on data it makes itself (no download, no shared data).

Writes synthetic chest-CT phantoms with benign and malignant nodules as real DICOM series (shuffled file
names), a ``nodules.csv`` in the ``ct_nodule_malignancy`` layout, then reads them back through the DICOM
reader, trains the 3D CNN, evaluates with bootstrap CIs, writes the report and bundle, and predicts one
nodule from its DICOM folder with a Grad-CAM picture — exactly what a user does with their own data.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from medlearn.config import load_config
from medlearn.engine.progress import info, track
from medlearn.engine.run import RunOutputs, train_experiment


def write_phantom_dataset(folder: Path, n_patients: int, nodules_per_patient: int = 2) -> Path:
    """``n_patients`` phantom CT series under ``folder`` plus ``nodules.csv``; returns the csv path."""
    from medlearn.imaging.phantom import write_phantom_study

    rows = []
    for i in track(range(n_patients), "writing synthetic DICOM studies", total=n_patients):
        patient = f"PHANTOM-{i:03d}"
        # Alternate the classes so every patient holds a benign and a malignant nodule (balanced data).
        malignant = [(i + k) % 2 == 0 for k in range(nodules_per_patient)]
        nodules = write_phantom_study(folder / patient, patient, seed=1000 + i, n_nodules=nodules_per_patient,
                                      malignant=malignant)
        for n in nodules:
            x, y, z = n.center_mm
            rows.append({"patient_id": patient, "series": patient, "x_mm": f"{x:.2f}", "y_mm": f"{y:.2f}",
                         "z_mm": f"{z:.2f}", "diameter_mm": f"{n.diameter_mm:.1f}", "label": int(n.malignant)})
    path = folder / "nodules.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_demo(out: Path, n_patients: int = 120, epochs: int = 25, device: str = "auto") -> RunOutputs:
    data = out / "data"
    table = write_phantom_dataset(data, n_patients)
    info(f"wrote {n_patients} synthetic CT studies as DICOM to {data}")
    cfg = load_config("demo_ct", [f"train.epochs={epochs}", f"data.root={data.resolve()}"])
    outputs = train_experiment(cfg, out, device=device)
    with table.open(newline="") as fh:
        first = next(csv.DictReader(fh))
    from medlearn.engine.bundle import load_bundle

    bundle = load_bundle(outputs.bundle)
    picture_dir = out / "predict"
    picture_dir.mkdir(exist_ok=True)
    nodule = (float(first["x_mm"]), float(first["y_mm"]), float(first["z_mm"]))
    records = bundle.predict([data / first["series"]], out_dir=picture_dir, nodule=nodule)
    (picture_dir / "predictions.json").write_text(json.dumps(records, indent=2))
    r = records[0]
    info(f"predicted {r['unit']} from its DICOM folder: {r['label']} (p={r['probability']:.3f}; "
         f"truth {'malignant' if first['label'] == '1' else 'benign'}); Grad-CAM: {picture_dir / r.get('explanation', '')}")
    return outputs
