"""The signing commands end to end: keygen → sign → a load that requires the signature (issue 14)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medlearn.cli import app
from medlearn.engine.bundle import load_bundle
from medlearn.errors import BundleError

V1 = Path(__file__).parents[1] / "fixtures" / "bundle_v1_ehr_linear"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    from medlearn.engine.artifacts import save_bundle

    old = load_bundle(V1)
    return save_bundle(tmp_path / "run" / "bundle", old.model, old.meta)


def test_keygen_sign_and_a_load_that_requires_the_signature(bundle, tmp_path):
    runner = CliRunner()
    done = runner.invoke(app, ["keygen", "--out", str(tmp_path / "keys"), "--quiet"])
    assert done.exit_code == 0, done.output
    again = runner.invoke(app, ["keygen", "--out", str(tmp_path / "keys"), "--quiet"])
    assert again.exit_code == 2 and "already holds a key pair" in again.output  # never overwritten silently
    signed = runner.invoke(app, ["sign", str(bundle.parent), "--key", str(tmp_path / "keys" / "private.pem")])
    assert signed.exit_code == 0, signed.output
    assert (bundle / "manifest.sig").is_file()
    assert load_bundle(bundle, public_key=tmp_path / "keys" / "public.pem").kind == "multiclass"
    wrong = runner.invoke(app, ["sign", str(bundle), "--key", str(tmp_path / "keys" / "public.pem")])
    assert wrong.exit_code == 2 and "not a PEM private key" in wrong.output


def test_a_copied_bundle_with_another_weights_file_cannot_be_signed(bundle, tmp_path):
    runner = CliRunner()
    runner.invoke(app, ["keygen", "--out", str(tmp_path / "keys"), "--quiet"])
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    done = runner.invoke(app, ["sign", str(copy), "--key", str(tmp_path / "keys" / "private.pem")])
    assert done.exit_code == 2 and "model.safetensors: SHA-256 differs" in done.output
    assert not (copy / "manifest.sig").exists()
    with pytest.raises(BundleError):
        load_bundle(copy)
