"""Heartbeat classes (AAMI EC57: N, S, V, F, Q) on the MIT-BIH Arrhythmia Database, split by record.

Only de Chazal's DS1 records are shared, so the inter-patient protocol is kept by splitting DS1 by
record (cross-validation over records in the shipped config): no patient's beats are in training and
test at once. Each unit is one beat: a window of lead MLII around its R-peak (0.25 s before, 0.45 s
after, band-passed on the whole record first) plus the RR features that carry most of the S-class
signal in the literature (de Chazal 2004): previous and next RR interval relative to the local mean RR
of the 10 surrounding beats, and that local mean itself (s). They enter as constant extra channels.

Training uses the reference beat positions (as every published inter-patient result does);
``predict`` on a new record uses detected R-peaks instead, the same windows and RR features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medlearn.engine.data import UnitTable, fingerprint_files
from medlearn.engine.progress import make_progress
from medlearn.engine.target import Target
from medlearn.engine.task import PredictInputs, PredictUnit, Task
from medlearn.errors import InputError
from medlearn.signals.tasks.common import RecordingInputs, SignalPredictOptions

AAMI = ["N", "S", "V", "F", "Q"]
LOCAL_RR_BEATS = 10


class BeatOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    before_s: float = Field(0.25, gt=0, le=1.0, description="window start before the R-peak (s)")
    after_s: float = Field(0.45, gt=0, le=1.0, description="window end after the R-peak (s)")
    lead: str = Field("MLII", description="lead to use (MIT-BIH: MLII in almost every record)")
    fs_hz: float = Field(
        180.0, gt=0, description="rate the beat windows are cut at (Hz); records are resampled"
    )


def rr_features(rpeaks: np.ndarray, fs_hz: float) -> np.ndarray:
    """(n_beats, 3): previous RR / local mean RR, next RR / local mean RR, local mean RR (s).

    The local mean covers the ``LOCAL_RR_BEATS`` intervals around each beat; the first and last beat
    borrow their neighbour's interval.
    """
    rr = np.diff(rpeaks) / fs_hz
    if len(rr) == 0:
        return np.ones((len(rpeaks), 3), np.float32)
    prev = np.r_[rr[0], rr]
    nxt = np.r_[rr, rr[-1]]
    kernel = np.ones(LOCAL_RR_BEATS) / LOCAL_RR_BEATS
    padded = np.pad(prev, LOCAL_RR_BEATS // 2, mode="edge")
    local = np.convolve(padded, kernel, mode="same")[LOCAL_RR_BEATS // 2 : LOCAL_RR_BEATS // 2 + len(prev)]
    return np.stack([prev / local, nxt / local, local], axis=1).astype(np.float32)


def beat_arrays(
    signal: np.ndarray,
    fs_hz: float,
    rpeaks: np.ndarray,
    before_s: float,
    after_s: float,
    out_fs_hz: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (n_kept, 4, window) of the beats at ``rpeaks`` and which peaks were kept; the
    record is band-passed, robustly scaled and (with ``out_fs_hz``) resampled before cutting."""
    from medlearn.signals.preprocess import bandpass, resample, segment_beats
    from medlearn.signals.transforms import robust_scale

    clean = bandpass(signal.astype(np.float64), fs_hz, 0.5, 40.0)
    clean = (clean - np.median(clean)) / robust_scale(clean[None])[0, 0]
    features = rr_features(rpeaks, fs_hz)
    at = np.asarray(rpeaks)
    if out_fs_hz is not None and abs(out_fs_hz - fs_hz) > 1e-9:
        clean = resample(clean, fs_hz, out_fs_hz)
        at = np.round(at * out_fs_hz / fs_hz).astype(np.int64)
        fs_hz = out_fs_hz
    waves, kept_at = segment_beats(clean, at, fs_hz, before_s, after_s)
    keep = np.isin(at, kept_at)
    feats = features[keep][:, :, None].repeat(waves.shape[-1], axis=2)
    return np.concatenate([waves[:, None].astype(np.float32), feats], axis=1), keep


