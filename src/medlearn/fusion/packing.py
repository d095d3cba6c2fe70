"""Several inputs of one unit as the single float32 vector the engine batches, and back.

A :class:`Layout` names the parts in order with their shapes (``[("image", (16, 64, 64)),
("radiomics", (72,))]``). The packed vector is every part flattened, in order, then one presence flag per
part (1 = given, 0 = absent; an absent part is all zeros). Why pack rather than hand the engine a dict: see
:mod:`medlearn.fusion` (the engine's cache, batching, calibration and bundles stay as they are).

:class:`FusionPack` is the preprocessing step (registered as ``fusion_pack``): it runs each part's own
preprocessing spec on the raw unit's part and packs the results. :class:`PackedAugmentation` applies a
per-part training augmentation inside the packed vector (e.g. flips of the image part only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medlearn.errors import InputError

__all__ = ["FusionPack", "Layout", "PackedAugmentation"]


@dataclass(frozen=True)
class Layout:
    """The parts of a packed input, in order: names and per-unit shapes."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if not self.names or len(self.names) != len(self.shapes):
            raise ValueError(f"a layout needs one shape per part, got {self.names} and {self.shapes}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"part names repeat: {self.names}")
        if any(not shape or any(int(d) < 1 for d in shape) for shape in self.shapes):
            raise ValueError(f"every part needs a non-empty positive shape, got {self.shapes}")

    @classmethod
    def from_parts(cls, parts: Mapping[str, Sequence[int]]) -> Layout:
        """From ``{name: shape}`` in insertion order (how configs and bundles store it)."""
        return cls(tuple(parts), tuple(tuple(int(d) for d in shape) for shape in parts.values()))

    @property
    def sizes(self) -> list[int]:
        return [math.prod(shape) for shape in self.shapes]

    @property
    def width(self) -> int:
        """Length of a packed vector: every part's values, then one presence flag per part."""
        return sum(self.sizes) + len(self.names)

    def pack(self, parts: Mapping[str, np.ndarray | None]) -> np.ndarray:
        """One unit's parts (an absent or None part → zeros, flag 0) as a packed float32 vector."""
        unknown = set(parts) - set(self.names)
        if unknown:
            raise InputError(
                f"unit has part(s) {sorted(unknown)} the layout does not name ({list(self.names)})"
            )
        chunks, flags = [], []
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            value = parts.get(name)
            if value is None:
                chunks.append(np.zeros(size, np.float32))
                flags.append(0.0)
                continue
            arr = np.asarray(value, np.float32)
            if arr.shape != shape:
                raise InputError(f"part {name!r} has shape {arr.shape}; the model takes {shape}")
            chunks.append(arr.reshape(-1))
            flags.append(1.0)
        return np.concatenate([*chunks, np.asarray(flags, np.float32)])

    def unpack(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A batch of packed vectors (B, width) → ``{name: (B, *shape)}`` and the presence mask (B, parts)."""
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"packed input must be (batch, {self.width}), got {tuple(x.shape)}")
        parts, start = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            parts[name] = x[:, start : start + size].reshape(x.shape[0], *shape)
            start += size
        return parts, x[:, start:] > 0.5

    def unpack_one(self, x: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One packed vector → its parts and presence flags (NumPy; for augmentation and displays)."""
        parts, present = self.unpack(torch.from_numpy(np.asarray(x, np.float32)[None]))
        return {k: v[0].numpy() for k, v in parts.items()}, present[0].numpy()


class FusionPack:
    """Preprocessing step: each part through its own spec, then packed (see :class:`Layout`).

    Args:
        parts: ``[{"name": ..., "shape": [...], "spec": [preprocessing steps]}]`` in the layout's order.
            The raw unit is a mapping ``{name: raw part}``; a missing key or None is an absent part.
    """

    def __init__(self, parts: Sequence[Mapping[str, Any]]):
        from medlearn.engine.data import Preprocessing

        self.layout = Layout(
            tuple(str(p["name"]) for p in parts), tuple(tuple(int(d) for d in p["shape"]) for p in parts)
        )
        self._chains = {str(p["name"]): Preprocessing(list(p.get("spec", []))) for p in parts}

    def __call__(self, raw: Any) -> np.ndarray:
        if not isinstance(raw, Mapping):
            raise InputError(
                f"a fused model takes a unit of named parts ({', '.join(self.layout.names)}), "
                f"got {type(raw).__name__}"
            )
        done = {
            name: None if raw.get(name) is None else self._chains[name](raw[name])
            for name in self.layout.names
        }
        if all(v is None for v in done.values()):
            raise InputError(f"unit has none of the parts the model takes ({', '.join(self.layout.names)})")
        return self.layout.pack(done)


class PackedAugmentation:
    """A training augmentation per part, applied inside a packed vector (absent parts stay zeros).

    Reseedable like the engine's augmentations: :meth:`reseed` reseeds each part's augmentation that has
    a ``reseed`` (the Trainer calls it every epoch).
    """

    def __init__(self, layout: Layout, augment: Mapping[str, Callable[[np.ndarray], np.ndarray]]):
        unknown = set(augment) - set(layout.names)
        if unknown:
            raise ValueError(f"augmentation for part(s) {sorted(unknown)} not in the layout {layout.names}")
        self.layout = layout
        self.augment = dict(augment)

    def reseed(self, seed: int) -> None:
        for i, fn in enumerate(self.augment.values()):
            if hasattr(fn, "reseed"):
                fn.reseed(seed * 31 + i)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        parts, present = self.layout.unpack_one(x)
        out = {
            name: (self.augment[name](part) if name in self.augment and flag else part) if flag else None
            for (name, part), flag in zip(parts.items(), present)
        }
        return self.layout.pack(out)
