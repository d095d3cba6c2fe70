"""eICU's bedside vital signs (``vitalPeriodic``, ``vitalAperiodic``) → canonical events.

Why a module of its own: these two tables are wide (one column per vital sign, one row per observation
time) where every other eICU table is long, so they are unpivoted: each non-empty vital-sign cell becomes
one ``EICU_VITAL`` event whose ``code`` is the column name (``heartrate``, ``systemicsystolic``,
``noninvasivemean`` …) and whose ``value_num`` is the cell. The shared eICU demo subset holds neither
table (full eICU-CRD and its PhysioNet demo do): when absent they are simply not read, which changes
nothing for the subset.

Time: ``observationoffset`` minutes from the unit admission. ``vitalPeriodic`` holds 5-minute medians
captured automatically from the monitor and ``vitalAperiodic`` the non-invasive cuff readings; both are
available at the bedside when measured, so the offset is the time the care team could know them.
Units follow the eICU documentation (no unit column): °C, %, /min, mmHg.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from medlearn.ehr.io._tables import Checks, find_table, make_events, read_header, scan_table, to_float

#: table → {column: unit (eICU-CRD documentation)} of the vital signs read from it.
VITALS: dict[str, dict[str, str]] = {
    "vitalPeriodic": {
        "temperature": "°C",
        "sao2": "%",
        "heartrate": "/min",
        "respiration": "/min",
        "cvp": "mmHg",
        "systemicsystolic": "mmHg",
        "systemicdiastolic": "mmHg",
        "systemicmean": "mmHg",
    },
    "vitalAperiodic": {
        "noninvasivesystolic": "mmHg",
        "noninvasivediastolic": "mmHg",
        "noninvasivemean": "mmHg",
    },
}
SYSTEM = "EICU_VITAL"


def vital_tables(root: Path) -> list[Path]:
    """The vital-sign tables present under ``root`` (for the reader's fingerprint)."""
    return [p for table in VITALS if (p := find_table(root, table)) is not None]


def vital_events(
    root: Path, keys: pl.LazyFrame, checks: Checks, ids: dict[str, pl.Expr]
) -> list[pl.LazyFrame]:
    """``EICU_VITAL`` events of every vital-sign column present, joined to the unit stays in ``keys``
    (patientunitstayid, uniquepid, patienthealthsystemstayid, unit_admit) to get ids and clock."""
    frames = []
    for table, units in VITALS.items():
        path = find_table(root, table)
        if path is None:
            continue
        present = [c for c in units if c in read_header(path)]
        frame = scan_table(path, ["patientunitstayid", "observationoffset"], present, checks=checks)
        frame = frame.join(keys, on="patientunitstayid", how="inner").with_columns(
            time=pl.col("unit_admit")
            + pl.duration(minutes=to_float("observationoffset").round(0).cast(pl.Int64))
        )
        long = frame.unpivot(
            index=["patientunitstayid", "uniquepid", "patienthealthsystemstayid", "time"],
            on=present,
            variable_name="vital",
            value_name="raw",
        ).filter(pl.col("raw").is_not_null() & (pl.col("raw").str.strip_chars() != ""))
        unit = pl.col("vital").replace_strict(units, default=None, return_dtype=pl.String)
        frames.append(
            make_events(
                long,
                table,
                time=pl.col("time"),
                code_system=SYSTEM,
                code=pl.col("vital"),
                value_num=to_float("raw"),
                unit=unit,
                value_text=pl.col("raw"),
                **ids,
            )
        )
    return frames
