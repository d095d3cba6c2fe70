"""Biosignal readers: WFDB (incl. PhysioNet/CinC ``.mat`` records), EDF/EDF+, Bonn/Delhi EEG segments.

Every reader returns a :class:`Recording` (float32 ``(n_samples, n_channels)`` in physical units, see
:mod:`.recording`) and raises :class:`medlearn.errors.InputError` (message starting with the offending
path) for files a user can fix. Names load lazily: ``import medlearn.signals.io`` pulls in neither
wfdb nor pyEDFlib until a reader runs.

    rec = read_recording("mitdb/101")            # or read_wfdb / read_edf / read_text_segment(path, fs_hz)
    rec.signal, rec.fs_hz, rec.annotations.sample, rec.annotations.symbol
"""

from __future__ import annotations

from medlearn.lazy import lazy_getattr

_EXPORTS = {
    "Annotations": "recording",
    "Recording": "recording",
    "SignalQualityWarning": "recording",
    "read_wfdb": "wfdb_reader",
    "read_edf": "edf",
    "read_text_segment": "segments",
    "read_mat_segment": "segments",
    "read_recording": "dispatch",
    "AAMI_CLASSES": "datasets",
    "Beats": "datasets",
    "LabelledRecord": "datasets",
    "aami_classes": "datasets",
    "beat_annotations": "datasets",
    "load_cinc2017": "datasets",
    "load_mitdb_beats": "datasets",
    "rhythm_episodes": "datasets",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
