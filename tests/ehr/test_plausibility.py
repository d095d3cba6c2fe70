"""Physiologically impossible values: the per-source table checked against the sources' own dictionaries,
the counts on the real demos, and drop / clip / keep on impossible values injected into a copy of the
real MIMIC-IV demo."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import require_data
from tests.ehr.helpers import MIMIC4_CORE, copy_tables, read_raw

LAB_WORDS = {
    "creatinine": "creatinine",
    "lactate": "lactate",
    "wbc": "white blood cells|wbc",
    "potassium": "potassium",
    "sodium": "sodium",
    "glucose": "glucose",
    "haemoglobin": "hemoglobin",
}


def test_every_mimic4_itemid_is_that_blood_lab_in_d_labitems():
    from medlearn.ehr.plausibility_limits import CODES

    root = require_data("ehr/mimic-iv-demo")
    items = read_raw(root / "hosp/d_labitems.csv.gz")
    by_id = {r["itemid"]: r for r in items.to_dicts()}
    rows = [c for c in CODES if c[1] == "MIMIC4_LABITEM"]
    assert {lab for lab, *_ in rows} == set(LAB_WORDS)
    for lab, _, code, _ in rows:
        row = by_id[code]
        assert row["fluid"] == "Blood", code
        assert pl.Series([row["label"].lower()]).str.contains(LAB_WORDS[lab])[0], (code, row["label"])
    d_items = read_raw(root / "icu/d_items.csv.gz").filter(pl.col("itemid") == "220045")
    assert d_items["label"].to_list() == ["Heart Rate"] and d_items["unitname"].to_list() == ["bpm"]


def test_eicu_lab_names_and_units_are_those_of_lab_csv():
    from medlearn.ehr.plausibility_limits import CODES

    root = require_data("ehr/eicu-demo")
    lab = read_raw(root / "lab.csv")
    units = dict(lab.group_by("labname").agg(pl.col("labmeasurenamesystem").drop_nulls().first()).iter_rows())
    for _, system, code, unit in CODES:
        if system == "EICU_LAB":
            assert units[code] == unit, code


def test_mimic4_units_are_those_labevents_stores():
    from medlearn.ehr.io import read_source
    from medlearn.ehr.plausibility import impossible_counts

    counts = impossible_counts(read_source(require_data("ehr/mimic-iv-demo")).events)
    for row in counts.to_dicts():
        assert row["units"] == [row["table_unit"]], row
    assert counts["not_checked"].sum() == 0


@pytest.mark.parametrize(
    ("folder", "n_values", "labs"),
    [
        ("ehr/mimic-iv-demo", 18_909, 7),
        ("ehr/eicu-demo", 8_883, 8),  # 7 labs + the physical exam's heart rate
        ("ehr/mimic-iii-demo", 0, 0),  # the shared MIMIC-III demo has no LABEVENTS
        ("ehr/fhir/synthea-r4-bundles", 48, 2),
    ],
)
def test_real_demos_hold_no_impossible_value(folder, n_values, labs):
    """Measured, not assumed: every checked value of the shared demos is possible (0 flagged)."""
    from medlearn.ehr.io import read_source
    from medlearn.ehr.plausibility import impossible_counts

    counts = impossible_counts(read_source(require_data(folder)).events)
    assert int(counts["n"].sum()) == n_values and counts["lab"].n_unique() == labs
    assert int(counts["below"].sum()) == 0 and int(counts["above"].sum()) == 0


def test_flags_below_above_and_unit_mismatch():
    from medlearn.ehr.plausibility import flag_events

    events = pl.LazyFrame(
        {
            "code_system": ["MIMIC4_LABITEM"] * 5 + ["EICU_LAB", "LOINC", "MIMIC4_LABITEM"],
            "code": ["50912", "50912", "50971", "50983", "50983", "WBC x 1000", "8867-4", "99999"],
            "value_num": [-0.1, 41.0, 0.0, 255.0, 255.0, 1500.0, 301.0, -5.0],
            "unit": ["mg/dL", "mg/dL", "mEq/L", "mEq/L", "mg/dL", "K/mcL", None, "x"],
        }
    )
    flagged = flag_events(events).collect()
    assert flagged["impossible"].to_list() == [-1, 1, -1, 1, 0, 1, 1, 0]
    # sodium in mg/dL is not the table's unit: not checked (never converted); an unknown code: no lab
    assert flagged["unit_checked"].to_list() == [True, True, True, True, False, True, True, False]
    assert flagged["lab"].to_list()[-1] is None


@pytest.fixture(scope="module")
def injected(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """A copy of the MIMIC-IV demo where, inside one admission's first 20 h, a creatinine is 99 mg/dL, a
    potassium -1 mEq/L and a WBC 2,000 K/uL (real rows with their values replaced), plus one impossible
    sodium (300 mEq/L) stored after every prediction time."""
    root = require_data("ehr/mimic-iv-demo")
    adm = read_raw(root / "hosp/admissions.csv.gz").select("hadm_id", "admittime")
    labs = read_raw(root / "hosp/labevents.csv.gz")
    ts = pl.col("storetime").str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False)
    start = pl.col("admittime").str.to_datetime("%Y-%m-%d %H:%M:%S")
    in_window = (
        labs.with_row_index("row")
        .join(adm, on="hadm_id")
        .filter((ts > start) & (ts < start + timedelta(hours=20)))
    )
    # one admission with all three labs inside its window
    have = in_window.group_by("hadm_id").agg(pl.col("itemid").unique())
    hadm = sorted(h for h, items in have.iter_rows() if {"50912", "50971", "51301"} <= set(items))[0]
    rows = {
        item: in_window.filter((pl.col("hadm_id") == hadm) & (pl.col("itemid") == item))["row"][0]
        for item in ("50912", "50971", "51301")
    }
    new = {"50912": "99", "50971": "-1", "51301": "2000"}
    # a sodium stored 2 days or more into its admission: after every 24 h prediction time
    late = (
        labs.with_row_index("row")
        .join(adm, on="hadm_id")
        .filter((pl.col("itemid") == "50983") & (ts >= start + timedelta(hours=48)))
    )
    rows["outside"] = late["row"][0]
    new["outside"] = "300"
    edits = {rows[k]: v for k, v in new.items()}

    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        index = pl.int_range(pl.len())
        value = pl.col("valuenum")
        for row, v in edits.items():
            value = pl.when(index == row).then(pl.lit(v)).otherwise(value)
        return frame.with_columns(value.alias("valuenum"))

    dst = tmp_path_factory.mktemp("mimic4-impossible")
    copy_tables(root, dst, [*MIMIC4_CORE, "hosp/d_labitems.csv.gz"], edit={"hosp/labevents.csv.gz": edit})
    return dst, {"hadm": hadm}


def test_injected_values_are_counted_per_lab(injected):
    from medlearn.ehr.io import read_source
    from medlearn.ehr.plausibility import impossible_counts

    counts = impossible_counts(read_source(injected[0], cache=False).events)
    found = {r["code"]: (r["below"], r["above"]) for r in counts.to_dicts() if r["below"] or r["above"]}
    assert found == {"50912": (0, 1), "50971": (1, 0), "51301": (0, 1), "50983": (0, 1)}


@pytest.fixture(scope="module")
def loaded(injected):
    from medlearn.ehr.tasks import LOSClassification

    task = LOSClassification(LOSClassification.Options())
    return task, task.load(injected[0])


def test_flags_travel_with_values_and_units_into_the_raw_unit(loaded, injected):
    _, table = loaded
    unit = table.raw[table.ids.index(injected[1]["hadm"])]
    flagged = {k: v for k, v, f in zip(unit["lab_keys"], unit["lab_values"], unit["lab_flags"]) if f}
    assert flagged == {
        "MIMIC4_LABITEM//50912": 99.0,
        "MIMIC4_LABITEM//50971": -1.0,
        "MIMIC4_LABITEM//51301": 2000.0,
    }
    units = dict(zip(unit["lab_keys"], unit["lab_units"]))
    assert units["MIMIC4_LABITEM//50912"] == "mg/dL" and units["MIMIC4_LABITEM//50971"] == "mEq/L"
    # only that admission carries flags: the sodium was outside every window
    assert sum(sum(map(bool, u["lab_flags"])) for u in table.raw) == 3


def test_load_logs_the_counts_and_the_report_lists_them(injected, caplog):
    from medlearn.ehr.tasks import LOSClassification

    task = LOSClassification(LOSClassification.Options(impossible_values="clip"))
    with caplog.at_level(logging.WARNING, logger="medlearn.ehr.plausibility"):
        task.load(injected[0])
    line = next(r.getMessage() for r in caplog.records if "impossible" in r.getMessage())
    assert "3 physiologically impossible" in line and "MIMIC4_LABITEM//50912 1" in line
    assert "impossible_values=clip" in line
    html = task.data_sections()[0].html
    assert "clipped to the impossible bound" in html and "MIMIC4_LABITEM//50983" in html
    assert "Physiologically impossible values: 4 in the source" in html


def _column(featurize, array: np.ndarray, key: str) -> np.ndarray:
    return array[:, featurize.lab_index[key]]


def test_drop_clip_keep_in_the_featurizer(loaded, injected):
    from medlearn.ehr.features import Featurize, fit_featurize

    task, table = loaded
    unit = table.raw[table.ids.index(injected[1]["hadm"])]
    key = "MIMIC4_LABITEM//50912"
    arrays, params = {}, {}
    for policy in ("drop", "clip", "keep"):
        params[policy] = fit_featurize(table.raw, 12, impossible_values=policy)
        featurize = Featurize(**params[policy])
        assert featurize.lab_units[featurize.lab_index[key]] == "mg/dL"
        arrays[policy] = featurize(unit)
    # training statistics exclude dropped values, use the bound for clipped ones, the raw value when kept
    i = params["drop"]["lab_keys"].index(key)
    means = [params[p]["lab_mean"][i] for p in ("drop", "clip", "keep")]
    assert means[0] < means[2] and means[1] <= means[2]
    assert params["clip"]["impossible_limits"][key] == [0.0, 40.0]
    # the unit's input differs between drop and keep; clip enters the 40 mg/dL bound before the 99th-
    # percentile clip, keep enters 99 before it
    assert not np.array_equal(arrays["drop"], arrays["keep"])
    featurize = Featurize(**{**params["keep"], "impossible_values": "clip"})
    clipped = featurize(unit)
    kept = Featurize(**params["keep"])(unit)
    assert np.all(_column(featurize, clipped, key) <= _column(featurize, kept, key) + 1e-6)


def test_featurizer_without_the_policy_keeps_every_value_like_old_bundles():
    from medlearn.ehr.features import Featurize

    params = dict(
        n_bins=2,
        lab_keys=["MIMIC4_LABITEM//50912"],
        lab_low=[-100.0],
        lab_high=[100.0],
        lab_mean=[0.0],
        lab_std=[1.0],
        code_keys=[],
        history_keys=[],
        admission_types=[],
        age_mean=0.0,
        age_std=1.0,
    )
    unit = {
        "lab_bins": [0],
        "lab_keys": ["MIMIC4_LABITEM//50912"],
        "lab_values": [-3.0],
        "lab_flags": [-1],
        "code_bins": [],
        "code_keys": [],
        "history": [],
        "age_years": 50.0,
        "sex": "F",
        "admission_type": "x",
        "n_prior_admissions": 0,
    }
    old = Featurize(**params)(unit)
    assert old[0, 0] == -3.0  # a pre-policy bundle: the value as recorded
    dropped = Featurize(**params, impossible_values="drop")(unit)
    assert dropped[0, 0] == 0.0 and dropped[0, 1] == 0.0  # not measured
    clipped = Featurize(
        **params, impossible_values="clip", impossible_limits={"MIMIC4_LABITEM//50912": [0.0, 40.0]}
    )(unit)
    assert clipped[0, 0] == 0.0 and clipped[0, 1] == 1.0  # measured, at the bound
    unflagged = {k: v for k, v in unit.items() if k != "lab_flags"}  # raw units from before the flags
    assert Featurize(**params, impossible_values="drop")(unflagged)[0, 0] == -3.0


def test_unknown_policy_is_refused():
    from pydantic import ValidationError

    from medlearn.ehr.features import Featurize
    from medlearn.ehr.tasks import AdmissionOptions

    with pytest.raises(ValidationError, match="impossible_values"):
        AdmissionOptions(impossible_values="fix")
    with pytest.raises(ValueError, match="drop, clip or keep"):
        Featurize(1, [], [], [], [], [], [], [], [], 0.0, 1.0, impossible_values="fix")
