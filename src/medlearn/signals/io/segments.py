"""Header-less EEG segments (Bonn ``.txt``, New Delhi ``.mat``) → :class:`Recording`.

These files carry samples only: the sampling rate comes from the dataset's documentation and must be
passed (Bonn 173.61 Hz, Delhi 200 Hz). Values are kept as stored; ``unit`` defaults to ``"adu"`` (ADC
units) because neither set documents a physical scale (Bonn holds raw 12-bit integers).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlearn.errors import InputError
from medlearn.signals.io._deps import require
from medlearn.signals.io.recording import Recording, check_fs, repair_missing


def _as_recording(
    array: np.ndarray,
    path: Path,
    fs_hz: float,
    channel_names: Sequence[str] | None,
    unit: str,
    notes: list[str],
) -> Recording:
    if array.size == 0:
        raise InputError(f"{path}: no samples")
    # the file does not say what its channels hold (EEG segments, an ECG posted as numbers…)
    names = list(channel_names) if channel_names is not None else [f"ch{i}" for i in range(array.shape[1])]
    return repair_missing(
        Recording(
            signal=array,
            fs_hz=fs_hz,
            channel_names=names,
            units=[unit] * len(names),
            source=path,
            quality=notes,
        )
    )


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    return path


def read_text_segment(
    path: str | Path, fs_hz: float, *, channel_names: Sequence[str] | None = None, unit: str = "adu"
) -> Recording:
    """A text file of numbers, one sample per line (whitespace-separated columns = channels)."""
    path = _existing(path)
    fs_hz = check_fs(fs_hz, path)
    try:
        array = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise InputError(f"{path}: not a column of numbers ({exc})") from None
    return _as_recording(array, path, fs_hz, channel_names, unit, [])


def read_mat_segment(
    path: str | Path,
    fs_hz: float,
    *,
    variable: str | None = None,
    channel_names: Sequence[str] | None = None,
    unit: str = "adu",
) -> Recording:
    """A MATLAB file holding one numeric array (or the one named ``variable``).

    A 2-D array is read with time along its **longer** axis (a ``(1, n)`` row and an ``(n, 1)`` column are
    both one channel); MATLAB files do not say which axis is time, and segments are longer than wide.
    """
    path = _existing(path)
    fs_hz = check_fs(fs_hz, path)
    scipy_io = require("scipy.io", "to read .mat files")
    try:
        content = scipy_io.loadmat(str(path))
    except Exception as exc:
        raise InputError(f"{path}: not a readable MATLAB file ({exc})") from None
    arrays = {
        k: v
        for k, v in content.items()
        if not k.startswith("__") and isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.number)
    }
    if variable is None:
        if len(arrays) != 1:
            raise InputError(
                f"{path}: holds {len(arrays)} numeric arrays ({', '.join(arrays) or 'none'}); "
                "name one with variable=..."
            )
        variable = next(iter(arrays))
    if variable not in arrays:
        raise InputError(f"{path}: no numeric array {variable!r}; arrays: {', '.join(arrays) or 'none'}")
    array = np.squeeze(arrays[variable]).astype(np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise InputError(
            f"{path}: array {variable!r} has shape {arrays[variable].shape}; expected 1-D or 2-D"
        )
    notes = []
    if array.shape[0] < array.shape[1]:
        array = array.T
        notes.append(f"array {variable!r} transposed: time taken along its longer axis")
    return _as_recording(array, path, fs_hz, channel_names, unit, notes)
