"""``medlearn monitor``: feed a recording or stdin through :class:`~medlearn.signals.stream.Monitor`,
show a live display (rich, on stderr) and write alarms as JSON lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from medlearn.errors import InputError
from medlearn.signals.stream import Monitor, MonitorSettings, bundle_rhythm_model, replay


def stdin_chunks(stream: IO[str], lead: int, chunk: int = 64) -> Iterator[np.ndarray]:
    """Samples from text lines (``v`` or ``v1,v2,...``); a line that is not numbers is an InputError
    naming its line number; an empty field or ``nan`` is a missing sample (read as flat)."""
    values: list[float] = []
    for number, line in enumerate(stream, start=1):
        line = line.strip()
        if not line:
            continue
        fields = line.split(",")
        if lead >= len(fields):
            raise InputError(f"stdin line {number}: {len(fields)} lead(s), but lead {lead} was asked for")
        field = fields[lead].strip()
        try:
            values.append(float(field) if field else float("nan"))
        except ValueError:
            raise InputError(f"stdin line {number}: {field!r} is not a number") from None
        if len(values) >= chunk:
            yield np.asarray(values)
            values = []
    if values:
        yield np.asarray(values)


def run_monitor(
    bundle_path: Path | None,
    record: Path | None,
    use_stdin: bool,
    fs_hz: float | None,
    speed: float,
    alarms_out: Path | None,
    lead: int,
    live: bool,
    settings: MonitorSettings | None = None,
) -> dict[str, Any]:
    """Run the monitor to the end of the input; return a summary (alarms, latency percentiles)."""
    from medlearn.engine.bundle import load_bundle

    rhythm = None
    if bundle_path is not None:
        import torch

        # one small window at a time: extra threads only add synchronisation (and stall under load)
        torch.set_num_threads(1)
        bundle = load_bundle(bundle_path)
        if "AF" not in bundle.class_names:
            raise InputError(
                f"{bundle_path}: a {bundle.meta.task.name} bundle has no AF class; "
                "monitor needs an ecg_af bundle (or none, for rate and asystole alarms only)"
            )
        rhythm = bundle_rhythm_model(bundle)
    if use_stdin:
        if fs_hz is None:
            raise InputError("--stdin needs --fs (the sampling rate of the lines, in Hz)")
        source, rate = stdin_chunks(sys.stdin, lead), float(fs_hz)
    else:
        from medlearn.signals.io import read_recording

        if record is None:
            raise InputError("give --record PATH (a WFDB record, .hea/.mat or .edf) or --stdin --fs HZ")
        recording = read_recording(record)
        if lead >= recording.n_channels:
            raise InputError(f"{record}: has {recording.n_channels} lead(s); --lead {lead} does not exist")
        rate = recording.fs_hz
        source = replay(recording.signal[:, lead].astype(np.float64), rate, speed)
    monitor = Monitor(rate, settings, rhythm)
    sink = alarms_out.open("w") if alarms_out is not None else sys.stdout
    raised: list[dict[str, Any]] = []
    try:
        with LiveDisplay(live) as show:
            for chunk in source:
                for alarm in monitor.push(chunk):
                    record_ = alarm.to_dict()
                    raised.append(record_)
                    sink.write(json.dumps(record_) + "\n")
                    sink.flush()
                show(monitor)
    finally:
        if alarms_out is not None:
            sink.close()
    lat = np.asarray(monitor.latencies_ms) if monitor.latencies_ms else np.zeros(1)
    return {
        "seconds": round(monitor.record_time_s, 2),
        "analyses": len(monitor.latencies_ms),
        "alarms": raised,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2),
    }


class LiveDisplay:
    """A rich Live table of the latest vitals on stderr (a no-op when not ``live``)."""

    def __init__(self, live: bool):
        self.live = None
        if live:
            from rich.live import Live

            from medlearn.engine.progress import stderr

            self.live = Live(console=stderr, refresh_per_second=4, transient=False)

    def __enter__(self):
        if self.live is not None:
            self.live.__enter__()
        return self.show

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def show(self, monitor: Monitor) -> None:
        if self.live is None:
            return
        from rich.table import Table

        v = monitor.vitals
        table = Table(title=f"medlearn monitor · t = {monitor.record_time_s:7.1f} s", show_header=True)
        for col in ("HR (bpm)", "rhythm", "P(AF)", "quality", "alarms", "latency"):
            table.add_column(col)
        table.add_row(
            "—" if v.heart_rate_bpm is None else f"{v.heart_rate_bpm:.0f}",
            v.rhythm or "—",
            "—" if v.af_probability is None else f"{v.af_probability:.2f}",
            "—" if v.quality is None else f"{v.quality:.2f}",
            "[red]" + ", ".join(v.active) + "[/]" if v.active else "[green]none[/]",
            f"{v.latency_ms:.1f} ms",
        )
        self.live.update(table)
