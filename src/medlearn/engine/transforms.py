"""Modality-free preprocessing pieces: z-score standardisation and reseedable augmentation.

Imaging, signals and the EEG sleep features each standardised and augmented their arrays in their own
words; what they share lives here, and the modalities keep only what is theirs (a MONAI pipeline, a
:class:`~medlearn.signals.transforms.SignalUnit`). Arrays in, arrays out; NumPy only, so importing this
module stays cheap.

:class:`ZScore` is registered under the transform name ``normalize`` (bundles store it by that name, so
an old bundle's spec rebuilds it with the same parameters and gives the same output).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Augmentation", "ZScore", "robust_scale", "robust_zscore"]


class ZScore:
    """``(x − mean) / std`` with fixed statistics (fitted on the training split and saved in the bundle,
    never re-estimated at serving time).

    Args:
        mean: one value, or one per channel/feature (the first axis of ``x``).
        std: the same shape as ``mean``; every value must be positive.
        fill_missing: the value NaN inputs take after standardising (0 = the mean: a missing feature
            counts as average); None keeps NaN.

    Examples:
        >>> ZScore(0.5, 0.25)(np.array([0.5, 1.0]))
        array([0., 2.], dtype=float32)
    """

    def __init__(
        self, mean: float | Sequence[float], std: float | Sequence[float], fill_missing: float | None = None
    ):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        if self.mean.shape != self.std.shape or self.mean.ndim > 1:
            raise ValueError(
                f"mean and std must be one value or one per channel of the same length, "
                f"got shapes {self.mean.shape} and {self.std.shape}"
            )
        if np.any(~(self.std > 0)):
            raise ValueError(f"std must be positive, got {std}")
        self.fill_missing = fill_missing

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        shape = (-1,) + (1,) * (x.ndim - 1) if self.mean.ndim else ()
        out = (x - self.mean.reshape(shape)) / self.std.reshape(shape)
        return out if self.fill_missing is None else np.nan_to_num(out, nan=self.fill_missing)


def robust_scale(x: np.ndarray) -> np.ndarray:
    """Per-channel IQR / 1.349 (the standard deviation of a normal signal) along the last axis, falling back
    to the standard deviation for a flat-quartile channel and never below 1e-8."""
    q75, q25 = np.percentile(x, [75, 25], axis=-1, keepdims=True)
    scale = (q75 - q25) / 1.349
    return np.where(scale > 1e-8, scale, np.maximum(x.std(axis=-1, keepdims=True), 1e-8))


def robust_zscore(x: np.ndarray, scale: float | None = None, clip: float | None = None) -> np.ndarray:
    """``(x − median) / scale`` per channel along the last axis, clipped to ``±clip``.

    The median and :func:`robust_scale` stand in for mean and standard deviation because one artefact spike
    must not shrink a whole record. A fixed ``scale`` (fitted on the training set) divides every unit by the
    same number instead, keeping amplitude as a feature.
    """
    median = np.median(x, axis=-1, keepdims=True)
    out = (x - median) / (robust_scale(x) if scale is None else scale)
    return out if clip is None else np.clip(out, -clip, clip)


class Augmentation(ABC):
    """Random training-time augmentation whose randomness is reseedable.

    The Trainer calls :meth:`reseed` at the start of every epoch (the
    :class:`~medlearn.engine.protocols.Reseedable` protocol), so each epoch's draws are reproducible and a
    ``--resume`` continues identically. Subclasses draw from ``self.rng`` (a NumPy generator) in
    :meth:`augment`, or override :meth:`reseed` when a library keeps its own random state (MONAI). Outputs
    are float32.
    """

    rng: np.random.Generator

    def __init__(self, seed: int = 0) -> None:
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def augment(self, x: np.ndarray) -> Any:
        """One random variant of ``x`` (same shape)."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.augment(x), dtype=np.float32)
