"""Bad files built from the shared data and the demo generators (issue 14): copies with one corruption
each, written to tmp_path (never next to the originals), and the expected outcome per case: a clean error
(one line naming the file, exit 2) or a flag (a prediction with a warning). Never a traceback.

DICOM (CT_small.dcm): PixelSpacing 0, negative, NaN or not a number; a header claiming 65535 × 65535
pixels; an element claiming 4 GB; a truncated file; a non-finite RescaleSlope; junk named .dcm.
EHR (MIMIC-IV, MIMIC-III and eICU demos): an admissions (patient) table with a header and no rows.
Configs: binary, duplicate-key, list and deeply nested YAML. ECG (CinC 2017 A00003 and the demo's
synthetic records): sampling rate 0, negative or NaN, no signals, a binary header, a missing or truncated
data file; a flat or all-NaN record is predicted with a warning.
"""

from __future__ import annotations

import gzip
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from medlearn.errors import InputError
from tests.conftest import require_data, require_module
from tests.fuzz.conftest import assert_one_line_error, invoke

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# -- DICOM -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ct_small() -> Path:
    require_module("pydicom")
    return require_data("imaging/dicom/CT_small.dcm")


def edited_dicom(src: Path, dst: Path, **values) -> Path:
    """A copy of ``src`` with the given elements set (written without pydicom's value validation, as a
    damaged file would be)."""
    import pydicom
    from pydicom import config

    ds = pydicom.dcmread(src)
    with config.disable_value_validation():
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.save_as(dst)
    return dst


@pytest.mark.parametrize(
    ("values", "needles"),
    [
        ({"PixelSpacing": [0, 0]}, ("PixelSpacing", "not a spacing")),
        ({"PixelSpacing": [-0.5, -0.5]}, ("PixelSpacing", "not a spacing")),
        ({"PixelSpacing": ["nan", "nan"]}, ("PixelSpacing",)),
        ({"Rows": 65535, "Columns": 65535}, ("65535", "voxels")),
        ({"Rows": 1024, "Columns": 1024}, ("1024", "bytes", "truncated")),
        ({"RescaleSlope": "nan"}, ("RescaleSlope",)),
    ],
    ids=["spacing-0", "spacing-negative", "spacing-nan", "rows-65535", "rows-1024", "slope-nan"],
)
def test_damaged_dicom_headers_are_one_input_error_naming_the_file(ct_small, tmp_path, values, needles):
    from medlearn.imaging.io.dicom import read_dicom_series

    bad = edited_dicom(ct_small, tmp_path / "bad.dcm", **values)
    with pytest.raises(InputError) as caught:
        read_dicom_series(bad)
    message = str(caught.value)
    assert str(bad) in message and "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_a_pixel_spacing_that_is_not_a_number(ct_small, tmp_path):
    from medlearn.imaging.io.dicom import read_dicom_series

    data = ct_small.read_bytes()
    at = data.find(b"\x28\x00\x30\x00DS")  # (0028,0030) PixelSpacing, explicit VR little endian
    (length,) = struct.unpack("<H", data[at + 6 : at + 8])
    value = b"abc\\1".ljust(length, b" ")
    bad = tmp_path / "text.dcm"
    bad.write_bytes(data[: at + 8] + value + data[at + 8 + length :])
    with pytest.raises(InputError, match=r"text\.dcm.*PixelSpacing"):
        read_dicom_series(bad)


def test_an_element_claiming_4_gb_is_refused_before_it_is_read(ct_small, tmp_path):
    from medlearn.imaging.io.dicom import read_dicom_series

    data = ct_small.read_bytes()
    at = data.find(b"\xe0\x7f\x10\x00")  # (7FE0,0010) PixelData, explicit VR little endian
    claim = struct.pack("<HH", 0x0009, 0x1010) + b"OB\x00\x00" + struct.pack("<I", 0xFFFFFFF0)
    bad = tmp_path / "huge.dcm"
    bad.write_bytes(data[:at] + claim + data[at:])
    with pytest.raises(InputError, match="huge.dcm"):
        read_dicom_series(bad)
    # a standard element claiming more than the file: refused by the length check itself
    meta_end = data.find(b"\x08\x00\x08\x00")  # (0008,0008) ImageType, the first dataset element
    assert meta_end > 0
    vr_len = data[meta_end + 4 : meta_end + 8]
    assert vr_len[:2] == b"CS"
    bad2 = tmp_path / "long.dcm"
    bad2.write_bytes(data[: meta_end + 6] + struct.pack("<H", 0xFFFF) + data[meta_end + 8 :])
    with pytest.raises(InputError, match="long.dcm"):
        read_dicom_series(bad2)


