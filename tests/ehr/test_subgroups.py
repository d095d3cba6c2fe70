"""Demographic subgroups: race/ethnicity read by every reader, collapsed into the documented groups, age
bands, the minimum size, and the subsets the EHR tasks return on the real MIMIC-IV and eICU test splits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.conftest import require_data
from tests.ehr.helpers import read_raw


@pytest.mark.parametrize(
    ("race", "group"),
    [
        ("WHITE", "White"),
        ("WHITE - BRAZILIAN", "White"),
        ("PORTUGUESE", "White"),
        ("Caucasian", "White"),  # contains "asian": White is matched first
        ("BLACK/CAPE VERDEAN", "Black"),
        ("African American", "Black"),
        ("Black or African American", "Black"),
        ("HISPANIC/LATINO - CUBAN", "Hispanic"),
        ("Hispanic", "Hispanic"),
        ("White / Hispanic or Latino", "Hispanic"),
        ("ASIAN - CHINESE", "Asian"),
        ("Asian", "Asian"),
        ("AMERICAN INDIAN/ALASKA NATIVE", "Other"),
        ("Other/Unknown", "Other"),  # eICU: cannot be split
        ("OTHER", "Other"),
        ("UNKNOWN/NOT SPECIFIED", "Unknown"),
        ("UNABLE TO OBTAIN", "Unknown"),
        ("PATIENT DECLINED TO ANSWER", "Unknown"),
        ("", "Unknown"),
        (None, "Unknown"),
    ],
)
def test_race_strings_collapse_into_the_documented_groups(race, group):
    from medlearn.ehr.subgroups import race_group

    assert race_group(race) == group


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (17.9, "<18"),
        (18.0, "18-44"),
        (44.99, "18-44"),
        (45.0, "45-64"),
        (65.0, "65-79"),
        (80.0, "80+"),
        (90.0, "80+"),
        (None, None),
        (float("nan"), None),
    ],
)
def test_age_bands(age, band):
    from medlearn.ehr.subgroups import age_band

    assert age_band(age) == band


def test_small_groups_are_not_reported():
    from medlearn.ehr.subgroups import MIN_SUBGROUP_SIZE, subgroup_masks

    units = [{"sex": "F", "age_years": 50.0, "race": "WHITE"}] * MIN_SUBGROUP_SIZE
    units += [{"sex": "M", "age_years": 85.0, "race": "ASIAN"}] * (MIN_SUBGROUP_SIZE - 1) + [None]
    masks = subgroup_masks(units)
    assert set(masks) == {"sex=F", "age=45-64", "race=White"}
    assert masks["sex=F"].dtype == bool and masks["sex=F"].sum() == MIN_SUBGROUP_SIZE
    assert not masks["sex=F"][-1]  # a unit that is not a dict belongs to no group


@pytest.mark.parametrize(
    ("folder", "table", "column"),
    [
        ("ehr/mimic-iv-demo", "hosp/admissions.csv.gz", "race"),
        ("ehr/mimic-iii-demo", "ADMISSIONS.csv.gz", "ethnicity"),
    ],
)
def test_mimic_readers_carry_race_per_admission(folder, table, column):
    from medlearn.ehr.io import read_source

    root = require_data(folder)
    raw = read_raw(root / table).select(pl.col("hadm_id").alias("admission_id"), pl.col(column).alias("raw"))
    got = read_source(root).admissions.collect().join(raw, on="admission_id")
    assert got.height == raw.height and got["race"].null_count() == 0
    assert (got["race"] == got["raw"]).all()


def test_eicu_reader_carries_ethnicity():
    from medlearn.ehr.io import read_source

    admissions = read_source(require_data("ehr/eicu-demo")).admissions.collect()
    counts = dict(admissions.group_by("race").len().iter_rows())
    assert counts == {
        "Caucasian": 109,
        "African American": 20,
        "Hispanic": 10,
        "Other/Unknown": 3,
        "Asian": 2,
    }


def test_fhir_reader_takes_the_us_core_race_extension():
    from medlearn.ehr.io import read_source

    root = require_data("ehr/fhir/synthea-r4-bundles")
    admissions = read_source(root).admissions.collect()
    assert set(admissions["race"].drop_nulls()) == {"White", "Black or African American", "Other", "Asian"}
    bill = admissions.filter(pl.col("subject_id") == "60319ca6-f8b8-49a2-8abf-7ca0065a21d4")  # Bill Reinger
    assert bill.height > 0 and set(bill["race"]) == {"White"}  # ombCategory 2106-3, text "White"


def test_fhir_hispanic_ethnicity_is_appended():
    from medlearn.ehr.io.fhir_resources import _race

    def ext(kind: str, code: str, text: str) -> dict:
        return {
            "url": f"http://hl7.org/fhir/us/core/StructureDefinition/us-core-{kind}",
            "extension": [
                {"url": "ombCategory", "valueCoding": {"code": code, "display": text}},
                {"url": "text", "valueString": text},
            ],
        }

    patient = {
        "extension": [ext("race", "2106-3", "White"), ext("ethnicity", "2135-2", "Hispanic or Latino")]
    }
    assert _race(patient) == "White / Hispanic or Latino"
    assert _race({"extension": [ext("race", "2054-5", "Black or African American")]}) == (
        "Black or African American"
    )
    assert _race({}) is None


def _test_split(task_cls, folder: str):
    from medlearn.engine.data import group_split

    task = task_cls(task_cls.Options())
    table = task.load(require_data(folder))
    split = group_split(table.targets, table.groups, 0.2, 0.25, 0)  # the shipped configs' split
    return task, table.subset(np.flatnonzero(split == "test"))


def test_mimic4_los_task_returns_sex_age_and_race_subsets_on_its_test_split():
    from medlearn.ehr.subgroups import subgroup_sizes
    from medlearn.ehr.tasks import LOSClassification

    task, test = _test_split(LOSClassification, "ehr/mimic-iv-demo")
    assert len(test) == 62
    from medlearn.engine.subgroups import MIN_GROUP_UNITS

    sizes = {name: int(mask.sum()) for name, mask in task.metric_subsets(test).items()}
    scored = {name: n for name, n in sizes.items() if n >= MIN_GROUP_UNITS}  # the engine scores these
    assert scored == {"sex=F": 21, "sex=M": 41, "age=45-64": 29, "race=White": 43}
    every = subgroup_sizes(test.raw)  # below 20: listed as too small, not scored
    assert sizes == every and every["age=18-44"] == 12 and every["race=Black"] == 10
    assert sum(every[k] for k in every if k.startswith("sex=")) == len(test)


def test_eicu_los_task_subsets_on_its_test_split():
    from medlearn.ehr.subgroups import subgroup_sizes
    from medlearn.ehr.tasks import LOSClassification

    task, test = _test_split(LOSClassification, "ehr/eicu-demo")
    assert len(test) == 34
    sizes = {k: int(m.sum()) for k, m in task.metric_subsets(test).items()}
    assert {k: n for k, n in sizes.items() if n >= 20} == {"race=White": 26}
    assert subgroup_sizes(test.raw)["sex=F"] == 17
