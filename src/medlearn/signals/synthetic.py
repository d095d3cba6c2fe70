"""Synthetic single-lead ECG in the PhysioNet/CinC 2017 layout, for the embedded demo and tests.

Beat shapes come from NeuroKit2's ECGSYN (``ecg_simulate``), one 30 s source per synthetic "patient";
records are then assembled by placing beats at the RR intervals of each rhythm, which is what tells
the classes apart (as in real AF detection):

- Normal: regular RR (sinus, 55–95 bpm), full P-QRS-T;
- AF: irregularly irregular RR (uniform 0.35–1.1 s), no P wave, 4–8 Hz fibrillatory baseline;
- Other: regular tachycardia (105–140 bpm) with premature beats;
- Noisy: a normal rhythm buried in motion artefact and noise.

Records are written as WFDB (``.hea`` + ``.dat``, 300 Hz, mV) with a CinC ``REFERENCE.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FS_HZ = 300.0
LABELS = ("N", "A", "O", "~")
BEFORE_S, AFTER_S = 0.25, 0.45
P_WAVE_END_S = 0.08  # before the R-peak: removed in AF


def beat_templates(seed: int, n: int = 6) -> np.ndarray:
    """``n`` mean beats (P to T) of ECGSYN sources at different rates and morphologies."""
    import neurokit2 as nk

    from medlearn.signals.preprocess import detect_rpeaks, segment_beats

    rng = np.random.default_rng(seed)
    templates = []
    for i in range(n):
        ecg = nk.ecg_simulate(
            duration=20,
            sampling_rate=int(FS_HZ),
            heart_rate=int(rng.integers(60, 80)),
            heart_rate_std=1,
            method="ecgsyn",
            random_state=int(seed * 100 + i),
        )
        beats, _ = segment_beats(ecg, detect_rpeaks(ecg, FS_HZ), FS_HZ, BEFORE_S, AFTER_S)
        templates.append(np.median(beats, axis=0) * rng.uniform(0.7, 1.4))
    return np.stack(templates)


def _rr_intervals(label: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds / 0.3) + 2
    if label == "A":
        return rng.uniform(0.35, 1.1, n)
    if label == "O":
        rr = np.full(n, 60.0 / rng.uniform(105, 140)) * rng.normal(1, 0.02, n)
        premature = rng.random(n) < 0.12
        rr[premature] *= 0.6
        return rr
    return np.full(n, 60.0 / rng.uniform(55, 95)) * rng.normal(1, 0.02, n)


def synthetic_ecg(label: str, seconds: float, template: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One record (mV) of rhythm ``label`` built from ``template``."""
    n = int(seconds * FS_HZ)
    beat = template.copy()
    before = int(BEFORE_S * FS_HZ)
    if label == "A":
        beat[: before - int(P_WAVE_END_S * FS_HZ)] = beat[before - int(P_WAVE_END_S * FS_HZ)]  # no P wave
    t = np.arange(n) / FS_HZ
    x = np.zeros(n + len(beat))
    peaks = np.cumsum(_rr_intervals(label, seconds, rng)) + rng.uniform(0, 0.5)
    for peak in (peaks * FS_HZ).astype(int):
        if peak - before >= 0 and peak - before + len(beat) <= len(x):
            x[peak - before : peak - before + len(beat)] += beat
    x = x[:n] + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t)  # breathing baseline wander
    if label == "A":
        x += 0.05 * np.sin(2 * np.pi * rng.uniform(4, 8) * t + rng.normal(0, 0.3, n).cumsum() * 0.05)
    noise = 0.02
    if label == "~":
        noise = 0.4
        x += np.convolve(rng.normal(0, 1.0, n), np.ones(30) / 30, mode="same")  # motion artefact
    return (x + rng.normal(0, noise, n)).astype(np.float32)


def write_synthetic_cinc(out: Path, n_records: int = 160, seconds: float = 20.0, seed: int = 0) -> Path:
    """Write ``n_records`` records (N 40%, A 25%, O 25%, ~ 10%) and REFERENCE.csv to ``out``."""
    import wfdb

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    templates = beat_templates(seed)
    labels = rng.choice(LABELS, size=n_records, p=[0.4, 0.25, 0.25, 0.1])
    lines = []
    for i, label in enumerate(labels):
        name = f"S{i:05d}"
        signal = synthetic_ecg(str(label), seconds, templates[i % len(templates)], rng)
        wfdb.wrsamp(
            name,
            fs=FS_HZ,
            units=["mV"],
            sig_name=["ECG"],
            p_signal=signal[:, None].astype(np.float64),
            fmt=["16"],
            adc_gain=[1000.0],
            baseline=[0],
            write_dir=str(out),
        )
        lines.append(f"{name},{label}\n")
    (out / "REFERENCE.csv").write_text("".join(lines))
    return out
