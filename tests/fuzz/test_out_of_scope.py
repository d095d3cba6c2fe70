"""Readable but not valid for this model → flagged, or refused with ``strict``; never a silent answer (issue 14).

Tiny bundles are trained here (one or two epochs) on copies of the shared data and on the demo's phantom
CTs, so each records its ``input_profile`` the way every training run does. Each hostile input is a copy
written under ``tmp_path``, built from the shared data or the demo generators: an MR DICOM slice and a CT
whose Modality says MR given to a CT bundle, a RescaleSlope-0 (blank) CT, flat / 0.5 s / one-sample /
all-NaN ECGs, a 50 Hz ECG, a FHIR patient born after the admission, blank, colour and CT images for a
chest X-ray model, a blank nodule stack and an MR series for the LIDC model. For each: the record says
``out_of_scope`` (and warns) without ``strict``, and is ``{"input", "unit", "model", "refused"}`` with it.
The test split of each bundle's own data is predicted too and must raise no flag (no false alarms), and a
record at another rate that preprocessing resamples (360 Hz for a 300 Hz model) is not flagged.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import require_data, require_module

QUICK = {"eval.n_bootstrap": 20, "train.seed": 0}
REFUSED_KEYS = {"input", "unit", "model", "refused"}


def _train(config: str, out: Path, data: Path | None = None, **overrides: Any) -> Path:
    import torch

    from medlearn.api import train

    threads = torch.get_num_threads()
    try:
        outputs = train(config, out=out, data=data, overrides={**QUICK, **overrides}, device="cpu", threads=1)
    finally:
        torch.set_num_threads(threads)
    return Path(outputs.bundle)


def _test_ids(bundle_dir: Path) -> list[str]:
    """Ids of the units the run put in its test split (predictions.csv beside the bundle)."""
    with (bundle_dir.parent / "predictions.csv").open(newline="") as fh:
        return [row["id"] for row in csv.DictReader(fh) if row["split"] == "test"]


def assert_flagged(records: list[dict[str, Any]], *needles: str) -> dict[str, Any]:
    """One predicted record whose out_of_scope reasons (also in its warnings) hold every needle."""
    (record,) = [r for r in records if "skipped" not in r]
    assert "refused" not in record, record
    assert record["out_of_scope"], record
    assert all(reason in record["warnings"] for reason in record["out_of_scope"])
    text = " ".join(record["out_of_scope"])
    for needle in needles:
        assert needle in text, text
    return record


def assert_refused(records: list[dict[str, Any]], *needles: str) -> dict[str, Any]:
    """One refused record: no label, probability or value, only what it was and why."""
    (record,) = [r for r in records if "skipped" not in r]
    assert set(record) == REFUSED_KEYS, record
    text = " ".join(record["refused"])
    for needle in needles:
        assert needle in text, text
    return record


def assert_in_scope(records: list[dict[str, Any]]) -> None:
    predicted = [r for r in records if "skipped" not in r]
    assert predicted
    for record in predicted:
        assert "out_of_scope" not in record and "refused" not in record, record


def check_both_ways(bundle: Any, path: Path, needles: tuple[str, ...], **options: Any) -> None:
    """Flagged without strict, refused with it."""
    assert_flagged(bundle.predict(path, **options), *needles)
    assert_refused(bundle.predict(path, strict=True, **options), *needles)


# -- CT: the demo's phantom DICOM series, an MR slice, a CT relabelled MR, a RescaleSlope-0 volume ------------


def _edit_dicom(series: Path, to: Path, **tags: Any) -> Path:
    """A copy of a DICOM series folder with header tags replaced (pydicom)."""
    import pydicom

    shutil.copytree(series, to)
    for file in sorted(p for p in to.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(file)
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.save_as(file)
    return to


@pytest.fixture(scope="module")
def ct(tmp_path_factory) -> dict[str, Any]:
    require_module("pydicom")
    from medlearn.engine.bundle import load_bundle
    from medlearn.imaging.demo import write_phantom_dataset

    tmp = tmp_path_factory.mktemp("oos-ct")
    table = write_phantom_dataset(tmp / "data", n_patients=6)
    bundle_dir = _train(
        "demo_ct",
        tmp / "run",
        data=tmp / "data",
        **{
            "train.epochs": 1,
            "train.batch_size": 8,
            "data.options.cube_px": 16,
            "model.params.channels": [4, 8],
        },
    )
    with table.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {
        "bundle": load_bundle(bundle_dir),
        "rows": rows,
        "data": tmp / "data",
        "test": _test_ids(bundle_dir),
    }


def _nodule(row: dict[str, str]) -> str:
    return ",".join(row[k] for k in ("x_mm", "y_mm", "z_mm"))


def test_the_ct_bundle_records_what_its_training_series_were(ct):
    profile = ct["bundle"].meta.input_profile
    assert profile["modalities"] == ["CT"] and profile["body_parts"] == ["CHEST"]
    assert profile["hu_p1"][0] < profile["hu_p99"][1] and len(profile["spacing_mm"]) == 3


def test_ct_test_split_nodules_are_not_flagged(ct):
    test_rows = [r for i, r in enumerate(ct["rows"]) if f"{r['patient_id']}/{i}" in ct["test"]]
    assert test_rows
    for row in test_rows:
        assert_in_scope(ct["bundle"].predict(ct["data"] / row["series"], nodule=_nodule(row)))


def test_a_ct_series_labelled_mr_is_flagged_and_refused_when_strict(ct, tmp_path):
    row = ct["rows"][0]
    mr = _edit_dicom(ct["data"] / row["series"], tmp_path / "mr", Modality="MR")
    check_both_ways(ct["bundle"], mr, ("the series is MR", "trained on CT"), nodule=_nodule(row))


def test_a_real_mr_slice_is_flagged_for_a_ct_bundle(ct, tmp_path):
    from medlearn.imaging.io.any_volume import read_volume

    source = require_data("imaging/dicom/MR_small.dcm")
    path = shutil.copy(source, tmp_path / "MR_small.dcm")
    volume = read_volume(Path(path))
    centre = ",".join(f"{v:.3f}" for v in volume.voxel_to_world(0, 32, 32))
    check_both_ways(ct["bundle"], Path(path), ("the series is MR",), nodule=centre)


def test_a_rescale_slope_zero_volume_is_blank_and_never_silently_called(ct, tmp_path):
    row = ct["rows"][0]
    blank = _edit_dicom(ct["data"] / row["series"], tmp_path / "slope0", RescaleSlope=0)
    check_both_ways(ct["bundle"], blank, ("is constant", "RescaleSlope 0"), nodule=_nodule(row))


def test_another_body_part_is_flagged(ct, tmp_path):
    row = ct["rows"][0]
    head = _edit_dicom(ct["data"] / row["series"], tmp_path / "head", BodyPartExamined="HEAD")
    assert_flagged(ct["bundle"].predict(head, nodule=_nodule(row)), "shows HEAD", "trained on CHEST")


def test_a_bundle_without_a_profile_still_knows_it_was_built_for_ct(ct, tmp_path):
    """Older bundles recorded no profile: the task's declared expectation (CT) still applies."""
    row = ct["rows"][0]
    mr = _edit_dicom(ct["data"] / row["series"], tmp_path / "mr", Modality="MR")
    task = ct["bundle"].task
    unit = task.load_inputs([mr], task.predict_options(nodule=_nodule(row))).units[0]
    assert any("built for CT" in r for r in task.check_input(unit, np.zeros(1), {}))


