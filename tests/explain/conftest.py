"""Tiny bundles of every predictive modality, trained once per session on data the repository generates
(an ECG AF model on synthetic CinC-layout records, an EHR LSTM and a gradient-boosting model on synthetic
MIMIC-IV tables, a 3D CT model on phantom DICOM studies), for the ``medlearn explain`` tests."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pytest


def _train(name: str, out: Path, data: Path, overrides: list[str]) -> Path:
    import torch

    import medlearn

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        return medlearn.train(name, out=out, data=data, overrides=overrides, device="cpu").bundle
    finally:
        torch.set_num_threads(threads)


@dataclass
class CT:
    bundle: Path
    series: Path
    nodule: str


@pytest.fixture(scope="session")
def ct(tmp_path_factory: pytest.TempPathFactory) -> CT:
    """A 3D CNN on 16-voxel cubes of phantom CT studies, 2 epochs (≈ 5 s)."""
    from medlearn.imaging.demo import DEMO_CREDITS, write_phantom_dataset

    root = tmp_path_factory.mktemp("explain-ct")
    table = write_phantom_dataset(root / "data", n_patients=8)
    bundle = _train(
        "demo_ct",
        root / "run",
        root / "data",
        [
            f"data.options.credits={json.dumps(DEMO_CREDITS)}",
            "data.options.cube_px=16",
            "model.params.channels=[4,8]",
            "train.epochs=2",
            "eval.n_bootstrap=20",
        ],
    )
    with table.open(newline="") as fh:
        first = next(csv.DictReader(fh))
    return CT(bundle, root / "data" / first["series"], ",".join(first[k] for k in ("x_mm", "y_mm", "z_mm")))


@pytest.fixture(scope="session")
def ecg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A ResNet1d AF model on 40 synthetic CinC-layout records of 20 s, 2 epochs (≈ 5 s)."""
    from medlearn.signals.demo import DEMO_CREDITS
    from medlearn.signals.synthetic import write_synthetic_cinc

    root = tmp_path_factory.mktemp("explain-ecg")
    data = write_synthetic_cinc(root / "data", n_records=40, seconds=20.0)
    bundle = _train(
        "ecg_af_cinc2017",
        root / "run",
        data,
        [
            f"data.options.credits={json.dumps(DEMO_CREDITS)}",
            "data.options.seconds=20",
            "model.params.width=8",
            "train.epochs=2",
            "train.batch_size=16",
            "eval.n_bootstrap=20",
        ],
    )
    return bundle, sorted(data.glob("*.hea"))[:2]


@pytest.fixture(scope="session")
def ehr(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An LSTM (2 epochs) and a 30-iteration gradient-boosting model on synthetic MIMIC-IV tables."""
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    root = tmp_path_factory.mktemp("explain-ehr")
    data = write_synthetic_mimic4(root / "data", n_patients=40, seed=0)
    lstm = _train("ehr_los_mimic4", root / "lstm", data, ["train.epochs=2", "eval.n_bootstrap=20"])
    gbm = _train(
        "ehr_los_mimic4_gbm", root / "gbm", data, ["model.params.max_iter=30", "eval.n_bootstrap=20"]
    )
    return {"data": data, "lstm": lstm, "gbm": gbm}
