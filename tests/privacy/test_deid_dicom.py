"""DICOM de-identification on a real LIDC-IDRI series and pydicom's test files.

The shared LIDC files are already de-identified by TCIA, so the tests work on copies in which every
attribute of PS3.15 Table E.1-1 that pydicom knows is filled with an identifying value (plus private tags,
overlays and curves). What must happen to each is read from ``data/ps3_15_table_e1_1.tsv``: the
standard's table (2024 edition) transcribed independently of the implementation, which reads the 2026c
table shipped by dicom-anonymizer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import pytest

from tests.conftest import require_data, require_module

pydicom = require_module("pydicom")
require_module("dicomanonymizer")

from pydicom.datadict import dictionary_VR  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402

from medlearn.privacy.deid import deidentify  # noqa: E402
from medlearn.privacy.keys import Keyring  # noqa: E402

TABLE = Path(__file__).parent / "data" / "ps3_15_table_e1_1.tsv"
KEY = bytes(range(32))
PLANTED_DATE = "20010203"
SKIP_GROUPS = {0x0000, 0x0002, 0x0004, 0xFFFA, 0xFFFC}  # command, file meta, DICOMDIR, signatures, padding


def read_table() -> list[tuple[str, str, str, str]]:
    """(tag, keyword, basic action, modified-dates action) rows of the transcribed Table E.1-1."""
    rows = []
    for line in TABLE.read_text().splitlines():
        if line.startswith("#") or line.startswith("tag\t"):
            continue
        tag, keyword, basic, modified = (line.split("\t") + [""])[:4]
        rows.append((tag, keyword, basic, modified))
    return rows


def single_tags() -> dict[int, tuple[str, str]]:
    """Tag -> (basic action, modified-dates action) for the table's non-repeating, public rows."""
    out = {}
    for tag, _keyword, basic, modified in read_table():
        if tag == "private" or "x" in tag:
            continue
        number = int(tag[1:5] + tag[6:10], 16)
        if number >> 16 not in SKIP_GROUPS:
            out[number] = (basic, modified)
    return out


def planted_value(tag: int, vr: str, uid_of: dict[str, str]):
    """An identifying value for ``tag`` with its VR (``None`` when we do not plant this VR)."""
    marker = f"ID{tag:08X}"
    if vr == "PN":
        return f"Doe{tag:08X}^John"
    if vr in ("LO", "LT", "ST", "UT", "UC", "SH"):
        return marker
    if vr == "CS":
        return marker.upper()
    if vr == "AE":
        return marker[:16]
    if vr == "DA":
        return PLANTED_DATE
    if vr == "DT":
        return PLANTED_DATE + "101010"
    if vr == "TM":
        return "101010"
    if vr == "UI":
        return f"1.2.3.4.{tag}"
    if vr == "AS":
        return "045Y"
    if vr in ("IS",):
        return "77"
    if vr == "DS":
        return "77.5"
    if vr in ("US", "SS", "UL", "SL"):
        return 77
    if vr in ("FL", "FD"):
        return 77.5
    if vr == "UR":
        return f"http://example.org/{marker}"
    if vr in ("OB", "OW", "UN"):
        return b"IDENTIFY"
    if vr == "SQ":
        item = Dataset()
        item.PatientName = "Doe^Nested"
        item.ReferencedSOPInstanceUID = uid_of["neighbour"]
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.InstitutionName = "Nested General Hospital"
        return Sequence([item])
    return None


def plant(ds: Dataset, neighbour_uid: str) -> dict[int, object]:
    """Fill every table attribute (and private tags, an overlay, a curve) with identifying values."""
    planted = {}
    for tag in single_tags():
        if tag in ds and tag not in (0x00080018, 0x0020000D, 0x0020000E, 0x00080020, 0x00200052):
            del ds[tag]
        if tag in ds:
            continue
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        vr = vr.split(" or ")[0]
        value = planted_value(tag, vr, {"neighbour": neighbour_uid})
        if value is None:
            continue
        ds.add_new(tag, vr, value)
        planted[tag] = value
    ds.StudyDate = PLANTED_DATE
    ds.PatientID = "LIDC-IDRI-0001"  # as the folder is named: the folder must be renamed too
    ds.PatientName = "Doe^Jane"
    block = ds.private_block(0x0011, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "Jane Doe private")
    ds.add_new(0x60003000, "OW", b"\x01\x00" * 8)  # overlay data (60xx,3000): X
    ds.add_new(0x60004000, "LT", "overlay comment Jane Doe")  # overlay comments (60xx,4000): X
    ds.add_new(0x50000010, "US", 1)  # curve data (50xx,xxxx): X
    return planted


