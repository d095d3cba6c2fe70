"""The PACS round trip against a real Orthanc: a real LIDC-IDRI CT series and its radiologists' marks (as a
TID 1500 SR) go in over STOW-RS; ``medlearn pacs`` pulls the study, predicts and stores a TID 1500 SR and
Grad-CAM Secondary Captures back; the test reads them out of Orthanc with QIDO-RS/WADO-RS and pydicom.

Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) runs on free loopback ports with a temporary
configuration and storage, and is stopped after the module. Without it the module is skipped, except under
CI=true (``.ci/run`` installs it), where that is a failure.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from medlearn.cli import app
from tests.conftest import require_data, require_module, skip_or_fail_in_ci

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
#: Ports a packaged Orthanc may already hold.
RESERVED_PORTS = {4242, 8042}
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"

runner = CliRunner()


def invoke(*args: Any):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


# -- a real Orthanc ---------------------------------------------------------------------------------


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS | taken:
            return port


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _start_orthanc(folder: Path) -> tuple[subprocess.Popen, int]:
    """Orthanc on two free loopback ports with its storage in ``folder``; tries new ports if one was taken
    between choosing it and Orthanc binding it."""
    for attempt in range(3):
        http = _free_port(set())
        dicom = _free_port({http})
        storage = folder / f"storage{attempt}"
        config = {
            "Name": "medlearn-test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": http,
            "DicomPort": dicom,
            "DicomAet": "MEDLEARNTEST",
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpProxy": "",
            "HttpThreadsCount": 4,
            "ConcurrentJobs": 1,
            "SaveJobs": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": "127.0.0.1"},
        }
        path = folder / f"orthanc{attempt}.json"
        path.write_text(json.dumps(config, indent=2))
        log = (folder / f"orthanc{attempt}.log").open("w")
        proc = subprocess.Popen([str(ORTHANC), str(path)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers(f"http://127.0.0.1:{http}/system"):
                return proc, http
            time.sleep(0.2)
        if proc.poll() is None:  # up but silent for a minute: give up
            proc.terminate()
            proc.wait(timeout=20)
            break
    tail = (folder / f"orthanc{attempt}.log").read_text()[-2000:]
    pytest.fail(f"Orthanc did not answer on loopback; its log ends with:\n{tail}")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The DICOMweb root of a fresh Orthanc, stopped (terminate, wait) after the module."""
    if not ORTHANC.is_file() or not DICOMWEB_PLUGIN.exists():
        skip_or_fail_in_ci(
            f"Orthanc is not installed ({ORTHANC}, {DICOMWEB_PLUGIN}): apt-get install orthanc orthanc-dicomweb"
        )
    for module in ("highdicom", "dicomweb_client"):
        require_module(module)
    proc, port = _start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield f"http://127.0.0.1:{port}/dicom-web"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests honours *_PROXY variables; the PACS under test is on loopback."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


# -- the study: the smallest real LIDC series with a nodule, and its marks as a TID 1500 SR ----------


def _smallest_marked_series() -> tuple[Path, Path, list[Any]]:
    """The LIDC-IDRI series folder (fewest slices) whose XML has a reader mark on its slices, the XML and
    the slices' headers."""
    import pydicom

    from medlearn.imaging.sr import lidc_marks

    root = require_data("imaging/lidc-idri-dicom-c2c")
    candidates = []
    for xml in sorted(root.glob("LIDC-IDRI-*/*/*/*.xml")):
        files = sorted(xml.parent.glob("*.dcm"))
        images = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        if lidc_marks(xml, images):
            candidates.append((len(files), xml.parent, xml, images))
    assert candidates, f"{root}: no LIDC series with a reader mark on its slices"
    _, folder, xml, images = min(candidates, key=lambda c: c[0])
    return folder, xml, images


@pytest.fixture(scope="module")
def study(orthanc: str) -> dict[str, Any]:
    """The CT series stored over STOW-RS, then the TID 1500 SR of its LIDC marks."""
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    from medlearn.imaging.sr import lidc_marks_sr

    folder, xml, images = _smallest_marked_series()
    client = DICOMwebClient(orthanc)
    response = client.store_instances([pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))])
    assert not response.get("FailedSOPSequence")
    marks = lidc_marks_sr(xml, images)
    assert not client.store_instances([marks]).get("FailedSOPSequence")
    return {
        "url": orthanc,
        "client": client,
        "folder": folder,
        "xml": xml,
        "images": images,
        "study": str(images[0].StudyInstanceUID),
        "series": str(images[0].SeriesInstanceUID),
        "marks": marks,
    }


