"""MIMIC-IV-shaped ``hosp/`` tables at k× the size of the MIMIC-IV demo, resampled from the demo itself.

Method: a *balanced bootstrap* of patients. Every demo patient is cloned exactly ``k`` times; each clone
gets a new ``subject_id``, new ``hadm_id`` s (and new ``labevent_id`` / ``specimen_id`` /
``pharmacy_id`` / ``poe_id``), and one random whole-day time shift (±10 years) applied to every
timestamp and date of that patient (``anchor_year`` moves by the same number of years, so ages stay
consistent). Everything else — which admissions a patient has, how long they last, which labs, drugs,
procedures and diagnoses occur at which offset inside an admission, the values, units, free text, nulls
and quoting — is copied from the demo row for row. So at 1× the tables have exactly the demo's row
counts (100 patients, 275 admissions, 107,727 lab rows) and at k× exactly k times them, with the demo's
per-patient and per-admission event patterns; whole-day shifts keep the time-of-day structure (labs
drawn at 00:00, prescriptions starting on the hour, ``chartdate`` date-only).

Caveat: values are not perturbed and the code vocabulary does not grow with k (a real hospital 100×
larger has a longer tail of rare codes and more distinct drug names), so dictionary-size-dependent costs
are underestimated; row-count-dependent costs (parsing, joins, sorting, binning) are realistic.

Columns, their order, string formats (``YYYY-MM-DD HH:MM:SS``, dates, ids, the quoted empty ``""`` of
``form_rx``) and the gzip CSV layout are those of ``mimic-iv-demo/hosp/*.csv.gz``: every table is read
as strings and written back as strings, so only ids and times change. ``d_labitems`` is copied as is.
Each file is one gzip member like PhysioNet's, compressed at level 1 (not 6) to keep generation fast:
the files are ~25% larger than at level 6, decompression costs the reader about the same.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl

TABLES = [
    "patients",
    "admissions",
    "diagnoses_icd",
    "procedures_icd",
    "prescriptions",
    "labevents",
    "d_labitems",
]
#: Per table: timestamp columns ("YYYY-MM-DD HH:MM:SS") and date-only columns ("YYYY-MM-DD") to shift.
TIMES = {
    "patients": ([], ["dod"]),
    "admissions": (["admittime", "dischtime", "deathtime", "edregtime", "edouttime"], []),
    "diagnoses_icd": ([], []),
    "procedures_icd": ([], ["chartdate"]),
    "prescriptions": (["starttime", "stoptime"], []),
    "labevents": (["charttime", "storetime"], []),
}
DATETIME = "%Y-%m-%d %H:%M:%S"
DATE = "%Y-%m-%d"
MAX_SHIFT_DAYS = 3652
#: Clones written per chunk: bounds the generator's memory (~1M lab rows per chunk) at any scale.
CHUNK = 10


def read_demo(demo_root: Path) -> dict[str, pl.DataFrame]:
    """The demo's tables, every column as a string (so formats survive the round trip)."""
    return {t: pl.read_csv(demo_root / "hosp" / f"{t}.csv.gz", infer_schema_length=0) for t in TABLES}