def sha256_tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory):
    """A planted copy of LIDC-IDRI-0001 (16 slices), its de-identified output and what was planted."""
    source = require_data("imaging/lidc-idri-dicom-c2c/LIDC-IDRI-0001")
    root = tmp_path_factory.mktemp("dicom")
    inp = root / "in"
    files = sorted(source.rglob("*.dcm"))
    originals = {}
    datasets = [pydicom.dcmread(f) for f in files]
    for i, (f, ds) in enumerate(zip(files, datasets)):
        neighbour = datasets[(i + 1) % len(datasets)].SOPInstanceUID
        planted = plant(ds, neighbour)
        target = inp / f.relative_to(source.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=False)
        originals[target.name] = (ds.SOPInstanceUID, neighbour, planted, ds.PixelData)
    (inp / "notes.txt").write_text("not DICOM")
    before = sha256_tree(inp)
    out = root / "out"
    run = deidentify(inp, out, Keyring(KEY))
    return {"in": inp, "out": out, "run": run, "originals": originals, "before": before, "n": len(files)}


def outputs(series) -> dict[str, Dataset]:
    return {p.name: pydicom.dcmread(p) for p in sorted(series["out"].rglob("*.dcm"))}


def test_every_planted_table_attribute_is_removed_emptied_or_replaced(series):
    table = single_tags()
    checked = 0
    for name, ds in outputs(series).items():
        planted = series["originals"][name][2]
        for tag, value in planted.items():
            basic, modified = table[tag]
            elem = ds.get(tag)
            if basic == "X" and not (modified == "C" and elem is not None):
                assert elem is None, f"{name}: {tag:08X} ({basic}) survived"
            if elem is None or elem.VR == "SQ":
                continue
            if elem.VR == "TM" and modified == "C":
                continue  # 113107: a whole-day shift keeps the time of day
            assert elem.value in (None, "", b"") or str(elem.value) != str(value), f"{name}: {tag:08X} kept"
            if basic == "U":
                assert str(elem.value).startswith("2.25."), f"{tag:08X} not a new UID"
            checked += 1
    assert checked > 100 * series["n"]


def test_no_planted_identifying_string_survives_anywhere(series):
    for ds in outputs(series).values():
        text = " ".join(str(e.value) for e in ds.iterall() if e.VR not in ("OB", "OW", "UN", "SQ"))
        for needle in ("Doe", "Jane", "John", "LIDC-IDRI", "Nested General", "ID0", "1.2.3.4.", PLANTED_DATE):
            assert needle not in text, needle


def test_private_tags_overlays_and_curves_are_gone(series):
    for ds in outputs(series).values():
        assert not any(e.tag.is_private for e in ds.iterall())
        assert not any(e.tag.group & 0xFF00 in (0x5000,) for e in ds)
        assert 0x60003000 not in ds and 0x60004000 not in ds


def test_uids_are_consistent_across_the_series(series):
    out = outputs(series)
    assert len(out) == series["n"]
    assert len({ds.StudyInstanceUID for ds in out.values()}) == 1
    assert len({ds.SeriesInstanceUID for ds in out.values()}) == 1
    assert len({ds.FrameOfReferenceUID for ds in out.values()}) == 1
    assert len({ds.SOPInstanceUID for ds in out.values()}) == series["n"]
    new_uid = {series["originals"][name][0]: ds.SOPInstanceUID for name, ds in out.items()}
    for name, ds in out.items():
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        neighbour = series["originals"][name][1]
        referenced = ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID
        assert referenced == new_uid[neighbour]  # references remapped exactly as the referenced file
        assert not ds.StudyInstanceUID.startswith("1.3.6.1.4.1.14519")


def test_folder_names_carry_the_new_uids_not_the_originals(series):
    out = outputs(series)
    path = next(series["out"].rglob("*.dcm"))
    ds = out[path.name]
    assert path.parent.name == ds.SeriesInstanceUID
    assert path.parent.parent.name == ds.StudyInstanceUID
    assert path.parent.parent.parent.name == ds.PatientID
    assert "1.3.6.1.4.1.14519" not in str(path) and "LIDC-IDRI" not in str(path)


def test_dates_move_by_one_keyed_offset_per_patient(series):
    offsets = set()
    for ds in outputs(series).values():
        for keyword in ("StudyDate", "SeriesDate", "ContentDate", "AcquisitionDate"):
            if keyword in ds and ds.get(keyword):
                day = dt.datetime.strptime(ds.get(keyword), "%Y%m%d").date()
                offsets.add((day - dt.date(2001, 2, 3)).days)
    assert len(offsets) == 1
    (offset,) = offsets
    assert 180 <= abs(offset) <= 3650
    assert series["run"].report["files"][0]["dates_shifted"] > 10


