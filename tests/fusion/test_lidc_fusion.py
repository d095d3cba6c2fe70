"""The LIDC image + radiomics task on the real data: columns kept, the same split as lung_nodule, and a
trained fused model that still predicts when a modality is dropped."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_data

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lidc() -> Path:
    return require_data("imaging/lidc-segmented-nodules-2d")


def _task(inputs: list[str]):
    from medlearn.imaging.tasks.lidc_fusion import LungNoduleMultimodal

    return LungNoduleMultimodal({"inputs": inputs})


def test_radiomics_exclude_the_label_and_the_ids(lidc):
    from medlearn.imaging.radiomics import DROPPED

    task = _task(["radiomics"])
    table = task.load(lidc)
    assert len(table) == 705
    assert len(task.feature_names) == 72
    assert not set(DROPPED) & set(task.feature_names)
    assert "diameter_mm" in task.feature_names
    assert {"malignancy", "class"} <= set(DROPPED)
    # no kept column is the label in disguise: none separates the classes perfectly
    features = np.stack(table.raw)
    for j, name in enumerate(task.feature_names):
        column = features[:, j]
        benign, malignant = column[table.targets == 0], column[table.targets == 1]
        assert benign.max() >= malignant.min() and malignant.max() >= benign.min(), name


def test_every_input_choice_splits_the_marks_as_lung_nodule_does(lidc):
    """Image-only (lung_nodule), radiomics-only and fused runs score the same exams."""
    from medlearn.engine.data import group_split
    from medlearn.imaging.tasks.lidc_nodules import LungNoduleMalignancy

    image = LungNoduleMalignancy({}).load(lidc)
    reference = group_split(image.targets, image.groups, 0.15, 0.2, 0)
    for inputs in (["radiomics"], ["image", "radiomics"]):
        table = _task(inputs).load(lidc)
        assert table.ids == image.ids
        np.testing.assert_array_equal(group_split(table.targets, table.groups, 0.15, 0.2, 0), reference)
    recorded = REPO / "results" / "lung_nodule" / "predictions.csv"
    with recorded.open(newline="") as fh:
        shipped = {row["id"]: row["split"] for row in csv.DictReader(fh)}
    mine = dict(zip(image.ids, reference))
    assert shipped and all(mine[uid] == split for uid, split in shipped.items())
    # no exam in two splits
    for group in set(image.groups):
        assert len(set(reference[image.groups == group])) == 1


def test_fused_model_trained_on_lidc_predicts_with_a_modality_dropped(lidc, tmp_path):
    """A briefly trained fused bundle gives valid probabilities with radiomics absent, with the image
    absent, and through ``predict`` on a PNG folder (radiomics absent, with a warning)."""
    from medlearn import api
    from medlearn.imaging.tasks.lidc_fusion import NO_RADIOMICS

    run = api.train(
        "lung_nodule_fusion",
        out=tmp_path / "run",
        overrides=[
            "train.epochs=2",
            "train.max_train_batches=4",
            "eval.n_bootstrap=0",
            "train.augment=false",
        ],
        data=lidc,
        threads=1,
    )
    bundle = api.load_bundle(tmp_path / "run" / "bundle")
    units = bundle.task.load(lidc).subset(np.arange(0, 705, 47))
    both = bundle.predict_raw(list(units.raw))
    no_radiomics = bundle.predict_raw([{"image": r["image"]} for r in units.raw])
    no_image = bundle.predict_raw([{"radiomics": r["radiomics"]} for r in units.raw])
    for p in (both, no_radiomics, no_image):
        p = np.asarray(p).reshape(len(units), -1)[:, -1]
        assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert not np.allclose(both, no_radiomics) and not np.allclose(both, no_image)
    with (lidc / "labels.csv").open(newline="") as fh:
        folders = {f"{r['exam_id']}/{r['nodule_id']}": r["image_dir"] for r in csv.DictReader(fh)}
    folder = lidc / folders[units.ids[0]]
    records = api.predict(bundle, [folder])
    assert len(records) == 1
    assert 0.0 <= records[0]["probability"] <= 1.0
    assert NO_RADIOMICS in records[0]["warnings"]
    from medlearn.errors import ConfigError

    with pytest.raises(ConfigError, match="explain does not support"):  # one line, not an IndexError
        bundle.task.explanation_layout(bundle.preprocessing)
    assert run.metrics["n"] == 142  # the test split of lung_nodule