@pytest.fixture(scope="module")
def ct_bundle(tmp_path_factory: pytest.TempPathFactory, study: dict[str, Any]) -> Path:
    """An untrained ct_nodule_malignancy CNN (16-voxel cube) saved as a real bundle: the round trip
    tests the plumbing, not what the model learned."""
    from medlearn.engine.artifacts import save_bundle
    from medlearn.engine.data import Preprocessing
    from medlearn.engine.models import build_model
    from medlearn.imaging.sr import lidc_marks
    from medlearn.registry import task_class
    from tests.engine.minimal_meta import meta_for_task

    task = task_class("ct_nodule_malignancy")({"cube_px": 16})
    model, kwargs = build_model("cnn3d", {}, task.model_kwargs("cnn3d"))
    pre = Preprocessing(task.preprocessing_spec("cnn3d"))
    center = lidc_marks(study["xml"], study["images"])[0].center_mm
    unit = task.load_inputs([study["folder"]], task.predict_options(nodule=center)).units[0]
    meta = meta_for_task(task, "cnn3d", kwargs)
    meta.preprocessing = pre.spec
    meta.input_shape = list(np.shape(pre(unit.raw)))
    return save_bundle(tmp_path_factory.mktemp("ct") / "bundle", model.eval(), meta)


# -- reading what Orthanc holds ---------------------------------------------------------------------


def _stored(study: dict[str, Any], sop_class: str) -> list[Any]:
    """Every instance of ``sop_class`` in the study (QIDO-RS, then WADO-RS), re-read from its bytes by
    pydicom."""
    import pydicom

    client = study["client"]
    found = []
    for item in client.search_for_instances(study_instance_uid=study["study"]):
        head = pydicom.Dataset.from_json(item)
        if str(head.SOPClassUID) != sop_class:
            continue
        ds = client.retrieve_instance(study["study"], head.SeriesInstanceUID, head.SOPInstanceUID)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        found.append(pydicom.dcmread(io.BytesIO(buffer.getvalue())))
    return found


def _one_by_uid(datasets: list[Any], uid: str) -> Any:
    (ds,) = [d for d in datasets if str(d.SOPInstanceUID) == uid]
    return ds


def _text_values(sr: Any, concept: str) -> list[str]:
    """TEXT / UIDREF values of every content item (at any depth) whose concept name is ``concept``."""
    out = []

    def walk(items: Any) -> None:
        for item in items:
            name = item.get("ConceptNameCodeSequence")
            if name and str(name[0].CodeMeaning) == concept:
                out.append(str(item.get("TextValue", item.get("UID", ""))))
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return out


def _references_source(ds: Any, study: dict[str, Any]) -> None:
    """Same study and patient as the CT; its series listed with every one of its instances."""
    ct = study["images"][0]
    assert str(ds.StudyInstanceUID) == study["study"]
    assert (ds.PatientID, str(ds.StudyDate)) == (ct.PatientID, str(ct.StudyDate))
    assert str(ds.SeriesInstanceUID) != study["series"]


def _version(bundle: Path) -> str:
    return hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()[:12]


# -- the round trip ---------------------------------------------------------------------------------


