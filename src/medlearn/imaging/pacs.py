"""``medlearn pacs``: a study from a PACS over DICOMweb → a nodule prediction → DICOM objects back in the PACS.

1. **Pull** (:func:`pull_study`): QIDO-RS lists the study's series; the CT series (the one named, else the
   one with the most instances) is retrieved with WADO-RS into a temporary folder; the study's TID 1500
   Structured Reports (not medlearn's own predictions) are retrieved too.
2. **Locate** (:func:`locate_nodules`): the nodules are given as for ``medlearn predict``
   (``--annotations LIDC_XML`` or ``--nodule x,y,z --diameter MM``), or read from a TID 1500 measurement
   report stored with the study (:func:`medlearn.imaging.sr.nodule_locations`).
3. **Predict** with the bundle's own preprocessing (:meth:`~medlearn.engine.bundle.Bundle.predict`, the
   records of ``predict --json``), with a Grad-CAM picture per nodule.
4. **Store** (STOW-RS) into the same study: one TID 1500 Comprehensive 3D SR holding every nodule's
   location, probability, threshold and decision and the model's name and version
   (:func:`medlearn.imaging.sr.prediction_sr`), and one Secondary Capture per Grad-CAM picture; both
   carry the study's patient and study modules and reference the CT series (the SR's
   CurrentRequestedProcedureEvidenceSequence, the SC's ReferencedSeriesSequence and SourceImageSequence).

The model's version is the first 12 hex digits of the SHA-256 of the bundle's ``manifest.json`` (what
``medlearn serve`` returns as ``model_version``): a changed weight, preprocessing step or threshold gives
a new version. PACS problems the user can fix (unreachable URL, refused request, unknown study, no CT
series, no nodule) are :class:`~medlearn.errors.InputError` naming the URL and study.

Needs ``pip install "medlearn[imaging]"`` (highdicom, dicomweb-client, pydicom).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.engine.integrity import bundle_version
from medlearn.engine.progress import info
from medlearn.errors import InputError
from medlearn.imaging.sr import (
    MANUFACTURER,
    RESULT_DESCRIPTION,
    SC_SERIES_NUMBER,
    ModelIdentity,
    NoduleLocation,
    is_prediction_sr,
    lidc_marks,
    nearest_image,
    nodule_locations,
    prediction_sr,
)

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
SR_SOP_CLASSES = {
    COMPREHENSIVE_3D_SR,
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
}


def model_version(bundle_dir: Path) -> str:
    """The bundle's version, as ``medlearn serve`` gives it (:func:`medlearn.engine.integrity.bundle_version`)."""
    return bundle_version(bundle_dir)


def model_identity(bundle: Any) -> ModelIdentity:
    """Name (the config name, else the task's), version and ``<model>@<created>`` of a loaded bundle."""
    config = bundle.meta.config if isinstance(bundle.meta.config, dict) else {}
    name = str(config.get("name") or bundle.meta.task.name)
    positive = bundle.class_names[-1] if bundle.class_names else "positive"
    return ModelIdentity(name, model_version(Path(bundle.path)), bundle.model_name, positive)


# -- DICOMweb ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def pacs_errors(url: str, doing: str) -> Iterator[None]:
    """Turn what the network and the PACS say into one :class:`InputError` naming the URL."""
    import requests

    try:
        yield
    except requests.exceptions.HTTPError as exc:
        response = exc.response
        status = "" if response is None else f"HTTP {response.status_code} {response.reason}"
        raise InputError(f"{url}: the PACS answered {status} to {doing}") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise InputError(
            f"{url}: PACS not reachable while {doing} ({type(exc).__name__}); --url is the DICOMweb root, "
            "e.g. http://pacs:8042/dicom-web"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise InputError(f"{url}: {doing} failed ({exc})") from None


def connect(url: str, timeout: float = 60.0) -> Any:
    """A DICOMweb client for ``url`` (the service root, e.g. ``http://pacs:8042/dicom-web``)."""
    from dicomweb_client.api import DICOMwebClient

    try:
        client = DICOMwebClient(url.rstrip("/"), timeout=timeout)
    except ValueError as exc:
        raise InputError(
            f"--url {url}: not a DICOMweb URL ({exc}); e.g. http://pacs:8042/dicom-web"
        ) from None
    # dicomweb-client retries a refused connection as well as a busy server (429/503/504): 3 attempts,
    # 1 s then 2 s apart, so an unreachable PACS is said within seconds (its default waits 30 s)
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=500)
    return client


