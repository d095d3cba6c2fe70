"""Bundles that prove they are intact: a manifest of SHA-256 digests, and optional Ed25519 signatures.

``manifest.json`` lists the SHA-256 of every other file of a bundle (``bundle.json`` cannot hold its own
hash). :func:`verify_manifest` runs on every load, so a flipped byte in the weights, an edited class name
or an edited preprocessing step is a :class:`~medlearn.errors.BundleError` naming the file, never a
prediction. Bundles written before manifests existed (format v1) load with a warning.

A hospital that wants to know *who* wrote a bundle signs the manifest with a private key it holds
(:func:`sign_bundle`, ``medlearn sign``); loading with the matching public key
(``load_bundle(..., public_key=...)``, ``--require-signature``) refuses a bundle whose ``manifest.sig`` is
missing or does not verify. Ed25519 through the ``cryptography`` package; keys are PEM files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from medlearn.errors import BundleError, InputError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
_FORMAT = "medlearn-manifest"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks (weights can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _bundle_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in (MANIFEST, SIGNATURE)
    )


def write_manifest(folder: Path) -> dict[str, Any]:
    """Write ``manifest.json``: the SHA-256 of every file of the bundle ``folder`` (itself excepted).

    A signature of an older manifest no longer holds, so it is removed.
    """
    files = {p.relative_to(folder).as_posix(): sha256_file(p) for p in _bundle_files(folder)}
    manifest = {"format": _FORMAT, "version": 1, "algorithm": "sha256", "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (folder / SIGNATURE).unlink(missing_ok=True)
    return manifest


def verify_manifest(folder: Path, required: bool = True) -> bool:
    """Check every file the manifest lists against its SHA-256.

    Args:
        folder: the bundle directory.
        required: a missing manifest is an error (format v2 bundles always have one); False for format
            v1 bundles, which load with a warning.

    Returns:
        True when verified; False when there is no manifest and none was required.

    Raises:
        BundleError: the manifest is missing (when required) or unreadable, a listed file is missing, or a
            file's SHA-256 differs from the manifest's (named).
    """
    path = folder / MANIFEST
    if not path.is_file():
        if required:
            raise BundleError(f"{folder}: no {MANIFEST}, so the bundle's files cannot be verified")
        return False  # the caller warns once the bundle is otherwise known to load
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        if (
            manifest.get("format") != _FORMAT
            or manifest.get("algorithm") != "sha256"
            or not isinstance(files, dict)
        ):
            raise ValueError("not a medlearn manifest")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: unreadable manifest ({exc})") from None
    for name in ("bundle.json", "model.safetensors"):
        if name not in files:
            raise BundleError(f"{path}: the manifest does not list {name}")
    for name, expected in files.items():
        target = (folder / name).resolve()
        if not target.is_relative_to(folder.resolve()):
            raise BundleError(f"{path}: lists {name!r}, outside the bundle")
        if not target.is_file():
            raise BundleError(f"{folder / name}: listed in the manifest but missing")
        if sha256_file(target) != expected:
            raise BundleError(
                f"{folder / name}: SHA-256 differs from the bundle's manifest (the file was changed after "
                "the bundle was written)"
            )
    return True


def _load_key(path: Path, private: bool) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: key file not found")
    data = path.read_bytes()
    try:
        key = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except (ValueError, TypeError) as exc:
        kind = "private" if private else "public"
        raise InputError(f"{path}: not a PEM {kind} key without a password ({exc})") from None
    wanted = Ed25519PrivateKey if private else Ed25519PublicKey
    if not isinstance(key, wanted):
        raise InputError(f"{path}: not an Ed25519 key (medlearn signs bundles with Ed25519)")
    return key


def generate_keypair(folder: Path, force: bool = False) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``private.pem`` (mode 0600; keep it where bundles are made) and
    ``public.pem`` (give it to the sites that load the bundles). Existing keys are kept unless ``force``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from medlearn.errors import OutputExistsError

    folder = Path(folder)
    private_path, public_path = folder / "private.pem", folder / "public.pem"
    if not force and (private_path.exists() or public_path.exists()):
        raise OutputExistsError(f"{folder}: already holds a key pair (pass --force to replace it)")
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    public_path.write_bytes(public)
    return private_path, public_path


def sign_bundle(folder: Path, private_key: Path) -> Path:
    """Sign the bundle's manifest with an Ed25519 private key: writes ``manifest.sig``.

    The manifest is verified first, so a bundle changed after it was written is never signed.
    """
    folder = Path(folder)
    verify_manifest(folder)
    key = _load_key(private_key, private=True)
    signature = key.sign((folder / MANIFEST).read_bytes())
    (folder / SIGNATURE).write_bytes(signature)
    return folder / SIGNATURE


def verify_signature(folder: Path, public_key: Path) -> None:
    """Check ``manifest.sig`` against the manifest with the public key of whoever should have signed.

    Raises:
        BundleError: no signature, or one that does not verify with this key.
    """
    from cryptography.exceptions import InvalidSignature

    folder = Path(folder)
    key = _load_key(public_key, private=False)
    signature = folder / SIGNATURE
    if not signature.is_file():
        raise BundleError(f"{folder}: not signed (no {SIGNATURE}), and a signature is required")
    try:
        key.verify(signature.read_bytes(), (folder / MANIFEST).read_bytes())
    except InvalidSignature:
        raise BundleError(
            f"{signature}: does not verify with {public_key} (signed with another key, or the manifest changed)"
        ) from None


#: Hex digits of the manifest's SHA-256 kept as a bundle's version.
VERSION_DIGITS = 12


def bundle_version(folder: Path) -> str:
    """A bundle's version: the first 12 hex of its manifest's SHA-256 (which covers every file), or of
    ``bundle.json`` + weights for a v1 bundle without a manifest. Returned with every served prediction,
    written into DICOM SRs and FHIR RiskAssessments."""
    folder = Path(folder)
    digest = hashlib.sha256()
    if (folder / MANIFEST).is_file():
        digest.update((folder / MANIFEST).read_bytes())
    else:
        for name in ("bundle.json", "model.safetensors"):
            digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:VERSION_DIGITS]
