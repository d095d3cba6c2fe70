"""``medlearn demo ehr``: the length-of-stay pipeline on synthetic MIMIC-IV-format files it writes itself."""

from __future__ import annotations

from pathlib import Path

from medlearn.config import load_config
from medlearn.engine.progress import info
from medlearn.engine.run import RunOutputs, train_experiment


def run_demo(out: Path, n_patients: int = 300, device: str = "auto") -> RunOutputs:
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    data = write_synthetic_mimic4(out / "data", n_patients=n_patients)
    info(f"wrote synthetic MIMIC-IV-format tables for {n_patients} patients to {data}")
    cfg = load_config("ehr_los_mimic4", [f"data.root={data.resolve()}", "name=demo_ehr"])
    return train_experiment(cfg, out, device=device)