@dataclass
class PulledStudy:
    """A study's CT series on disk (and its headers) and the TID 1500 reports stored with it."""

    url: str
    study_uid: str
    series_uid: str
    folder: Path
    images: list[Any]
    """The CT series' datasets without pixel data, in slice order of retrieval."""
    reports: list[Any] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.url}/studies/{self.study_uid}/series/{self.series_uid}"


_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def check_uid(uid: str, option: str) -> str:
    """A DICOM UID (digits and dots, at most 64 characters): anything else is an InputError, never a path
    segment of a DICOMweb URL."""
    if not (isinstance(uid, str) and len(uid) <= 64 and _UID.fullmatch(uid)):
        raise InputError(f"{option} {uid!r}: not a DICOM UID (digits and dots, at most 64 characters)")
    return uid


def _tag(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


def pull_study(
    client: Any, url: str, study_uid: str, dest: Path, series_uid: str | None = None
) -> PulledStudy:
    """Retrieve the CT series of a study (``series_uid``, else the largest CT series) into ``dest`` and the
    study's TID 1500 reports (medlearn's own predictions left out).

    Raises:
        InputError: the PACS is unreachable or refuses, the study is unknown, it has no CT series, or the
            series named is not in it.
    """
    with pacs_errors(url, f"searching the series of study {study_uid}"):
        found = client.search_for_series(study_instance_uid=study_uid)
    if not found:
        raise InputError(f"study {study_uid} is not on the PACS at {url} (QIDO-RS found no series)")
    series = [
        {
            "uid": _tag(s, "0020000E"),
            "modality": _tag(s, "00080060").upper(),
            "n": int(_tag(s, "00201209") or 0),
            "description": _tag(s, "0008103E"),
        }
        for s in found
    ]
    cts = [s for s in series if s["modality"] == "CT"]
    if series_uid is not None:
        chosen = [s for s in series if s["uid"] == series_uid]
        if not chosen:
            raise InputError(f"--series {series_uid}: not in study {study_uid} on {url}")
        if chosen[0]["modality"] != "CT":
            raise InputError(f"--series {series_uid}: a {chosen[0]['modality']} series, not CT")
        ct = chosen[0]
    elif not cts:
        kinds = ", ".join(sorted({s["modality"] or "?" for s in series}))
        raise InputError(f"study {study_uid} on {url} has no CT series (its series: {kinds})")
    else:
        ct = max(cts, key=lambda s: s["n"])
        if len(cts) > 1:
            info(
                f"study {study_uid} has {len(cts)} CT series; using the largest, {ct['uid']} (--series to choose)"
            )
    folder = dest / "ct"
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    with pacs_errors(url, f"retrieving series {ct['uid']} of study {study_uid}"):
        for i, ds in enumerate(client.iter_series(study_uid, ct["uid"])):
            ds.save_as(folder / f"{i:05d}.dcm")
            if "PixelData" in ds:
                del ds.PixelData
            images.append(ds)
    if not images:
        raise InputError(f"series {ct['uid']} of study {study_uid} on {url}: WADO-RS returned no instance")
    reports = []
    for s in series:
        if s["modality"] != "SR" or s["description"].startswith(RESULT_DESCRIPTION):
            continue
        with pacs_errors(url, f"retrieving SR series {s['uid']} of study {study_uid}"):
            for ds in client.iter_series(study_uid, s["uid"]):
                if str(ds.get("SOPClassUID", "")) in SR_SOP_CLASSES and not is_prediction_sr(ds):
                    reports.append(ds)
    return PulledStudy(url, study_uid, ct["uid"], folder, images, reports)


# -- nodules and predictions ------------------------------------------------------------------------


def _takes(bundle: Any) -> set[str]:
    options = bundle.task.PredictOptions
    if options is None:
        return set()
    return {f.alias or name for name, f in options.model_fields.items()}


def check_nodule_options(
    annotations: Path | None, nodule: str | Sequence[float] | None, diameter: float | None
) -> tuple[float, float, float] | None:
    """The one way the nodules are given, and the ``--nodule`` point (patient mm) when it is that one."""
    from medlearn.imaging.tasks.common import parse_xyz_mm

    if annotations is not None and nodule is not None:
        raise InputError("give --annotations or --nodule, not both")
    if diameter is not None and nodule is None:
        raise InputError("--diameter applies with --nodule x,y,z only")
    if nodule is None:
        return None
    try:
        return parse_xyz_mm(nodule)
    except ValueError as exc:
        raise InputError(f"--nodule: {exc}") from None


def locate_nodules(
    pulled: PulledStudy,
    annotations: Path | None = None,
    nodule: str | Sequence[float] | None = None,
    diameter: float | None = None,
) -> tuple[list[NoduleLocation], str]:
    """Where the nodules are, and where that came from (``"annotations"``, ``"nodule"`` or ``"sr <uid>"``):
    the LIDC XML's reader marks touching the series, the point given, or the nodule regions of the TID 1500
    reports stored with the study.

    Raises:
        InputError: both ways given, a malformed point, or no nodule found anywhere.
    """
    point = check_nodule_options(annotations, nodule, diameter)
    if annotations is not None:
        marks = lidc_marks(Path(annotations), pulled.images)
        if not marks:
            raise InputError(f"{annotations}: no reader mark (>= 3 mm) touches series {pulled.series_uid}")
        return marks, "annotations"
    if point is not None:
        return [NoduleLocation(",".join(f"{v:g}" for v in point), point, diameter, "--nodule")], "nodule"
    for report in pulled.reports:
        found = nodule_locations(report, pulled.images)
        if found:
            return found, f"sr {report.SOPInstanceUID}"
    raise InputError(
        f"study {pulled.study_uid} on {pulled.url}: no nodule given and no TID 1500 report with a nodule "
        f"region on CT series {pulled.series_uid}; pass --annotations LIDC_XML or --nodule x,y,z --diameter MM"
    )


def predict_nodules(
    bundle: Any,
    pulled: PulledStudy,
    locations: list[NoduleLocation],
    source: str,
    annotations: Path | None,
    pictures: Path | None,
) -> list[tuple[dict[str, Any], NoduleLocation | None, Path | None]]:
    """One prediction record per nodule (``Bundle.predict`` on the series), with its location and its
    Grad-CAM picture (none without ``pictures``). A task that takes the LIDC XML itself (contour masks)
    gets it; otherwise each nodule is predicted at its centre (with its diameter where the task takes
    one). A nodule a report or XML names that cannot be predicted (outside the series, no diameter) is a
    skipped record, not an error."""
    takes = _takes(bundle)
    results: list[tuple[dict[str, Any], NoduleLocation | None, Path | None]] = []
    if annotations is not None and "annotations" in takes:
        records = bundle.predict(pulled.folder, out_dir=pictures, annotations=annotations)
        for record in records:
            unit = str(record.get("unit") or record.get("skipped", {}).get("unit", ""))
            location = next((loc for loc in locations if unit.endswith("/" + loc.label)), None)
            results.append((record, location, _picture(pictures, record)))
        return results
    for i, location in enumerate(locations):
        out = None if pictures is None else pictures / str(i)
        if out is not None:
            out.mkdir(parents=True)
        options: dict[str, Any] = {"nodule": location.center_mm}
        if "diameter" in takes:
            options["diameter"] = location.diameter_mm
        try:
            records = bundle.predict(pulled.folder, out_dir=out, **options)
        except InputError as exc:
            reason = str(exc).replace(str(pulled.folder), pulled.where)  # not the temporary folder
            if source == "nodule":
                raise InputError(reason) from None
            records = [
                {
                    "input": pulled.where,
                    "model": bundle.model_name,
                    "skipped": {"input": pulled.where, "unit": location.label, "reason": reason},
                }
            ]
        for record in records:
            results.append((record, location, _picture(out, record)))
    return results


def _keep_pictures(results: list[tuple[dict[str, Any], Any, Path | None]], out: Path) -> None:
    """Copy each record's Grad-CAM picture into ``out`` (a name taken twice gets ``-2``, ``-3``…)."""
    import shutil

    for record, _, png in results:
        if png is None:
            continue
        name, n = png.name, 1
        while (out / name).exists():
            n += 1
            name = f"{png.stem}-{n}{png.suffix}"
        shutil.copyfile(png, out / name)
        record["explanation"] = name


def _picture(folder: Path | None, record: dict[str, Any]) -> Path | None:
    name = record.get("explanation")
    path = folder / name if folder is not None and isinstance(name, str) else None
    return path if path is not None and path.is_file() else None


# -- DICOM objects ----------------------------------------------------------------------------------


def secondary_capture(
    png: Path,
    location: NoduleLocation,
    images: Sequence[Any],
    series_uid: str,
    instance_number: int,
    identity: ModelIdentity,
    record: dict[str, Any],
) -> Any:
    """A Secondary Capture (RGB) of a Grad-CAM picture in the CT's study: patient and study copied from the
    slice nearest the nodule (its SourceImageSequence), the whole CT series in ReferencedSeriesSequence."""
    import highdicom as hd
    from PIL import Image
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian

    with Image.open(png) as im:
        pixels = np.asarray(im.convert("RGB"))
    ref = nearest_image(images, location.center_mm)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=pixels,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid,
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        patient_orientation=("L", "P"),
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    sc.SeriesDescription = f"medlearn Grad-CAM {identity.name} {identity.version}"[:64]
    sc.ManufacturerModelName = identity.name[:64]
    sc.SoftwareVersions = identity.version
    sc.BurnedInAnnotation = "YES"  # the picture's title names the unit and the prediction
    label, probability = record.get("label", ""), record.get("probability")
    shown = f"{label} p={probability:.3f}" if isinstance(probability, float) else str(label)
    sc.ImageComments = f"Grad-CAM of {identity.name} {identity.version} at {location.label}: {shown}"[:10240]
    sc.DerivationDescription = (
        f"Grad-CAM overlay of {identity.model} (version {identity.version}) on the CT around the nodule"
    )[:1024]
    source = Dataset()
    source.ReferencedSOPClassUID = ref.SOPClassUID
    source.ReferencedSOPInstanceUID = ref.SOPInstanceUID
    sc.SourceImageSequence = [source]
    sc.ReferencedSeriesSequence = [_referenced_series(images)]
    return sc


def _referenced_series(images: Sequence[Any]) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.SeriesInstanceUID = images[0].SeriesInstanceUID
    instances = []
    for ds in images:
        ref = Dataset()
        ref.ReferencedSOPClassUID = ds.SOPClassUID
        ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        instances.append(ref)
    item.ReferencedInstanceSequence = instances
    return item


def store(client: Any, url: str, study_uid: str, datasets: Sequence[Any]) -> None:
    """STOW-RS ``datasets`` into the study; a PACS that refuses any of them is an InputError."""
    with pacs_errors(url, f"storing {len(datasets)} object(s) into study {study_uid}"):
        response = client.store_instances(datasets=list(datasets), study_instance_uid=study_uid)
    failed = response.get("FailedSOPSequence") if response is not None else None
    if failed:
        reasons = sorted({str(item.get("FailureReason", "?")) for item in failed})
        raise InputError(
            f"{url}: the PACS refused {len(failed)} object(s) (failure reason {', '.join(reasons)})"
        )


# -- the command ------------------------------------------------------------------------------------


def pacs_predict(
    bundle: Any,
    url: str,
    study_uid: str,
    annotations: Path | str | None = None,
    nodule: str | Sequence[float] | None = None,
    diameter: float | None = None,
    series_uid: str | None = None,
    explain: bool = True,
    out: Path | None = None,
) -> list[dict[str, Any]]:
    """``medlearn pacs`` as a function: pull ``study_uid`` from the DICOMweb service at ``url``, predict every
    nodule with ``bundle`` (a loaded :class:`~medlearn.engine.bundle.Bundle`) and store the SR and the
    Grad-CAM Secondary Captures back into the study.

    Args:
        bundle: a loaded bundle of a binary CT-nodule task (``ct_nodule_malignancy``,
            ``lung_nodule_malignancy``).
        url: the DICOMweb root (``http://pacs:8042/dicom-web``).
        study_uid: the StudyInstanceUID.
        annotations: an LIDC XML of the series (reader marks).
        nodule: one nodule centre ``"x,y,z"`` (patient mm), with ``diameter`` (mm) where the task needs one.
        series_uid: the CT series (default: the study's largest CT series).
        explain: store a Grad-CAM Secondary Capture per nodule.
        out: an existing folder to keep the Grad-CAM pictures in too (named in each record's
            ``explanation``, as ``predict --out``); without it they live only in the PACS.

    Returns:
        The prediction records of ``predict --json`` (``input`` is the series' DICOMweb address), each
        with ``model_version`` and, when stored, ``pacs``: the study, the source series, the SR's
        SOPInstanceUID and the nodule's Secondary Capture's (``sc``).

    Raises:
        InputError: see :func:`pull_study` and :func:`locate_nodules`; a bundle whose predictions are not
            binary; a PACS that refuses to store.
    """
    if bundle.kind != "binary":
        raise InputError(
            f"{bundle.path}: the PACS report holds binary nodule predictions; this is a {bundle.kind} model"
        )
    check_uid(study_uid, "--study")
    if series_uid is not None:
        check_uid(series_uid, "--series")
    annotations = None if annotations is None else Path(annotations)
    if annotations is not None and not annotations.is_file():
        raise InputError(f"--annotations {annotations}: file does not exist")
    check_nodule_options(annotations, nodule, diameter)  # said before the study is pulled
    client = connect(url)
    with tempfile.TemporaryDirectory(prefix="medlearn-pacs-") as tmp:
        pulled = pull_study(client, url, study_uid, Path(tmp), series_uid)
        info(f"pulled {len(pulled.images)} CT images of series {pulled.series_uid} from {url}")
        return predict_and_store(
            bundle, client, pulled, Path(tmp), annotations, nodule, diameter, explain=explain, out=out
        )


def predict_and_store(
    bundle: Any,
    client: Any,
    pulled: PulledStudy,
    workdir: Path,
    annotations: Path | None = None,
    nodule: str | Sequence[float] | None = None,
    diameter: float | None = None,
    explain: bool = True,
    out: Path | None = None,
) -> list[dict[str, Any]]:
    """Locate, predict and store (STOW-RS into ``pulled.url``) for a study already on disk (pulled over
    DICOMweb, or received by the C-STORE listener); ``workdir`` takes the Grad-CAM pictures. Returns the
    records as :func:`pacs_predict`."""
    import highdicom as hd

    identity = model_identity(bundle)
    study_uid, url = pulled.study_uid, pulled.url
    locations, source = locate_nodules(pulled, annotations, nodule, diameter)
    info(f"{len(locations)} nodule(s) from {source}")
    pictures = workdir / "pictures"
    pictures.mkdir(exist_ok=True)
    results = predict_nodules(bundle, pulled, locations, source, annotations, pictures if explain else None)
    predicted = [(r, loc, png) for r, loc, png in results if "probability" in r and loc is not None]
    records = []
    for record, _, _ in results:
        record["input"] = pulled.where
        if isinstance(record.get("skipped"), dict):
            skipped = record["skipped"]
            skipped["input"] = pulled.where
            skipped["reason"] = str(skipped.get("reason", "")).replace(str(pulled.folder), pulled.where)
        if record.get("warnings"):
            record["warnings"] = [
                str(w).replace(str(pulled.folder), pulled.where) for w in record["warnings"]
            ]
        record["model_version"] = identity.version
        record.pop("explanation", None)  # a file in the temporary folder (the SC holds the picture)
        records.append(record)
    if out is not None:
        _keep_pictures(results, Path(out))
    if not predicted:
        info(f"no nodule of study {study_uid} could be predicted; nothing stored")
        return records
    sr = prediction_sr(
        [r for r, _, _ in predicted], [loc for _, loc, _ in predicted], pulled.images, identity
    )
    sc_series = hd.UID()
    objects = [sr]
    for record, location, png in predicted:
        stored = {"study": study_uid, "series": pulled.series_uid, "sr": str(sr.SOPInstanceUID)}
        if png is not None:
            sc = secondary_capture(png, location, pulled.images, sc_series, len(objects), identity, record)
            objects.append(sc)
            stored["sc"] = str(sc.SOPInstanceUID)
        record["pacs"] = stored
    store(client, url, study_uid, objects)
    info(f"stored 1 SR and {len(objects) - 1} Secondary Capture(s) into study {study_uid} on {url}")
    return records