# -- ECG: CinC 2017 records; flat, 0.5 s, one sample, all NaN, 50 Hz; 360 Hz is only resampled ----------------


@pytest.fixture(scope="module")
def ecg(tmp_path_factory) -> dict[str, Any]:
    require_module("wfdb")
    from medlearn.engine.bundle import load_bundle

    source = require_data("signals/cinc2017")
    tmp = tmp_path_factory.mktemp("oos-ecg")
    data = tmp / "cinc"
    data.mkdir()
    by_label: dict[str, list[str]] = {}
    for line in (source / "REFERENCE.csv").read_text().split():
        name, label = line.split(",")
        by_label.setdefault(label, []).append(name)
    chosen = [(n, label) for label, names in sorted(by_label.items()) for n in sorted(names)[:15]]
    for name, _ in chosen:
        for ext in (".hea", ".mat"):
            shutil.copy(source / f"{name}{ext}", data / f"{name}{ext}")
    (data / "REFERENCE.csv").write_text("".join(f"{n},{label}\n" for n, label in chosen))
    bundle_dir = _train(
        "ecg_af_cinc2017",
        tmp / "run",
        data=data,
        **{
            "train.epochs": 1,
            "train.batch_size": 16,
            "data.options.rr_channel": False,
            "data.options.seconds": 30,
            "model.params.width": 8,
            "model.params.stages": 2,
        },
    )
    return {"bundle": load_bundle(bundle_dir), "data": data, "test": _test_ids(bundle_dir)}


