"""Synthetic hospital data in the MIMIC-IV layout, for the embedded demo (no external data).

Each admission has a hidden severity that drives its length of stay, its lab values (creatinine, lactate,
white cells, haemoglobin, sodium) and the medications it gets in the first day, so a model can learn
something real; ages, sexes, admission types and earlier admissions vary. Files are written exactly as
PhysioNet ships MIMIC-IV (``hosp/*.csv.gz``, the same columns and time format), so the demo exercises the
same reader as real data. Not a model of any real population.
"""

from __future__ import annotations

import csv
import gzip
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

#: itemid, label, unit, mean, sd, change per unit of severity.
LABS = [
    (50912, "Creatinine", "mg/dL", 1.0, 0.3, 0.5),
    (50813, "Lactate", "mmol/L", 1.2, 0.4, 0.9),
    (51301, "White Blood Cells", "K/uL", 8.0, 2.0, 3.0),
    (51222, "Hemoglobin", "g/dL", 13.0, 1.2, -1.2),
    (50983, "Sodium", "mEq/L", 139.0, 2.5, -2.0),
]
DRUGS = [
    "Heparin",
    "Furosemide",
    "Vancomycin",
    "Piperacillin-Tazobactam",
    "Insulin",
    "Acetaminophen",
    "Ondansetron",
    "Norepinephrine",
]
ICD10 = ["I10", "E119", "N179", "J189", "I509", "A419", "K219", "E785"]
TIME = "%Y-%m-%d %H:%M:%S"


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write_synthetic_mimic4(folder: Path, n_patients: int = 300, seed: int = 0) -> Path:
    """Write ``hosp/`` tables for ``n_patients`` synthetic patients (1–3 admissions each); returns ``folder``."""
    rng = np.random.default_rng(seed)
    patients, admissions, diagnoses, procedures, prescriptions, labs = [], [], [], [], [], []
    hadm, lab_id = 20_000_000, 1
    for p in range(n_patients):
        subject = 10_000_000 + p
        age, sex = int(rng.integers(18, 89)), ("F" if rng.random() < 0.5 else "M")
        patients.append([subject, sex, age, 2150, "2014 - 2016", ""])
        start = datetime(2150, 1, 1) + timedelta(days=float(rng.uniform(0, 300)))
        frailty = rng.normal(0, 0.5) + (age - 60) / 40
        for _ in range(int(rng.integers(1, 4))):
            hadm += 1
            severity = frailty + rng.normal(0, 0.8)
            los_days = float(np.exp(1.2 + 0.55 * severity + rng.normal(0, 0.35)))
            admit = start + timedelta(minutes=int(rng.integers(0, 1440)))
            discharge = admit + timedelta(days=los_days)
            died = rng.random() < 1 / (1 + np.exp(-(severity - 2.5)))
            death = discharge if died else None
            kind = "EW EMER." if severity > 0 else ("URGENT" if rng.random() < 0.5 else "ELECTIVE")
            admissions.append(
                [
                    subject,
                    hadm,
                    admit.strftime(TIME),
                    discharge.strftime(TIME),
                    death.strftime(TIME) if death else "",
                    kind,
                    int(died),
                ]
            )
            for code in rng.choice(ICD10, size=int(rng.integers(1, 4)), replace=False):
                diagnoses.append([subject, hadm, 1, code, 10])
            if severity > 1:
                procedures.append(
                    [subject, hadm, 1, (admit + timedelta(hours=30)).strftime("%Y-%m-%d"), "5A1955Z", 10]
                )
            for hour in np.arange(0, min(los_days * 24, 72), float(rng.choice([6, 8, 12]))):
                t = admit + timedelta(hours=float(hour) + float(rng.uniform(0, 1)))
                for itemid, _, unit, mean, sd, slope in LABS:
                    value = round(float(mean + slope * severity + rng.normal(0, sd)), 2)
                    stored = t + timedelta(hours=1)  # the result, an hour after the specimen
                    labs.append(
                        [
                            lab_id,
                            subject,
                            hadm,
                            itemid,
                            t.strftime(TIME),
                            stored.strftime(TIME),
                            value,
                            value,
                            unit,
                        ]
                    )
                    lab_id += 1
            n_drugs = int(np.clip(rng.poisson(1 + max(severity, 0) * 2), 0, len(DRUGS)))
            for drug in rng.choice(DRUGS, size=n_drugs, replace=False):
                t = admit + timedelta(hours=float(rng.uniform(0, 30)))
                prescriptions.append([subject, hadm, t.strftime(TIME), drug, "0"])
            start = discharge + timedelta(days=float(rng.uniform(20, 200)))
    hosp = Path(folder) / "hosp"
    _write(
        hosp / "patients.csv.gz",
        ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"],
        patients,
    )
    _write(
        hosp / "admissions.csv.gz",
        [
            "subject_id",
            "hadm_id",
            "admittime",
            "dischtime",
            "deathtime",
            "admission_type",
            "hospital_expire_flag",
        ],
        admissions,
    )
    _write(
        hosp / "diagnoses_icd.csv.gz",
        ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
        diagnoses,
    )
    _write(
        hosp / "procedures_icd.csv.gz",
        ["subject_id", "hadm_id", "seq_num", "chartdate", "icd_code", "icd_version"],
        procedures,
    )
    _write(
        hosp / "prescriptions.csv.gz", ["subject_id", "hadm_id", "starttime", "drug", "ndc"], prescriptions
    )
    _write(
        hosp / "labevents.csv.gz",
        [
            "labevent_id",
            "subject_id",
            "hadm_id",
            "itemid",
            "charttime",
            "storetime",
            "value",
            "valuenum",
            "valueuom",
        ],
        labs,
    )
    _write(
        hosp / "d_labitems.csv.gz",
        ["itemid", "label", "fluid", "category"],
        [[i, label, "Blood", "Chemistry"] for i, label, *_ in LABS],
    )
    return Path(folder)
