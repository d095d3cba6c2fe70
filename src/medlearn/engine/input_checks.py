"""Shared pieces of the input checks (:meth:`~medlearn.engine.task.Task.input_profile` and
:meth:`~medlearn.engine.task.Task.check_input`): summaries of what training saw, and the sentences that say
when a unit to predict lies outside it.

A profile stores plain JSON: ranges as ``[low, high]`` of what the training units showed. A check widens
a range by a stated margin (so that a unit a little beyond the most extreme training unit is not an
alarm) and says, in its sentence, both the unit's value and the range the model was trained on: "record
is 0.5 s; the model was trained on 9.3–60.7 s records".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "below_range",
    "constant_reason",
    "fmt",
    "fmt_range",
    "non_finite_reason",
    "outside_range",
    "seen_range",
    "seen_values",
]


def fmt(value: float) -> str:
    """A number for a sentence: 3 significant digits, no exponent for everyday magnitudes."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4g}" if abs(value) >= 1000 else f"{value:.3g}"


def fmt_range(seen: Any, unit: str = "") -> str:
    """``[low, high]`` for a sentence: "9.3–60.7 s", or one value when all training units shared it."""
    sep = " " if unit else ""
    lo, hi = float(seen[0]), float(seen[1])
    text = fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"
    return f"{text}{sep}{unit}"


def seen_range(values: Iterable[Any]) -> list[float] | None:
    """``[min, max]`` of the finite numbers among ``values`` (None when there are none): what a profile
    stores about one quantity of the training units."""
    arr = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None
    return [float(arr.min()), float(arr.max())]


def seen_values(values: Iterable[Any]) -> list[str]:
    """The distinct non-empty values (e.g. DICOM modalities) seen in training, sorted."""
    return sorted({str(v).strip() for v in values if v is not None and str(v).strip()})


def _bounds(seen: Any, margin: float, relative: bool, pad: float = 0.0) -> tuple[float, float] | None:
    if not isinstance(seen, list | tuple) or len(seen) != 2:
        return None
    try:
        lo, hi = float(seen[0]), float(seen[1])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        return None
    if relative:  # a ratio scale (rates, durations, spacings): margin as a factor either side
        return lo / (1 + margin), hi * (1 + margin)
    span = hi - lo
    return lo - margin * span - pad, hi + margin * span + pad


def outside_range(
    what: str,
    value: float,
    seen: Any,
    unit: str = "",
    margin: float = 0.5,
    relative: bool = False,
    trained_on: str | None = None,
    pad: float = 0.0,
) -> str | None:
    """One sentence when ``value`` lies outside the training range ``seen`` widened by ``margin``, else None.

    Args:
        what: the quantity, as the sentence starts ("record duration").
        value: the unit's value.
        seen: ``[low, high]`` from the profile; anything else (an older bundle, no data) checks nothing.
        unit: the unit of the numbers ("s", "Hz", "mm").
        margin: with ``relative`` a factor (0.5: from low/1.5 to high·1.5), else a fraction of the range's
            span added at both ends (0.5: half the span).
        relative: for quantities on a ratio scale (durations, rates, spacings).
        trained_on: how to name the training units in the sentence ("records"); default "inputs".
        pad: an absolute amount added at both ends besides ``margin`` (not with ``relative``), so that a
            range all training units shared exactly (span 0) still tolerates a little.
    """
    bounds = _bounds(seen, margin, relative, 0.0 if relative else pad)
    if bounds is None or not math.isfinite(float(value)):
        return None
    if bounds[0] <= value <= bounds[1]:
        return None
    sep = " " if unit else ""
    seen_text = fmt_range(seen, unit)
    if relative:
        how = f"{1 + margin:g}× margin either side"
    else:
        how = f"margin of {margin:.0%} of that range" + (f" + {fmt(pad)}{sep}{unit}" if pad else "")
    return (
        f"{what} is {fmt(value)}{sep}{unit}; the model was trained on {trained_on or 'inputs'} of "
        f"{seen_text} (checked with a {how})"
    )


def below_range(
    what: str, value: float, seen: Any, unit: str = "", factor: float = 0.5, trained_on: str | None = None
) -> str | None:
    """One sentence when ``value`` is below ``factor`` times the smallest training value (e.g. a signal's
    amplitude that is a fraction of any seen in training); None otherwise or when ``seen`` is unusable."""
    bounds = _bounds(seen, 0.0, relative=True)
    if bounds is None or not math.isfinite(float(value)) or value >= factor * bounds[0]:
        return None
    sep = " " if unit else ""
    return (
        f"{what} is {fmt(value)}{sep}{unit}, under {factor:g}× the smallest seen in training "
        f"({fmt(bounds[0])}{sep}{unit}, {trained_on or 'inputs'} up to {fmt(bounds[1])}{sep}{unit})"
    )


def non_finite_reason(array: Any, what: str = "the preprocessed input") -> str | None:
    """A sentence when ``array`` holds NaN or infinite values (the model cannot give a number for it)."""
    arr = np.asarray(array)
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    return f"{what} holds {int(bad.sum())} NaN/infinite value(s) of {arr.size}"


def constant_reason(values: Any, what: str, unit: str = "") -> str | None:
    """A sentence when every finite value of ``values`` is the same (a flat line, a blank image)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return f"{what} holds no finite value"
    if arr.size > 1 and float(arr.max() - arr.min()) > 0:
        return None
    sep = " " if unit else ""
    return f"{what} is constant ({fmt(arr[0])}{sep}{unit} everywhere): there is nothing for the model to read"
