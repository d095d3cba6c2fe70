"""The Task contract, for every registered task: load → fitted preprocessing → cached dataset → one batch
through the task's default model → (when it predicts) load_inputs on a fixture file.

Each task gets a tiny dataset written to ``tmp_path`` by the repository's own synthetic generators (phantom
DICOM CTs, MIMIC-IV tables, WFDB ECGs) or by a few lines here, so this runs without the real data. A newly
registered task without a fixture fails :func:`test_every_registered_task_keeps_the_contract` until one
is added to ``FIXTURES``. The worked example of ``docs/adding-a-task.md`` (``docs/examples/lab_task.py``)
runs through the same contract and through training and predict, so the documentation stays true.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medlearn import registry
from medlearn.engine.data import CachedDataset, Preprocessing
from medlearn.engine.models import build_model
from medlearn.engine.protocols import HasOwnObjective
from medlearn.engine.target import Target
from medlearn.errors import ConfigError, InputError
from tests.conftest import require_module

BATCH = 2
EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


@dataclass
class Fixture:
    """A tiny dataset for one task: where it is, the task options that keep it small, and (for tasks that
    predict) the files and CLI-named options ``medlearn predict`` would be given."""

    root: Path
    options: dict[str, Any] = field(default_factory=dict)
    predict_paths: list[Path] = field(default_factory=list)
    predict_flags: dict[str, Any] = field(default_factory=dict)


# -- tiny datasets -------------------------------------------------------------------------------------


def _write_png_stack(folder: Path, n_slices: int, seed: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    for i in range(n_slices):
        disk = ((yy - 32) ** 2 + (xx - 32) ** 2 < (6 + i) ** 2) * 180
        Image.fromarray((disk + rng.integers(0, 40, (64, 64))).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def lidc_marks(tmp: Path) -> Fixture:
    """Four reader marks of two exams in the lidc-segmented-nodules-2d layout (PNG folders + labels.csv)."""
    rows = []
    for i in range(4):
        image_dir = f"E{i // 2}/n{i}"
        _write_png_stack(tmp / image_dir, n_slices=2 + i, seed=i)
        rows.append(
            {
                "exam_id": f"E{i // 2}",
                "nodule_id": f"n{i}",
                "label": str(i % 2),
                "malignancy": "4" if i % 2 else "2",
                "image_dir": image_dir,
            }
        )
    with (tmp / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return Fixture(tmp, {"depth": 4}, [tmp / "E0" / "n0"])


def lidc_marks_radiomics(tmp: Path) -> Fixture:
    """The four marks of :func:`lidc_marks` and a solidNodules.csv row of three features for each."""
    fixture = lidc_marks(tmp)
    with (tmp / "labels.csv").open(newline="") as fh:
        marks = list(csv.DictReader(fh))
    with (tmp / "solidNodules.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["exam_id", "nodule_id", "energy_N", "volume", "diameter_mm", "malignancy", "class"])
        for i, m in enumerate(marks):
            malignant = m["label"] == "1"
            writer.writerow(
                [
                    m["exam_id"],
                    m["nodule_id"],
                    1e6 * (i + 1),
                    10.0 * i,
                    5.0 + i,
                    m["malignancy"],
                    "MALIGNANT" if malignant else "BENIGN",
                ]
            )
    return fixture


def ct_phantom(tmp: Path) -> Fixture:
    """One phantom DICOM study with two nodules (imaging.demo), predicted at its first nodule's centre."""
    from medlearn.imaging.demo import write_phantom_dataset

    table = write_phantom_dataset(tmp, n_patients=1)
    with table.open() as fh:
        first = next(csv.DictReader(fh))
    nodule = ",".join(first[k] for k in ("x_mm", "y_mm", "z_mm"))
    return Fixture(tmp, {"cube_px": 16}, [tmp / first["series"]], {"nodule": nodule})


