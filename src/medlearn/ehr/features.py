"""Per-admission time series for prediction at a fixed time after admission, with no look-ahead.

Cohort: admissions still in hospital (and alive) at the prediction time ``admit + prediction_hours``.
Everything a unit carries was recorded strictly **before** that cutoff:

- dynamic events in ``[admit, cutoff)`` binned every ``bin_hours``: numeric results (labs,
  observations) and coded events (medications, procedures, ICU items, in-stay diagnoses where the source
  dates them, e.g. eICU) — MIMIC diagnoses carry the discharge time (assigned at discharge), so they
  never pass the cutoff;
- history: diagnosis codes recorded before this admission (earlier admissions' discharge diagnoses);
- static: age, sex, admission type, number of earlier admissions.

Events reach a unit by patient and time (MIMIC, FHIR: an earlier admission's codes and an outpatient
lab stored before the cutoff are legitimate history) — unless the source does not know the order of a
patient's admissions (``admission_order_known=False``, eICU, whose hospital stays are anchored at Jan 1
of their discharge year and overlap): then an event reaches only the admission that recorded it, and
no admission counts as earlier. ``time`` is when the information became known (each reader's docstring
says which column), so "before the cutoff" means "known at the prediction time".

``leaky_current_diagnoses`` (off by default) adds the current admission's own discharge diagnoses to the
history: an explicitly named ablation that shows how much such leakage inflates results.

The raw unit (:func:`extract_units`) is vocabulary-free; :class:`Featurize`, fitted on the training split
(:func:`fit_featurize`), turns it into a ``(n_bins, n_features)`` float32 array and is stored in the
bundle as the preprocessing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from medlearn.ehr.plausibility import flag_events, limits_by_key

#: code systems whose events carry a value (z-scored lab features); CONCEPT: numeric harmonised concepts
NUMERIC_SYSTEMS = ("MIMIC4_LABITEM", "MIMIC3_LABITEM", "EICU_LAB", "EICU_VITAL", "LOINC", "CONCEPT")
DIAGNOSIS_SYSTEMS = ("ICD9CM", "ICD10CM", "EICU_DX", "EICU_ADMITDX", "SNOMED_CONDITION")
HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class Window:
    """Prediction time and binning, in hours after admission."""

    prediction_hours: float = 24.0
    bin_hours: float = 2.0

    @property
    def n_bins(self) -> int:
        return int(np.ceil(self.prediction_hours / self.bin_hours))


def build_cohort(
    admissions: pl.LazyFrame, window: Window, ongoing: bool = False, admission_order_known: bool = True
) -> pl.DataFrame:
    """Admissions in hospital and alive at the cutoff, with the targets measured from the cutoff.

    ``ongoing`` (prediction for patients still in hospital) also keeps admissions with no discharge yet;
    their ``remaining_los_days`` is null. ``n_prior_admissions`` counts the patient's admissions that
    began before this one — 0 when the source does not know their order (``admission_order_known``).
    """
    cutoff = pl.col("admit_time") + pl.duration(microseconds=int(window.prediction_hours * HOUR_US))
    discharged_later = pl.col("discharge_time") > pl.col("cutoff")
    if ongoing:
        discharged_later = discharged_later | pl.col("discharge_time").is_null()
    frame = (
        admissions.filter(
            pl.col("admit_time").is_not_null() & (pl.col("discharge_time").is_not_null() | pl.lit(ongoing))
        )
        .with_columns(cutoff=cutoff)
        .filter(
            discharged_later & (pl.col("death_time").is_null() | (pl.col("death_time") > pl.col("cutoff")))
        )
        .with_columns(
            remaining_los_days=(pl.col("discharge_time") - pl.col("cutoff")).dt.total_seconds() / 86400.0
        )
        .sort("subject_id", "admit_time", "admission_id")
        .collect()
    )
    if not admission_order_known:
        return frame.with_columns(n_prior_admissions=pl.lit(0, pl.UInt32))
    prior = admissions.select("subject_id", "admission_id", "admit_time").collect()
    counts = (
        frame.select("admission_id", "subject_id", "admit_time")
        .join(prior, on="subject_id", suffix="_other")
        .filter(pl.col("admit_time_other") < pl.col("admit_time"))
        .group_by("admission_id")
        .agg(n_prior_admissions=pl.len())
    )
    return frame.join(counts, on="admission_id", how="left").with_columns(
        pl.col("n_prior_admissions").fill_null(0)
    )


def extract_units(
    events: pl.LazyFrame,
    cohort: pl.DataFrame,
    window: Window,
    leaky_current_diagnoses: bool = False,
    admission_order_known: bool = True,
) -> list[dict[str, Any]]:
    """One raw unit per cohort admission (same order): binned labs and codes before the cutoff, history.

    Events join the unit by patient and time, or only by admission when ``admission_order_known`` is
    False (the patient's other admissions may be later ones).
    """
    keys = cohort.lazy().select("subject_id", "admission_id", "admit_time", "cutoff")
    known = events.filter(pl.col("time").is_not_null())
    if admission_order_known:
        joined = known.join(keys, on="subject_id", suffix="_unit")
    else:  # same column names as the patient join: admission_id_unit is the unit's admission
        joined = known.join(
            keys.drop("subject_id").with_columns(admission_id_unit=pl.col("admission_id")), on="admission_id"
        )
    joined = joined.filter(pl.col("time") < pl.col("cutoff"))
    bin_us = int(window.bin_hours * HOUR_US)
    in_stay = joined.filter(pl.col("time") >= pl.col("admit_time")).with_columns(
        bin=((pl.col("time") - pl.col("admit_time")).dt.total_microseconds() // bin_us).cast(pl.Int32),
        key=pl.col("code_system") + "//" + pl.col("code"),
    )
    labs = (
        flag_events(
            in_stay.filter(pl.col("code_system").is_in(NUMERIC_SYSTEMS) & pl.col("value_num").is_not_null())
        )
        .group_by("admission_id_unit")
        .agg("bin", "key", "value_num", "unit", "impossible")
        .collect()
    )
    coded = (
        in_stay.filter(~pl.col("code_system").is_in(NUMERIC_SYSTEMS))
        .group_by("admission_id_unit")
        .agg("bin", "key")
        .collect()
    )
    history_filter = pl.col("code_system").is_in(DIAGNOSIS_SYSTEMS) & (pl.col("time") < pl.col("admit_time"))
    history = (
        joined.filter(history_filter)
        .with_columns(key=pl.col("code_system") + "//" + pl.col("code"))
        .group_by("admission_id_unit")
        .agg(pl.col("key").unique())
        .collect()
    )
    leaky: dict[str, list[str]] = {}
    if leaky_current_diagnoses:
        current = (
            events.filter(
                pl.col("code_system").is_in(DIAGNOSIS_SYSTEMS)
                & pl.col("admission_id").is_in(cohort["admission_id"].to_list())
            )
            .with_columns(key=pl.col("code_system") + "//" + pl.col("code"))
            .group_by("admission_id")
            .agg(pl.col("key").unique())
            .collect()
        )
        leaky = dict(zip(current["admission_id"].to_list(), current["key"].to_list()))
    by_lab = {r["admission_id_unit"]: r for r in labs.to_dicts()}
    by_code = {r["admission_id_unit"]: r for r in coded.to_dicts()}
    by_history = dict(zip(history["admission_id_unit"].to_list(), history["key"].to_list()))
    units = []
    demographics = [c for c in ("race",) if c in cohort.columns]
    for row in cohort.select(
        "admission_id", "age_years", "sex", "admission_type", "n_prior_admissions", *demographics
    ).to_dicts():
        aid = row["admission_id"]
        lab, code = by_lab.get(aid, {}), by_code.get(aid, {})
        units.append(
            {
                "lab_bins": list(lab.get("bin", [])),
                "lab_keys": list(lab.get("key", [])),
                "lab_values": list(lab.get("value_num", [])),
                "lab_units": list(lab.get("unit", [])),
                "lab_flags": [int(f) for f in lab.get("impossible", [])],
                "code_bins": list(code.get("bin", [])),
                "code_keys": list(code.get("key", [])),
                "history": sorted(set(by_history.get(aid, [])) | set(leaky.get(aid, []))),
                "age_years": row["age_years"],
                "sex": row["sex"],
                "admission_type": row["admission_type"],
                "n_prior_admissions": int(row["n_prior_admissions"]),
                "race": row.get("race"),
            }
        )
    return units


def _top(counter: Counter, limit: int, min_count: int) -> list[str]:
    return [k for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count][:limit]


def fit_featurize(
    units: Sequence[dict[str, Any]],
    n_bins: int,
    max_labs: int = 50,
    max_codes: int = 200,
    max_history: int = 100,
    min_count: int = 3,
    impossible_values: str = "keep",
) -> dict[str, Any]:
    """Vocabularies and normalisation statistics from the TRAINING units only (the Featurize params).

    ``impossible_values`` (``drop``/``clip``/``keep``, see :mod:`medlearn.ehr.plausibility`) is applied to
    the training values before their statistics are taken, and recorded for :class:`Featurize`; so is the
    unit each vocabulary lab came in (the most frequent one in training).
    """
    lab_counts = Counter(k for u in units for k in set(u["lab_keys"]))
    labs = _top(lab_counts, max_labs, min_count)
    bounds = limits_by_key()
    values: dict[str, list[float]] = {k: [] for k in labs}
    unit_counts: dict[str, Counter] = {k: Counter() for k in labs}
    for u in units:
        flags = u.get("lab_flags") or [0] * len(u["lab_keys"])
        lab_units = u.get("lab_units") or [None] * len(u["lab_keys"])
        for k, v, flag, unit in zip(u["lab_keys"], u["lab_values"], flags, lab_units):
            if k not in values or not np.isfinite(v):
                continue
            unit_counts[k][unit] += 1
            if flag and impossible_values == "drop":
                continue
            if flag and impossible_values == "clip":
                v = bounds[k][0] if flag < 0 else bounds[k][1]
            values[k].append(v)
    lo_hi = {k: np.percentile(v, [1, 99]) if v else (0.0, 1.0) for k, v in values.items()}
    clipped = {k: np.clip(v, *lo_hi[k]) if v else np.zeros(1) for k, v in values.items()}
    ages = np.array([u["age_years"] for u in units if u["age_years"] is not None] or [0.0], float)
    return {
        "n_bins": n_bins,
        "lab_keys": labs,
        "lab_low": [float(lo_hi[k][0]) for k in labs],
        "lab_high": [float(lo_hi[k][1]) for k in labs],
        "lab_mean": [float(clipped[k].mean()) for k in labs],
        "lab_std": [float(clipped[k].std()) or 1.0 for k in labs],
        "code_keys": _top(Counter(k for u in units for k in set(u["code_keys"])), max_codes, min_count),
        "history_keys": _top(Counter(k for u in units for k in u["history"]), max_history, min_count),
        "admission_types": sorted({str(u["admission_type"]) for u in units}),
        "age_mean": float(ages.mean()),
        "age_std": float(ages.std()) or 1.0,
        "impossible_values": impossible_values,
        "impossible_limits": {k: list(bounds[k][:2]) for k in labs if k in bounds},
        "lab_units": [unit_counts[k].most_common(1)[0][0] if unit_counts[k] else None for k in labs],
    }


class Featurize:
    """Raw unit → ``(n_bins, F)`` float32: per bin the labs' z-scores (forward-filled, 0 = the training
    mean before the first value, outliers clipped to the training 1st–99th percentile), a measured-in-this-
    bin mask, multi-hot coded events, the bin's relative time, then the static features repeated."""

    def __init__(
        self,
        n_bins: int,
        lab_keys: list[str],
        lab_low: list[float],
        lab_high: list[float],
        lab_mean: list[float],
        lab_std: list[float],
        code_keys: list[str],
        history_keys: list[str],
        admission_types: list[str],
        age_mean: float,
        age_std: float,
        impossible_values: str = "keep",
        impossible_limits: dict[str, list[float]] | None = None,
        lab_units: list[str | None] | None = None,
    ):
        if impossible_values not in ("drop", "clip", "keep"):
            raise ValueError(f"impossible_values must be drop, clip or keep, not {impossible_values!r}")
        self.n_bins = n_bins
        #: what happens to a value flagged physiologically impossible (``lab_flags`` of the raw unit);
        #: "keep" for bundles fitted before the flags existed, so they predict as they were trained
        self.impossible_values = impossible_values
        limits = impossible_limits or {}
        self.impossible_low = np.array([limits.get(k, [np.nan, np.nan])[0] for k in lab_keys], float)
        self.impossible_high = np.array([limits.get(k, [np.nan, np.nan])[1] for k in lab_keys], float)
        #: the unit each lab feature's values are in, as the source stores it (None: not recorded)
        self.lab_units = list(lab_units) if lab_units is not None else [None] * len(lab_keys)
        self.lab_index = {k: i for i, k in enumerate(lab_keys)}
        self.low, self.high = np.asarray(lab_low, float), np.asarray(lab_high, float)
        self.mean, self.std = np.asarray(lab_mean), np.asarray(lab_std)
        self.code_index = {k: i for i, k in enumerate(code_keys)}
        self.history_index = {k: i for i, k in enumerate(history_keys)}
        self.type_index = {k: i for i, k in enumerate(admission_types)}
        self.age_mean, self.age_std = age_mean, age_std
        n_static = 4 + len(self.type_index) + len(self.history_index)
        self.n_features = 2 * len(self.lab_index) + len(self.code_index) + 1 + n_static

    def feature_names(self) -> list[str]:
        """One name per column of the output, in order (for explanations)."""
        labs = list(self.lab_index)
        return (
            [f"lab:{k}" for k in labs]
            + [f"measured:{k}" for k in labs]
            + [f"event:{k}" for k in self.code_index]
            + ["time", "age", "sex_F", "sex_M", "n_prior_admissions"]
            + [f"admission_type:{k}" for k in self.type_index]
            + [f"history:{k}" for k in self.history_index]
        )

    def unknown_codes(self, raw: dict[str, Any]) -> list[str]:
        """Codes in the unit that the fitted vocabularies do not know (they do not reach the model)."""
        known = self.lab_index.keys() | self.code_index.keys() | self.history_index.keys()
        return sorted({*raw["lab_keys"], *raw["code_keys"], *raw["history"]} - known)

    def _locate(
        self, bins: Sequence[int], keys: Sequence[str], index: dict[str, int]
    ) -> tuple[np.ndarray, ...]:
        """Time bin and vocabulary column of every event, and which events the model can use."""
        cols = np.fromiter((index.get(key, -1) for key in keys), dtype=np.int64, count=len(keys))
        rows = np.asarray(bins, dtype=np.int64).reshape(-1)
        return rows, cols, (cols >= 0) & (rows >= 0) & (rows < self.n_bins)

    def __call__(self, raw: dict[str, Any]) -> np.ndarray:
        k, t = len(self.lab_index), self.n_bins
        sums, counts = np.zeros((t, k)), np.zeros((t, k))
        bins, cols, keep = self._locate(raw["lab_bins"], raw["lab_keys"], self.lab_index)
        values = np.array(raw["lab_values"], dtype=float).reshape(-1)  # None -> nan
        keep &= np.isfinite(values)
        flags = np.asarray(raw.get("lab_flags") or np.zeros(len(values)), dtype=np.int64).reshape(-1)
        if self.impossible_values == "drop":
            keep &= flags == 0
        elif self.impossible_values == "clip" and flags.any() and self.lab_index:
            safe = np.where(cols >= 0, cols, 0)
            bound = np.where(flags < 0, self.impossible_low[safe], self.impossible_high[safe])
            values = np.where((flags != 0) & np.isfinite(bound), bound, values)
        bins, cols = bins[keep], cols[keep]
        np.add.at(sums, (bins, cols), np.clip(values[keep], self.low[cols], self.high[cols]))
        np.add.at(counts, (bins, cols), 1.0)
        measured = counts > 0
        z = np.where(measured, (sums / np.maximum(counts, 1) - self.mean) / self.std, np.nan)
        for b in range(1, t):  # forward fill: the last known value holds until a new one arrives
            z[b] = np.where(np.isnan(z[b]), z[b - 1], z[b])
        z = np.nan_to_num(z, nan=0.0)
        codes = np.zeros((t, len(self.code_index)))
        bins, cols, keep = self._locate(raw["code_bins"], raw["code_keys"], self.code_index)
        codes[bins[keep], cols[keep]] = 1.0
        static = np.zeros(4 + len(self.type_index) + len(self.history_index))
        age = raw["age_years"]
        static[0] = 0.0 if age is None else (age - self.age_mean) / self.age_std
        static[1], static[2] = raw["sex"] == "F", raw["sex"] == "M"
        static[3] = np.log1p(raw["n_prior_admissions"])
        if (j := self.type_index.get(str(raw["admission_type"]))) is not None:
            static[4 + j] = 1.0
        for key in raw["history"]:
            if (j := self.history_index.get(key)) is not None:
                static[4 + len(self.type_index) + j] = 1.0
        time = (np.arange(t) / max(t - 1, 1))[:, None]
        return np.concatenate([z, measured, codes, time, np.repeat(static[None], t, axis=0)], axis=1).astype(
            np.float32
        )
