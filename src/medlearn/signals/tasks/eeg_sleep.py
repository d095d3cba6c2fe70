"""Sleep staging (W, N1, N2, N3, REM) from per-epoch EEG features of Sleep-EDF (Fpz-Cz, Pz-Oz).

The shared copy holds 72 spectral features per 30 s epoch, not raw EEG (see the data README), so the
model is the sequence part of DeepSleepNet-style stagers: a bidirectional GRU reads the features of
``context_epochs`` epochs on each side and scores the centre one, because a stage depends on its
neighbours (N3 comes after N2; REM follows cycles). Units are epochs, groups are subjects (two nights
each), so no subject is in training and test at once.

Scoring: the whole recording (Sleep Cassette nights are ~68% wake: easy epochs inflate the scores) and,
as the literature does (DeepSleepNet: κ 0.76 on Sleep-EDF-20), the sleep period ± 30 min, from 30 min
before the first non-wake epoch to 30 min after the last — reported under ``subsets/sleep_period``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.target import Target
from medlearn.engine.task import Task, step
from medlearn.engine.transforms import ZScore
from medlearn.errors import InputError

STAGES = ["W", "N1", "N2", "N3", "REM"]
EPOCH_S = 30.0
MARGIN_EPOCHS = 60  # 30 min


class SleepOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context_epochs: int = Field(7, ge=0, le=30, description="epochs seen on each side of the scored one")


def sleep_period_mask(stages: np.ndarray, margin: int = MARGIN_EPOCHS) -> np.ndarray:
    """Epochs from ``margin`` before the first non-wake epoch to ``margin`` after the last one."""
    asleep = np.flatnonzero(stages != 0)
    mask = np.zeros(len(stages), bool)
    if len(asleep):
        mask[max(0, asleep[0] - margin) : asleep[-1] + margin + 1] = True
    return mask


def context_windows(features: np.ndarray, k: int) -> np.ndarray:
    """(n_epochs, n_features, 2k+1): each epoch with ``k`` neighbours per side; NaN beyond the night."""
    n, f = features.shape
    padded = np.full((n + 2 * k, f), np.nan, np.float32)
    padded[k : k + n] = features
    index = np.arange(n)[:, None] + np.arange(2 * k + 1)[None]
    return np.ascontiguousarray(padded[index].transpose(0, 2, 1))


class FeatureStandardize(ZScore):
    """Per-feature z-score of (features, context epochs) with training statistics; missing context (NaN,
    before the first or after the last epoch of a night) becomes 0, the mean. Registered as
    ``feature_standardize``, the name bundles store."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__(mean, std, fill_missing=0.0)


class EEGSleep(Task):
    name: ClassVar[str] = "eeg_sleep"
    target: ClassVar[Target] = Target("multiclass", tuple(STAGES), monitor="kappa")
    unit: ClassVar[str] = "epoch"
    default_model: ClassVar[str] = "epoch_gru"
    Options: ClassVar[type[BaseModel]] = SleepOptions
    credits: ClassVar[list[str]] = [
        "Sleep-EDF Expanded (Sleep Cassette), ODC-By 1.0: Kemp B et al., IEEE Trans Biomed Eng 47:1185-1194 (2000); "
        "PhysioNet. Per-epoch features from matteo-omizzolo/sleep-EDF (MIT).",
    ]

    def load(self, root: Path) -> UnitTable:
        listing = root / "RECORDS.csv"
        if not listing.is_file():
            raise InputError(
                f"{listing}: missing; the Sleep-EDF feature folder lists its nights in RECORDS.csv"
            )
        with listing.open(newline="") as fh:
            nights = list(csv.DictReader(fh))
        ids, targets, groups, raw, files = [], [], [], [], [listing]
        k = self.options.context_epochs
        for night in nights:
            path = root / night["file"]
            try:
                data = np.load(path)
                features, stages = np.asarray(data["X"], np.float32), np.asarray(data["y"], np.int64)
            except (OSError, KeyError, ValueError) as exc:
                raise InputError(f"{path}: not a Sleep-EDF feature file with X and y ({exc})") from None
            if features.ndim != 2 or len(features) != len(stages):
                raise InputError(f"{path}: X {features.shape} and y {stages.shape} do not match")
            raw += list(context_windows(features, k))
            targets.append(stages)
            groups += [night["subject"]] * len(stages)
            ids += [f"{night['record']}:{i}" for i in range(len(stages))]
            files.append(path)
        return UnitTable(
            ids=ids,
            targets=np.concatenate(targets),
            groups=np.array(groups),
            raw=raw,
            fingerprint=fingerprint_files(files),
        )

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        raise NotImplementedError("eeg_sleep's preprocessing is fitted on the training split")

    def fit_preprocessing(self, model_name: str, train: UnitTable) -> list[dict[str, Any]]:
        centre = np.stack([x[:, x.shape[1] // 2] for x in train.raw])
        mean, std = centre.mean(axis=0), centre.std(axis=0)
        return [step("feature_standardize", mean=mean.tolist(), std=np.maximum(std, 1e-6).tolist())]

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        return {**super().model_kwargs(model_name), "in_channels": 72}

    def metric_subsets(self, table: UnitTable) -> dict[str, np.ndarray]:
        mask = np.zeros(len(table), bool)
        for index in _nights(table.ids).values():
            mask[index] = sleep_period_mask(table.targets[index])
        return {"sleep_period": mask}

    def report_examples(self, bundle: Any, table: UnitTable, pred: np.ndarray) -> list[Any] | None:
        from medlearn.engine.plots import figure_to_data_uri
        from medlearn.engine.report import ReportSection
        from medlearn.signals.plots import hypnogram

        figures = []
        for night, index in list(_nights(table.ids).items())[:2]:
            fig = hypnogram(table.targets[index], pred[index].argmax(axis=1), STAGES, EPOCH_S, title=night)
            figures.append(
                (f"Hypnogram of {night}: scored (black) vs predicted (red)", figure_to_data_uri(fig))
            )
        return [ReportSection("Hypnograms", html="<p>Test nights, whole recording.</p>", figures=figures)]


def _nights(ids: list[str]) -> dict[str, np.ndarray]:
    """Unit positions per night, in epoch order (ids are ``record:epoch``)."""
    records = np.array([i.rsplit(":", 1)[0] for i in ids])
    epochs = np.array([int(i.rsplit(":", 1)[1]) for i in ids])
    out = {}
    for record in dict.fromkeys(records):
        index = np.flatnonzero(records == record)
        out[str(record)] = index[np.argsort(epochs[index])]
    return out