def test_pacs_round_trip_reads_the_marks_sr_and_stores_an_sr_and_secondary_captures(
    study, ct_bundle, tmp_path
):
    import highdicom as hd
    from PIL import Image
    from pydicom.sr.codedict import codes

    from medlearn.imaging.sr import lidc_marks, nodule_locations

    started = time.monotonic()
    result = invoke(
        "pacs",
        ct_bundle,
        "--url",
        study["url"],
        "--study",
        study["study"],
        "--out",
        tmp_path / "pics",
        "--json",
    )
    seconds = time.monotonic() - started
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    marks = lidc_marks(study["xml"], study["images"])
    predicted = [r for r in records if "probability" in r]
    # every reader mark on the series came back from the stored SR and was predicted
    assert len(predicted) == len(marks) >= 1, records
    version = _version(ct_bundle)
    where = f"{study['url']}/studies/{study['study']}/series/{study['series']}"
    for r in predicted:
        assert r["model_version"] == version and r["input"] == where
        assert set(r["pacs"]) == {"study", "series", "sr", "sc"} and r["pacs"]["study"] == study["study"]
    (sr_uid,) = {r["pacs"]["sr"] for r in predicted}

    # the SR: in Orthanc, readable by pydicom, in the study, referencing every CT instance as evidence
    sr = _one_by_uid(_stored(study, COMPREHENSIVE_3D_SR), sr_uid)
    _references_source(sr, study)
    (evidence,) = sr.CurrentRequestedProcedureEvidenceSequence
    (series,) = evidence.ReferencedSeriesSequence
    assert str(series.SeriesInstanceUID) == study["series"]
    assert {str(i.ReferencedSOPInstanceUID) for i in series.ReferencedSOPSequence} == {
        str(ds.SOPInstanceUID) for ds in study["images"]
    }
    # the model's name and version, as the algorithm and as the device observer
    assert version in _text_values(sr, "Algorithm Version")
    assert "ct_nodule_malignancy" in _text_values(sr, "Algorithm Name")
    assert version in _text_values(sr, "Device Observer Serial Number")
    # per nodule: its location on a source image, the record's probability, threshold and decision
    report = hd.sr.srread(io.BytesIO(_bytes(sr))).content
    groups = {g.tracking_identifier: g for g in report.get_planar_roi_measurement_groups()}
    assert set(groups) == {r["unit"] for r in predicted}
    sources = {str(ds.SOPInstanceUID) for ds in study["images"]}
    for r in predicted:
        group = groups[r["unit"]]
        (probability,) = group.get_measurements(name=codes.DCM.ProbabilityOfCancer)
        assert float(probability.value) == pytest.approx(r["probability"], abs=1e-6)
        (threshold,) = group.get_measurements(name=codes.DCM.ThresholdValue)
        assert float(threshold.value) == pytest.approx(r["threshold"])
        (decision,) = group.get_qualitative_evaluations(name=codes.SCT.Classification)
        expected = codes.SCT.Malignant if r["label"] == "malignant" else codes.SCT.Benign
        assert decision.value == expected
        referenced = group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert str(referenced) in sources
    # the locations read back from the result SR are the marks' centres (to within a pixel)
    back = {loc.label: loc for loc in nodule_locations(sr, study["images"])}
    for r, mark in zip(predicted, marks):
        assert np.allclose(back[r["unit"]].center_mm, mark.center_mm, atol=1.0)

    # the Secondary Captures: one per nodule, the Grad-CAM pictures' pixels, referencing the CT series
    scs = _stored(study, SC_STORAGE)
    for r in predicted:
        sc = _one_by_uid(scs, r["pacs"]["sc"])
        _references_source(sc, study)
        (ref_series,) = sc.ReferencedSeriesSequence
        assert str(ref_series.SeriesInstanceUID) == study["series"]
        assert len(ref_series.ReferencedInstanceSequence) == len(study["images"])
        assert str(sc.SourceImageSequence[0].ReferencedSOPInstanceUID) in sources
        with Image.open(tmp_path / "pics" / r["explanation"]) as im:
            overlay = np.asarray(im.convert("RGB"))
        assert sc.PhotometricInterpretation == "RGB"
        assert np.array_equal(sc.pixel_array, overlay)
        assert version in sc.SeriesDescription
    print(f"PACS round trip ({len(predicted)} nodules): {seconds:.1f} s")


def _bytes(ds: Any) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lidc_bundle(tmp_path_factory: pytest.TempPathFactory, study: dict[str, Any]) -> Path:
    """An untrained reader-mark model (lung_nodule_malignancy, the seed CNN) named like its shipped config:
    this task takes the LIDC XML itself (contour masks)."""
    from medlearn.engine.artifacts import save_bundle
    from medlearn.engine.data import Preprocessing
    from medlearn.engine.models import build_model
    from medlearn.registry import task_class
    from tests.engine.minimal_meta import meta_for_task

    task = task_class("lung_nodule_malignancy")({})
    model, kwargs = build_model("seed_cnn", {}, task.model_kwargs("seed_cnn"))
    pre = Preprocessing(task.preprocessing_spec("seed_cnn"))
    unit = task.load_inputs([study["folder"]], task.predict_options(annotations=study["xml"])).units[0]
    meta = meta_for_task(task, "seed_cnn", kwargs)
    meta.preprocessing = pre.spec
    meta.input_shape = list(np.shape(pre(unit.raw)))
    meta.config = {"name": "lung_nodule_seed_cnn"}
    return save_bundle(tmp_path_factory.mktemp("lidc") / "bundle", model.eval(), meta)


