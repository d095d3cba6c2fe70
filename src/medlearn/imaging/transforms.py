"""Imaging transforms: arrays in, arrays out, parameters checked in ``__init__``.

Each class wraps the MONAI transform that does the work (MONAI style: one job per transform), takes
only JSON-serialisable parameters so that a bundle can store and rebuild the chain
(:class:`medlearn.engine.data.Preprocessing`), and returns a NumPy array rather than a MetaTensor so
that the engine's cache holds plain arrays. Z-score standardisation (the ``normalize`` step) and the
reseedable augmentation base live in :mod:`medlearn.engine.transforms`: they are not imaging's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medlearn.engine.transforms import Augmentation


def _np(x: Any) -> np.ndarray:
    from monai.utils import convert_to_numpy

    return np.asarray(convert_to_numpy(x), dtype=np.float32)


class ScaleIntensityRange:
    """Linearly map intensities ``[a_min, a_max]`` to ``[b_min, b_max]`` (clipped), e.g. uint8 → [0, 1]."""

    def __init__(self, a_min: float, a_max: float, b_min: float = 0.0, b_max: float = 1.0, clip: bool = True):
        if a_max <= a_min:
            raise ValueError(f"a_max ({a_max}) must exceed a_min ({a_min})")
        from monai.transforms import ScaleIntensityRange as _Scale

        self._t = _Scale(a_min=a_min, a_max=a_max, b_min=b_min, b_max=b_max, clip=clip)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return _np(self._t(np.asarray(x, dtype=np.float32)))


class HUWindow(ScaleIntensityRange):
    """A CT window in Hounsfield units mapped to [0, 1]; default the lung window −1000..400 HU."""

    def __init__(self, lower_hu: float = -1000.0, upper_hu: float = 400.0):
        super().__init__(a_min=lower_hu, a_max=upper_hu, b_min=0.0, b_max=1.0, clip=True)


class AddChannel:
    """Prepend a channel axis: (H, W) → (1, H, W), (D, H, W) → (1, D, H, W)."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)[None]


class SliceStack:
    """A nodule's axial slices (n, H, W) centred in a stack of exactly ``depth`` slices (zero-padded or
    centre-cropped) — the 2.5D input where slices become channels."""

    def __init__(self, depth: int = 16):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = depth

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from monai.transforms import ResizeWithPadOrCrop

        stack = np.asarray(x, dtype=np.float32)
        if stack.ndim == 2:
            stack = stack[None]
        return _np(ResizeWithPadOrCrop((self.depth, -1, -1))(stack[None]))[0]


class MiddleSlice:
    """The middle axial slice of a stack (n, H, W) as a one-channel image (1, H, W)."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        stack = np.asarray(x, dtype=np.float32)
        return stack[None] if stack.ndim == 2 else stack[len(stack) // 2][None]


class ResampleIsotropic:
    """Resample a volume ``{"hu": (z, y, x), "spacing_mm": (dz, dy, dx)}`` to isotropic ``spacing_mm``
    (trilinear, MONAI ``Spacing``) and return the array (z, y, x)."""

    def __init__(self, spacing_mm: float = 1.0):
        if spacing_mm <= 0:
            raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
        self.spacing_mm = spacing_mm

    def __call__(self, x: dict[str, Any]) -> np.ndarray:
        from monai.data import MetaTensor
        from monai.transforms import Spacing

        volume = np.asarray(x["hu"], dtype=np.float32)
        affine = np.diag([*map(float, x["spacing_mm"]), 1.0])
        image = MetaTensor(volume[None], affine=affine)
        out = Spacing(pixdim=(self.spacing_mm,) * 3, mode="bilinear", padding_mode="border")(image)
        return _np(out)[0]


class CropAround:
    """Centre crop or pad (with ``pad_value``, e.g. air −1000 HU) to a cube of ``size`` voxels."""

    def __init__(self, size: int | Sequence[int] = 32, pad_value: float = -1000.0):
        self.size = (size,) * 3 if isinstance(size, int) else tuple(size)
        self.pad_value = pad_value

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from monai.transforms import ResizeWithPadOrCrop

        arr = np.asarray(x, dtype=np.float32)
        t = ResizeWithPadOrCrop(self.size, mode="constant", constant_values=self.pad_value)
        return _np(t(arr[None]))[0]


class Denoise:
    """Median filter of ``radius`` voxels (MONAI ``MedianSmooth``): removes CT quantum noise speckle
    while keeping nodule edges sharper than a Gaussian would."""

    def __init__(self, radius: int = 1):
        if radius < 1:
            raise ValueError(f"radius must be >= 1, got {radius}")
        self.radius = radius

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from monai.transforms import MedianSmooth

        arr = np.asarray(x, dtype=np.float32)
        return _np(MedianSmooth(radius=self.radius)(arr[None]))[0]


def crop_box(
    volume: np.ndarray, center_voxel: Sequence[float], size: Sequence[int], pad_value: float
) -> np.ndarray:
    """A box of ``size`` voxels centred on ``center_voxel`` (z, y, x); outside the volume is ``pad_value``.

    Used to cut a nodule's neighbourhood out of a whole CT before the (cached) preprocessing.
    """
    out = np.full(tuple(size), pad_value, dtype=np.float32)
    src, dst = [], []
    for c, s, n in zip(center_voxel, size, volume.shape):
        start = int(round(c)) - s // 2
        lo, hi = max(start, 0), min(start + s, n)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out[tuple(dst)] = volume[tuple(src)]
    return out


class Augment(Augmentation):
    """Random training augmentation: a MONAI ``Compose`` of random transforms, reseeded through MONAI's own
    random state (see :class:`~medlearn.engine.transforms.Augmentation`)."""

    def __init__(self, transforms: list[Any], seed: int = 0):
        from monai.transforms import Compose

        self._compose = Compose(transforms)
        super().__init__(seed)

    def reseed(self, seed: int) -> None:
        self._compose.set_random_state(seed=seed % (2**32))

    def augment(self, x: np.ndarray) -> np.ndarray:
        from monai.utils import convert_to_numpy

        return convert_to_numpy(self._compose(x))


def flips_and_rotations(spatial_axes: tuple[int, int] = (0, 1), seed: int = 0) -> Augment:
    """In-plane flips and 90° rotations: nodules have no canonical in-plane orientation."""
    from monai.transforms import RandFlip, RandRotate90

    return Augment(
        [
            RandFlip(prob=0.5, spatial_axis=spatial_axes[0]),
            RandFlip(prob=0.5, spatial_axis=spatial_axes[1]),
            RandRotate90(prob=0.75, spatial_axes=spatial_axes),
        ],
        seed,
    )
