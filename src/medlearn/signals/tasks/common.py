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


class RecordingInputs:
    """``predict`` for tasks whose inputs are recordings: files through the signal readers, or samples
    posted as numbers; both become a :class:`~medlearn.signals.io.recording.Recording` that the task's
    :meth:`recording_units` cuts into units, so a file and the same samples in memory predict alike."""

    def load_inputs(self, paths: Sequence[Path], options: SignalPredictOptions) -> PredictInputs:
        """Each file through the signal readers (WFDB, EDF, MAT, text; ``--fs`` for header-less ones),
        cut into units by :meth:`recording_units`."""
        from medlearn.signals.io import read_recording

        result = PredictInputs([])
        for path in paths:
            found = self.recording_units(read_recording(path, fs_hz=options.fs_hz), str(path))
            result.units += found.units
            result.skipped += found.skipped
        return result

    def load_samples(self, samples: np.ndarray, options: SignalPredictOptions) -> PredictInputs:
        """Samples posted as numbers, ``(n_samples, n_channels)`` at ``options.fs_hz``: the units a
        header-less file of them gives (input ``"samples"``), without the file."""
        from medlearn.signals.io.recording import Recording, repair_missing

        if options.fs_hz is None:
            raise InputError("fs: required with samples (the sampling rate in Hz, e.g. 300)")
        array = np.asarray(samples, dtype=np.float64)
        array = array[:, None] if array.ndim == 1 else array
        names = [f"ch{i}" for i in range(array.shape[1])]
        recording = Recording(array, options.fs_hz, names, ["adu"] * len(names), Path("samples"))
        return self.recording_units(repair_missing(recording), "samples")

    def recording_units(self, recording: Any, input_name: str) -> PredictInputs:
        """The units of one recording (its input named ``input_name`` in the records)."""
        raise NotImplementedError


class SignalTask(RecordingInputs, Task):
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
    def recording_units(self, recording: Any, input_name: str) -> PredictInputs:
        """The units of one :class:`~medlearn.signals.io.recording.Recording` named ``input_name``: the
        model's channels, one unit or one per window (:meth:`windows`), with what the reader noted as
        warnings. Tasks with other units (one per heartbeat) override this, not the readers above."""
        if recording.n_channels < self.n_channels:
            raise InputError(
                f"{input_name}: {recording.n_channels} channel(s); this model needs {self.n_channels}"
            )
        unit = SignalUnit(recording.signal[:, : self.n_channels].T.copy(), recording.fs_hz)
        warnings = list(recording.quality)
        if recording.n_channels > self.n_channels:
            warnings.append(
                f"used channel(s) {', '.join(recording.channel_names[: self.n_channels])} of "
                f"{recording.n_channels}"
            )
        meta = {
            "input": input_name,
            "fs_hz": recording.fs_hz,
            "channels": recording.channel_names[: self.n_channels],
        }
        missing = recording.missing_mask
        if missing is not None and missing[:, : self.n_channels].any():  # NaN samples the reader filled
            meta["missing_fraction"] = round(float(missing[:, : self.n_channels].mean()), 4)
        stem = Path(input_name).stem
        units = [
            PredictUnit(
                stem if window is unit else f"{stem}@{start_s:g}s",
                window,
                {**meta, "start_s": start_s, "seconds": round(window.seconds, 2)},
                list(warnings),
            )
            for start_s, window in self.windows(unit)
        ]
        return PredictInputs(units)

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

    # -- explanations ------------------------------------------------------------------------------------
    def explanation_layout(self, preprocessing: Any) -> Any:
        """The model's channels at the rate it sees (``fs_hz``), explained over time by integrated
        gradients first, then occlusion; a removed sample is 0 (the standardised signal's baseline)."""
        from medlearn.explain.layout import InputLayout

        names = [f"input channel {c + 1}" for c in range(self.n_channels)]
        if self.options.rr_channel:
            names.append("RR interval")
        return InputLayout(
            kind="signal",
            methods=["integrated_gradients", "occlusion"],
            baseline=0.0,
            fs_hz=self.options.fs_hz,
            channel_names=names,
        )

    # -- input checks ------------------------------------------------------------------------------------
    def input_profile(self, table: UnitTable) -> dict[str, Any]:
        """Sampling rates, durations and amplitudes (robust half-range per unit, in the files' units) of
        the training units, and the band the model sees."""
        units = [u for u in table.raw if isinstance(u, SignalUnit)]
        return signal_profile(units, self.options.high_hz)

    def check_input(self, unit: PredictUnit, array: np.ndarray, profile: dict[str, Any]) -> list[str]:
        """Flat, missing or too short signals; a rate too low to carry the band the model was trained on
        (a different rate that is merely resampled is fine); an amplitude far from any seen in training."""
        if not isinstance(unit.raw, SignalUnit):
            return []
        return check_signal(unit.raw, unit.meta, profile, self.options.seconds)

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