def test_annotations_go_to_a_task_that_reads_the_lidc_xml(study, lidc_bundle):
    """--annotations: the reader-mark model predicts each mark from its contours (as ``predict``); the SR
    names the model by its config name and every mark's group carries the record's probability."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medlearn.engine.bundle import load_bundle

    result = invoke(
        "pacs",
        lidc_bundle,
        "--url",
        study["url"],
        "--study",
        study["study"],
        "--annotations",
        study["xml"],
        "--json",
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    direct = load_bundle(lidc_bundle).predict(study["folder"], annotations=study["xml"])
    # the same units and probabilities as `predict` on the series folder with the same XML
    assert {r["unit"]: r["probability"] for r in records if "probability" in r} == {
        r["unit"]: r["probability"] for r in direct if "probability" in r
    }
    predicted = [r for r in records if "probability" in r]
    assert predicted and all("sc" in r["pacs"] for r in predicted)
    sr = _one_by_uid(_stored(study, COMPREHENSIVE_3D_SR), predicted[0]["pacs"]["sr"])
    assert "lung_nodule_seed_cnn" in _text_values(sr, "Algorithm Name")
    report = hd.sr.srread(io.BytesIO(_bytes(sr))).content
    groups = {g.tracking_identifier: g for g in report.get_planar_roi_measurement_groups()}
    for r in predicted:
        (probability,) = groups[r["unit"]].get_measurements(name=codes.DCM.ProbabilityOfCancer)
        assert float(probability.value) == pytest.approx(r["probability"], abs=1e-6)


def test_a_nodule_given_by_hand_is_a_circle_of_its_diameter_and_no_picture_without_explain(study, ct_bundle):
    import highdicom as hd

    from medlearn.imaging.sr import lidc_marks

    mark = lidc_marks(study["xml"], study["images"])[0]
    point = ",".join(f"{v:.2f}" for v in mark.center_mm)
    result = invoke(
        "pacs", ct_bundle, "--url", study["url"], "--study", study["study"], "--series", study["series"],
        "--nodule", point, "--diameter", "12", "--no-explain", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert "sc" not in record["pacs"] and "explanation" not in record
    sr = _one_by_uid(_stored(study, COMPREHENSIVE_3D_SR), record["pacs"]["sr"])
    (group,) = hd.sr.srread(io.BytesIO(_bytes(sr))).content.get_planar_roi_measurement_groups()
    assert group.roi.graphic_type == hd.sr.GraphicTypeValues.CIRCLE
    center, edge = np.asarray(group.roi.value, dtype=float)
    ref = _one_by_uid(
        study["images"], str(group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
    )
    assert np.linalg.norm(edge - center) * float(ref.PixelSpacing[1]) == pytest.approx(6.0, abs=0.01)


# -- errors the user can fix: one line naming the URL or UID, exit code 2 ---------------------------


def _one_error_line(result: Any, *needles: str) -> None:
    """Under --quiet, stderr is the error alone: one line."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_an_unreachable_pacs_is_one_line_naming_the_url(ct_bundle):
    url = f"http://127.0.0.1:{_free_port(set())}/dicom-web"  # nothing listens there
    started = time.monotonic()
    result = invoke("pacs", ct_bundle, "--url", url, "--study", "1.2.3", "--quiet")
    assert time.monotonic() - started < 20  # a few retries, not dicomweb-client's 30 s of them
    _one_error_line(result, url, "not reachable")


def test_an_unknown_study_is_one_line_naming_it(study, ct_bundle):
    result = invoke(
        "pacs", ct_bundle, "--url", study["url"], "--study", "1.2.826.0.1.3680043.10.511.999", "--quiet"
    )
    _one_error_line(result, study["url"], "1.2.826.0.1.3680043.10.511.999")


