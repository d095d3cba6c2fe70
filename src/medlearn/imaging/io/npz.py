"""Load ``.npz`` archives safely (never unpickling) and MedMNIST files in particular.

``allow_pickle=False`` always: an npz from the internet with object arrays could run code on load.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlearn.errors import InputError

MEDMNIST_SPLITS = ("train", "val", "test")


def load_npz(path: Path, required_keys: Sequence[str]) -> dict[str, np.ndarray]:
    """All arrays of the npz at ``path``, loaded into memory, after checking ``required_keys`` exist.

    Raises :class:`InputError` when the file is missing, not a zip/npz, lacks a required key (the
    message lists the missing and the present keys) or holds object arrays (pickles).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: npz file does not exist")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not an npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = list(npz.files)
            missing = [k for k in required_keys if k not in present]
            if missing:
                raise InputError(f"{path}: missing keys {missing}; keys present: {sorted(present)}")
            arrays = {key: npz[key] for key in present}
    except InputError:
        raise
    except ValueError as exc:  # object arrays need pickle
        raise InputError(f"{path}: holds object (pickled) arrays, refused for safety ({exc})") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"{path}: corrupt npz archive ({type(exc).__name__}: {exc})") from exc
    return arrays


def load_medmnist(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MedMNIST npz → ``{split: (images, labels)}`` for ``train``, ``val``, ``test``.

    images: uint8 ``(n, h, w)`` for grayscale sets (``(n, h, w, 3)`` for the RGB ones such as PathMNIST);
    labels: int64 ``(n,)`` — the stored ``(n, 1)`` column is flattened. Multi-label sets (ChestMNIST,
    ``(n, 14)``) keep their 2D label matrix.
    """
    path = Path(path)
    keys = [f"{split}_{part}" for split in MEDMNIST_SPLITS for part in ("images", "labels")]
    arrays = load_npz(path, keys)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in MEDMNIST_SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8:
            raise InputError(f"{path}: {split}_images has dtype {images.dtype}, expected uint8")
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
            raise InputError(
                f"{path}: {split}_images has shape {images.shape}, expected (n, h, w) or (n, h, w, 3)"
            )
        if images.ndim == 4 and images.shape[3] == 1:
            images = images[..., 0]
        if not np.issubdtype(labels.dtype, np.integer):
            raise InputError(f"{path}: {split}_labels has dtype {labels.dtype}, expected integers")
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim not in (1, 2) or labels.shape[0] != images.shape[0]:
            raise InputError(f"{path}: {split}_labels has shape {labels.shape} for {images.shape[0]} images")
        out[split] = (np.ascontiguousarray(images), labels.astype(np.int64))
    return out
