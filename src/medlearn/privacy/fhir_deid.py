"""De-identify FHIR R4 JSON (a Bundle or a single resource), consistently across files with one key.

- **Ids and references**: every resource ``id``, ``fullUrl`` (``urn:uuid:``), ``reference`` (``urn:uuid:X``,
  ``Type/id``, conditional ``Type?identifier=system|value``) and transaction ``request.url`` /
  ``ifNoneExist`` is rewritten with keyed pseudonyms (UUID-shaped), so a reference still resolves within
  a bundle and across the files of a folder (Synthea's patient bundles point at Organizations and
  Practitioners in other files by identifier). Local ``#contained`` references are kept.
- **Identifiers**: ``identifier[].value`` replaced by its keyed pseudonym (system and type kept, so an
  MRN is still recognisable as an MRN); SSNs, passports and licences are thus gone.
- **Direct identifiers dropped**: ``name``, ``telecom``, ``address``, ``photo`` and ``contact`` of Patient,
  Practitioner, RelatedPerson, Person, Organization and Location; extensions carrying an address, a human
  name or a contact point (``patient-birthPlace``, ``patient-mothersMaidenName``); ``display`` texts of
  references (they repeat names).
- **Dates**: every ``date``/``dateTime``/``instant``/``Period`` value moves by the patient's keyed offset in
  whole days (the patient of a resource: itself, its ``subject``/``patient``/``beneficiary`` reference, or
  the single Patient of its bundle), so intervals and ages at events are kept.
- **Free text**: narratives (``text.div``, markup kept), ``note[].text``, ``comment``, ``description``,
  ``patientInstruction`` and text attachments (base64 ``data`` with a ``text/*`` content type) are scrubbed
  with :class:`~medlearn.privacy.text_scrub.TextScrubber`, which also removes the names, telecom values,
  address parts and identifier values found in the same document. Non-text attachment data (PDF, images)
  is dropped: it cannot be scrubbed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from typing import Any

from medlearn.privacy.keys import Keyring
from medlearn.privacy.text_scrub import TextScrubber

PERSON_LIKE = frozenset({"Patient", "Practitioner", "RelatedPerson", "Person", "Organization", "Location"})
DROP_KEYS = ("name", "telecom", "address", "photo", "contact")
PATIENT_REFERENCE_KEYS = ("subject", "patient", "beneficiary")
FREE_TEXT_KEYS = frozenset({"comment", "description", "patientInstruction"})
_IDENTIFYING_VALUE_TYPES = ("valueAddress", "valueHumanName", "valueContactPoint")

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_FULL_DATE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})((?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)$"
)
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")
_DATE_KEYS = re.compile(r"(date|time|start|end|issued|recorded|authoredOn|created|lastUpdated|period)", re.I)
_TYPE_ID = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/.*)?$")


def shift_fhir_date(value: str, days: int, key: str) -> str | None:
    """Shift a FHIR date/dateTime/instant string by whole ``days``; None when ``value`` is not a date.
    Year or year-month values (only under date-like keys) move to the year/month the shift lands in."""
    import datetime as dt

    match = _FULL_DATE.match(value)
    if match:
        year, month, day, rest = match.groups()
        try:
            moved = dt.date(int(year), int(month), int(day)) + dt.timedelta(days=days)
        except (ValueError, OverflowError):
            return None
        return moved.isoformat() + rest
    match = _PARTIAL_DATE.match(value)
    if match and _DATE_KEYS.search(key):
        year, month = match.groups()
        try:
            moved = dt.date(int(year), int(month or 7), 15 if month else 1) + dt.timedelta(days=days)
        except (ValueError, OverflowError):
            return None
        return f"{moved.year:04d}-{moved.month:02d}" if month else f"{moved.year:04d}"
    return None


class FhirDeidentifier:
    """De-identify FHIR documents with one key (see the module docstring).

    Args:
        keys: the keyed replacements; the same key gives the same ids, references and offsets in every file.
    """

    def __init__(self, keys: Keyring):
        self.keys = keys

    # -- keyed replacements -------------------------------------------------------------------------
    def new_id(self, original: str) -> str:
        """A resource id's pseudonym (UUID-shaped; the same original id always gets the same one)."""
        return self.keys.pseudonym_uuid(
            "fhir-id", original.lower() if _UUID.fullmatch(original) else original
        )

    def identifier_value(self, value: str) -> str:
        """An identifier value's pseudonym: a UUID for a UUID (Synthea's ids double as identifiers)."""
        if _UUID.fullmatch(value):
            return self.new_id(value)
        return "P" + self.keys.token("fhir-identifier", value, 16)

    def reference(self, ref: str) -> str:
        """Rewrite one reference (``urn:uuid:``, ``Type/id``, ``Type?identifier=system|value``, URLs)."""
        if ref.startswith("#"):
            return ref
        if ref.startswith("urn:uuid:"):
            return "urn:uuid:" + self.new_id(ref[len("urn:uuid:") :])
        if "?" in ref:
            path, query = ref.split("?", 1)
            return path + "?" + self.query(query)
        match = _TYPE_ID.match(ref)
        if match:
            return f"{match.group(1)}/{self.new_id(match.group(2))}"
        if "/" in ref:  # an absolute URL: .../Type/id
            head, _, tail = ref.rstrip("/").rpartition("/")
            return f"{head}/{self.new_id(tail)}" if head else ref
        return ref

    def query(self, query: str) -> str:
        """``identifier=system|value`` (and ``_id=``) parameters of a conditional reference or request."""
        parts = []
        for part in query.split("&"):
            name, _, value = part.partition("=")
            if name == "identifier" and value:
                system, bar, ident = value.rpartition("|")
                value = (
                    f"{system}{bar}{self.identifier_value(ident)}" if bar else self.identifier_value(value)
                )
            elif name == "_id" and value:
                value = self.new_id(value)
            parts.append(f"{name}={value}" if _ or value else name)
        return "&".join(parts)

    # -- documents -----------------------------------------------------------------------------------
    def __call__(self, document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """De-identify one JSON document (not modified); returns the new document and the report entry."""
        import copy

        doc = copy.deepcopy(document)
        resources = resources_of(doc)
        patients = [r for r in resources if r.get("resourceType") == "Patient" and r.get("id")]
        default_patient = patients[0]["id"] if len(patients) == 1 else None
        scrubber = TextScrubber(known_identifiers(resources))
        counts: Counter[str] = Counter()
        if doc.get("resourceType") == "Bundle":
            for entry in doc.get("entry", []) or []:
                if isinstance(entry.get("fullUrl"), str):
                    entry["fullUrl"] = self.reference(entry["fullUrl"])
                request = entry.get("request")
                if isinstance(request, dict):
                    if isinstance(request.get("url"), str):
                        request["url"] = self.reference(request["url"])
                    if isinstance(request.get("ifNoneExist"), str):
                        request["ifNoneExist"] = self.query(request["ifNoneExist"])
            if doc.get("id"):
                doc["id"] = self.new_id(str(doc["id"]))
        for resource in resources:
            patient = _patient_of(resource) or default_patient
            days = self.keys.day_offset("fhir", patient or "unattributed")
            self._resource(resource, days, scrubber, counts)
        report = {
            "resources": dict(Counter(r.get("resourceType", "?") for r in resources)),
            "patients": len(patients),
            **dict(sorted(counts.items())),
        }
        return doc, report

    def _resource(
        self, resource: dict[str, Any], days: int, scrubber: TextScrubber, counts: Counter[str]
    ) -> None:
        kind = resource.get("resourceType")
        if kind in PERSON_LIKE:
            for key in DROP_KEYS:
                if key in resource:
                    del resource[key]
                    counts[f"{key}_removed"] += 1
        if resource.get("id"):
            resource["id"] = self.new_id(str(resource["id"]))
            counts["ids_replaced"] += 1
        for contained in resource.get("contained", []) or []:
            if isinstance(contained, dict):
                contained_id = contained.get("id")
                self._resource(contained, days, scrubber, counts)
                if contained_id is not None:
                    contained["id"] = contained_id  # local ids (#referral) are not identifying; keep links
        self._walk(resource, days, scrubber, counts, skip=("contained",))

    def _walk(
        self, node: Any, days: int, scrubber: TextScrubber, counts: Counter[str], skip: tuple[str, ...] = ()
    ) -> Any:
        if isinstance(node, list):
            return [self._walk(item, days, scrubber, counts) for item in node]
        if not isinstance(node, dict):
            return node
        if "extension" in node and isinstance(node["extension"], list):
            kept = [e for e in node["extension"] if not _identifying_extension(e)]
            counts["extensions_removed"] += len(node["extension"]) - len(kept)
            node["extension"] = kept
        if isinstance(node.get("reference"), str):
            node["reference"] = self.reference(node["reference"])
            counts["references_rewritten"] += 1
            if "display" in node:
                del node["display"]
        if isinstance(node.get("div"), str):
            node["div"] = _scrub_markup(node["div"], scrubber)
            counts["narratives_scrubbed"] += 1
        if "contentType" in node and isinstance(node.get("data"), str):
            self._attachment(node, scrubber, counts)
        for key, value in list(node.items()):
            if key in skip or key in ("reference", "div", "id", "resourceType", "data"):
                continue
            if key == "identifier":
                node[key] = [self._identifier(i, counts) for i in value] if isinstance(value, list) else value
            elif key == "note" and isinstance(value, list):
                for note in value:
                    if isinstance(note, dict):
                        note.pop("authorString", None)
                        if isinstance(note.get("text"), str):
                            note["text"] = scrubber(note["text"])
                            counts["notes_scrubbed"] += 1
            elif isinstance(value, str):
                shifted = shift_fhir_date(value, days, key)
                if shifted is not None:
                    node[key] = shifted
                    counts["dates_shifted"] += 1
                elif key in FREE_TEXT_KEYS:
                    node[key] = scrubber(value)
            else:
                node[key] = self._walk(value, days, scrubber, counts)
        return node

    def _identifier(self, identifier: Any, counts: Counter[str]) -> Any:
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            identifier["value"] = self.identifier_value(identifier["value"])
            identifier.pop("assigner", None)
            counts["identifiers_replaced"] += 1
        return identifier

    def _attachment(self, node: dict[str, Any], scrubber: TextScrubber, counts: Counter[str]) -> None:
        content_type = str(node.get("contentType", ""))
        if content_type.startswith("text/"):
            try:
                text = base64.b64decode(node["data"], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                text = None
            if text is not None:
                node["data"] = base64.b64encode(scrubber(text).encode("utf-8")).decode("ascii")
                counts["attachments_scrubbed"] += 1
                return
        del node["data"]  # binary or undecodable content cannot be scrubbed: drop it
        node.pop("hash", None)
        node.pop("size", None)
        counts["attachments_dropped"] += 1


def resources_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("resourceType") == "Bundle":
        return [e["resource"] for e in doc.get("entry", []) or [] if isinstance(e.get("resource"), dict)]
    return [doc]


def _reference_id(ref: str) -> str | None:
    if ref.startswith("urn:uuid:"):
        return ref[len("urn:uuid:") :]
    match = _TYPE_ID.match(ref)
    return match.group(2) if match and match.group(1) == "Patient" else None


def _patient_of(resource: dict[str, Any]) -> str | None:
    """The original id of the patient a resource is about (before ids are rewritten)."""
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id")) if resource.get("id") else None
    for key in PATIENT_REFERENCE_KEYS:
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            found = _reference_id(ref["reference"])
            if found:
                return found
    return None


def _identifying_extension(extension: Any) -> bool:
    if not isinstance(extension, dict):
        return False
    url = str(extension.get("url", ""))
    return url.endswith(("patient-mothersMaidenName", "patient-birthPlace")) or any(
        key in extension for key in _IDENTIFYING_VALUE_TYPES
    )


def known_identifiers(resources: list[dict[str, Any]]) -> set[str]:
    """Names, telecom values, address parts and identifier values in the document, to scrub from text."""
    known: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                collect(item)
        elif isinstance(node, dict):
            for key in ("family", "text", "value", "city", "postalCode"):
                if isinstance(node.get(key), str) and key != "text":
                    known.add(node[key])
            for key in ("given", "prefix", "line"):
                if isinstance(node.get(key), list):
                    known.update(v for v in node[key] if isinstance(v, str) and key != "prefix")
            for value in node.values():
                collect(value)

    for resource in resources:
        if resource.get("resourceType") in PERSON_LIKE:
            for key in ("name", "telecom", "address", "contact", "identifier"):
                collect(resource.get(key))
            for extension in resource.get("extension", []) or []:
                if _identifying_extension(extension):
                    collect(extension)
                    if isinstance(extension.get("valueString"), str):
                        known.add(extension["valueString"])
        # digits-stripped Synthea names ("Bill102") also appear without their digits
    known |= {re.sub(r"\d+$", "", k) for k in known if re.search(r"[A-Za-z]{2,}\d+$", k)}
    return {k for k in known if len(k.strip()) >= 2}


def _scrub_markup(div: str, scrubber: TextScrubber) -> str:
    """Scrub the text between the tags of an XHTML narrative, keeping the markup."""
    parts = re.split(r"(<[^>]*>)", div)
    return "".join(p if p.startswith("<") else scrubber(p) for p in parts)
