"""The data of :mod:`medlearn.ehr.plausibility`: per source, the item ids / codes of the common labs and heart
rate, the unit each source stores them in, and the range outside which a value is physiologically impossible.

A value is impossible when it is below ``low`` (or equal to it when ``low_inclusive``) or above ``high``. The
bounds are deliberately far outside anything a living patient has had: they catch unit slips, typing errors
and sentinel values (99999, -1), not extreme illness, which stays in the data.

Bounds and where they come from (one bound per analyte, the same in every source because each source stores
the analyte in the same unit, or in one that is numerically equal: mEq/L = mmol/L for Na⁺ and K⁺):

============  ==========  ===========  ===================================================================
lab           impossible  unit         source of the bound
============  ==========  ===========  ===================================================================
creatinine    < 0, > 40   mg/dL        issue 16's bound (MIT-LCP mimic-code's ``labs_first_day.sql``
                                       discards > 150 mg/dL, a looser screen)
lactate       < 0, > 50   mmol/L       MIT-LCP mimic-code ``labs_first_day.sql`` (lactate > 50 → null)
WBC           < 0, > 1000 K/uL         mimic-code ``labs_first_day.sql`` (WBC > 1000 → null)
potassium     ≤ 0, > 15   mmol/L       issue 16's bound; mimic-code uses > 30 mEq/L
sodium        < 50, > 250 mmol/L       issue 16's bound; mimic-code uses > 200 mEq/L
glucose       < 0, > 5000 mg/dL        issue 16's bound; mimic-code uses > 10000 mg/dL
haemoglobin   < 0, > 30   g/dL         issue 16's bound; mimic-code uses > 50 g/dL
heart rate    < 0, > 300  /min         issue 16 ("heart rate > 300")
============  ==========  ===========  ===================================================================

Item ids were checked against each source's own dictionary where the shared data has it:

- ``MIMIC4_LABITEM``: ``mimic-iv-demo/hosp/d_labitems.csv.gz`` (v2.2; label, fluid, category in the
  comments). Only fluid "Blood" items (urine, stool and other-fluid glucose/WBC/potassium are different
  quantities with other ranges). Units: the ``valueuom`` of the item in the demo's ``labevents``; items the
  demo never measured take the unit of the analyte's main item (d_labitems v2.2 has no unit column).
  Heart rate: ``MIMIC4_ITEM`` 220045, ``icu/d_items.csv.gz`` "Heart Rate, chartevents, bpm" (read only when
  ``icu/chartevents`` is present; the shared demo lacks it).
- ``MIMIC3_LABITEM``: the shared MIMIC-III demo has no ``D_LABITEMS`` (nor ``LABEVENTS``); the ids are those
  MIT-LCP mimic-code's MIMIC-III ``concepts/firstday/labs_first_day.sql`` and ``blood_gas_first_day.sql``
  map to these labs (the same ids as MIMIC-IV's older items). MIMIC-III ``CHARTEVENTS`` is not read, so no
  heart-rate row.
- ``EICU_LAB``: ``lab.labname`` strings and ``labmeasurenamesystem`` units as they appear in
  ``eicu-demo/lab.csv``; heart rate: the ``physicalExam`` paths of "HR Current/Lowest/Highest"
  (``EICU_PHYSEXAM``, value = ``physicalexamtext``, no unit column). ``vitalPeriodic`` is not in the demo.
- ``LOINC`` (FHIR ``Observation.code``, MEDS ``LOINC//…``): codes and UCUM units from loinc.org
  (serum/plasma and whole-blood variants).
"""

from __future__ import annotations

from typing import NamedTuple


class Limit(NamedTuple):
    """One code of one source: impossible below ``low`` (at ``low`` too when ``low_inclusive``) or above
    ``high``, in ``unit`` (the source's spelling; ``units`` lists the spellings accepted as the same)."""

    lab: str
    code_system: str
    code: str
    unit: str
    low: float
    high: float
    low_inclusive: bool = False


#: lab → (low, high, low_inclusive, unit, spellings of that unit taken as equal, lower case)
BOUNDS: dict[str, tuple[float, float, bool, str, tuple[str, ...]]] = {
    "creatinine": (0.0, 40.0, False, "mg/dL", ("mg/dl",)),
    "lactate": (0.0, 50.0, False, "mmol/L", ("mmol/l", "meq/l")),
    "wbc": (0.0, 1000.0, False, "K/uL", ("k/ul", "k/mcl", "10*3/ul", "10^3/ul", "x10e3/ul", "10*9/l")),
    "potassium": (0.0, 15.0, True, "mmol/L", ("mmol/l", "meq/l")),
    "sodium": (50.0, 250.0, False, "mmol/L", ("mmol/l", "meq/l")),
    "glucose": (0.0, 5000.0, False, "mg/dL", ("mg/dl",)),
    "haemoglobin": (0.0, 30.0, False, "g/dL", ("g/dl", "gm/dl")),
    "heart_rate": (0.0, 300.0, False, "/min", ("/min", "bpm", "beats/min", "{beats}/min")),
}

