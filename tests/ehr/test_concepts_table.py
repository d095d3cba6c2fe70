"""Every id of the shipped concept table exists in its source's own dictionary (issue 17, Must show).

Where each check looks:

- MIMIC-IV: ``hosp/d_labitems`` (label, fluid Blood) and ``icu/d_items`` (label, and the table it links to).
- MIMIC-III: the shared demo has **no** ``D_LABITEMS``/``D_ITEMS`` (nor LABEVENTS/CHARTEVENTS). Its lab ids are
  checked against MIMIC-IV's ``d_labitems`` (MIMIC-IV kept MIMIC-III's lab itemids, 50800–51555, with the
  same labels) and against that id range; prescriptions are matched by drug name on the real file.
- eICU: lab names in ``lab.csv``, physical-exam paths in ``physicalExam.csv``; drug and treatment patterns
  must each find a name in the files (or in another source, for drugs the subset never ordered).
- FHIR: no LOINC, SNOMED or RxNorm dictionary ships with medlearn or the shared data. LOINC codes must carry
  a valid LOINC mod-10 check digit, SNOMED ids a valid Verhoeff check digit; LOINC codes present in the
  Synthea bundles must carry the display the bundles give them. RxNorm ingredient codes have no check
  digit and are not verifiable offline (the drug-name patterns are what matches Synthea's clinical-drug
  codes).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from medlearn.ehr.concepts import load_concepts
from tests.conftest import require_data

CONCEPTS = load_concepts()


def _codes(source: str, system: str) -> dict[str, tuple[str, str, str]]:
    """code → (concept, label, table) of every exact code the table maps for ``source`` in ``system``."""
    return {
        code: (c.name, label, rule.table)
        for c in CONCEPTS.values()
        for rule in c.map.get(source, [])
        if rule.system == system
        for code, label in rule.codes.items()
    }


def _patterns(source: str, system: str) -> list[tuple[str, str, str | None]]:
    return [
        (c.name, rule.pattern, rule.exclude)
        for c in CONCEPTS.values()
        for rule in c.map.get(source, [])
        if rule.system == system and rule.pattern is not None
    ]


def _matches(pattern: str, exclude: str | None, text: str) -> bool:
    return re.search(pattern, text, re.I) is not None and (
        exclude is None or not re.search(exclude, text, re.I)
    )


@pytest.fixture(scope="module")
def mimic4() -> Path:
    return require_data("ehr/mimic-iv-demo")


@pytest.fixture(scope="module")
def d_labitems(mimic4) -> pl.DataFrame:
    return pl.read_csv(mimic4 / "hosp/d_labitems.csv.gz", infer_schema=False)


def test_the_table_has_about_fifty_icu_concepts_of_every_kind():
    kinds = {k: [c for c in CONCEPTS.values() if c.kind == k] for k in ("numeric", "event", "static")}
    assert len(CONCEPTS) >= 50
    categories = {c.category for c in CONCEPTS.values()}
    assert {
        "vital",
        "chemistry",
        "hematology",
        "blood_gas",
        "vasopressor",
        "ventilation",
        "demographics",
    } <= categories
    assert {"output", "fluids"} <= categories
    assert len(kinds["event"]) >= 10 and {c.name for c in kinds["static"]} == {"age", "sex", "admission_type"}
    for name in (
        "heart_rate",
        "sbp",
        "dbp",
        "map",
        "resp_rate",
        "temperature",
        "spo2",
        "gcs_total",
        "creatinine",
        "lactate",
        "inr",
        "ph",
        "po2",
        "pco2",
        "norepinephrine",
        "vasopressin",
        "weight",
        "height",
    ):
        assert name in CONCEPTS


def test_mimic4_lab_ids_exist_in_d_labitems_with_their_label_and_fluid_blood(d_labitems):
    codes = _codes("mimic4", "MIMIC4_LABITEM")
    assert len(codes) >= 60
    known = {r["itemid"]: r for r in d_labitems.to_dicts()}
    for code, (concept, label, _) in codes.items():
        assert code in known, f"{concept}: MIMIC-IV lab itemid {code} not in d_labitems"
        assert known[code]["label"] == label, (
            f"{concept}: {code} is {known[code]['label']!r}, table says {label!r}"
        )
        assert known[code]["fluid"] == "Blood", f"{concept}: {code} is a {known[code]['fluid']} item"


def test_mimic4_icu_ids_exist_in_d_items_with_their_label_and_table(mimic4):
    items = {
        r["itemid"]: r for r in pl.read_csv(mimic4 / "icu/d_items.csv.gz", infer_schema=False).to_dicts()
    }
    codes = _codes("mimic4", "MIMIC4_ITEM")
    assert len(codes) >= 40
    for code, (concept, label, table) in codes.items():
        assert code in items, f"{concept}: MIMIC-IV ICU itemid {code} not in d_items"
        assert items[code]["label"] == label, (
            f"{concept}: {code} is {items[code]['label']!r}, table says {label!r}"
        )
        assert table == f"icu/{items[code]['linksto']}", (
            f"{concept}: {code} lives in {items[code]['linksto']}"
        )


def test_mimic3_lab_ids_are_mimic3_itemids_with_the_same_label_in_mimic4(d_labitems):
    """The MIMIC-III demo ships no D_LABITEMS: ids are checked against MIMIC-IV's, which kept them."""
    assert not list(require_data("ehr/mimic-iii-demo").glob("D_LABITEMS*"))
    known = {r["itemid"]: r["label"] for r in d_labitems.to_dicts()}
    codes = _codes("mimic3", "MIMIC3_LABITEM")
    assert len(codes) >= 40
    for code, (concept, label, _) in codes.items():
        assert 50800 <= int(code) <= 51555, f"{concept}: {code} is outside MIMIC-III's lab itemids"
        assert known.get(code) == label, f"{concept}: {code}"
    mimic4 = {code: label for code, (_, label, _) in _codes("mimic4", "MIMIC4_LABITEM").items()}
    assert all(mimic4.get(code) == label for code, (_, label, _) in codes.items())


