"""``medlearn monitor``: feed a recording or stdin through :class:`~medlearn.signals.stream.Monitor`,
show a live display (rich, on stderr) and write alarms as JSON lines."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from medlearn.errors import InputError, MedlearnError
from medlearn.signals.stream import MAX_ABS_SAMPLE, Monitor, MonitorSettings, bundle_rhythm_model, replay

#: Malformed stdin lines reported one by one; later ones are counted and summed up at the end.
MAX_REPORTED_LINES = 20


def stdin_chunks(
    stream: IO[str], lead: int, chunk: int = 64, errors: IO[str] | None = None
) -> Iterator[np.ndarray]:
    """Samples from text lines (``v`` or ``v1,v2,...``), in chunks of ``chunk``.

    A stream keeps going: a malformed line (an empty line, text, ``nan``, a value that overflows such as
    ``1e999`` or exceeds :data:`~medlearn.signals.stream.MAX_ABS_SAMPLE`, a line without the monitored
    lead) is reported on ``errors`` (stderr) as one line naming its line number, and skipped. An empty
    line adds no sample; any other malformed line counts as one missing sample (NaN), so the timeline
    stays aligned and the monitor sees the gap as missing signal (poor signal), never as a flat line.
    After :data:`MAX_REPORTED_LINES` reports the rest are only counted, and a total is reported at the
    end. Only a first data line without the lead is an
    :class:`InputError` (``--lead`` names a lead the stream does not have).
    """
    out = sys.stderr if errors is None else errors
    values: list[float] = []
    bad, started = 0, False

    def report(number: int, reason: str) -> None:
        nonlocal bad
        bad += 1
        if bad <= MAX_REPORTED_LINES:
            out.write(f"stdin line {number}: {reason}; skipped\n")
        if bad == MAX_REPORTED_LINES:
            out.write("stdin: further malformed lines are counted, not reported one by one\n")
        out.flush()

    for number, line in enumerate(stream, start=1):
        line = line.strip()
        if not line:
            report(number, "empty line")
            continue
        fields = line.split(",")
        if lead >= len(fields):
            if not started:
                raise InputError(f"stdin line {number}: {len(fields)} lead(s), but lead {lead} was asked for")
            report(number, f"{len(fields)} lead(s), no lead {lead}")
            values.append(float("nan"))
        else:
            field = fields[lead].strip()
            try:
                value = float(field)
            except ValueError:
                value = None
            if value is None or not np.isfinite(value) or abs(value) > MAX_ABS_SAMPLE:
                report(number, f"{field!r} is not a finite number of plausible size (a missing sample)")
                values.append(float("nan"))
            else:
                values.append(value)
        started = True
        if len(values) >= chunk:
            yield np.asarray(values)
            values = []
    if values:
        yield np.asarray(values)
    if bad > MAX_REPORTED_LINES:
        out.write(f"stdin: {bad} malformed line(s) skipped in all\n")
        out.flush()


class AlarmSink:
    """Alarm JSON lines to ``path`` (or to stdout when None), each line written whole and flushed.

    A failed write (a full disk, a closed pipe) is one :class:`MedlearnError` naming the file and how
    many alarms were written; a file is cut back to its last complete line first, so the alarms already
    written stay valid JSON lines. Each line reaches the disk (``fsync``) before the next analysis: an
    alarm is rare and must survive a crash of the monitor.
    """

    def __init__(self, path: Path | None):
        self.path, self.written, self._good = path, 0, 0
        self._fd: int | None = None
        if path is not None:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            except OSError as exc:
                raise MedlearnError(f"{path}: cannot open for the alarms ({exc.strerror})") from None

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record) + "\n"
        try:
            if self._fd is None:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                data = memoryview(line.encode())
                while data:
                    data = data[os.write(self._fd, data) :]
                _fsync(self._fd)
        except OSError as exc:
            where = "stdout" if self.path is None else str(self.path)
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._good)
            raise MedlearnError(
                f"{where}: cannot write alarm {self.written + 1} ({exc.strerror or exc}); monitoring stopped, "
                f"the {self.written} alarm(s) before it are complete JSON lines"
            ) from None
        self._good += len(line.encode())
        self.written += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP):  # a pipe or device: nothing to sync
            raise


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
    sink = AlarmSink(alarms_out)
    raised: list[dict[str, Any]] = []
    try:
        with LiveDisplay(live) as show:
            for chunk in source:
                for alarm in monitor.push(chunk):
                    record_ = alarm.to_dict()
                    sink.write(record_)
                    raised.append(record_)
                show(monitor)
    finally:
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