def test_pixel_data_is_byte_identical_and_output_readable(series):
    for name, ds in outputs(series).items():
        assert ds.PixelData == series["originals"][name][3]
    ds = next(iter(outputs(series).values()))
    assert ds.pixel_array.shape == (512, 512)


def test_method_is_recorded(series):
    for ds in outputs(series).values():
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
        assert "113100" in codes and "113107" in codes
        assert any("PS3.15" in m for m in ds.DeidentificationMethod)


def test_input_is_untouched_and_non_dicom_is_listed_not_copied(series):
    assert sha256_tree(series["in"]) == series["before"]
    report = series["run"].report
    assert [s["path"] for s in report["skipped"]] == ["notes.txt"]
    assert not list(series["out"].rglob("notes.txt"))
    assert (series["out"] / "deid_report.json").exists()
    text = (series["out"] / "deid_report.json").read_text()
    assert "LIDC-IDRI" not in text.replace(str(series["in"]), "").replace(str(series["out"]), "")


def test_same_key_same_uids_other_key_other_uids(series, tmp_path: Path):
    one = next(series["in"].rglob("*.dcm"))
    a = deidentify(one, tmp_path / "a.dcm", Keyring(KEY))
    b = deidentify(one, tmp_path / "b" / "b.dcm", Keyring(KEY))
    c = deidentify(one, tmp_path / "c" / "c.dcm", Keyring(bytes(32)))
    assert a.written == b.written == c.written == 1
    uid = {
        name: pydicom.dcmread(tmp_path / name).StudyInstanceUID for name in ("a.dcm", "b/b.dcm", "c/c.dcm")
    }
    assert uid["a.dcm"] == uid["b/b.dcm"] == outputs(series)[one.name].StudyInstanceUID
    assert uid["c/c.dcm"] != uid["a.dcm"]


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicom_test_files_lose_every_x_attribute(name: str, tmp_path: Path):
    source = require_data(f"imaging/dicom/{name}")
    original = pydicom.dcmread(source)
    deidentify(source, tmp_path / name, Keyring(KEY))
    ds = pydicom.dcmread(tmp_path / name)
    table = single_tags()
    for elem in original:
        action = table.get(int(elem.tag), ("", ""))
        if action[0] == "X" and action[1] != "C":
            assert int(elem.tag) not in ds, elem.keyword
    assert not any(e.tag.is_private for e in ds.iterall())
    assert ds.PixelData == original.PixelData
    assert ds.PatientID != original.PatientID and str(ds.PatientName) != str(original.PatientName)


def test_burned_in_annotation_is_flagged_and_can_be_skipped(tmp_path: Path):
    source = require_data("imaging/dicom/CT_small.dcm")
    inp = tmp_path / "in"
    inp.mkdir()
    flagged = pydicom.dcmread(source)
    flagged.BurnedInAnnotation = "YES"
    flagged.save_as(inp / "burned.dcm", enforce_file_format=False)
    ultrasound = pydicom.dcmread(source)
    ultrasound.Modality = "US"
    ultrasound.save_as(inp / "us.dcm", enforce_file_format=False)
    shutil.copy(source, inp / "ct.dcm")
    run = deidentify(inp, tmp_path / "out", Keyring(KEY))
    assert sorted(b["path"] for b in run.burned_in) == ["burned.dcm", "us.dcm"]
    assert "BurnedInAnnotation is YES" in {b["reason"] for b in run.burned_in}
    skipped = deidentify(inp, tmp_path / "out2", Keyring(KEY), skip_burned_in=True)
    assert [p.name for p in (tmp_path / "out2").rglob("*.dcm")] == ["ct.dcm"]
    assert skipped.written == 1


def test_the_tables_agree_where_editions_overlap():
    """The implementation's 2026c table gives the same action as the independent 2024 transcription for
    every attribute both list, and lists every attribute of the 2024 table."""
    from medlearn.privacy.dicom_profile import basic_profile

    table = basic_profile()
    for tag, (basic, _modified) in single_tags().items():
        assert table.action(tag) == basic, f"{tag:08X}"
    for tag, keyword, basic, _ in read_table():
        if "x" in tag:  # repeating groups: 50xx,xxxx / 60xx,3000 / 60xx,4000
            group = int(tag[1:3], 16) << 24
            element = tag[6:10]
            probe = group | (0x0002 << 16) | (0x1234 if element == "xxxx" else int(element, 16))
            assert table.action(probe) == basic, keyword