#: Margins of the signal checks (stated in their sentences): durations and rates may be 1.5× below the
#: shortest / lowest seen in training, amplitudes 5× away from the range seen.
DURATION_MARGIN = 0.5
AMPLITUDE_MARGIN = 4.0


def amplitude(signal: np.ndarray) -> float:
    """Robust half-range of a signal (half the 1st–99th percentile spread over all channels)."""
    x = np.asarray(signal, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    lo, hi = np.percentile(x, [1, 99])
    return float(hi - lo) / 2


def signal_profile(units: Sequence[SignalUnit], high_hz: float | None = None) -> dict[str, Any]:
    """What :func:`check_signal` compares a unit to: rate, duration and amplitude ranges of ``units``."""
    from medlearn.engine.input_checks import seen_range

    if not units:
        return {}
    profile: dict[str, Any] = {
        "fs_hz": seen_range(u.fs_hz for u in units),
        "seconds": seen_range(u.seconds for u in units),
        "amplitude": seen_range(amplitude(u.signal) for u in units),
        "n_units": len(units),
    }
    if high_hz is not None:
        profile["band_hz"] = float(min(high_hz, 0.45 * profile["fs_hz"][0]))
    return profile


def check_signal(
    raw: SignalUnit, meta: dict[str, Any], profile: dict[str, Any], model_seconds: float | None = None
) -> list[str]:
    """Why a signal unit is outside what the training units were (see :meth:`SignalTask.check_input`)."""
    from medlearn.engine.input_checks import constant_reason, fmt, fmt_range, outside_range

    reasons = []
    n = int(raw.signal.shape[-1])
    if float(meta.get("missing_fraction", 0.0)) >= 1.0:
        reasons.append("every sample of the record is missing (NaN): the reader filled it with zeros")
    elif n >= 2:
        flat = constant_reason(raw.signal, "the signal")
        if flat is not None:
            reasons.append(f"{flat} (a flat line: lead off or no signal recorded)")
    if n < 2:
        reasons.append(f"the record holds {n} sample(s): no waveform to classify")
    seconds = profile.get("seconds")
    if isinstance(seconds, list) and len(seconds) == 2 and n >= 1:
        lowest = float(seconds[0]) / (1 + DURATION_MARGIN)
        # a unit as long as the model's window is what windows() cut from a longer record: in scope
        if raw.seconds < lowest and not (model_seconds and raw.seconds >= 0.999 * model_seconds):
            reasons.append(
                f"the record is {fmt(raw.seconds)} s; the model was trained on {fmt_range(seconds, 's')} "
                f"records (shortest accepted: {fmt(lowest)} s, 1.5× below the shortest)"
            )
    band, rates = profile.get("band_hz"), profile.get("fs_hz")
    if isinstance(band, int | float) and isinstance(rates, list) and 0.45 * raw.fs_hz < 0.9 * float(band):
        reasons.append(
            f"the record is sampled at {fmt(raw.fs_hz)} Hz, so it carries frequencies up to "
            f"{fmt(raw.fs_hz / 2)} Hz only; the model was trained on {fmt_range(rates, 'Hz')} "
            f"records and reads their band up to {fmt(band)} Hz (resampling cannot restore it)"
        )
    if n >= 2 and not reasons:
        amp = outside_range(
            "the signal's amplitude (half the 1st–99th percentile range)",
            amplitude(raw.signal),
            profile.get("amplitude"),
            margin=AMPLITUDE_MARGIN,
            relative=True,
            trained_on="records with amplitudes",
        )
        if amp is not None:
            reasons.append(f"{amp}: other units, or another kind of signal?")
    return reasons


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