class EcgBeats(RecordingInputs, Task):
    name: ClassVar[str] = "ecg_beats"
    target: ClassVar[Target] = Target("multiclass", tuple(AAMI), monitor="macro_f1")
    unit: ClassVar[str] = "beat"
    default_model: ClassVar[str] = "cnn1d"
    Options: ClassVar[type[BaseModel]] = BeatOptions
    PredictOptions: ClassVar[type[BaseModel]] = SignalPredictOptions
    credits: ClassVar[list[str]] = [
        "MIT-BIH Arrhythmia Database, ODC-By 1.0: Moody GB, Mark RG, IEEE Eng Med Biol 20:45-50 (2001); "
        "Goldberger AL et al., PhysioNet, Circulation 101:e215 (2000).",
    ]

    def load(self, root: Path) -> UnitTable:
        from medlearn.signals.io import load_mitdb_beats

        names_file = root / "RECORDS"
        if not names_file.is_file():
            raise InputError(f"{names_file}: missing; an MIT-BIH folder lists its records in RECORDS")
        records = names_file.read_text().split()
        ids, targets, groups, raw, files = [], [], [], [], [names_file]
        with make_progress() as progress:
            bar = progress.add_task("read beats", total=len(records), status="")
            for name in records:
                recording, beats = load_mitdb_beats(root / name)
                lead = (
                    recording.channel(self.options.lead)
                    if self.options.lead in recording.channel_names
                    else recording.signal[:, 0]
                )
                arrays, keep = beat_arrays(
                    np.asarray(lead),
                    recording.fs_hz,
                    beats.sample,
                    self.options.before_s,
                    self.options.after_s,
                    self.options.fs_hz,
                )
                classes = beats.aami[keep]
                ids += [f"{name}:{s}" for s in beats.sample[keep]]
                targets.append(np.array([AAMI.index(c) for c in classes]))
                groups += [name] * len(classes)
                raw += list(arrays)
                files += [root / f"{name}.{ext}" for ext in ("hea", "dat", "atr")]
                progress.update(bar, advance=1)
        return UnitTable(
            ids=ids,
            targets=np.concatenate(targets),
            groups=np.array(groups),
            raw=raw,
            fingerprint=fingerprint_files(files),
        )

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        return []  # beats are cut from the filtered record at load: a window alone is too short to filter

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        return {**super().model_kwargs(model_name), "in_channels": 4}

    def input_profile(self, table: UnitTable) -> dict[str, Any]:
        """The local mean RR interval (s) and the relative RR intervals of the training beats."""
        from medlearn.engine.input_checks import seen_range

        beats = [np.asarray(b) for b in table.raw]
        if not beats:
            return {}
        return {
            "local_rr_s": seen_range(float(b[3, 0]) for b in beats),
            "rr_ratio": seen_range(v for b in beats for v in (float(b[1, 0]), float(b[2, 0]))),
            "n_units": len(beats),
        }

    def check_input(self, unit: PredictUnit, array: np.ndarray, profile: dict[str, Any]) -> list[str]:
        """A flat beat window, a heart rate or an RR irregularity outside what the training beats had."""
        from medlearn.engine.input_checks import constant_reason, outside_range

        beat = np.asarray(array)
        if beat.ndim != 2 or beat.shape[0] < 4:
            return []
        reasons = [
            r
            for r in (
                constant_reason(beat[0], "the beat window"),
                outside_range(
                    "the local mean RR interval",
                    float(beat[3, 0]),
                    profile.get("local_rr_s"),
                    "s",
                    margin=0.5,
                    relative=True,
                    trained_on="beats with local RR intervals",
                ),
                *(
                    outside_range(
                        f"the {which} RR interval relative to the local mean",
                        float(beat[channel, 0]),
                        profile.get("rr_ratio"),
                        margin=0.5,
                        relative=True,
                        trained_on="beats with relative RR intervals",
                    )
                    for which, channel in (("previous", 1), ("next", 2))
                ),
            )
            if r is not None
        ]
        return reasons

    def recording_units(self, recording: Any, input_name: str) -> PredictInputs:
        """One unit per detected beat of the record (R-peaks found here, not read from annotations)."""
        from medlearn.signals.preprocess import detect_rpeaks

        result = PredictInputs([])
        names = recording.channel_names
        lead = recording.signal[:, names.index(self.options.lead) if self.options.lead in names else 0]
        rpeaks = detect_rpeaks(lead, recording.fs_hz)
        arrays, keep = beat_arrays(
            lead, recording.fs_hz, rpeaks, self.options.before_s, self.options.after_s, self.options.fs_hz
        )
        stem = Path(input_name).stem
        if not keep.any():  # a flat or too short record: no beat to classify, said rather than silent
            result.skipped.append(
                {
                    "input": input_name,
                    "unit": stem,
                    "reason": f"no heartbeat detected in {recording.duration_s:g} s of lead "
                    f"{names[names.index(self.options.lead)] if self.options.lead in names else names[0]}",
                }
            )
        for sample, array in zip(rpeaks[keep], arrays):
            meta = {
                "input": input_name,
                "rpeak_sample": int(sample),
                "time_s": round(float(sample) / recording.fs_hz, 3),
            }
            result.units.append(PredictUnit(f"{stem}:{sample}", array, meta))
        return result