def generate(demo_root: Path, out_root: Path, scale: int, seed: int = 0, level: int = 1) -> dict[str, int]:
    """Write ``out_root/hosp/<table>.csv.gz`` at ``scale``× the demo; returns the row count per table."""
    demo = read_demo(demo_root)
    hosp = out_root / "hosp"
    hosp.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    subjects = demo["patients"]["subject_id"]
    n_pat = len(subjects)
    shifts = rng.integers(-MAX_SHIFT_DAYS, MAX_SHIFT_DAYS + 1, size=(scale, n_pat))
    # one row per (clone, demo patient): the new subject id and that clone's time shift
    clones = pl.DataFrame(
        {
            "subject_id": np.tile(subjects.to_numpy(), scale),
            "_clone": np.repeat(np.arange(scale), n_pat),
            "_pidx": np.tile(np.arange(n_pat), scale),
            "_shift": shifts.reshape(-1),
        }
    ).with_columns(
        _new_subject=(10_000_000 + pl.col("_clone") * n_pat + pl.col("_pidx")).cast(pl.String),
        _years=(pl.col("_shift") / 365.25).round().cast(pl.Int64),
    )
    hadm = demo["admissions"]["hadm_id"]
    hadm_index = pl.DataFrame({"hadm_id": hadm, "_hidx": np.arange(len(hadm))})
    dense = {  # demo id → dense index, for ids that must stay unique across clones
        (t, c): pl.DataFrame({c: u, f"_{c}_idx": np.arange(len(u))})
        for t, c in (("labevents", "specimen_id"), ("prescriptions", "pharmacy_id"))
        for u in [demo[t][c].unique(maintain_order=True)]
    }
    counts = {}
    for table in TABLES:
        path = hosp / f"{table}.csv.gz"
        if table == "d_labitems":
            with gzip.open(path, "wb", compresslevel=level) as fh:
                demo[table].write_csv(fh)
            counts[table] = len(demo[table])
            continue
        frame = demo[table]
        columns = frame.columns
        dt_cols, date_cols = TIMES[table]
        base = frame.with_row_index("_row").with_columns(
            [pl.col(c).str.strptime(pl.Datetime("us"), DATETIME, strict=True) for c in dt_cols]
            + [pl.col(c).str.strptime(pl.Date, DATE, strict=True) for c in date_cols]
        )
        if "hadm_id" in columns:
            base = base.join(hadm_index, on="hadm_id", how="left")
        for (t, c), mapping in dense.items():
            if t == table:
                base = base.join(mapping, on=c, how="left")
        n_rows = len(frame)
        with gzip.open(path, "wb", compresslevel=level) as fh:  # one gzip member, like PhysioNet's files
            for start in range(0, scale, CHUNK):
                stop = min(start + CHUNK, scale)
                part = base.join(clones.filter(pl.col("_clone").is_between(start, stop - 1)), on="subject_id")
                part = part.sort("_clone", "_row")  # clone by clone, demo row order within a clone
                shift = pl.duration(days=pl.col("_shift"))
                exprs = [(pl.col(c) + shift).dt.strftime(DATETIME).alias(c) for c in dt_cols]
                exprs += [(pl.col(c) + shift).dt.strftime(DATE).alias(c) for c in date_cols]
                exprs.append(pl.col("_new_subject").alias("subject_id"))
                if "hadm_id" in columns:
                    n_adm = len(hadm)
                    new_hadm = (20_000_000 + pl.col("_clone") * n_adm + pl.col("_hidx")).cast(pl.String)
                    exprs.append(pl.when(pl.col("_hidx").is_not_null()).then(new_hadm).alias("hadm_id"))
                if table == "patients":
                    exprs.append((pl.col("anchor_year").cast(pl.Int64) + pl.col("_years")).cast(pl.String))
                if table == "labevents":
                    n_spec = len(dense[("labevents", "specimen_id")])
                    exprs.append(
                        (1 + pl.col("_clone") * n_rows + pl.col("_row")).cast(pl.String).alias("labevent_id")
                    )
                    exprs.append(
                        (10_000_000 + pl.col("_clone") * n_spec + pl.col("_specimen_id_idx"))
                        .cast(pl.String)
                        .alias("specimen_id")
                    )
                if table == "prescriptions":
                    n_ph = len(dense[("prescriptions", "pharmacy_id")])
                    exprs.append(
                        (10_000_000 + pl.col("_clone") * n_ph + pl.col("_pharmacy_id_idx"))
                        .cast(pl.String)
                        .alias("pharmacy_id")
                    )
                    exprs.append(
                        pl.when(pl.col("poe_id").is_not_null())
                        .then(
                            pl.concat_str(
                                pl.col("_new_subject"),
                                pl.lit("-"),
                                pl.col("poe_id").str.split("-").list.last(),
                            )
                        )
                        .alias("poe_id")
                    )
                out = part.with_columns(exprs).select(columns)
                out.write_csv(fh, include_header=start == 0)
        counts[table] = n_rows * scale
    return counts


def main() -> None:
    """``python benchmarks/_synthetic_mimic4.py DEMO_ROOT OUT_ROOT SCALE [SEED]`` → row counts as JSON."""
    import json
    import sys

    counts = generate(
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        int(sys.argv[3]),
        seed=int(sys.argv[4]) if len(sys.argv) > 4 else 0,
    )
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