#: (lab, code_system, code, unit as the source stores it) — the comment names the dictionary row.
CODES: tuple[tuple[str, str, str, str], ...] = (
    # MIMIC-IV hosp/d_labitems.csv.gz (itemid, label, fluid, category)
    ("creatinine", "MIMIC4_LABITEM", "50912", "mg/dL"),  # Creatinine, Blood, Chemistry
    ("creatinine", "MIMIC4_LABITEM", "52546", "mg/dL"),  # Creatinine, Blood, Chemistry
    ("creatinine", "MIMIC4_LABITEM", "52024", "mg/dL"),  # Creatinine, Whole Blood, Blood, Blood Gas
    ("lactate", "MIMIC4_LABITEM", "50813", "mmol/L"),  # Lactate, Blood, Blood Gas
    ("lactate", "MIMIC4_LABITEM", "52442", "mmol/L"),  # Lactate, Blood, Blood Gas
    ("lactate", "MIMIC4_LABITEM", "53154", "mmol/L"),  # Lactate, Blood, Chemistry
    ("wbc", "MIMIC4_LABITEM", "51301", "K/uL"),  # White Blood Cells, Blood, Hematology
    ("wbc", "MIMIC4_LABITEM", "51300", "K/uL"),  # WBC Count, Blood, Hematology
    ("wbc", "MIMIC4_LABITEM", "51755", "K/uL"),  # White Blood Cells, Blood, Chemistry
    ("wbc", "MIMIC4_LABITEM", "51756", "K/uL"),  # White Blood Cells, Blood, Chemistry
    ("potassium", "MIMIC4_LABITEM", "50971", "mEq/L"),  # Potassium, Blood, Chemistry
    ("potassium", "MIMIC4_LABITEM", "52610", "mEq/L"),  # Potassium, Blood, Chemistry
    ("potassium", "MIMIC4_LABITEM", "50822", "mEq/L"),  # Potassium, Whole Blood, Blood, Blood Gas
    ("potassium", "MIMIC4_LABITEM", "52452", "mEq/L"),  # Potassium, Whole Blood, Blood, Blood Gas
    ("sodium", "MIMIC4_LABITEM", "50983", "mEq/L"),  # Sodium, Blood, Chemistry
    ("sodium", "MIMIC4_LABITEM", "52623", "mEq/L"),  # Sodium, Blood, Chemistry
    ("sodium", "MIMIC4_LABITEM", "50824", "mEq/L"),  # Sodium, Whole Blood, Blood, Blood Gas
    ("sodium", "MIMIC4_LABITEM", "52455", "mEq/L"),  # Sodium, Whole Blood, Blood, Blood Gas
    ("glucose", "MIMIC4_LABITEM", "50931", "mg/dL"),  # Glucose, Blood, Chemistry
    ("glucose", "MIMIC4_LABITEM", "52569", "mg/dL"),  # Glucose, Blood, Chemistry
    ("glucose", "MIMIC4_LABITEM", "50809", "mg/dL"),  # Glucose, Blood, Blood Gas
    ("glucose", "MIMIC4_LABITEM", "52027", "mg/dL"),  # Glucose, Whole Blood, Blood, Blood Gas
    ("haemoglobin", "MIMIC4_LABITEM", "51222", "g/dL"),  # Hemoglobin, Blood, Hematology
    ("haemoglobin", "MIMIC4_LABITEM", "50811", "g/dL"),  # Hemoglobin, Blood, Blood Gas
    ("haemoglobin", "MIMIC4_LABITEM", "51640", "g/dL"),  # Hemoglobin, Blood, Chemistry
    # MIMIC-IV icu/d_items.csv.gz: 220045, Heart Rate, HR, chartevents, Routine Vital Signs, bpm
    ("heart_rate", "MIMIC4_ITEM", "220045", "bpm"),
    # MIMIC-III LABEVENTS.ITEMID (MIT-LCP mimic-code, mimic-iii/concepts/firstday/labs_first_day.sql)
    ("creatinine", "MIMIC3_LABITEM", "50912", "mg/dL"),  # CREATININE
    ("lactate", "MIMIC3_LABITEM", "50813", "mmol/L"),  # LACTATE (blood gas)
    ("wbc", "MIMIC3_LABITEM", "51300", "K/uL"),  # WBC
    ("wbc", "MIMIC3_LABITEM", "51301", "K/uL"),  # WBC
    ("potassium", "MIMIC3_LABITEM", "50971", "mEq/L"),  # POTASSIUM
    ("potassium", "MIMIC3_LABITEM", "50822", "mEq/L"),  # POTASSIUM (whole blood)
    ("sodium", "MIMIC3_LABITEM", "50983", "mEq/L"),  # SODIUM
    ("sodium", "MIMIC3_LABITEM", "50824", "mEq/L"),  # SODIUM (whole blood)
    ("glucose", "MIMIC3_LABITEM", "50931", "mg/dL"),  # GLUCOSE
    ("glucose", "MIMIC3_LABITEM", "50809", "mg/dL"),  # GLUCOSE (blood gas)
    ("haemoglobin", "MIMIC3_LABITEM", "51222", "g/dL"),  # HEMOGLOBIN
    ("haemoglobin", "MIMIC3_LABITEM", "50811", "g/dL"),  # HEMOGLOBIN (blood gas)
    # eICU lab.labname (labmeasurenamesystem as in eicu-demo/lab.csv)
    ("creatinine", "EICU_LAB", "creatinine", "mg/dL"),
    ("lactate", "EICU_LAB", "lactate", "mmol/L"),
    ("wbc", "EICU_LAB", "WBC x 1000", "K/mcL"),
    ("potassium", "EICU_LAB", "potassium", "mmol/L"),
    ("sodium", "EICU_LAB", "sodium", "mmol/L"),
    ("glucose", "EICU_LAB", "glucose", "mg/dL"),
    ("glucose", "EICU_LAB", "bedside glucose", "mg/dL"),
    ("haemoglobin", "EICU_LAB", "Hgb", "g/dL"),
    # eICU physicalExam.physicalexampath (value in physicalexamtext; no unit column: beats/min)
    *(
        (
            "heart_rate",
            "EICU_PHYSEXAM",
            "notes/Progress Notes/Physical Exam/Physical Exam/Constitutional/Vital Sign and Physiological "
            f"Data/HR/HR {which}",
            "/min",
        )
        for which in ("Current", "Lowest", "Highest")
    ),
    # LOINC (loinc.org): FHIR Observation.code, MEDS LOINC//code
    ("creatinine", "LOINC", "2160-0", "mg/dL"),  # Creatinine [Mass/volume] in Serum or Plasma
    ("creatinine", "LOINC", "38483-4", "mg/dL"),  # Creatinine [Mass/volume] in Blood
    ("lactate", "LOINC", "2524-7", "mmol/L"),  # Lactate [Moles/volume] in Serum or Plasma
    ("lactate", "LOINC", "32693-4", "mmol/L"),  # Lactate [Moles/volume] in Blood
    ("wbc", "LOINC", "6690-2", "10*3/uL"),  # Leukocytes [#/volume] in Blood by Automated count
    ("wbc", "LOINC", "26464-8", "10*3/uL"),  # Leukocytes [#/volume] in Blood
    ("potassium", "LOINC", "2823-3", "mmol/L"),  # Potassium [Moles/volume] in Serum or Plasma
    ("potassium", "LOINC", "6298-4", "mmol/L"),  # Potassium [Moles/volume] in Blood
    ("sodium", "LOINC", "2951-2", "mmol/L"),  # Sodium [Moles/volume] in Serum or Plasma
    ("sodium", "LOINC", "2947-0", "mmol/L"),  # Sodium [Moles/volume] in Blood
    ("glucose", "LOINC", "2345-7", "mg/dL"),  # Glucose [Mass/volume] in Serum or Plasma
    ("glucose", "LOINC", "2339-0", "mg/dL"),  # Glucose [Mass/volume] in Blood
    ("haemoglobin", "LOINC", "718-7", "g/dL"),  # Hemoglobin [Mass/volume] in Blood
    ("heart_rate", "LOINC", "8867-4", "/min"),  # Heart rate
)


def limits() -> list[Limit]:
    """Every row of :data:`CODES` with its lab's bounds."""
    return [
        Limit(lab, system, code, unit, BOUNDS[lab][0], BOUNDS[lab][1], BOUNDS[lab][2])
        for lab, system, code, unit in CODES
    ]
