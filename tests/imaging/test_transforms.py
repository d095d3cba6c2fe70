"""Imaging transforms: values in known units, shapes, and saved-spec round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medlearn.engine.data import Preprocessing
from medlearn.imaging import transforms as T


def test_hu_window_maps_the_lung_window_to_unit_range():
    out = T.HUWindow(-1000, 400)(np.array([-2048.0, -1000.0, -300.0, 400.0, 3000.0]))
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)


def test_normalize_and_scale_check_their_parameters():
    np.testing.assert_allclose(
        Preprocessing([{"name": "normalize", "params": {"mean": 0.5, "std": 0.25}}])(np.array([0.5, 1.0])),
        [0.0, 2.0],
    )
    with pytest.raises(ValueError, match="std must be positive"):
        Preprocessing([{"name": "normalize", "params": {"mean": 0.0, "std": 0.0}}])
    with pytest.raises(ValueError, match="a_max"):
        T.ScaleIntensityRange(1.0, 0.0)


def test_resample_isotropic_gives_one_mm_voxels():
    volume = {"hu": np.zeros((10, 20, 20), np.float32), "spacing_mm": [2.5, 0.7, 0.7]}
    out = T.ResampleIsotropic(1.0)(volume)
    assert out.shape == pytest.approx((25, 14, 14), abs=1)


def test_resampling_keeps_a_sphere_round(rng):
    z, y, x = np.mgrid[:16, :40, :40]
    sphere = (((z - 8) * 2.5) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 10**2).astype(np.float32)
    out = T.ResampleIsotropic(1.0)({"hu": sphere, "spacing_mm": [2.5, 1.0, 1.0]})
    extent = [np.ptp(np.nonzero(out > 0.5)[axis]) + 1 for axis in range(3)]
    assert max(extent) - min(extent) <= 3  # ~20 voxels along every axis once isotropic


def test_crop_around_pads_with_air_and_crops_centrally():
    small = T.CropAround(8, pad_value=-1000)(np.zeros((4, 4, 4), np.float32))
    assert small.shape == (8, 8, 8) and small[0, 0, 0] == -1000 and small[4, 4, 4] == 0
    big = np.arange(12**3, dtype=np.float32).reshape(12, 12, 12)
    np.testing.assert_array_equal(T.CropAround(4)(big), big[4:8, 4:8, 4:8])


def test_crop_box_places_the_centre_and_pads_outside():
    volume = np.arange(10 * 10 * 10, dtype=np.float32).reshape(10, 10, 10)
    box = T.crop_box(volume, (0, 5, 5), (4, 4, 4), -1000.0)
    assert box.shape == (4, 4, 4)
    assert (box[:2] == -1000).all() and box[2, 2, 2] == volume[0, 5, 5]


def test_denoise_removes_speckle_but_keeps_an_edge(rng):
    clean = np.zeros((12, 12, 12), np.float32)
    clean[:, :, 6:] = 100.0
    noisy = clean + rng.choice([0.0, 300.0], size=clean.shape, p=[0.95, 0.05]).astype(np.float32)
    out = T.Denoise(1)(noisy)
    assert np.abs(out - clean).mean() < 0.3 * np.abs(noisy - clean).mean()
    assert out[6, 6, 2] < 20 and out[6, 6, 9] > 80


def test_augmentation_is_reproducible_per_seed_and_keeps_shape():
    x = np.random.default_rng(0).random((16, 32, 32)).astype(np.float32)
    aug = T.flips_and_rotations((0, 1), seed=0)
    aug.reseed(7)
    a = [aug(x) for _ in range(4)]
    aug.reseed(7)
    b = [aug(x) for _ in range(4)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert all(p.shape == x.shape for p in a) and any(not np.array_equal(p, x) for p in a)


def test_a_preprocessing_spec_survives_json():
    spec = [
        {"name": "resample_isotropic", "params": {"spacing_mm": 1.0}},
        {"name": "crop_around", "params": {"size": 16, "pad_value": -1000.0}},
        {"name": "hu_window", "params": {"lower_hu": -1000.0, "upper_hu": 400.0}},
        {"name": "add_channel", "params": {}},
    ]
    raw = {"hu": np.full((8, 24, 24), -300.0, np.float32), "spacing_mm": [2.0, 1.0, 1.0]}
    first = Preprocessing(spec)
    again = Preprocessing(json.loads(json.dumps(first.spec)))
    np.testing.assert_array_equal(first(raw), again(raw))
    assert first(raw).shape == (1, 16, 16, 16) and first.digest() == again.digest()


def test_augmentation_draws_what_the_monai_pipeline_drew_before_the_move():
    from monai.transforms import Compose, RandFlip, RandRotate90
    from monai.utils import convert_to_numpy

    x = np.random.default_rng(1).random((8, 16, 16)).astype(np.float32)
    v1 = Compose(
        [
            RandFlip(prob=0.5, spatial_axis=0),
            RandFlip(prob=0.5, spatial_axis=1),
            RandRotate90(prob=0.75, spatial_axes=(0, 1)),
        ]
    )
    v1.set_random_state(seed=11)
    expected = [np.asarray(convert_to_numpy(v1(x)), dtype=np.float32) for _ in range(6)]
    aug = T.flips_and_rotations((0, 1), seed=11)
    assert all(np.array_equal(aug(x), e) for e in expected)