def test_a_study_without_ct_is_one_line_naming_it(study, ct_bundle):
    import pydicom

    mr = pydicom.dcmread(require_data("imaging/dicom/MR_small.dcm"))
    assert not study["client"].store_instances([mr]).get("FailedSOPSequence")
    result = invoke("pacs", ct_bundle, "--url", study["url"], "--study", mr.StudyInstanceUID, "--quiet")
    _one_error_line(result, str(mr.StudyInstanceUID), "no CT series", "MR")


def test_a_study_without_nodule_or_report_says_how_to_give_one(study, ct_bundle, tmp_path):
    """The CT alone (another copy of the series under new UIDs, without the marks' SR)."""
    import pydicom
    from pydicom.uid import generate_uid

    study_uid, series_uid = generate_uid(), generate_uid()
    copies = []
    for f in sorted(study["folder"].glob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        copies.append(ds)
    assert not study["client"].store_instances(copies).get("FailedSOPSequence")
    result = invoke("pacs", ct_bundle, "--url", study["url"], "--study", study_uid, "--quiet")
    _one_error_line(result, study_uid, "--annotations", "--nodule")


def test_prediction_reports_are_never_read_back_as_nodules(study, ct_bundle, tmp_path):
    """After a prediction SR is stored (every nodule in it), the study's nodules are still the readers'
    marks: medlearn's own reports are not input."""
    from medlearn.imaging.pacs import connect, locate_nodules, pull_study
    from medlearn.imaging.sr import lidc_marks

    invoke("pacs", ct_bundle, "--url", study["url"], "--study", study["study"], "--no-explain", "--quiet")
    reports = _stored(study, COMPREHENSIVE_3D_SR)
    assert len(reports) >= 2  # the marks and at least one prediction report
    pulled = pull_study(connect(study["url"]), study["url"], study["study"], tmp_path)
    assert [str(r.SOPInstanceUID) for r in pulled.reports] == [str(study["marks"].SOPInstanceUID)]
    locations, source = locate_nodules(pulled)
    assert source == f"sr {study['marks'].SOPInstanceUID}"
    assert [loc.label for loc in locations] == [m.label for m in lidc_marks(study["xml"], study["images"])]


# -- the DICOM node: Orthanc pushes a study (C-STORE), medlearn predicts and stores back -----------


def _orthanc_rest(study: dict[str, Any], method: str, path: str, body: Any) -> Any:
    base = study["url"].removesuffix("/dicom-web")
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=120) as response:
        return json.loads(response.read() or b"null")


def test_a_study_sent_to_the_listener_is_predicted_and_stored_back(study, ct_bundle):
    require_module("pynetdicom")
    from medlearn.engine.bundle import load_bundle
    from medlearn.imaging.listener import StudyListener
    from medlearn.imaging.sr import lidc_marks

    port = _free_port(set())
    listener = StudyListener(load_bundle(ct_bundle), study["url"], port=port, settle=1.0, explain=False)
    listener.start()
    try:
        # the PACS learns the node at run time and pushes the study to it, as it would to any AI node
        _orthanc_rest(
            study, "PUT", "/modalities/medlearn", {"AET": "MEDLEARN", "Host": "127.0.0.1", "Port": port}
        )
        (found,) = _orthanc_rest(study, "POST", "/tools/lookup", study["study"])
        _orthanc_rest(
            study, "POST", "/modalities/medlearn/store", {"Resources": [found["ID"]], "Synchronous": True}
        )
        deadline = time.monotonic() + 120
        while not listener.results and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        listener.stop()
    ((uid, records, error),) = listener.results
    assert (uid, error) == (study["study"], None)
    predicted = [r for r in records if "probability" in r]
    # the nodules came from the marks' report sent with the study, not from medlearn's earlier reports
    assert len(predicted) == len(lidc_marks(study["xml"], study["images"]))
    assert all("sc" not in r["pacs"] for r in predicted)  # explain=False
    (sr_uid,) = {r["pacs"]["sr"] for r in predicted}
    sr = _one_by_uid(_stored(study, COMPREHENSIVE_3D_SR), sr_uid)
    _references_source(sr, study)