def _write_ecg(folder: Path, name: str, signal: np.ndarray, fs: float = 300.0) -> Path:
    import wfdb

    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"],
        sig_name=["ECG"],
        p_signal=np.asarray(signal, dtype=np.float64).reshape(-1, 1),
        fmt=["16"],
        adc_gain=[1000.0],
        baseline=[0],
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


def _a_real_ecg(ecg: dict[str, Any]) -> np.ndarray:
    from medlearn.signals.io import read_recording

    return read_recording(ecg["data"] / f"{ecg['test'][0]}.hea").signal[:, 0]


def test_the_ecg_bundle_records_rates_durations_and_amplitudes(ecg):
    profile = ecg["bundle"].meta.input_profile
    assert profile["fs_hz"] == [300.0, 300.0]
    assert 9 <= profile["seconds"][0] <= profile["seconds"][1] <= 61
    assert 0 < profile["amplitude"][0] < profile["amplitude"][1]


def test_ecg_test_split_records_are_not_flagged(ecg):
    assert ecg["test"]
    records = ecg["bundle"].predict([ecg["data"] / f"{name}.hea" for name in ecg["test"]])
    assert len(records) >= len(ecg["test"])
    assert_in_scope(records)


@pytest.mark.filterwarnings("ignore::UserWarning")  # the reader's note that it filled the NaN samples
@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("flat", ("constant", "flat line")),
        ("half_second", ("the record is 0.5 s", "records")),
        ("one_sample", ("1 sample",)),
        ("all_nan", ("every sample of the record is missing",)),
        ("fifty_hz", ("sampled at 50 Hz", "resampling cannot restore")),
    ],
)
def test_a_hostile_ecg_is_flagged_and_refused_when_strict(ecg, tmp_path, case, needles):
    real = _a_real_ecg(ecg)
    signals = {
        "flat": (np.full(9000, 0.12), 300.0),
        "half_second": (real[:150], 300.0),
        "one_sample": (real[:1], 300.0),
        "all_nan": (np.full(9000, np.nan), 300.0),
        "fifty_hz": (real[::6], 50.0),
    }
    signal, fs = signals[case]
    path = _write_ecg(tmp_path, case, signal, fs)
    check_both_ways(ecg["bundle"], path, needles)


def test_an_ecg_at_another_rate_that_is_resampled_is_not_flagged(ecg, tmp_path):
    real = _a_real_ecg(ecg)
    t_300 = np.arange(len(real)) / 300.0
    t_360 = np.arange(int(len(real) * 1.2)) / 360.0
    path = _write_ecg(tmp_path, "rate360", np.interp(t_360, t_300, real), 360.0)
    assert_in_scope(ecg["bundle"].predict(path))


