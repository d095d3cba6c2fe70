"""Demographic subgroups of EHR units (sex, age band, race/ethnicity) for metrics per subgroup.

The admission table carries ``sex``, ``age_years`` and ``race`` as each source records them (see
:mod:`medlearn.ehr.io.schema`); the raw unit of every admission task keeps them, and
:func:`subgroup_masks` turns them into named boolean masks (``sex=F``, ``age=65-79``, ``race=Black``) that
the engine scores again on their own (``metrics.json`` → ``subsets``).

A subgroup is reported only when it holds at least :data:`MIN_SUBGROUP_SIZE` units of the split scored:
below that, a metric's bootstrap interval spans most of its range and a gap between groups says nothing
(and a very small group could single out patients).

Race/ethnicity: the sources spell it in dozens of ways (MIMIC-IV has 33 ``race`` strings, eICU 6
``ethnicity`` values, FHIR the CDC/OMB categories). They collapse into the groups of :data:`RACE_GROUPS`,
in this order of precedence (the first rule that matches the upper-cased string wins):

=============  ==========================================================================================
group          source strings (upper-cased, substring match)
=============  ==========================================================================================
Unknown        UNKNOWN, UNABLE TO OBTAIN, DECLINED, PATIENT DECLINED, NOT SPECIFIED, empty / missing
Hispanic       HISPANIC, LATINO, LATINA (MIMIC "HISPANIC/LATINO - …", eICU "Hispanic", FHIR ethnicity)
Black          BLACK, AFRICAN (MIMIC "BLACK/…", eICU "African American", FHIR "Black or African American")
White          WHITE, CAUCASIAN, PORTUGUESE (MIMIC "WHITE - …", eICU "Caucasian", FHIR "White")
Asian          ASIAN (MIMIC "ASIAN - …", eICU "Asian", FHIR "Asian"); after White, which "CAUCASIAN" matches
Other          anything else (American Indian/Alaska Native, Native Hawaiian/Pacific Islander, multiple,
               "OTHER", eICU "Native American" / "Other/Unknown")
=============  ==========================================================================================

Hispanic comes before the race groups because MIMIC files Hispanic patients under one combined
race/ethnicity string ("HISPANIC/LATINO - DOMINICAN") and eICU records a single ``ethnicity``; the
groups therefore mix race and ethnicity as the sources do. eICU's "Other/Unknown" is Other (it cannot be
split). Age bands: 18-44, 45-64, 65-79, 80+ years at admission (every source caps de-identified ages at
90, which stays in 80+); younger patients (none in the shared demos' cohorts) form ``age=<18``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: A subgroup is scored only with at least this many units in the split (see the module docstring).
MIN_SUBGROUP_SIZE = 20

#: (group, upper-case substrings): the first group whose substring occurs in the race string wins.
RACE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Unknown", ("UNKNOWN", "UNABLE TO OBTAIN", "DECLINED", "NOT SPECIFIED")),
    ("Hispanic", ("HISPANIC", "LATINO", "LATINA")),
    ("Black", ("BLACK", "AFRICAN")),
    ("White", ("WHITE", "CAUCASIAN", "PORTUGUESE")),  # before Asian: "CAUCASIAN" contains "ASIAN"
    ("Asian", ("ASIAN",)),
)
RACE_GROUPS = ("White", "Black", "Hispanic", "Asian", "Other", "Unknown")

#: (label, lower bound in years inclusive, upper bound exclusive)
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<18", 0.0, 18.0),
    ("18-44", 18.0, 45.0),
    ("45-64", 45.0, 65.0),
    ("65-79", 65.0, 80.0),
    ("80+", 80.0, float("inf")),
)


def race_group(race: str | None) -> str:
    """The group of :data:`RACE_GROUPS` a source's race/ethnicity string falls in (see the module)."""
    text = (race or "").strip().upper()
    if not text:
        return "Unknown"
    if text == "OTHER/UNKNOWN":  # eICU: cannot be split; counted with Other
        return "Other"
    for group, needles in RACE_RULES:
        if any(needle in text for needle in needles):
            return group
    return "Other"


def age_band(age: float | None) -> str | None:
    """The band of :data:`AGE_BANDS` of an age in years, None when unknown."""
    if age is None or not np.isfinite(age):
        return None
    for label, low, high in AGE_BANDS:
        if low <= age < high:
            return label
    return None


def demographics(unit: dict[str, Any]) -> dict[str, str | None]:
    """``{"sex": "F"|"M"|None, "age": band|None, "race": group}`` of one raw unit."""
    sex = unit.get("sex")
    return {
        "sex": sex if sex in ("F", "M") else None,
        "age": age_band(unit.get("age_years")),
        "race": race_group(unit.get("race")),
    }


def subgroup_masks(units: Sequence[Any], min_size: int = MIN_SUBGROUP_SIZE) -> dict[str, np.ndarray]:
    """Boolean masks over ``units`` named ``sex=F``, ``age=45-64``, ``race=White``…, only for groups of at
    least ``min_size`` units (non-dict units, e.g. from elsewhere, belong to no group)."""
    rows = [demographics(u) if isinstance(u, dict) else {} for u in units]
    masks: dict[str, np.ndarray] = {}
    orders = {
        "sex": ("F", "M"),
        "age": tuple(label for label, _, _ in AGE_BANDS),
        "race": RACE_GROUPS,
    }
    for attribute, values in orders.items():
        for value in values:
            mask = np.array([row.get(attribute) == value for row in rows], dtype=bool)
            if mask.sum() >= min_size:
                masks[f"{attribute}={value}"] = mask
    return masks


def subgroup_sizes(units: Sequence[Any]) -> dict[str, int]:
    """Every subgroup's size, reported or not (for the data section and the docs)."""
    return {name: int(mask.sum()) for name, mask in subgroup_masks(units, min_size=1).items()}