def cxr_images(tmp: Path) -> Fixture:
    """A MedMNIST-layout npz of 28×28 images (two per split) and one PNG to predict."""
    from PIL import Image

    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 255, (2, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.array([[0], [1]], dtype=np.uint8)
    np.savez(tmp / "cxr.npz", **arrays)
    Image.fromarray(arrays["test_images"][0]).save(tmp / "film.png")
    return Fixture(tmp / "cxr.npz", {}, [tmp / "film.png"])


def mimic_tables(tmp: Path) -> Fixture:
    """Synthetic MIMIC-IV ``hosp/`` tables of a dozen patients (ehr.synthetic); predict reads the folder."""
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    root = write_synthetic_mimic4(tmp / "mimic", n_patients=12, seed=0)
    return Fixture(root, {"min_count": 1}, [root])


def cinc_records(tmp: Path) -> Fixture:
    """Three 10 s synthetic single-lead ECGs in the CinC 2017 layout (signals.synthetic)."""
    from medlearn.signals.synthetic import write_synthetic_cinc

    root = write_synthetic_cinc(tmp, n_records=3, seconds=10.0)
    return Fixture(root, {"seconds": 10.0}, [root / "S00000.hea"])


def mitdb_record(tmp: Path) -> Fixture:
    """One 20 s MIT-BIH-layout record (lead MLII, 360 Hz) with beat annotations at its R-peaks, N and V."""
    import wfdb

    from medlearn.signals.preprocess import detect_rpeaks
    from medlearn.signals.synthetic import beat_templates, synthetic_ecg

    fs = 360.0
    ecg = synthetic_ecg("N", 20.0, beat_templates(0)[0], np.random.default_rng(0))
    ecg = np.interp(np.arange(int(20 * fs)) / fs, np.arange(len(ecg)) / 300.0, ecg)
    wfdb.wrsamp(
        "100",
        fs=fs,
        units=["mV"],
        sig_name=["MLII"],
        p_signal=ecg[:, None],
        fmt=["212"],
        adc_gain=[200.0],
        baseline=[1024],
        write_dir=str(tmp),
    )
    peaks = detect_rpeaks(ecg, fs)
    wfdb.wrann(
        "100",
        "atr",
        sample=peaks,
        symbol=["N" if i % 3 else "V" for i in range(len(peaks))],
        write_dir=str(tmp),
    )
    (tmp / "RECORDS").write_text("100\n")
    return Fixture(tmp, {}, [tmp / "100.hea"])


def sleep_features(tmp: Path) -> Fixture:
    """Two nights of per-epoch features (72 per 30 s epoch) in the Sleep-EDF feature layout."""
    rng = np.random.default_rng(0)
    rows = []
    for night in range(2):
        np.savez(tmp / f"n{night}.npz", X=rng.normal(size=(6, 72)).astype(np.float32), y=np.arange(6) % 5)
        rows.append({"file": f"n{night}.npz", "record": f"SC40{night}1", "subject": str(night)})
    with (tmp / "RECORDS.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return Fixture(tmp, {"context_epochs": 1})


def bonn_segments(tmp: Path) -> Fixture:
    """One 6 s text segment per Bonn set A–E (set E ictal); predict one with --fs."""
    rng = np.random.default_rng(0)
    lines = ["file,set,seizure"]
    for s in "ABCDE":
        np.savetxt(tmp / f"{s}001.txt", rng.normal(0, 50 + 200 * (s == "E"), 1042).round(), fmt="%d")
        lines.append(f"{s}001.txt,{s},{int(s == 'E')}")
    (tmp / "labels.csv").write_text("\n".join(lines) + "\n")
    return Fixture(tmp, {"seconds": 6.0}, [tmp / "E001.txt"], {"fs": 173.61})


def delhi_segments(tmp: Path) -> Fixture:
    """One 5.12 s MATLAB segment per New Delhi phase; predict one with --fs."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    lines = ["file,class,seizure"]
    for phase in ("interictal", "preictal", "ictal"):
        savemat(tmp / f"{phase}1.mat", {phase: rng.normal(0, 50, (1024, 1))})
        lines.append(f"{phase}1.mat,{phase},{int(phase == 'ictal')}")
    (tmp / "labels.csv").write_text("\n".join(lines) + "\n")
    return Fixture(tmp, {"seconds": 5.12}, [tmp / "ictal1.mat"], {"fs": 200.0})


def smiles_file(tmp: Path) -> Fixture:
    """60 molecules of RDKit's NCI sample (as the molecules demo uses), split 40/10/10 with a held-out Test."""
    require_module("rdkit")
    from medlearn.molecules.demo import nci_smiles

    path = tmp / "mols.smi"
    path.write_text("".join(nci_smiles().read_text().splitlines(keepends=True)[:60]))
    return Fixture(
        path,
        {
            "n_train": 40,
            "n_val": 10,
            "test_file": None,
            "test_scaffolds_file": None,
            "n_test": 10,
            "n_samples": 10,
            "n_val_samples": 10,
        },
    )


#: registered task name → writer of its tiny dataset (a new task needs one here)
FIXTURES: dict[str, Callable[[Path], Fixture]] = {
    "lung_nodule_malignancy": lidc_marks,
    "lung_nodule_multimodal": lidc_marks_radiomics,
    "ct_nodule_malignancy": ct_phantom,
    "cxr_pneumonia": cxr_images,
    "los_classification": mimic_tables,
    "los_regression": mimic_tables,
    "in_hospital_mortality": mimic_tables,
    "los_classification_multimodal": mimic_tables,
    "in_hospital_mortality_multimodal": mimic_tables,
    "ecg_af": cinc_records,
    "ecg_beats": mitdb_record,
    "eeg_sleep": sleep_features,
    "eeg_seizure": bonn_segments,
    "eeg_seizure_bonn_sets": bonn_segments,
    "eeg_seizure_delhi_phases": delhi_segments,
    "molecule_generation": smiles_file,
}


# -- the contract ----------------------------------------------------------------------------------------


def check_contract(name: str, fixture: Fixture) -> None:
    """Run task ``name`` on ``fixture`` the way the engine does, asserting each step's output."""
    task = registry.task_class(name)(fixture.options)
    assert isinstance(task.target, Target) and task.kind == task.target.kind
    assert task.class_names == list(task.target.class_names)

    table = task.load(fixture.root)
    assert len(table) >= BATCH and len(table.targets) == len(table.raw) == len(table.groups) == len(table)
    assert table.fingerprint

    model_name = task.default_model
    pre = Preprocessing(
        task.fit_preprocessing(model_name, table)
    )  # the spec must round-trip through the registry
    dataset = CachedDataset(table.raw[:BATCH], table.targets[:BATCH], pre)
    x = torch.from_numpy(np.stack([dataset[i][0] for i in range(BATCH)]))
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    augment = task.augmentation(model_name, seed=0)
    if augment is not None:
        assert np.shape(augment(dataset.array(0))) == tuple(x.shape[1:])

    model, _ = build_model(model_name, {}, task.model_kwargs(model_name))
    model.eval()
    with torch.no_grad():
        if task.kind == "generative":
            assert isinstance(model, HasOwnObjective)
            loss = model.training_loss(x)
            assert loss.ndim == 0 and torch.isfinite(loss)
        else:
            out = model(x)
            assert tuple(out.shape) == (BATCH, task.target.n_outputs) and torch.isfinite(out).all()

    if task.PredictOptions is None:
        assert not fixture.predict_paths
        with pytest.raises(ConfigError, match="does not support predicting"):
            task.predict_options()
        return
    loaded = task.load_inputs(fixture.predict_paths, task.predict_options(**fixture.predict_flags))
    assert loaded.units, loaded.skipped
    # the bundle's preprocessing takes a predicted unit to exactly the shape the model was trained on
    assert pre(loaded.units[0].raw).shape == tuple(x.shape[1:])


@pytest.mark.parametrize("name", sorted(registry.TASKS))
def test_every_registered_task_keeps_the_contract(name, tmp_path):
    if name not in FIXTURES:
        pytest.fail(
            f"task {name} is registered but has no tiny fixture: add a writer of a small dataset for it "
            "to FIXTURES in tests/test_task_contract.py",
            pytrace=False,
        )
    check_contract(name, FIXTURES[name](tmp_path))


def test_a_task_without_a_target_is_refused_when_built():
    from medlearn.engine.task import Task

    class Untargeted(Task):
        name = "untargeted"
        unit = "row"
        default_model = "dummy"

        def load(self, root):  # pragma: no cover - never reached
            raise AssertionError

        def preprocessing_spec(self, model_name):  # pragma: no cover
            return []

    with pytest.raises(TypeError, match="declares its target"):
        Untargeted()


# -- predict options, typed per task ---------------------------------------------------------------------


@pytest.mark.parametrize("nodule", ["55.5,85.6,-116", (55.5, 85.6, -116), [55.5, 85.6, -116.0]])
def test_a_nodule_position_is_a_string_or_three_numbers(nodule):
    task = registry.task_class("ct_nodule_malignancy")()
    assert task.predict_options(nodule=nodule).nodule == (55.5, 85.6, -116.0)


@pytest.mark.parametrize(
    ("name", "flags", "message"),
    [
        ("ct_nodule_malignancy", {"nodule": "1,2"}, "--nodule: expected x,y,z in patient millimetres"),
        ("ct_nodule_malignancy", {}, "--nodule is required for task ct_nodule_malignancy"),
        (
            "ct_nodule_malignancy",
            {"nodule": "1,2,3", "diameter": 5},
            "--diameter does not apply to task ct_nodule_malignancy (it takes: nodule, series)",
        ),
        (
            "lung_nodule_malignancy",
            {"fs": 200},
            "--fs does not apply to task lung_nodule_malignancy "
            "(it takes: annotations, reader, nodule, diameter, series)",
        ),
        ("lung_nodule_malignancy", {"nodule": "1,2,3"}, "--nodule needs --diameter MM"),
        (
            "lung_nodule_malignancy",
            {"annotations": "/no/such.xml"},
            "--annotations /no/such.xml: Path does not point",
        ),
        (
            "ecg_af",
            {"nodule": "1,2,3", "diameter": 5},
            "--nodule, --diameter do not apply to task ecg_af (it takes: fs)",
        ),
        ("ecg_beats", {"fs": -1}, "--fs -1: Input should be greater than 0"),
        (
            "cxr_pneumonia",
            {"series": "1.2"},
            "--series does not apply to task cxr_pneumonia (it takes no options)",
        ),
        ("los_classification", {"fs": 100}, "--fs does not apply to task los_classification"),
    ],
)
def test_a_bad_or_foreign_predict_option_is_one_line_naming_the_flag(name, flags, message):
    with pytest.raises(InputError) as caught:
        registry.task_class(name)().predict_options(**flags)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_options_not_given_are_none_and_do_not_count():
    options = registry.task_class("ecg_af")().predict_options(fs=None, nodule=None, diameter=None)
    assert options.fs_hz is None


@pytest.fixture
def ct_bundle(tmp_path):
    """An untrained CT-nodule bundle over one phantom study: enough to exercise predict's option handling."""
    from medlearn.engine.bundle import Bundle
    from tests.engine.minimal_meta import meta_for_task

    fixture = ct_phantom(tmp_path / "data")
    task = registry.task_class("ct_nodule_malignancy")(fixture.options)
    model, kwargs = build_model("cnn3d", {}, task.model_kwargs("cnn3d"))
    meta = meta_for_task(task, "cnn3d", kwargs)
    bundle = Bundle(
        tmp_path / "bundle", meta, task, model.eval(), Preprocessing(task.preprocessing_spec("cnn3d"))
    )
    return bundle, fixture


def test_predict_with_pictures_takes_the_nodule_as_a_string_or_a_tuple(ct_bundle):
    from medlearn.engine.predict import predict_with_pictures

    bundle, fixture = ct_bundle
    as_text = fixture.predict_flags["nodule"]
    as_tuple = tuple(float(v) for v in as_text.split(","))
    by_text = predict_with_pictures(bundle, fixture.predict_paths, None, nodule=as_text)
    by_tuple = predict_with_pictures(bundle, fixture.predict_paths, None, nodule=as_tuple)
    assert len(by_text) == 1 and by_text == by_tuple
    assert 0.0 <= by_text[0]["probability"] <= 1.0 and by_text[0]["label"] in ("benign", "malignant")


def test_predict_with_pictures_rejects_an_unknown_keyword_before_reading_inputs(ct_bundle, tmp_path):
    from medlearn.engine.predict import predict_with_pictures

    bundle, fixture = ct_bundle
    with pytest.raises(InputError, match="--nodul does not apply to task ct_nodule_malignancy"):
        predict_with_pictures(bundle, [tmp_path / "absent"], None, nodul=fixture.predict_flags["nodule"])


# -- the worked example of docs/adding-a-task.md -----------------------------------------------------------


def write_lab_table(path: Path, n_patients: int = 40, seed: int = 0) -> Path:
    """Draws whose next potassium is high mostly when creatinine and potassium are high (a learnable rule)."""
    rng = np.random.default_rng(seed)
    lines = ["patient_id,creatinine_mg_dl,sodium_mmol_l,potassium_mmol_l,glucose_mg_dl,high_potassium_next"]
    for p in range(n_patients):
        for _ in range(2):
            creatinine, potassium = rng.lognormal(0.2, 0.5), rng.normal(4.3, 0.6)
            risk = 1.5 * (creatinine - 1.3) + 2.0 * (potassium - 4.6)
            label = int(rng.random() < 1 / (1 + np.exp(-3 * risk)))
            glucose = "" if rng.random() < 0.1 else f"{rng.normal(110, 25):.0f}"  # a missing lab now and then
            lines.append(
                f"P{p:03d},{creatinine:.2f},{rng.normal(139, 3):.0f},{potassium:.1f},{glucose},{label}"
            )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def lab_task_registered(monkeypatch):
    """docs/examples/lab_task.py importable and registered as ``high_potassium`` (the doc's registry line)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setitem(registry.TASKS, "high_potassium", "lab_task:HighPotassium")
    return "high_potassium"


def test_the_worked_example_keeps_the_contract(lab_task_registered, tmp_path):
    table = write_lab_table(tmp_path / "labs.csv")
    draws = tmp_path / "draws.csv"
    draws.write_text("\n".join(line.rsplit(",", 1)[0] for line in table.read_text().splitlines()[:4]) + "\n")
    check_contract(lab_task_registered, Fixture(table, {}, [draws]))


def test_the_worked_example_trains_from_its_config_and_predicts(lab_task_registered, tmp_path):
    from medlearn.config import load_config
    from medlearn.engine.bundle import load_bundle
    from medlearn.engine.run import train_experiment

    data = tmp_path / "data"
    data.mkdir()
    write_lab_table(data / "labs.csv", n_patients=60)
    shutil.copy(EXAMPLES / "high_potassium.yaml", tmp_path / "high_potassium.yaml")
    cfg = load_config(
        str(tmp_path / "high_potassium.yaml"),
        [f"data.root={data}", "train.epochs=3", "eval.n_bootstrap=0", "data.cache=false"],
    )
    outputs = train_experiment(cfg, tmp_path / "run", device="cpu")
    assert outputs.metrics["task"] == "high_potassium" and outputs.metrics["unit"] == "draw"
    bundle = load_bundle(outputs.bundle)
    records = bundle.predict([data / "labs.csv"])
    assert len(records) == 120 and {r["label"] for r in records} <= {"normal", "high"}
    with pytest.raises(InputError, match="--nodule does not apply to task high_potassium"):
        bundle.predict([data / "labs.csv"], nodule="1,2,3")