def test_an_ecg_in_microvolts_read_as_millivolts_is_flagged(ecg, tmp_path):
    import wfdb

    real = _a_real_ecg(ecg)
    wfdb.wrsamp(
        "uv", fs=300, units=["mV"], sig_name=["ECG"], p_signal=real[:, None] * 1000.0, fmt=["32"],
        adc_gain=[1000.0], baseline=[0], write_dir=str(tmp_path),
    )  # fmt: skip
    assert_flagged(ecg["bundle"].predict(tmp_path / "uv.hea"), "amplitude")


# -- EHR: MIMIC-IV demo; a FHIR patient born after the admission -----------------------------------------------

TONY = "Tony_Beer_bb8cd3e5-8910-4eea-bbc6-3f64a4a655b8.json"


@pytest.fixture(scope="module")
def ehr(tmp_path_factory) -> dict[str, Any]:
    require_module("polars")
    require_data("ehr/mimic-iv-demo")
    from medlearn.engine.bundle import load_bundle

    tmp = tmp_path_factory.mktemp("oos-ehr")
    bundle_dir = _train("ehr_los_mimic4_linear", tmp / "run", **{"train.epochs": 2})
    return {"bundle": load_bundle(bundle_dir), "test": _test_ids(bundle_dir)}


def _inpatient(tmp_path: Path, birth_date: str | None = None) -> Path:
    """Synthea's only inpatient stay as an ongoing admission (as tests/ehr/test_predict.py does), the
    patient optionally born on ``birth_date``."""
    data = json.loads((require_data("ehr/fhir/synthea-r4-bundles") / TONY).read_text())
    for entry in data["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource.pop("deceasedDateTime", None)
            if birth_date is not None:
                resource["birthDate"] = birth_date
        if resource["resourceType"] == "Encounter" and resource["class"]["code"] == "IMP":
            resource["period"].pop("end")
    path = tmp_path / f"inpatient-{birth_date or 'as-is'}.json"
    path.write_text(json.dumps(data))
    return path


def test_the_ehr_bundle_records_ages_lab_ranges_and_known_codes(ehr):
    profile = ehr["bundle"].meta.input_profile
    assert 0 <= profile["age_years"][0] < profile["age_years"][1] <= 91
    assert profile["labs"] and profile["known_codes"]
    assert 0 <= profile["unknown_share"][0] <= profile["unknown_share"][1] < 1


def test_ehr_test_split_admissions_are_not_flagged(ehr):
    from medlearn.engine.task import PredictUnit
    from medlearn.paths import data_root

    bundle = ehr["bundle"]
    table = bundle.task.load(data_root() / "ehr/mimic-iv-demo")
    test = set(ehr["test"])
    units = [raw for uid, raw in zip(table.ids, table.raw) if uid in test]
    assert len(units) == len(test) > 0
    profile = bundle.meta.input_profile
    flagged = [
        reasons for raw in units if (reasons := bundle.task.check_input(PredictUnit("u", raw), None, profile))
    ]
    assert flagged == [], "\n".join(r for f in flagged for r in f)


def test_a_fhir_patient_born_after_the_admission_is_flagged_and_refused_when_strict(ehr, tmp_path):
    path = _inpatient(tmp_path, birth_date="1995-01-01")  # the stay began in January 1989
    check_both_ways(ehr["bundle"], path, ("age at admission is -", "born after the admission"))


def test_a_fhir_patient_with_a_plausible_age_has_no_age_flag(ehr, tmp_path):
    (record,) = ehr["bundle"].predict(_inpatient(tmp_path))
    assert "label" in record
    # Synthea's SNOMED/LOINC codes are foreign to a MIMIC model: that is flagged, the age is not
    assert not any("age" in reason for reason in record.get("out_of_scope", []))
    assert any("unknown to the model" in reason for reason in record["out_of_scope"])


# -- Chest X-ray: PneumoniaMNIST; blank, colour and CT images ----------------------------------------------------


@pytest.fixture(scope="module")
def cxr(tmp_path_factory) -> dict[str, Any]:
    require_module("monai")
    from medlearn.engine.bundle import load_bundle

    source = require_data("imaging/pneumoniamnist.npz")
    tmp = tmp_path_factory.mktemp("oos-cxr")
    with np.load(source) as data:
        small = {
            f"{split}_{kind}": data[f"{split}_{kind}"][:n]
            for split, n in (("train", 300), ("val", 60), ("test", 80))
            for kind in ("images", "labels")
        }
    np.savez(tmp / "cxr.npz", **small)
    np.savez(tmp / "test_images.npz", images=small["test_images"])
    bundle_dir = _train(
        "cxr_pneumonia",
        tmp / "run",
        data=tmp / "cxr.npz",
        **{
            "train.epochs": 1,
            "train.batch_size": 64,
            "model.params.widths": [8, 8, 16, 16],
            "model.params.layers": [1, 1, 1, 1],
        },
    )
    return {
        "bundle": load_bundle(bundle_dir),
        "test_npz": tmp / "test_images.npz",
        "test": small["test_images"],
    }


def test_cxr_test_split_images_are_not_flagged(cxr):
    records = cxr["bundle"].predict(cxr["test_npz"])
    assert len(records) == len(cxr["test"])
    assert_in_scope(records)


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("blank", ("constant", "blank image")),
        ("colour", ("colour image",)),
        ("ct", ("the series is CT", "built for CR/DX")),
    ],
)
def test_an_image_that_is_no_radiograph_is_flagged_and_refused_when_strict(cxr, tmp_path, case, needles):
    from PIL import Image

    if case == "blank":
        path = tmp_path / "blank.png"
        Image.fromarray(np.full((64, 64), 90, np.uint8)).save(path)
    elif case == "colour":
        path = tmp_path / "colour.png"
        rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(np.uint8)
        Image.fromarray(rgb).save(path)
    else:
        path = Path(shutil.copy(require_data("imaging/dicom/CT_small.dcm"), tmp_path / "CT_small.dcm"))
    check_both_ways(cxr["bundle"], path, needles)