def test_truncated_and_junk_dicom_files(ct_small, tmp_path):
    from medlearn.imaging.io.dicom import read_dicom_series

    half = tmp_path / "half.dcm"
    half.write_bytes(ct_small.read_bytes()[: ct_small.stat().st_size // 2])
    with pytest.raises(InputError, match="half.dcm"):
        read_dicom_series(half)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(InputError, match="junk.dcm"):
        read_dicom_series(junk)


def test_a_sound_copy_still_reads(ct_small, tmp_path):
    from medlearn.imaging.io.dicom import read_dicom_series

    volume = read_dicom_series(edited_dicom(ct_small, tmp_path / "ok.dcm"))
    assert volume.hu.shape == (1, 128, 128) and all(math.isfinite(s) and s > 0 for s in volume.spacing_mm)


# -- EHR ---------------------------------------------------------------------------------------------------


def header_only(path: Path) -> None:
    """Keep the header line of a (gzipped) CSV, drop every row."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        header = f.readline()
    with opener(path, "wt") as f:
        f.write(header)


@pytest.mark.parametrize(
    ("dataset", "table", "reader"),
    [
        ("mimic-iv-demo", "hosp/admissions.csv.gz", "medlearn.ehr.io.mimic4:read_mimic4"),
        ("mimic-iii-demo", "ADMISSIONS.csv.gz", "medlearn.ehr.io.mimic3:read_mimic3"),
        ("eicu-demo", "patient.csv", "medlearn.ehr.io.eicu:read_eicu"),
    ],
)
def test_an_empty_admissions_table_is_one_error_naming_it(tmp_path, dataset, table, reader):
    import importlib

    require_module("polars")
    copy = shutil.copytree(require_data(f"ehr/{dataset}"), tmp_path / dataset)
    header_only(copy / table)
    module, name = reader.split(":")
    with pytest.raises(InputError) as caught:
        getattr(importlib.import_module(module), name)(copy)
    assert str(copy / table) in str(caught.value) and "no rows" in str(caught.value)


def test_train_on_an_empty_admissions_table_says_which_file(tmp_path):
    require_module("polars")
    copy = shutil.copytree(require_data("ehr/mimic-iv-demo"), tmp_path / "m4")
    header_only(copy / "hosp" / "admissions.csv.gz")
    result = invoke("train", "ehr_los_mimic4_linear", "--data", copy, "--out", tmp_path / "o", "--quiet")
    assert_one_line_error(result, "admissions.csv.gz", "no rows")


# -- configs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (bytes(range(256)), ("not a text",)),
        (b"task: ehr_los\ntrain:\n  epochs: 2\n  epochs: 3\n", ("duplicate key 'epochs'", "line 4")),
        (b"- task\n- data\n", ("mapping of sections",)),
        (b"a: " + b"[" * 5000 + b"]" * 5000, ("nested too deeply",)),
        (b"task: [unclosed\n", ("not valid YAML",)),
    ],
    ids=["binary", "duplicate-key", "list", "deep", "broken"],
)
def test_bad_config_files_are_one_line(tmp_path, content, needles):
    config = tmp_path / "exp.yaml"
    config.write_bytes(content)
    assert_one_line_error(invoke("train", config, "--out", tmp_path / "o"), "exp.yaml", *needles)
    assert not (tmp_path / "o").exists()


# -- ECG records -------------------------------------------------------------------------------------------

A00003 = "signals/cinc2017/A00003"


def record_copy(
    tmp_path: Path, name: str, header: str | bytes | None = None, data: bytes | None = None
) -> Path:
    """A copy of CinC 2017 A00003 as ``name``, its header text (or bytes) and data replaced when given."""
    src = require_data(A00003 + ".hea").with_suffix("")
    hea = tmp_path / f"{name}.hea"
    text = src.with_suffix(".hea").read_text().replace("A00003", name) if header is None else header
    hea.write_bytes(text if isinstance(text, bytes) else text.encode())
    if data is not False:
        (tmp_path / f"{name}.mat").write_bytes(src.with_suffix(".mat").read_bytes() if data is None else data)
    return hea


@pytest.mark.parametrize(
    ("name", "header", "data", "needles"),
    [
        ("fs0", "fs0 1 0 18000\nfs0.mat 16+24 1000/mV 16 0 56 0 0 ECG\n", None, ("sampling rate",)),
        ("fsneg", "fsneg 1 -300 18000\nfsneg.mat 16+24 1000/mV 16 0 56 0 0 ECG\n", None, ("sampling rate",)),
        ("fsnan", "fsnan 1 nan 18000\nfsnan.mat 16+24 1000/mV 16 0 56 0 0 ECG\n", None, ("sampling rate",)),
        ("nosig", "nosig 0 300 18000\n", None, ("no signals",)),
        ("binary", bytes(range(256)), None, ("not a text WFDB header",)),
        ("missing", None, False, ("missing",)),
        ("short", None, b"\x00" * 100, ("truncated",)),
        ("huge", "huge 1 300 999999999999\nhuge.mat 16+24 1000/mV 16 0 56 0 0 ECG\n", None, ("truncated",)),
    ],
)
def test_damaged_ecg_records_are_one_error_naming_the_file(
    signals_run, tmp_path, name, header, data, needles
):
    record = record_copy(tmp_path, name, header, data)
    result = invoke("predict", signals_run / "bundle", record, "--quiet")
    assert_one_line_error(result, name, *needles)


@pytest.mark.parametrize("fill", [0.0, np.nan], ids=["flat", "all-nan"])
def test_a_flat_or_empty_ecg_is_flagged_not_silently_classified(signals_run, tmp_path, fill):
    import json

    from scipy.io import savemat

    savemat(tmp_path / "rec.mat", {"val": np.full((1, 9000), fill)})
    result = invoke(
        "predict", signals_run / "bundle", tmp_path / "rec.mat", "--fs", "300", "--json", "--quiet"
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert records and all(r.get("warnings") or "refused" in r or "skipped" in r for r in records), records
