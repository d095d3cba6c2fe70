"""The LIDC segmented-nodule task: PNG and packed readers agree, inputs are checked."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from medlearn.engine.data import Preprocessing
from medlearn.errors import InputError
from medlearn.registry import task_class
from tests.conftest import require_data


def _small_copy(tmp_path, n: int = 6):
    root = require_data("imaging/lidc-segmented-nodules-2d")
    with (root / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))[:n]
    for r in rows:
        shutil.copytree(root / r["image_dir"], tmp_path / r["image_dir"])
    with (tmp_path / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root, rows


def test_png_folders_give_the_same_units_as_the_packed_file(tmp_path):
    root, rows = _small_copy(tmp_path)
    task = task_class("lung_nodule_malignancy")()
    from_png = task.load(tmp_path)
    packed = task.load(root)
    assert from_png.ids == packed.ids[: len(rows)]
    for a, b in zip(from_png.raw, packed.raw):
        np.testing.assert_array_equal(a, b)
    assert list(from_png.groups) == [r["exam_id"] for r in rows]


def test_packed_file_out_of_sync_with_labels_is_an_error(tmp_path):
    root, _ = _small_copy(tmp_path)
    shutil.copy(root / "nodules_packed.npz", tmp_path / "nodules_packed.npz")
    with pytest.raises(InputError, match="nodules_packed.npz: 705 marks but labels.csv has 6 rows"):
        task_class("lung_nodule_malignancy")().load(tmp_path)


def test_stack_preprocessing_centres_the_slices():
    task = task_class("lung_nodule_malignancy")({"depth": 8})
    stack = np.stack([np.full((64, 64), 255 * (i + 1) // 3, np.uint8) for i in range(3)])
    x = Preprocessing(task.preprocessing_spec("nodule_resnet25d"))(stack)
    assert x.shape == (8, 64, 64)
    nonzero = np.flatnonzero(x[:, 0, 0])
    assert len(nonzero) == 3 and nonzero[0] in (2, 3)  # centred: 2 or 3 empty slices before
    np.testing.assert_allclose(x[nonzero, 0, 0], [85 / 255, 170 / 255, 1.0], atol=1e-6)
    seed = Preprocessing(task.preprocessing_spec("seed_cnn"))(stack)
    assert seed.shape == (1, 64, 64) and seed[0, 0, 0] == pytest.approx(170 / 255)


def test_labels_with_a_bad_value_name_the_line(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "exam_id,nodule_id,malignancy,label,image_dir\ne1,n1,4,yes,images/x\n"
    )
    with pytest.raises(InputError, match=r"labels.csv: line 2: label must be 0 or 1"):
        task_class("lung_nodule_malignancy")().load(tmp_path)