# -- LIDC nodule marks: a blank stack, an MR series through the real-CT path ------------------------------------


@pytest.fixture(scope="module")
def lidc(tmp_path_factory) -> dict[str, Any]:
    require_module("monai")
    from medlearn.engine.bundle import load_bundle

    root = require_data("imaging/lidc-segmented-nodules-2d")
    tmp = tmp_path_factory.mktemp("oos-lidc")
    bundle_dir = _train("lung_nodule_seed_cnn", tmp / "run", data=root, **{"train.epochs": 1})
    with (root / "labels.csv").open(newline="") as fh:
        dirs = {f"{r['exam_id']}/{r['nodule_id']}": root / r["image_dir"] for r in csv.DictReader(fh)}
    return {"bundle": load_bundle(bundle_dir), "dirs": dirs, "test": _test_ids(bundle_dir)}


def test_lidc_test_split_marks_are_not_flagged(lidc):
    paths = [lidc["dirs"][uid] for uid in lidc["test"]]
    assert len(paths) > 50
    assert_in_scope(lidc["bundle"].predict(paths))


def test_a_blank_nodule_stack_is_flagged_and_refused_when_strict(lidc, tmp_path):
    from PIL import Image

    folder = tmp_path / "blank"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / f"{k}.png")
    check_both_ways(lidc["bundle"], folder, ("every pixel is 0",))


def test_an_unsegmented_slice_is_flagged(lidc, tmp_path):
    from PIL import Image

    folder = tmp_path / "whole"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(40, 200, (64, 64)).astype(np.uint8)).save(folder / "0.png")
    assert_flagged(lidc["bundle"].predict(folder), "non-zero pixels", "segmented")


def test_an_mr_slice_through_the_real_ct_path_is_flagged(lidc, tmp_path):
    from medlearn.imaging.io.any_volume import read_volume

    path = Path(shutil.copy(require_data("imaging/dicom/MR_small.dcm"), tmp_path / "MR_small.dcm"))
    volume = read_volume(path)
    centre = ",".join(f"{v:.3f}" for v in volume.voxel_to_world(0, 32, 32))
    check_both_ways(lidc["bundle"], path, ("the series is MR", "built for CT"), nodule=centre, diameter=20)


