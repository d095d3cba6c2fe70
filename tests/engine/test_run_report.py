"""write_run_report: the report says what the bundle holds — its monitored metric and best epoch, a
calibration stopped by its bound, Grad-CAM maps that show nothing, and the bundle's own credits."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from medlearn.engine.data import UnitTable
from medlearn.engine.metrics import evaluate_predictions
from medlearn.engine.posthoc import Calibration
from medlearn.engine.run_report import task_report_sections, write_run_report
from medlearn.explain.gradcam import ZERO_CAM

from .minimal_meta import minimal_meta

HISTORY = [
    {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_auroc": 0.5 + 0.1 * e} for e in (1, 2, 3)
]


class DeadNet(torch.nn.Module):
    """All-zero weights behind a ReLU: its Grad-CAM is zero everywhere."""

    gradcam_layer = "features"

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Linear(2, 1)
        for p in self.parameters():
            torch.nn.init.zeros_(p)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


class PictureTask:
    name, kind, unit, class_names = "toy_pictures", "binary", "picture", ["no", "yes"]
    intended_use = "Research use only, not a medical device."
    credits = ["The task's real dataset (must not appear for a demo)"]

    def report_examples(self, bundle, table, pred):
        return None

    def display_image(self, x):
        return np.asarray(x)[0]


def _bundle(calibration: Calibration, credits: list[str]) -> SimpleNamespace:
    meta = minimal_meta(
        model={"name": "dead", "params": {}},
        data={"root": "r", "fingerprint": "abc", "n_units": 6, "n_train": 1},
        training={"best_epoch": 2, "monitor": "auroc", "history": HISTORY, "epochs_run": 3, "seconds": 1.0},
        credits=credits,
        intended_use="Research use only, not a medical device.",
    )
    return SimpleNamespace(
        task=PictureTask(),
        meta=meta,
        calibration=calibration,
        model=DeadNet().eval(),
        preprocessing=lambda raw: np.asarray(raw, dtype=np.float32),
    )


def _table(n: int = 6) -> UnitTable:
    rng = np.random.default_rng(0)
    raw = [rng.random((1, 8, 8)).astype(np.float32) for _ in range(n)]
    ids = [f"pic{i}" for i in range(n)]
    return UnitTable(
        ids=ids,
        targets=np.array([0, 1] * (n // 2), dtype=np.float32),
        groups=np.array(ids),
        raw=raw,
        fingerprint="abc",
    )


def test_grad_cam_section_names_every_map_that_shows_nothing():
    table = _table()
    sections = task_report_sections(_bundle(Calibration(), []), table, np.linspace(0.1, 0.9, 6), n_examples=4)
    cam = next(s for s in sections if s.title == "Grad-CAM")
    assert "4 of 4 maps show nothing" in cam.html
    assert cam.html.count(ZERO_CAM) == 4 and "<code>pic5</code>" in cam.html


def test_run_report_shows_monitor_best_epoch_calibration_bound_and_bundle_credits(tmp_path):
    table = _table()
    pred = np.linspace(0.1, 0.9, 6)
    metrics = evaluate_predictions(
        "toy_pictures", "test", "picture", "binary", table.targets, pred, ["no", "yes"], None, n_boot=0
    )
    bundle = _bundle(Calibration(20.0, 0.0), ["Synthetic pictures made by the test"])
    path = write_run_report(
        tmp_path / "report.html", bundle, {"test": table}, {"test": pred}, {"test": metrics}, HISTORY, None
    )
    document = path.read_text()
    assert 'class="warnings" role="alert"' in document
    assert "calibration temperature 20 is at the upper bound of its search range (20)" in document
    assert "<code>val_auroc</code>" in document and "best epoch" in document
    assert "Synthetic pictures made by the test" in document
    assert "real dataset" not in document
