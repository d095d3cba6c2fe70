"""Uploads → the files :meth:`~medlearn.engine.bundle.Bundle.predict` reads, plus its options.

A request's files are written to a private temporary folder (deleted after the request) under their base
names reduced to ``[A-Za-z0-9._-]``, so no name can reach outside it:

- multipart field ``files`` (or ``file``), repeatable: the inputs. DICOM files (``.dcm``, or the ``DICM``
  preamble) form one series folder; a WFDB record is its ``.hea`` plus the ``.dat``/``.mat`` beside it; any
  other file (NIfTI, ``.npz``, EDF, MAT, a FHIR Bundle ``.json``...) is an input of its own. A ``.zip`` is
  extracted into a folder of its own (no absolute paths, no ``..``, no links, at most ``max_entries``
  members and ``max_unzipped_bytes`` in all, counted while extracting) and read the same way.
- any other multipart **file** field is an option that takes a file, e.g. ``annotations`` (an LIDC XML);
- multipart **text** fields and query parameters are options named like the CLI flags (``nodule``,
  ``diameter``, ``reader``, ``series``, ``fs``), validated by the bundle's task: one it does not take is a
  422 naming it.

A JSON body is either a signal segment ``{"fs": 300, "samples": [...]}`` (one channel, or one row of
channels per sample; other keys are options), kept in memory and predicted as a header-less file of the
same samples would be (:meth:`~medlearn.engine.predictor.Predictor.predict_samples`: no file is written,
which at hundreds of requests per second is a large share of the work), or a FHIR R4 ``Bundle``
resource, written as ``patient.json``.

The temporary folder itself is made only when a request needs one (:class:`ScratchFolder`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from medlearn.errors import InputError

#: Multipart fields that hold the inputs themselves.
INPUT_FIELDS = ("files", "file")
#: Query parameters the service reads itself (not predict options).
RESERVED = frozenset({"explain", "strict"})
_DICOM_SUFFIXES = {".dcm", ".dicom", ".ima"}
_CHUNK = 1 << 20


class ScratchFolder:
    """A request's private temporary folder, made on first use of :attr:`path` and removed by
    :meth:`close`: a signal posted as JSON never touches the disk."""

    def __init__(self) -> None:
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix="medlearn-serve-"))
        return self._path

    def shown(self, text: str) -> str:
        """``text`` with the folder cut out (see :func:`shown`)."""
        return text if self._path is None else shown(text, self._path)

    def close(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None


@dataclass
class PreparedInput:
    """What a request asks to predict: input paths in ``root`` (or ``samples`` in memory, with their
    rate among the options), predict options, the input's SHA-256."""

    root: Path | None
    paths: list[Path]
    options: dict[str, Any] = field(default_factory=dict)
    #: options whose value is an uploaded file (saved in ``root``), e.g. ``annotations``
    file_options: set[str] = field(default_factory=set)
    digest: Any = field(default_factory=hashlib.sha256, repr=False)
    n_files: int = 0
    #: a signal posted as JSON, ``(n_samples, n_channels)``; ``paths`` is then empty
    samples: np.ndarray | None = None

    @property
    def sha256(self) -> str:
        """SHA-256 over the uploaded bytes in upload order (or the JSON body); names are not part of it."""
        return self.digest.hexdigest()

    def shown(self, text: str) -> str:
        """``text`` with the temporary folder cut out (the uploaded names remain)."""
        return text if self.root is None else shown(text, self.root)


def shown(text: str, root: Path) -> str:
    """``text`` (a record's input, an error message) with the request's temporary folder ``root`` cut out."""
    return text.replace(f"{root}/input/", "").replace(f"{root}/", "").replace(str(root), "")


@dataclass(frozen=True)
class UploadLimits:
    max_unzipped_bytes: int = 512 * 1024 * 1024
    max_entries: int = 5000
    max_samples: int = 10_000_000