# -- EEG: Bonn segments (text, no header: --fs); a flat and a 0.5 s segment ------------------------------------

BONN_FS = 173.61


@pytest.fixture(scope="module")
def eeg(tmp_path_factory) -> dict[str, Any]:
    from medlearn.engine.bundle import load_bundle

    source = require_data("signals/eeg/bonn")
    tmp = tmp_path_factory.mktemp("oos-eeg")
    data = tmp / "bonn"
    with (source / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    chosen = [r for s in "ABCDE" for r in [r for r in rows if r["set"] == s][:12]]
    for row in chosen:
        (data / row["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / row["file"], data / row["file"])
    with (data / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    bundle_dir = _train(
        "eeg_seizure_bonn",
        tmp / "run",
        data=data,
        **{
            "data.split": {"val_fraction": 0.2, "test_fraction": 0.25, "seed": 0},
            "train.epochs": 1,
            "model.params.width": 4,
            "model.params.layers": 2,
        },
    )
    return {"bundle": load_bundle(bundle_dir), "data": data, "test": _test_ids(bundle_dir)}


def test_eeg_test_split_segments_are_not_flagged(eeg):
    assert eeg["test"]
    assert_in_scope(eeg["bundle"].predict([eeg["data"] / f for f in eeg["test"]], fs=BONN_FS))


@pytest.mark.parametrize(
    ("case", "needles"),
    [("flat", ("constant", "flat line")), ("half_second", ("the record is 0.495 s", "23.6 s records"))],
)
def test_a_hostile_eeg_segment_is_flagged_and_refused_when_strict(eeg, tmp_path, case, needles):
    real = np.loadtxt(eeg["data"] / eeg["test"][0])
    signal = np.full(4097, 7.0) if case == "flat" else real[: int(0.5 * BONN_FS)]
    path = tmp_path / f"{case}.txt"
    np.savetxt(path, signal, fmt="%d")
    check_both_ways(eeg["bundle"], path, needles, fs=BONN_FS)


# -- ECG beats (MIT-BIH): a flat record holds no beat, and says so -----------------------------------------------


def test_a_record_without_a_detectable_beat_is_skipped_with_a_reason(tmp_path):
    """ecg_beats predicts per detected beat: a flat record would otherwise return nothing at all."""
    require_module("wfdb")
    from medlearn.registry import task_class

    task = task_class("ecg_beats")()
    path = _write_ecg(tmp_path, "flat", np.full(3600, 0.05), fs=360.0)
    loaded = task.load_inputs([path], task.predict_options())
    assert not loaded.units
    (skipped,) = loaded.skipped
    assert skipped["unit"] == "flat" and "no heartbeat detected in 10 s" in skipped["reason"]


def test_a_nan_input_is_refused_even_without_strict_and_the_others_are_predicted(ct, monkeypatch):
    """No number computed from NaN is a prediction: such a unit is refused whatever ``strict`` says, and
    the other units of the same call are predicted, in order."""
    bundle = ct["bundle"]
    rows = [r for r in ct["rows"] if r["series"] == ct["rows"][0]["series"]]
    original = bundle.preprocessing
    calls = []

    def nan_first(raw: Any) -> np.ndarray:
        array = original(raw)
        calls.append(1)
        return np.full_like(array, np.nan) if len(calls) == 1 else array

    monkeypatch.setattr(bundle, "preprocessing", nan_first)
    path = ct["data"] / rows[0]["series"]
    records = bundle.predict([path, path], nodule=_nodule(rows[0]))
    assert set(records[0]) == REFUSED_KEYS and "NaN/infinite" in records[0]["refused"][-1]
    assert "probability" in records[1] and "out_of_scope" not in records[1]