def test_eicu_lab_names_and_exam_paths_exist_in_the_files():
    root = require_data("ehr/eicu-demo")
    labs = set(pl.read_csv(root / "lab.csv", infer_schema=False)["labname"].drop_nulls())
    paths = set(pl.read_csv(root / "physicalExam.csv", infer_schema=False)["physicalexampath"].drop_nulls())
    for system, found in (("EICU_LAB", labs), ("EICU_PHYSEXAM", paths)):
        codes = _codes("eicu", system)
        assert codes
        for code, (concept, _, _) in codes.items():
            assert code in found, f"{concept}: eICU {system} {code!r} not in the files"
    from medlearn.ehr.io.eicu_vitals import VITALS

    columns = {column for table in VITALS.values() for column in table}  # eICU-CRD's documented columns
    vitals = _codes("eicu", "EICU_VITAL")
    assert len(vitals) >= 8 and set(vitals) <= columns
    assert all(table in VITALS and code in VITALS[table] for code, (_, _, table) in vitals.items())
    for concept, pattern, _ in _patterns("eicu", "EICU_PHYSEXAM"):
        assert any(re.search(pattern, p, re.I) for p in paths), f"{concept}: {pattern} matches no exam path"


def test_every_drug_and_treatment_pattern_finds_a_name_in_the_shared_data():
    names = set(
        pl.read_csv(require_data("ehr/eicu-demo") / "medication.csv", infer_schema=False)[
            "drugname"
        ].drop_nulls()
    )
    treatments = set(
        pl.read_csv(require_data("ehr/eicu-demo") / "treatment.csv", infer_schema=False)["treatmentstring"]
    )
    for rel in ("ehr/mimic-iv-demo/hosp/prescriptions.csv.gz", "ehr/mimic-iii-demo/PRESCRIPTIONS.csv.gz"):
        frame = pl.read_csv(require_data(rel), infer_schema=False)
        names |= set(frame[[c for c in frame.columns if c.lower() == "drug"][0]].drop_nulls())
    for source in ("mimic4", "mimic3", "eicu"):
        for system, found in (
            ("DRUG", names),
            ("NDC", names),
            ("EICU_MED", names),
            ("EICU_TREATMENT", treatments),
        ):
            for concept, pattern, exclude in _patterns(source, system):
                assert any(_matches(pattern, exclude, n) for n in found), f"{concept}: {source} {pattern}"


