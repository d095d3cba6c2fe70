"""The real service (uvicorn on loopback) answers every modality's natural input with the records of
``medlearn predict --json`` plus ``model_version``, and keeps the errors in ``{"error": ...}`` bodies."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import require_data, require_module
from tests.serve.conftest import CT, ECG, ECG_KEY, EHR, LiveServer

TONY = "Tony_Beer_bb8cd3e5-8910-4eea-bbc6-3f64a4a655b8.json"


def local(bundle_dir: Path, inputs: list[Path], **options) -> list[dict]:
    """What medlearn predict --json gives for the same files (input names aside)."""
    from medlearn.engine.bundle import load_bundle

    return load_bundle(bundle_dir).predict(inputs, **options)


def without_input(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("input", "model_version")} for r in records]


def test_health_needs_no_key_and_lists_the_models(served):
    response = httpx.get(f"{served.url}/health")
    assert response.status_code == 200
    assert response.json()["models"] == sorted([CT, ECG, EHR])


def test_models_give_identity_metrics_with_cis_and_operating_point(client, bundles):
    from medlearn.engine.bundle import load_bundle

    listed = {m["name"]: m for m in client.get("/models").json()}
    assert set(listed) == {CT, ECG, EHR}
    manifest = hashlib.sha256((bundles.ecg / "manifest.json").read_bytes()).hexdigest()
    ecg = listed[ECG]
    assert ecg["version"] == manifest[:12] and re.fullmatch(r"[0-9a-f]{12}", ecg["version"])
    assert ecg["task"] == "ecg_af" and ecg["kind"] == "multiclass"
    assert ecg["class_names"] == load_bundle(bundles.ecg).class_names
    assert ecg["metrics"]["split"] == "test" and "value" in ecg["metrics"]["metrics"]["challenge_f1"]
    assert "ci95" in ecg["metrics"]["metrics"]["challenge_f1"]
    assert {o["name"] for o in ecg["predict_options"]} == {"fs"}
    ct = listed[CT]
    assert ct["operating_point"]["chosen_on"] == "val" and 0 <= ct["operating_point"]["threshold"] <= 1
    assert listed[EHR]["unit"] == "admission"
    # a key limited to one model sees that model only
    only = httpx.get(f"{client.base_url}/models", headers={"X-API-Key": ECG_KEY}).json()
    assert [m["name"] for m in only] == [ECG]


def test_model_card_is_markdown(client, bundles):
    response = client.get(f"/models/{ECG}/card")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert response.text == (bundles.ecg / "model_card.md").read_text()


def test_a_real_wfdb_record_upload_predicts_as_the_bundle_does(client, bundles):
    folder = require_data("signals/cinc2017")
    files = [("files", (p.name, p.read_bytes())) for p in (folder / "A00003.hea", folder / "A00003.mat")]
    response = client.post(f"/predict/{ECG}", files=files)
    assert response.status_code == 200, response.text
    records = response.json()  # a 60 s record: one unit per 20 s window of this model
    assert [r["unit"] for r in records] == ["A00003@0s", "A00003@20s", "A00003@40s"]
    version = client.get("/models").json()[1]["version"]
    for record in records:
        assert record["input"] == "A00003.hea" and record["model_version"] == version
        assert record["label"] in record["probabilities"]
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert without_input(records) == without_input(local(bundles.ecg, [folder / "A00003.hea"]))


def test_json_samples_with_their_rate_predict_like_the_same_samples_in_a_file(client, bundles, tmp_path):
    import wfdb

    record = wfdb.rdrecord(str(bundles.ecg_data / "S00001"))
    samples = record.p_signal[:, 0].round(6).tolist()
    response = client.post(f"/predict/{ECG}", json={"fs": record.fs, "samples": samples})
    assert response.status_code == 200, response.text
    (served,) = response.json()
    assert served["input"] == "samples" and served["details"]["channels"] == ["ch0"]
    from scipy.io import savemat

    savemat(tmp_path / "samples.mat", {"ecg": np.asarray(samples)})
    assert without_input([served]) == without_input(
        local(bundles.ecg, [tmp_path / "samples.mat"], fs=record.fs)
    )
    # the label agrees with the WFDB record itself (the posted values are the record's, rounded)
    assert served["label"] == local(bundles.ecg, [bundles.ecg_data / "S00001.hea"])[0]["label"]


def ongoing_inpatient() -> dict:
    """Synthea's only inpatient stay, made an ongoing admission of a living patient (as tests/ehr do)."""
    data = json.loads((require_data("ehr/fhir/synthea-r4-bundles") / TONY).read_text())
    for entry in data["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource.pop("deceasedDateTime", None)
        if resource["resourceType"] == "Encounter" and resource["class"]["code"] == "IMP":
            resource["period"].pop("end")
    return data


def test_a_fhir_bundle_gets_a_length_of_stay_prediction(client, served):
    bundle = ongoing_inpatient()
    body = json.dumps(bundle).encode()
    response = client.post(f"/predict/{EHR}", content=body, headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 200, response.text
    (record,) = response.json()
    assert record["label"] in record["probabilities"] and record["input"] == "patient.json"
    assert any("unknown to this model" in w for w in record["warnings"])
    line = json.loads(served.audit_log.read_text().splitlines()[-1])
    assert line["input_sha256"] == hashlib.sha256(body).hexdigest()
    assert line["output"] == [{"label": record["label"], "probabilities": record["probabilities"]}]
    text = json.dumps(line)
    patient_id, admission = record["unit"].split("/")
    for private in (patient_id, admission, record["details"]["prediction_time"], "patient.json", "Tony"):
        assert private not in text


def test_a_dicom_series_with_nodule_coordinates_and_a_gradcam(client, bundles):
    files = [("files", (p.name, p.read_bytes())) for p in sorted(bundles.ct_data.iterdir())]
    response = client.post(f"/predict/{CT}?explain=true", files=files, data={"nodule": bundles.ct_nodule})
    assert response.status_code == 200, response.text
    (record,) = response.json()
    expected = local(bundles.ct, [bundles.ct_data], nodule=bundles.ct_nodule)[0]
    assert record["probability"] == expected["probability"] and record["label"] == expected["label"]
    assert record["explanation"].endswith("_gradcam.png")
    assert base64.b64decode(record["explanation_png"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_zipped_real_lidc_series(client):
    series = next(require_data("imaging/lidc-idri-dicom-c2c/LIDC-IDRI-0001").glob("*/*"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(series.iterdir()):
            archive.write(path, f"LIDC-IDRI-0001/{path.name}")
    response = client.post(
        f"/predict/{CT}",
        files={"files": ("study.zip", buffer.getvalue(), "application/zip")},
        data={"nodule": "55.52,85.56,-116.12"},
    )
    assert response.status_code == 200, response.text
    (record,) = response.json()
    assert record["input"] == "study" and 0 <= record["probability"] <= 1


@pytest.mark.parametrize(
    "name, problem",
    [("../../evil.txt", "points outside the archive"), ("/etc/evil", "points outside the archive")],
)
def test_a_zip_entry_outside_the_archive_is_refused(client, name, problem):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, "x")
    response = client.post(
        f"/predict/{CT}", files={"files": ("a.zip", buffer.getvalue())}, data={"nodule": "1,2,3"}
    )
    assert response.status_code == 422
    assert problem in response.json()["error"]


def test_a_zip_bomb_is_refused_while_extracting(bundles, models, tmp_path):
    from medlearn.serve.app import ServeSettings, create_app
    from medlearn.serve.inputs import UploadLimits
    from tests.serve.conftest import LiveServer

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.dcm", b"\0" * 2_000_000)  # ~2 kB compressed
    settings = ServeSettings(upload_limits=UploadLimits(max_unzipped_bytes=1_000_000))
    with LiveServer(create_app(models, settings)) as server:
        response = httpx.post(
            f"{server.url}/predict/{CT}",
            files={"files": ("bomb.zip", buffer.getvalue())},
            data={"nodule": "1,2,3"},
        )
    assert response.status_code == 422
    assert response.json() == {"error": "bomb.zip: more than 1 MB when extracted"}


def test_an_unknown_option_is_422_naming_it(client, bundles):
    hea = bundles.ecg_data / "S00001.hea"
    files = [("files", (p.name, p.read_bytes())) for p in (hea, hea.with_suffix(".dat"))]
    response = client.post(f"/predict/{ECG}?colour=red", files=files)
    assert response.status_code == 422
    assert set(response.json()) == {"error"} and "colour" in response.json()["error"]
    response = client.post(f"/predict/{CT}", files=files[:1], data={"diameter": "10", "nodule": "1,2,3"})
    assert response.status_code == 422 and "--diameter does not apply" in response.json()["error"]


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, "does not parse"),
        ({"json": {"samples": [1, 2, 3]}}, "fs: required"),
        ({"json": {"fs": 300, "samples": [1, "x"]}}, "samples: expected numbers"),
        ({"json": {"fs": 300, "samples": [1, None, 3]}}, "samples: sample 1 is not a finite number"),
        ({"json": {"fs": -3, "samples": [0.1] * 600}}, "fs"),
        ({"json": {"hello": 1}}, "FHIR R4 Bundle"),
        ({"content": b"abc", "headers": {"Content-Type": "text/plain"}}, "unsupported Content-Type"),
        ({"files": {"files": ("x.hea", b"garbage header")}}, "x.hea"),
        (
            {"content": b"--x--", "headers": {"Content-Type": "multipart/form-data"}},
            "multipart body does not parse",
        ),
        (
            {"content": b"--xyz--\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}},
            "no input file",
        ),
    ],
)
def test_malformed_input_is_422_naming_the_problem(client, kwargs, problem):
    response = client.post(f"/predict/{ECG}", **kwargs)
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"error"} and problem in response.json()["error"]
    assert "/tmp" not in response.json()["error"]  # the request's temporary folder is not shown


def test_fastapi_validation_and_unknown_routes_keep_the_error_body(client):
    response = client.post(f"/predict/{ECG}?explain=maybe", json={"fs": 300, "samples": [0.0] * 10})
    assert response.status_code == 422 and response.json()["error"].startswith("query.explain:")
    response = client.post("/predict/no_such_model", json={})
    assert response.status_code == 404 and "no model 'no_such_model'" in response.json()["error"]
    assert client.get("/nowhere").json() == {"error": "no route GET /nowhere"}


def test_an_ecg_prediction_explains_itself_on_request(client, bundles):
    """``explain=true`` on an ECG model: integrated gradients drawn on the strip, as a PNG in the record."""
    import base64

    import wfdb

    record = wfdb.rdrecord(str(bundles.ecg_data / "S00001"))
    body = {"fs": record.fs, "samples": record.p_signal[:, 0].round(5).tolist()}
    (served,) = client.post(f"/predict/{ECG}?explain=true", json=body).json()
    assert served["explanation"].endswith("_integrated_gradients.png")
    png = base64.b64decode(served["explanation_png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    (plain,) = client.post(f"/predict/{ECG}", json=body).json()
    assert plain["probabilities"] == served["probabilities"] and "explanation_png" not in plain


def test_keys_401_without_or_with_a_bad_key_and_403_for_another_model(served, bundles):
    body = {"fs": 300, "samples": [0.0] * 3000}
    assert httpx.get(f"{served.url}/models").status_code == 401
    response = httpx.post(f"{served.url}/predict/{ECG}", json=body)
    assert response.status_code == 401 and response.json() == {
        "error": "missing API key: send it in the X-API-Key header"
    }
    bad = httpx.post(f"{served.url}/predict/{ECG}", json=body, headers={"X-API-Key": "guess"})
    assert bad.status_code == 401 and bad.json() == {"error": "invalid API key (X-API-Key)"}
    other = httpx.post(f"{served.url}/predict/{CT}", json=body, headers={"X-API-Key": ECG_KEY})
    assert other.status_code == 403 and other.json() == {
        "error": f"API key 'ecg-ward' may not use model '{CT}'"
    }
    card = httpx.get(f"{served.url}/models/{EHR}/card", headers={"X-API-Key": ECG_KEY})
    assert card.status_code == 403
    # without a key, nothing tells which models exist: 401 before 404
    assert httpx.post(f"{served.url}/predict/no_such_model", json=body).status_code == 401
    ok = httpx.post(f"{served.url}/predict/{ECG}", json=body, headers={"X-API-Key": ECG_KEY})
    assert ok.status_code == 200
    lines = [json.loads(line) for line in served.audit_log.read_text().splitlines()]
    assert {"key_id": None, "status": 401} in [{k: x[k] for k in ("key_id", "status")} for x in lines]
    assert any(x["key_id"] == "ecg-ward" and x["status"] == 403 and x["model"] == CT for x in lines)


def test_the_audit_log_holds_hashes_and_labels_never_names_or_ids(served, client):
    folder = require_data("signals/cinc2017")
    contents = [(folder / "A00003.hea").read_bytes(), (folder / "A00003.mat").read_bytes()]
    files = [("files", ("A00003.hea", contents[0])), ("files", ("A00003.mat", contents[1]))]
    records = client.post(f"/predict/{ECG}", files=files).json()
    line = json.loads(served.audit_log.read_text().splitlines()[-1])
    assert set(line) == {
        "time",
        "key_id",
        "endpoint",
        "model",
        "model_version",
        "input_sha256",
        "status",
        "output",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line["time"])
    assert line["key_id"] == "everything" and line["model"] == ECG and line["status"] == 200
    assert line["model_version"] == records[0]["model_version"]
    assert line["input_sha256"] == hashlib.sha256(b"".join(contents)).hexdigest()
    assert line["output"] == [{"label": r["label"], "probabilities": r["probabilities"]} for r in records]
    assert "A00003" not in served.audit_log.read_text()
    assert "samples.mat" not in served.audit_log.read_text()


def test_cors_is_off_by_default(client):
    response = client.get("/health", headers={"Origin": "https://viewer.example.org"})
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options(
        f"/predict/{ECG}",
        headers={"Origin": "https://viewer.example.org", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_concurrent_requests_get_the_answers_of_sequential_ones(client, bundles):
    """Predictions share a model across request threads; a Grad-CAM explanation (which hooks the model's
    layers) runs alone: answers under concurrency equal the sequential ones."""
    from concurrent.futures import ThreadPoolExecutor

    ecg = [{"fs": 300, "samples": list(np.sin(np.arange(3000) * f / 300.0) * 0.5)} for f in (3, 7, 11, 13)]
    ct_files = [("files", (p.name, p.read_bytes())) for p in sorted(bundles.ct_data.iterdir())]

    def ask(i: int) -> dict:
        if i % 3 == 2:
            response = client.post(
                f"/predict/{CT}?explain=true", files=ct_files, data={"nodule": bundles.ct_nodule}
            )
            record = response.json()[0]
            return {k: record[k] for k in ("probability", "explanation_png")}
        return client.post(f"/predict/{ECG}", json=ecg[i % 4]).json()[0]["probabilities"]

    sequential = [ask(i) for i in range(12)]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(ask, range(12)))
    assert concurrent == sequential


def test_shared_lock_lets_readers_share_and_writers_wait():
    import threading

    from medlearn.serve.models import SharedLock

    lock = SharedLock()
    inside = threading.Barrier(4, timeout=10)  # 3 readers + this test: all readers hold the lock at once
    release, written = threading.Event(), threading.Event()

    def reader() -> None:
        with lock.shared():
            inside.wait()
            release.wait(10)

    def writer() -> None:
        with lock.exclusive():
            written.set()

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    inside.wait()  # would raise BrokenBarrierError if the readers excluded each other
    exclusive = threading.Thread(target=writer)
    exclusive.start()
    assert not written.wait(0.2)  # the writer waits while readers hold the lock
    release.set()
    assert written.wait(10)  # and gets it once they are done
    for t in [*readers, exclusive]:
        t.join(10)


def test_an_option_naming_a_file_must_be_an_upload_not_a_server_path(tmp_path):
    from medlearn.errors import InputError
    from medlearn.registry import task_class
    from medlearn.serve.inputs import PreparedInput, refuse_server_paths

    options = task_class("lung_nodule_malignancy").PredictOptions
    as_text = PreparedInput(tmp_path, [], options={"annotations": "/etc/passwd", "reader": "1"})
    with pytest.raises(InputError, match="annotations: upload the file as a multipart file field"):
        refuse_server_paths(as_text, options)
    uploaded = PreparedInput(tmp_path, [], options={"annotations": str(tmp_path / "069.xml")})
    uploaded.file_options.add("annotations")
    refuse_server_paths(uploaded, options)  # an uploaded file is fine


def test_accept_fhir_answers_a_risk_assessment_bundle_and_406_where_there_is_none(client, bundles):
    require_module("fhir.resources")
    body = json.dumps(ongoing_inpatient()).encode()
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    response = client.post(f"/predict/{EHR}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    fhir = response.json()
    assert fhir["resourceType"] == "Bundle"
    [entry] = fhir["entry"]
    assessment = entry["resource"]
    assert assessment["resourceType"] == "RiskAssessment" and assessment["subject"]["reference"].startswith(
        "Patient/"
    )
    assert len(assessment["prediction"]) == 10  # one per length-of-stay bin
    ecg = client.post(
        f"/predict/{ECG}",
        files=[("files", ("S00001.hea", (bundles.ecg_data / "S00001.hea").read_bytes()))],
        headers={"Accept": "application/fhir+json"},
    )
    assert ecg.status_code in (406, 422) and "error" in ecg.json()


def test_the_onnx_runtime_serves_the_same_predictions(bundles, tmp_path):
    from medlearn.engine.export import export_onnx
    from medlearn.serve.app import ServeSettings, create_app
    from medlearn.serve.models import load_models

    export_onnx(bundles.ehr)
    torch_models = load_models([bundles.ehr])
    onnx_models = load_models([bundles.ehr], runtime="onnx")
    assert next(iter(onnx_models.values())).bundle.model is None  # onnxruntime, no torch module
    body = json.dumps(ongoing_inpatient()).encode()
    answers = []
    for models in (torch_models, onnx_models):
        with LiveServer(create_app(models, ServeSettings())) as server:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                answer = c.post(
                    f"/predict/{EHR}", content=body, headers={"Content-Type": "application/fhir+json"}
                )
                assert answer.status_code == 200, answer.text
                answers.append(answer.json()[0])
    assert answers[0]["label"] == answers[1]["label"]
    for name, p in answers[0]["probabilities"].items():
        assert answers[1]["probabilities"][name] == pytest.approx(p, abs=1e-4)
