"""Read a folder of per-slice PNGs (``0.png`` … ``n-1.png``) as one uint8 stack.

This is the layout of ``lidc-segmented-nodules-2d`` (one folder per reader mark, one 64×64 8-bit slice
per file). Files are ordered numerically, not lexically (``10.png`` after ``9.png``), and the sequence
must be complete: a missing slice would silently shorten the nodule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.errors import InputError


def read_png_stack(folder: Path, size: tuple[int, int] | None = (64, 64)) -> np.ndarray:
    """uint8 ``(n, h, w)`` stack of ``0.png..n-1.png`` in ``folder`` (Pillow mode ``L`` only).

    ``size`` is the required ``(h, w)``; pass ``None`` to accept any size shared by all slices. Files
    that are not ``*.png`` (e.g. ``.DS_Store``) are ignored; PNGs with non-numeric names, gaps in the
    numbering, another mode or another size raise :class:`InputError`.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: PNG stack folder does not exist")
    pngs = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png"]
    if not pngs:
        raise InputError(f"{folder}: no .png files")
    indexed: dict[int, Path] = {}
    for p in pngs:
        if not p.stem.isdigit():
            raise InputError(f"{p}: PNG name is not a slice number (expected 0.png, 1.png, ...)")
        idx = int(p.stem)
        if idx in indexed:
            raise InputError(f"{p}: slice {idx} given twice (also {indexed[idx].name})")
        indexed[idx] = p
    missing = sorted(set(range(len(indexed))) - set(indexed))
    if missing:
        raise InputError(
            f"{folder}: slice numbering is not 0..{len(indexed) - 1}; missing {missing[:10]} "
            f"(highest is {max(indexed)}.png)"
        )
    slices = []
    for idx in range(len(indexed)):
        p = indexed[idx]
        try:
            with Image.open(p) as im:
                mode, im_size = im.mode, (im.height, im.width)
                arr = np.asarray(im) if mode == "L" else None
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"{p}: not a readable PNG ({exc})") from exc
        if arr is None:
            raise InputError(f"{p}: Pillow mode {mode}, expected L (8-bit grayscale)")
        expected = size if size is not None else (slices[0].shape if slices else im_size)
        if im_size != tuple(expected):
            raise InputError(
                f"{p}: size {im_size[0]}x{im_size[1]} (h x w), expected {expected[0]}x{expected[1]}"
            )
        slices.append(arr)
    return np.stack(slices).astype(np.uint8, copy=False)