@pytest.mark.parametrize(
    ("name", "concept", "expected"),
    [
        ("NORepinephrine", "norepinephrine", True),
        ("NORepinephrine", "epinephrine", False),  # 'epinephrine' inside 'norepinephrine' is not epinephrine
        ("EPINEPHrine", "epinephrine", True),
        ("Lidocaine 1%/Epinephrine 1:100000", "epinephrine", False),  # a local anaesthetic
        ("Racepinephrine", "epinephrine", False),
        ("Epinephrine 1:1000", "epinephrine", False),  # anaphylaxis, not an infusion
        ("Heparin Flush (10 units/ml)", "heparin", False),
        ("Heparin Sodium", "heparin", True),
        ("Insulin Syringe U-500", "insulin", False),
        ("Vancomycin Oral Liquid", "vancomycin", False),
        ("PHENYLEPHrine", "phenylephrine", True),
    ],
)
def test_drug_name_patterns_keep_the_drug_and_leave_its_lookalikes(name, concept, expected):
    rules = [r for r in CONCEPTS[concept].map["mimic4"] if r.system == "DRUG"]
    assert any(_matches(r.pattern, r.exclude, name) for r in rules) is expected


def loinc_check_digit(number: str) -> int:
    """LOINC's mod-10 check digit of the part before the hyphen."""
    digits = number[::-1]
    odd = int(digits[0::2][::-1]) * 2
    text = digits[1::2][::-1] + str(odd)
    return (10 - sum(int(d) for d in text) % 10) % 10


def verhoeff_valid(number: str) -> bool:
    """The Verhoeff check SNOMED CT identifiers carry in their last digit."""
    d = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
         [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
         [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
         [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]  # fmt: skip
    p = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
         [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
         [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]  # fmt: skip
    check = 0
    for i, digit in enumerate(reversed(number)):
        check = d[check][p[i % 8][int(digit)]]
    return check == 0


def test_the_check_digit_algorithms_accept_known_codes_and_refuse_a_typo():
    assert loinc_check_digit("2160") == 0 and loinc_check_digit("718") == 7 and loinc_check_digit("8867") == 4
    assert loinc_check_digit("2161") != 0
    assert verhoeff_valid("22298006") and verhoeff_valid("38341003")  # myocardial infarction, hypertension
    assert not verhoeff_valid("22298007")


def test_fhir_codes_are_well_formed_and_those_in_the_synthea_bundles_carry_their_display():
    from medlearn.ehr.io import read_source

    source = read_source(require_data("ehr/fhir/synthea-r4-bundles"), cache=False)
    displays = {(r["code_system"], r["code"]): r["description"] for r in source.codes.collect().to_dicts()}
    loinc = _codes("fhir", "LOINC")
    assert len(loinc) >= 60
    in_bundles = 0
    for code, (concept, label, _) in loinc.items():
        number, _, check = code.partition("-")
        assert number.isdigit() and check.isdigit(), f"{concept}: {code} is not a LOINC code"
        assert loinc_check_digit(number) == int(check), f"{concept}: LOINC {code} has a wrong check digit"
        if ("LOINC", code) in displays:
            in_bundles += 1
            assert displays[("LOINC", code)] == label, f"{concept}: {code}"
    assert in_bundles >= 15  # the rest are absent from these 15 patients (no LOINC dictionary to check them)
    for code, (concept, _, _) in _codes("fhir", "SNOMED").items():
        assert code.isdigit() and verhoeff_valid(code), f"{concept}: SNOMED {code} fails the Verhoeff check"
    assert all(code.isdigit() for code in _codes("fhir", "RXNORM"))


def test_a_malformed_concept_table_is_a_config_error_naming_the_concept(tmp_path):
    from medlearn.errors import ConfigError

    path = tmp_path / "concepts.yaml"
    path.write_text(
        "lactate: {kind: numeric, category: lab, unit: mmol/L, range: [0, 50], units: {mg/dl: 0.111}, map: {}}\n"
    )
    with pytest.raises(ConfigError, match=r"concept 'lactate'.*canonical unit 'mmol/L'"):
        load_concepts(path)
    path.write_text(
        "x: {kind: event, category: drug, map: {cerner: [{table: t, system: S, codes: {a: b}}]}}\n"
    )
    with pytest.raises(ConfigError, match=r"concept 'x'.*unknown source"):
        load_concepts(path)


def test_every_admission_type_spelling_the_table_lists_occurs_in_its_source():
    from medlearn.ehr.io import read_source

    roots = {"mimic4": "ehr/mimic-iv-demo", "mimic3": "ehr/mimic-iii-demo", "eicu": "ehr/eicu-demo",
             "fhir": "ehr/fhir/synthea-r4-bundles"}  # fmt: skip
    for kind, rel in roots.items():
        seen = set(read_source(require_data(rel)).admissions.collect()["admission_type"].drop_nulls())
        (rule,) = CONCEPTS["admission_type"].map[kind]
        listed = {v for values in rule.values.values() for v in values}
        assert listed and listed <= seen, (kind, listed - seen)
