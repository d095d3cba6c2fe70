"""Biosignals: ECG preprocessing vs NeuroKit2 ``ecg_process``, and the monitor's latency per window.

    python benchmarks/signals.py --records 200 --mitdb 101,106,108,203,207 [--bundle runs/.../bundle]

Part 2 replays MIT-BIH records through :class:`medlearn.signals.stream.Monitor` as fast as possible and
reports the wall time of each analysis (a 10 s window every 2 s of signal: R-peaks, quality, rate and
asystole checks, plus the AF model on the last 30 s) as p50/p95; goal p95 <= 50 ms. The AF model is
``--bundle`` (an ecg_af bundle) or, without one, an untrained network of the shipped
``ecg_af_cinc2017`` architecture (same cost per window).

Throughput is seconds of ECG processed per second of wall time on one core (files are read before the
clock starts, for both). Also measured: R-peak F1 of both against the MIT-BIH beat annotations (lead
MLII, 150 ms tolerance, whole records), and how many records made each raise. For context, a third row
times NeuroKit2's own detector without the rest of ``ecg_process`` (``ecg_clean`` + ``ecg_peaks``,
method "neurokit", no artefact correction). Needs the ``signals`` extra (wfdb, neurokit2).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core for both, before numpy loads a BLAS

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np


def medlearn_pipeline(ecg: np.ndarray, fs_hz: float) -> np.ndarray:
    from medlearn.signals.preprocess import bandpass, detect_rpeaks, signal_quality

    bandpass(ecg, fs_hz, 0.5, 40.0)
    rpeaks = detect_rpeaks(ecg, fs_hz)
    signal_quality(ecg, fs_hz, rpeaks=rpeaks)
    return rpeaks


def neurokit_process(ecg: np.ndarray, fs_hz: float) -> np.ndarray:
    import neurokit2 as nk

    _, info = nk.ecg_process(ecg, sampling_rate=round(fs_hz))
    return np.asarray(info["ECG_R_Peaks"])


def neurokit_peaks_only(ecg: np.ndarray, fs_hz: float) -> np.ndarray:
    import neurokit2 as nk

    cleaned = nk.ecg_clean(ecg, sampling_rate=round(fs_hz))
    _, info = nk.ecg_peaks(cleaned, sampling_rate=round(fs_hz), method="neurokit")
    return np.asarray(info["ECG_R_Peaks"])


PIPELINES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "medlearn": medlearn_pipeline,
    "nk.ecg_process": neurokit_process,
    "nk.ecg_clean+ecg_peaks": neurokit_peaks_only,
}


def run(
    pipeline: Callable[[np.ndarray, float], np.ndarray], signals: list[tuple[str, np.ndarray, float]]
) -> tuple[float, dict[str, np.ndarray], list[str]]:
    """(seconds of ECG per second, peaks by record, records that raised), one record at a time."""
    peaks: dict[str, np.ndarray] = {}
    raised: list[str] = []
    seconds = sum(len(x) / fs for _, x, fs in signals)
    start = time.perf_counter()
    for name, ecg, fs_hz in signals:
        try:
            peaks[name] = pipeline(ecg, fs_hz)
        except Exception as exc:  # the point: count what raises, keep going
            raised.append(f"{name} ({type(exc).__name__}: {str(exc)[:60]})")
    return seconds / (time.perf_counter() - start), peaks, raised


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200, help="CinC 2017 records (REFERENCE.csv order)")
    parser.add_argument("--mitdb", default="101,106,108,203,207", help="MIT-BIH records for F1 (comma list)")
    parser.add_argument(
        "--bundle", type=Path, default=None, help="an ecg_af bundle for the monitor's AF model"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="the signals folder (default $MEDLEARN_DATA/signals)"
    )
    args = parser.parse_args()

    from medlearn.paths import data_root
    from medlearn.signals.io import load_cinc2017, load_mitdb_beats, read_wfdb
    from medlearn.signals.preprocess import rpeak_scores

    warnings.filterwarnings("ignore")  # NeuroKit2 warns per record; the table is the output
    root = args.data or data_root() / "signals"
    cinc = [
        (r.record, read_wfdb(r.path).channel(0).astype(np.float64), 300.0)
        for r in load_cinc2017(root / "cinc2017")[: args.records]
    ]
    mitdb, references = [], {}
    for name in [n.strip() for n in args.mitdb.split(",") if n.strip()]:
        recording, beats = load_mitdb_beats(root / "mitdb" / name)
        mitdb.append((name, recording.channel("MLII").astype(np.float64), recording.fs_hz))
        references[name] = beats.sample
    cinc_seconds = sum(len(x) / fs for _, x, fs in cinc)
    print(
        f"CinC 2017: {len(cinc)} records, {cinc_seconds:.0f} s of ECG; MIT-BIH: {', '.join(references)} "
        f"({sum(len(x) / fs for _, x, fs in mitdb):.0f} s)\n"
    )

    rows = {}
    for label, pipeline in PIPELINES.items():
        cinc_speed, _, cinc_raised = run(pipeline, cinc)
        mitdb_speed, peaks, mitdb_raised = run(pipeline, mitdb)
        f1 = {
            name: rpeak_scores(peaks[name], references[name], fs).f1 if name in peaks else float("nan")
            for name, _, fs in mitdb
        }
        rows[label] = (cinc_speed, mitdb_speed, cinc_raised + mitdb_raised, f1)

    names = list(references)
    header = f"{'pipeline':<24}{'CinC s/s':>10}{'MITDB s/s':>11}{'raised':>8}{'mean F1':>9}" + "".join(
        f"{n:>8}" for n in names
    )
    print(header + "\n" + "-" * len(header))
    for label, (cinc_speed, mitdb_speed, raised, f1) in rows.items():
        mean_f1 = np.nanmean(list(f1.values()))
        print(
            f"{label:<24}{cinc_speed:>10.0f}{mitdb_speed:>11.0f}{len(raised):>8}{mean_f1:>9.4f}"
            + "".join(f"{f1[n]:>8.4f}" for n in names)
        )
    ours, theirs = rows["medlearn"], rows["nk.ecg_process"]
    print(
        f"\nthroughput ratio medlearn / nk.ecg_process: CinC {ours[0] / theirs[0]:.1f}x, "
        f"MIT-BIH {ours[1] / theirs[1]:.1f}x"
    )
    for label, (_, _, raised, _) in rows.items():
        if raised:
            print(f"{label} raised on: {'; '.join(raised)}")
    monitor_latency(mitdb, args.bundle)


def monitor_latency(records: list[tuple[str, np.ndarray, float]], bundle_path: Path | None) -> None:
    import torch

    from medlearn.signals.stream import Monitor, bundle_rhythm_model

    torch.set_num_threads(1)
    if bundle_path is not None:
        from medlearn.engine.bundle import load_bundle

        rhythm, source = bundle_rhythm_model(load_bundle(bundle_path)), str(bundle_path)
    else:
        from medlearn.config import load_config
        from medlearn.engine.models import build_model
        from medlearn.signals.preprocess import bandpass, resample
        from medlearn.signals.transforms import FixLength, SignalUnit, Standardize

        cfg = load_config("ecg_af_cinc2017")
        model, _ = build_model(cfg.model.name, cfg.model.params, {"in_channels": 1, "out_channels": 4})
        model.eval()

        def rhythm(window: np.ndarray, fs_hz: float) -> dict[str, float]:
            x = resample(bandpass(window, fs_hz, 0.5, 40.0), fs_hz, 100.0)
            x = FixLength(60.0)(Standardize()(SignalUnit(x[None].astype(np.float32), 100.0)))
            with torch.no_grad():
                p = torch.softmax(model(torch.from_numpy(x[None])), 1)[0].numpy()
            return dict(zip(["Normal", "AF", "Other", "Noisy"], map(float, p)))

        source = "untrained ecg_af_cinc2017 network"
    latencies, seconds = [], 0.0
    for _name, signal, fs in records:
        monitor = Monitor(fs, rhythm_model=rhythm)
        monitor.push(signal[: int(600 * fs)])  # 10 minutes per record
        latencies += monitor.latencies_ms
        seconds += min(len(signal) / fs, 600)
    lat = np.asarray(latencies)
    p50, p95 = np.percentile(lat, [50, 95])
    print(
        f"\nmonitor ({source}): {len(lat)} analyses over {seconds:.0f} s of ECG; latency per 10 s window "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms (goal p95 <= 50 ms: {'met' if p95 <= 50 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