def safe_name(name: str | None, fallback: str = "upload") -> str:
    """A client's file name as a plain base name: no folder, no leading dot, only ``[A-Za-z0-9._-]``."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".")
    return base[:200] or fallback


def _is_dicom(name: str, head: bytes) -> bool:
    return Path(name).suffix.lower() in _DICOM_SUFFIXES or head[128:132] == b"DICM"


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(132)


def _unique(folder: Path, name: str) -> Path:
    path = folder / name
    if path.exists():
        raise InputError(f"two uploaded files are named {name!r}")
    return path


def extract_zip(data_path: Path, folder: Path, limits: UploadLimits, shown: str) -> Path:
    """Extract ``data_path`` into ``folder`` safely; returns ``folder``."""
    try:
        archive = zipfile.ZipFile(data_path)
    except zipfile.BadZipFile:
        raise InputError(f"{shown}: not a readable zip file") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_entries:
            raise InputError(f"{shown}: {len(members)} entries; at most {limits.max_entries} are accepted")
        total = 0
        for member in members:
            name = member.filename.replace("\\", "/")
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise InputError(f"{shown}: entry {member.filename!r} points outside the archive")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise InputError(f"{shown}: entry {member.filename!r} is a symbolic link")
            if member.is_dir() or not parts:
                continue
            target = folder.joinpath(*[safe_name(p) for p in parts])
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as dst:
                for block in iter(lambda src=src: src.read(_CHUNK), b""):
                    total += len(block)
                    if total > limits.max_unzipped_bytes:
                        raise InputError(
                            f"{shown}: more than {limits.max_unzipped_bytes / 1e6:g} MB when extracted"
                        )
                    dst.write(block)
    return folder


def _record_inputs(files: list[Path]) -> list[Path]:
    """Inputs among plain files: each ``.hea`` (its record's other files ride along) and every file that
    is not part of a WFDB record."""
    headers = {p.with_suffix("") for p in files if p.suffix.lower() == ".hea"}
    inputs = sorted(p for p in files if p.suffix.lower() == ".hea")
    inputs += [p for p in files if p.suffix.lower() != ".hea" and p.with_suffix("") not in headers]
    return inputs


def folder_inputs(folder: Path) -> list[Path]:
    """The inputs in an extracted archive: the folder when it holds DICOM files (a series, perhaps with its
    LIDC XML beside it, as LIDC folders are), else its WFDB records and other files."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise InputError(f"{folder.name}: the archive holds no files")
    if any(_is_dicom(p.name, _head(p)) for p in files):  # a series (the DICOM reader skips other files)
        return [folder]
    return _record_inputs(files) if len(files) > 1 else files


async def from_multipart(form: Any, query: dict[str, str], root: Path, limits: UploadLimits) -> PreparedInput:
    """Save a multipart form's files under ``root/input`` and collect its options (see the module)."""
    inputs_dir, series_dir, options_dir = root / "input", root / "input" / "series", root / "options"
    inputs_dir.mkdir(parents=True)
    prepared = PreparedInput(root, [], options=_query_options(query))
    plain: list[Path] = []
    archives: list[Path] = []
    for key, value in form.multi_items():
        if isinstance(value, str):
            if value.strip() != "" and key not in RESERVED:
                prepared.options[key] = value
            continue
        name = safe_name(value.filename)
        data_path = root / f".upload-{prepared.n_files}"
        prepared.n_files += 1
        head = b""
        with open(data_path, "wb") as dst:
            await value.seek(0)
            while block := await value.read(_CHUNK):
                head = head or block[:132]
                prepared.digest.update(block)
                dst.write(block)
        if key not in INPUT_FIELDS:  # a file-valued option (e.g. annotations)
            (options_dir / safe_name(key)).mkdir(parents=True, exist_ok=True)
            target = _unique(options_dir / safe_name(key), name)
            shutil.move(data_path, target)
            prepared.options[key] = str(target)
            prepared.file_options.add(key)
        elif name.lower().endswith(".zip"):
            folder = _unique(inputs_dir, Path(name).stem or "archive")
            archives.append(extract_zip(data_path, folder, limits, name))
            data_path.unlink()
        elif _is_dicom(name, head):
            series_dir.mkdir(exist_ok=True)
            shutil.move(data_path, _unique(series_dir, name))
        else:
            target = _unique(inputs_dir, name)
            shutil.move(data_path, target)
            plain.append(target)
    if series_dir.is_dir():
        prepared.paths.append(series_dir)
    prepared.paths += _record_inputs(plain)
    for folder in archives:
        prepared.paths += folder_inputs(folder)
    if not prepared.paths:
        raise InputError(
            "no input file: upload the input as multipart field 'files' (a DICOM series, NIfTI/npz, an ECG "
            "record, a FHIR Bundle...) or send a JSON body"
        )
    return prepared


def _query_options(query: dict[str, str]) -> dict[str, Any]:
    return {k: v for k, v in query.items() if k not in RESERVED and v.strip() != ""}


def from_json(
    body: bytes, query: dict[str, str], scratch: ScratchFolder, limits: UploadLimits
) -> PreparedInput:
    """A JSON body: signal samples with their rate (kept in memory), or a FHIR R4 Bundle (written to
    ``scratch``); see the module."""
    try:
        payload = orjson.loads(body)  # 10x the standard library's speed: a 30 s ECG is 9,000 numbers
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # orjson's error is a JSONDecodeError
        raise InputError(f"the JSON body does not parse ({getattr(exc, 'msg', exc)})") from None
    prepared = PreparedInput(None, [], options=_query_options(query))
    prepared.digest.update(body)
    if isinstance(payload, dict) and payload.get("resourceType") == "Bundle":
        prepared.root = scratch.path
        inputs_dir = prepared.root / "input"
        inputs_dir.mkdir(parents=True)
        path = inputs_dir / "patient.json"
        path.write_bytes(body)
        prepared.paths.append(path)
        return prepared
    if not isinstance(payload, dict) or "samples" not in payload:
        raise InputError(
            'a JSON body is either a signal segment {"fs": HZ, "samples": [...]} or a FHIR R4 Bundle '
            '({"resourceType": "Bundle", ...})'
        )
    if payload.get("fs") is None:
        raise InputError("fs: required with samples (the sampling rate in Hz, e.g. 300)")
    prepared.samples = _samples(payload["samples"], limits)
    prepared.options.update({k: v for k, v in payload.items() if k != "samples"})
    return prepared


def _samples(raw: Any, limits: UploadLimits) -> np.ndarray:
    if not isinstance(raw, list) or not raw:
        raise InputError("samples: expected a non-empty list of numbers (or of rows, one value per channel)")
    if len(raw) > limits.max_samples:
        raise InputError(f"samples: {len(raw):,} samples; at most {limits.max_samples:,} are accepted")
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            "samples: expected numbers only, all rows with the same number of channels"
        ) from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] == 0:
        raise InputError(f"samples: expected a list of numbers or of rows, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise InputError(f"samples: sample {first} is not a finite number")
    if array.shape[0] < 2 or math.prod(array.shape) == 0:
        raise InputError("samples: at least 2 samples are needed")
    return array


def refuse_server_paths(prepared: PreparedInput, options_model: Any) -> None:
    """An option that names a file (e.g. ``annotations``) must be an uploaded file: a path given as text
    would make the server read its own files for the client."""
    if options_model is None:
        return
    for name, spec in options_model.model_fields.items():
        key = spec.alias or name
        if "Path" in str(spec.annotation) and key in prepared.options and key not in prepared.file_options:
            raise InputError(f"{key}: upload the file as a multipart file field named {key!r}, not as text")
