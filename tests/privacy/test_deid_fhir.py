"""FHIR de-identification on the real Synthea R4 bundles (a folder of 15 patients, their hospitals and
practitioners)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from medlearn.privacy.deid import deidentify
from medlearn.privacy.keys import Keyring
from tests.conftest import require_data

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory):
    source = require_data("ehr/fhir/synthea-r4-bundles")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.glob("*.json")}
    out = tmp_path_factory.mktemp("fhir") / "out"
    run = deidentify(source, out, Keyring(KEY))
    originals = {p.name: json.loads(p.read_text()) for p in sorted(source.glob("*.json"))}
    outputs = {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    return {
        "source": source,
        "out": out,
        "run": run,
        "originals": originals,
        "outputs": outputs,
        "before": before,
    }


def walk(node, key=""):
    """(key, value) for every leaf of a JSON document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v, key)
    else:
        yield key, node


def patient(document):
    return next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Patient")


def originals_identifiers(bundles) -> set[str]:
    """Names, phone numbers, address lines and identifier values of the original patients."""
    found = set()
    for document in bundles["originals"].values():
        if "entry" not in document or not any(
            e["resource"]["resourceType"] == "Patient" for e in document["entry"]
        ):
            continue
        person = patient(document)
        for name in person["name"]:
            found.add(name["family"])
            found.update(name["given"])
        found.update(t["value"] for t in person.get("telecom", []))
        for address in person.get("address", []):
            found.update(address.get("line", []))
        found.update(i["value"] for i in person["identifier"])
    return found


def test_no_name_telecom_address_or_identifier_value_remains(bundles):
    secrets = originals_identifiers(bundles)
    assert len(secrets) > 40
    for name, document in bundles["outputs"].items():
        text = json.dumps(document)
        for secret in secrets:
            assert secret not in text, f"{name}: {secret}"
        for key, _ in walk(document):
            assert key not in ("family", "given", "telecom", "line", "postalCode")
        for entry in document.get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] in ("Patient", "Practitioner", "Organization"):
                assert not {"name", "telecom", "address"} & set(resource), resource["resourceType"]


def test_file_names_do_not_carry_patient_names(bundles):
    secrets = {s.lower() for s in originals_identifiers(bundles) if s.isalpha() and len(s) > 2}
    for name in bundles["outputs"]:
        assert not any(s in name.lower() for s in secrets), name
    assert "hospitalInformation1559319163815.json" in bundles["outputs"]


def test_references_resolve_within_and_across_files(bundles):
    full_urls, typed_ids, identifiers = set(), set(), set()
    for document in bundles["outputs"].values():
        for entry in document.get("entry", []):
            resource = entry["resource"]
            full_urls.add(entry["fullUrl"])
            typed_ids.add(f"{resource['resourceType']}/{resource['id']}")
            for ident in resource.get("identifier", []):
                identifiers.add(
                    f"{resource['resourceType']}?identifier={ident.get('system')}|{ident.get('value')}"
                )
    checked = 0
    for document in bundles["outputs"].values():
        for key, value in walk(document):
            if key != "reference" or value.startswith("#"):
                continue
            assert value in full_urls or value in typed_ids or value in identifiers, value
            checked += 1
    assert checked > 1000


def test_resource_ids_are_new(bundles):
    original_ids = {e["resource"]["id"] for d in bundles["originals"].values() for e in d.get("entry", [])}
    new_ids = {e["resource"]["id"] for d in bundles["outputs"].values() for e in d.get("entry", [])}
    assert len(new_ids) == len(original_ids) and not new_ids & original_ids


def test_dates_shift_by_one_offset_per_patient_keeping_intervals(bundles):
    from medlearn.privacy.fhir_deid import FhirDeidentifier

    new_id = FhirDeidentifier(Keyring(KEY)).new_id
    by_patient = {
        patient(d)["id"]: d
        for d in bundles["outputs"].values()
        if any(e["resource"]["resourceType"] == "Patient" for e in d.get("entry", []))
    }
    offsets = set()
    for original in bundles["originals"].values():
        if not any(e["resource"]["resourceType"] == "Patient" for e in original.get("entry", [])):
            continue
        new = by_patient[new_id(patient(original)["id"])]
        born_before = dt.date.fromisoformat(patient(original)["birthDate"])
        days = (dt.date.fromisoformat(patient(new)["birthDate"]) - born_before).days
        offsets.add(days)
        assert 180 <= abs(days) <= 3650
        periods = 0
        for a, b in zip(original["entry"], new["entry"]):
            start = a["resource"].get("period", {}).get("start")
            if start:
                moved = dt.datetime.fromisoformat(b["resource"]["period"]["start"])
                assert moved - dt.datetime.fromisoformat(start) == dt.timedelta(days=days)  # intervals kept
                periods += 1
        assert periods > 0
    assert len(offsets) > 5  # one per patient, not one for all


def test_narratives_scrubbed_and_input_untouched(bundles):
    for document in bundles["outputs"].values():
        for key, value in walk(document):
            if key == "div":
                assert "Person seed" not in value or "[ID]" in value
    for p in bundles["source"].glob("*.json"):
        assert hashlib.sha256(p.read_bytes()).hexdigest() == bundles["before"][p.name]
    assert bundles["run"].report["counts"]["fhir"] == 17
