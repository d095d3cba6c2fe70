"""Real-time monitoring of an ECG stream: sliding windows, vital signs, alarms with hysteresis.

The core is transport-free: :class:`Monitor` takes chunks of samples (from a file replayed at real
time, stdin, or later a web socket) and returns :class:`Alarm` objects; ``medlearn monitor`` and the
service wrap it. Every ``step_s`` seconds of new signal it analyses the latest window:

- **beats** (``detect_rpeaks`` on the last ``window_s``): heart rate = 60 / median RR;
- **asystole**: no beat for ``asystole_s`` (or a flat line) — raised after one window, the only alarm
  without a confirmation delay, because it is the one that cannot wait;
- **tachycardia / bradycardia**: heart rate above ``tachy_bpm`` / below ``brady_bpm``;
- **poor signal**: signal-quality index below ``poor_quality`` for ``poor_confirm`` analyses (an
  artefact of a few seconds is in every window overlapping it, and must not raise it); while the
  quality is poor, rhythm and rate alarms are held back (a noisy lead makes every rate wrong);
- **missing samples** (NaN, ±inf, or beyond ±:data:`MAX_ABS_SAMPLE`, which no ECG in any unit
  reaches and whose square would overflow the filters: a dropped or unreadable sample) are not signal: they are bridged
  by linear interpolation for the filters, and a window (or its last ``asystole_s``) with less than
  ``min_coverage`` of real samples cannot be judged — its quality is 0 (poor signal) and it never
  raises asystole or a rhythm alarm. A NaN stream is poor signal, never asystole;
- **AF**: the bundle's rhythm model on the last ``af_window_s`` (the model was trained on 9–60 s
  records), raised when P(AF) ≥ ``af_threshold``.

Hysteresis: an alarm is raised after ``confirm`` consecutive positive analyses and cleared after
``clear`` consecutive negative ones, so one noisy window does not cause alarm fatigue. Alarms are
emitted when raised (``state: "on"``) and when cleared (``state: "off"``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

#: A sample of larger magnitude is not a measurement (ECG is mV, µV or ADC counts: at most ~1e7) but a
#: corrupt value; 1e300 would overflow the filters' squares and fake a flat line.
MAX_ABS_SAMPLE = 1e12

SEVERITY = {
    "asystole": "critical",
    "af": "high",
    "tachycardia": "medium",
    "bradycardia": "medium",
    "poor_signal": "low",
}


@dataclass
class MonitorSettings:
    window_s: float = 10.0
    step_s: float = 2.0
    af_window_s: float = 30.0
    asystole_s: float = 4.0
    tachy_bpm: float = 120.0
    brady_bpm: float = 40.0
    poor_quality: float = 0.3
    af_threshold: float = 0.5
    confirm: int = 3
    clear: int = 3
    #: poor signal must persist longer: a short artefact sits in every window that overlaps it
    #: (window_s / step_s of them), which must not be enough to raise it
    poor_confirm: int = 8
    flat_mv: float = 0.05
    #: the share of real (finite) samples a window needs to be judged at all
    min_coverage: float = 0.8


@dataclass
class Alarm:
    record_time_s: float
    wall_time: str
    type: str
    severity: str
    value: float | None
    state: str = "on"

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_time_s": round(self.record_time_s, 3),
            "wall_time": self.wall_time,
            "type": self.type,
            "severity": self.severity,
            "value": None if self.value is None else round(float(self.value), 3),
            "state": self.state,
        }


@dataclass
class Vitals:
    """The latest analysis, for a live display."""

    record_time_s: float = 0.0
    heart_rate_bpm: float | None = None
    quality: float | None = None
    af_probability: float | None = None
    rhythm: str | None = None
    active: list[str] = field(default_factory=list)
    latency_ms: float = 0.0


class _Hysteresis:
    def __init__(self, confirm: int, clear: int):
        self.confirm, self.clear = confirm, clear
        self.on, self.run_true, self.run_false = False, 0, 0

    def update(self, condition: bool) -> str | None:
        """``"on"`` / ``"off"`` when the alarm changes state, else None."""
        if condition:
            self.run_true, self.run_false = self.run_true + 1, 0
            if not self.on and self.run_true >= self.confirm:
                self.on = True
                return "on"
        else:
            self.run_false, self.run_true = self.run_false + 1, 0
            if self.on and self.run_false >= self.clear:
                self.on = False
                return "off"
        return None


class Monitor:
    """Feed samples with :meth:`push`; get the alarms raised or cleared by the analyses they triggered.

    ``rhythm_model`` maps a 1-D ECG window (at ``fs_hz``) to class probabilities with ``class_names``
    (e.g. a CinC bundle: see :func:`bundle_rhythm_model`); without it the AF alarm is off.
    """

    def __init__(
        self,
        fs_hz: float,
        settings: MonitorSettings | None = None,
        rhythm_model: Callable[[np.ndarray, float], dict[str, float]] | None = None,
    ):
        self.fs_hz = float(fs_hz)
        self.s = settings or MonitorSettings()
        self.rhythm_model = rhythm_model
        keep = max(self.s.window_s, self.s.af_window_s if rhythm_model else 0.0)
        self.buffer: deque[float] = deque(maxlen=int(round(keep * self.fs_hz)))
        self.n_seen = 0
        self._since = 0
        self._step = max(1, int(round(self.s.step_s * self.fs_hz)))
        self.alarms = {
            "asystole": _Hysteresis(1, self.s.clear),
            "af": _Hysteresis(self.s.confirm, self.s.clear),
            "tachycardia": _Hysteresis(self.s.confirm, self.s.clear),
            "bradycardia": _Hysteresis(self.s.confirm, self.s.clear),
            "poor_signal": _Hysteresis(self.s.poor_confirm, self.s.clear),
        }
        self.vitals = Vitals()
        self.latencies_ms: list[float] = []

    @property
    def record_time_s(self) -> float:
        return self.n_seen / self.fs_hz

    def push(self, samples: np.ndarray) -> list[Alarm]:
        """Append samples (1-D, one lead); analyse every ``step_s`` once a full window is there."""
        out: list[Alarm] = []
        for value in np.asarray(samples, dtype=np.float64).reshape(-1):
            plausible = np.isfinite(value) and abs(value) <= MAX_ABS_SAMPLE
            self.buffer.append(value if plausible else np.nan)  # missing: never read as flat
            self.n_seen += 1
            self._since += 1
            if self._since >= self._step and self.n_seen >= int(self.s.window_s * self.fs_hz):
                self._since = 0
                out += self.analyse()
        return out

    def analyse(self) -> list[Alarm]:
        from medlearn.signals.preprocess import bandpass, detect_rpeaks, signal_quality

        started = time.perf_counter()
        s, fs = self.s, self.fs_hz
        history = np.fromiter(self.buffer, dtype=np.float64, count=len(self.buffer))
        present = np.isfinite(history)
        n_window, n_tail = int(s.window_s * fs), int(s.asystole_s * fs)
        coverage = float(present[-n_window:].mean())
        judged = coverage >= s.min_coverage and float(present[-n_tail:].mean()) >= s.min_coverage
        history = _bridged(history, present)
        window = history[-n_window:]
        peaks = detect_rpeaks(window, fs)
        flat = float(np.ptp(bandpass(window[-n_tail:], fs, 0.5, min(40.0, 0.45 * fs)))) < s.flat_mv
        last_beat_s = (len(window) - peaks[-1]) / fs if len(peaks) else s.window_s
        asystole = judged and (flat or last_beat_s >= s.asystole_s)
        rr = np.diff(peaks) / fs
        hr = float(60.0 / np.median(rr)) if len(rr) >= 2 else None
        quality = float(signal_quality(window, fs, window_s=s.window_s, rpeaks=peaks).score[-1])
        quality = min(quality, coverage) if judged else 0.0  # missing samples are no signal
        poor = not asystole and quality < s.poor_quality
        af_p, rhythm = None, None
        n_af = int(s.af_window_s * fs)
        if (
            self.rhythm_model is not None
            and judged
            and not asystole
            and present[-n_af:].mean() >= s.min_coverage
        ):
            probs = self.rhythm_model(history[-n_af:], fs)
            rhythm = max(probs, key=probs.get)
            af_p = float(probs.get("AF", 0.0))
        trust = not poor and not asystole
        conditions = {
            "asystole": (asystole, last_beat_s),
            "poor_signal": (poor, quality),
            "tachycardia": (trust and hr is not None and hr > s.tachy_bpm, hr),
            "bradycardia": (trust and hr is not None and hr < s.brady_bpm, hr),
            "af": (trust and af_p is not None and af_p >= s.af_threshold, af_p),
        }
        wall = datetime.now(UTC).isoformat(timespec="milliseconds")
        alarms = []
        for name, (condition, value) in conditions.items():
            change = self.alarms[name].update(bool(condition))
            if change:
                alarms.append(Alarm(self.record_time_s, wall, name, SEVERITY[name], value, change))
        latency = (time.perf_counter() - started) * 1000
        self.latencies_ms.append(latency)
        self.vitals = Vitals(
            self.record_time_s,
            hr,
            quality,
            af_p,
            rhythm,
            [n for n, h in self.alarms.items() if h.on],
            latency,
        )
        return alarms


def _bridged(samples: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``samples`` with the missing ones linearly interpolated (held at the ends; zeros when none is real)."""
    if present.all():
        return samples
    if not present.any():
        return np.zeros_like(samples)
    index = np.arange(len(samples))
    return np.interp(index, index[present], samples[present])


def bundle_rhythm_model(bundle: Any) -> Callable[[np.ndarray, float], dict[str, float]]:
    """A rhythm classifier from an ``ecg_af`` bundle: window → probability per class name."""
    from medlearn.signals.transforms import SignalUnit

    def classify(window: np.ndarray, fs_hz: float) -> dict[str, float]:
        prob = bundle.predict_raw([SignalUnit(window[None].astype(np.float32), fs_hz)])[0]
        return dict(zip(bundle.class_names, map(float, np.atleast_1d(prob))))

    return classify


def replay(
    signal: np.ndarray, fs_hz: float, speed: float = 1.0, chunk_s: float = 0.25
) -> Iterator[np.ndarray]:
    """Chunks of a recorded lead, paced at ``speed`` × real time (0: as fast as possible)."""
    chunk = max(1, int(round(chunk_s * fs_hz)))
    start = time.perf_counter()
    for i in range(0, len(signal), chunk):
        if speed > 0:
            due = start + (i / fs_hz) / speed
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        yield signal[i : i + chunk]
