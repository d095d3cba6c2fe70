"""What the signal tasks share: the preprocessing chain, augmentation, predict from files, and the
report's example strips (ECG with detected R-peaks and the predicted label).

Subclasses set the class attributes and ``load``; options that every signal task has
(:class:`SignalOptions`) decide the rate and length the model sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medlearn.engine.data import UnitTable
from medlearn.engine.task import PredictInputs, PredictUnit, Task, step
from medlearn.errors import InputError
from medlearn.signals.transforms import SignalAugment, SignalUnit


class SignalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fs_hz: float = Field(100.0, gt=0, description="rate the model sees (Hz); inputs are resampled to it")
    seconds: float = Field(
        60.0, gt=0, description="input length (s): longer records are centre-cropped, shorter padded"
    )
    low_hz: float = Field(0.5, ge=0, description="band-pass low edge (Hz)")
    high_hz: float = Field(40.0, gt=0, description="band-pass high edge (Hz), capped below Nyquist")
    rr_channel: bool = Field(False, description="ECG: add the detected RR-interval trace as a second channel")


class SignalPredictOptions(BaseModel):
    """``medlearn predict BUNDLE RECORD [--fs HZ]``: files that carry their rate (WFDB, EDF, MAT with a
    header) need nothing; header-less ones (.txt, bare .mat) need their sampling rate."""

    model_config = ConfigDict(extra="forbid")
    fs_hz: float | None = Field(
        None, gt=0, alias="fs", description="sampling rate (Hz) of header-less signal files (.txt, bare .mat)"
    )


class SignalTask(Task):
    """Base of tasks whose unit is a (multi-channel) signal segment."""

    Options: ClassVar[type[BaseModel]] = SignalOptions
    PredictOptions: ClassVar[type[BaseModel]] = SignalPredictOptions
    #: channels the model takes (predict picks these from a user's file)
    n_channels: ClassVar[int] = 1
    #: ECG tasks draw detected R-peaks on report strips
    is_ecg: ClassVar[bool] = False

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        return self.signal_chain()

    def signal_chain(self, scale: float | None = None) -> list[dict[str, Any]]:
        """Band-pass → resample → standardise (per unit, or by one fitted ``scale``) → [RR channel] → fix length."""
        o = self.options
        rr = [step("signal_rr_channel")] if o.rr_channel else []
        standardize = step("signal_standardize") if scale is None else step("signal_standardize", scale=scale)
        return [
            step("signal_bandpass", low_hz=o.low_hz, high_hz=o.high_hz),
            step("signal_resample", fs_hz=o.fs_hz),
            standardize,
            *rr,
            step("signal_fix_length", seconds=o.seconds),
        ]

    def augmentation(self, model_name: str, seed: int) -> SignalAugment:
        return SignalAugment(seed)

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        return {
            **super().model_kwargs(model_name),
            "in_channels": self.n_channels + int(self.options.rr_channel),
        }

    # -- predict ---------------------------------------------------------------------------------------
    def load_inputs(self, paths: Sequence[Path], options: SignalPredictOptions) -> PredictInputs:
        """One unit per record, or per window of the model's length for a long one (:meth:`windows`)."""
        from medlearn.signals.io import read_recording

        result = PredictInputs([])
        for path in paths:
            recording = read_recording(path, fs_hz=options.fs_hz)
            if recording.n_channels < self.n_channels:
                raise InputError(
                    f"{path}: {recording.n_channels} channel(s); this model needs {self.n_channels}"
                )
            unit = SignalUnit(recording.signal[:, : self.n_channels].T.copy(), recording.fs_hz)
            warnings = list(recording.quality)
            if recording.n_channels > self.n_channels:
                warnings.append(
                    f"used channel(s) {', '.join(recording.channel_names[: self.n_channels])} of "
                    f"{recording.n_channels}"
                )
            meta = {
                "input": str(path),
                "fs_hz": recording.fs_hz,
                "channels": recording.channel_names[: self.n_channels],
            }
            for start_s, window in self.windows(unit):
                name = Path(path).stem if window is unit else f"{Path(path).stem}@{start_s:g}s"
                result.units.append(
                    PredictUnit(
                        name,
                        window,
                        {**meta, "start_s": start_s, "seconds": round(window.seconds, 2)},
                        list(warnings),
                    )
                )
        return result

    def windows(self, unit: SignalUnit) -> list[tuple[float, SignalUnit]]:
        """A record up to 1.5× the model's length is one unit (centre-cropped or padded); a longer one,
        e.g. a Holter recording, is cut into consecutive windows of the model's length, each classified
        (a short tail is dropped), so nothing outside a middle crop goes unseen."""
        length_s = self.options.seconds
        if unit.seconds <= 1.5 * length_s:
            return [(0.0, unit)]
        n = int(round(length_s * unit.fs_hz))
        return [
            (start / unit.fs_hz, SignalUnit(unit.signal[:, start : start + n], unit.fs_hz))
            for start in range(0, unit.signal.shape[-1] - n + 1, n)
        ]

    # -- report ------------------------------------------------------------------------------------------
    def report_examples(self, bundle: Any, table: UnitTable, pred: np.ndarray) -> list[Any] | None:
        from medlearn.engine.plots import figure_to_data_uri
        from medlearn.engine.report import ReportSection
        from medlearn.signals.plots import signal_strips

        picks = example_picks(table.targets, pred, len(self.class_names))
        if not picks:
            return []
        strips = []
        for i in picks:
            unit = table.raw[i]
            label = self.class_names[int(table.targets[i])]
            guess = self.class_names[int(np.argmax(pred[i]))] if pred.ndim == 2 else f"p={float(pred[i]):.2f}"
            strips.append((unit, f"{table.ids[i]}: true {label}, predicted {guess}"))
        figure = signal_strips(strips, seconds=10.0, rpeaks=self.is_ecg)
        what = "with detected R-peaks (red) " if self.is_ecg else ""
        return [
            ReportSection(
                "Example signals",
                html=f"<p>First 10 s of test units {what}— one right and one "
                "wrong prediction per class where there is one.</p>",
                figures=[("Signal strips", figure_to_data_uri(figure))],
            )
        ]


def example_picks(targets: np.ndarray, pred: np.ndarray, n_classes: int) -> list[int]:
    """Per class: the first correctly and the first wrongly predicted unit (when they exist)."""
    guess = pred.argmax(axis=1) if pred.ndim == 2 else (pred >= 0.5).astype(int)
    picks = []
    for c in range(n_classes):
        for right in (True, False):
            hits = np.flatnonzero((targets == c) & ((guess == c) == right))
            if len(hits):
                picks.append(int(hits[0]))
    return picks[:8]
