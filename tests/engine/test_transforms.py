"""engine.transforms: z-score and reseedable augmentation, lifted out of the modalities without changing what
a saved bundle's preprocessing computes.

The ``v1_*`` functions are the modality implementations as they were before the move, frozen here: a bundle
stores transform *names* and parameters, so the classes the registry now builds for those names must give
the same arrays, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from medlearn.engine.data import Preprocessing
from medlearn.engine.protocols import Reseedable
from medlearn.engine.transforms import Augmentation, ZScore, robust_zscore
from medlearn.signals.transforms import SignalAugment, SignalUnit


def v1_normalize(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return (np.asarray(x, dtype=np.float32) - mean) / std


def v1_feature_standardize(x: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    m, s = np.asarray(mean, np.float32)[:, None], np.asarray(std, np.float32)[:, None]
    return np.nan_to_num((np.asarray(x, np.float32) - m) / s, nan=0.0)


def v1_signal_standardize(signal: np.ndarray, clip: float = 20.0, scale: float | None = None) -> np.ndarray:
    x = signal.astype(np.float64)
    q75, q25 = np.percentile(x, [75, 25], axis=-1, keepdims=True)
    robust = (q75 - q25) / 1.349
    robust = np.where(robust > 1e-8, robust, np.maximum(x.std(axis=-1, keepdims=True), 1e-8))
    median = np.median(x, axis=-1, keepdims=True)
    return np.clip((x - median) / (robust if scale is None else scale), -clip, clip).astype(np.float32)


def v1_signal_augment_draws(x: np.ndarray, seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y = x * (1 + rng.uniform(-0.15, 0.15)) + rng.normal(0, 0.05, x.shape)
        out.append(np.roll(y, int(rng.integers(0, x.shape[-1])), axis=-1).astype(np.float32))
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_an_old_normalize_step_gives_the_same_array(rng, dtype):
    x = (rng.random((1, 28, 28)) * 255).astype(dtype)
    spec = [{"name": "normalize", "params": {"mean": 0.1, "std": 0.3}}]
    out = Preprocessing(spec)(x)
    np.testing.assert_array_equal(out, np.ascontiguousarray(v1_normalize(x, 0.1, 0.3), np.float32))


def test_an_old_feature_standardize_step_gives_the_same_array_and_fills_missing_context(rng):
    mean, std = rng.normal(size=72).tolist(), rng.uniform(0.1, 3, size=72).tolist()
    x = rng.normal(size=(72, 15)).astype(np.float32)
    x[:, :3] = np.nan  # context epochs before the night began
    out = Preprocessing([{"name": "feature_standardize", "params": {"mean": mean, "std": std}}])(x)
    np.testing.assert_array_equal(out, v1_feature_standardize(x, mean, std))
    assert (out[:, :3] == 0).all() and np.isfinite(out).all()


@pytest.mark.parametrize("params", [{}, {"scale": 2.0}, {"clip": 3.0}])
def test_an_old_signal_standardize_step_gives_the_same_signal(rng, params):
    signal = (rng.normal(size=(2, 3000)) * 40 + 7).astype(np.float32)
    signal[0, 100] = 5000.0  # an artefact spike
    spec = [
        {"name": "signal_standardize", "params": params},
        {"name": "signal_fix_length", "params": {"seconds": 10}},
    ]
    out = Preprocessing(spec)(SignalUnit(signal, 300.0))
    np.testing.assert_array_equal(out, v1_signal_standardize(signal, **params))


def test_signal_augmentation_draws_what_it_drew_before_and_again_after_reseed(rng):
    x = rng.normal(size=(1, 500)).astype(np.float32)
    aug = SignalAugment(seed=5)
    first = [aug(x) for _ in range(3)]
    expected = v1_signal_augment_draws(x, 5, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, expected))
    aug.reseed(5)
    assert all(np.array_equal(aug(x), b) for b in expected)
    assert isinstance(aug, Reseedable) and isinstance(aug, Augmentation)


def test_zscore_per_channel_broadcasts_over_the_first_axis():
    x = np.array([[1.0, 3.0], [10.0, 30.0]])
    np.testing.assert_allclose(ZScore([2.0, 20.0], [1.0, 10.0])(x), [[-1, 1], [-1, 1]])
    assert (
        ZScore(0.0, 1.0)(np.array([np.nan]))[0] != ZScore(0.0, 1.0, fill_missing=0.0)(np.array([np.nan]))[0]
    )


@pytest.mark.parametrize(
    ("mean", "std", "message"),
    [
        (0.0, 0.0, "std must be positive"),
        ([0.0, 1.0], [1.0, -1.0], "std must be positive"),
        ([0.0, 1.0], [1.0], "same length"),
    ],
)
def test_zscore_rejects_bad_statistics(mean, std, message):
    with pytest.raises(ValueError, match=message):
        ZScore(mean, std)


def test_robust_zscore_ignores_a_spike_that_a_standard_deviation_would_not():
    x = np.sin(np.linspace(0, 20, 1000))[None]
    spiked = x.copy()
    spiked[0, 10] = 1000.0
    z = robust_zscore(spiked, clip=20.0)
    np.testing.assert_allclose(z[0, 100:200], robust_zscore(x)[0, 100:200], rtol=0.05, atol=0.05)
    assert z[0, 10] == 20.0
