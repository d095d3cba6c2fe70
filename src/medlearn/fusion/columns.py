"""Parts of an input that is already one array: named groups of its last axis' columns.

Some tasks make one array per unit whose columns belong to different kinds of data, e.g. an admission's
(time steps × features) matrix whose columns are lab values over time, earlier diagnoses and
demographics (repeated on every step). Rather than re-extract each kind, a :class:`ColumnLayout` names
column groups, and a fused model reads each group with its own encoder: a *series* part keeps the time
axis (B, T, k), a *static* part takes the first step (B, k) (its columns are constant over time).

Every part is present in every unit here (the columns always exist; a patient with no earlier diagnosis
has a history of zeros, which is a fact, not a missing part): the presence mask is all true, and only
modality dropout in training makes parts absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["ColumnLayout"]


@dataclass(frozen=True)
class ColumnLayout:
    """Named column groups of a (B, T, F) input: each part's column indices and whether it is a series."""

    names: tuple[str, ...]
    columns: tuple[tuple[int, ...], ...]
    series: tuple[bool, ...]

    def __post_init__(self) -> None:
        if not self.names or not (len(self.names) == len(self.columns) == len(self.series)):
            raise ValueError("a column layout needs columns and a series flag per part")
        if any(not cols for cols in self.columns):
            raise ValueError(f"every part needs at least one column: {dict(zip(self.names, self.columns))}")
        flat = [c for cols in self.columns for c in cols]
        if len(set(flat)) != len(flat) or min(flat) < 0:
            raise ValueError("column groups must not overlap and indices must be >= 0")

    @classmethod
    def from_parts(cls, parts: Mapping[str, Mapping[str, Any]]) -> ColumnLayout:
        """From ``{name: {"columns": [...], "series": bool}}`` (how configs and bundles store it)."""
        return cls(
            tuple(parts),
            tuple(tuple(int(c) for c in p["columns"]) for p in parts.values()),
            tuple(bool(p.get("series", False)) for p in parts.values()),
        )

    @property
    def width(self) -> int:
        """The smallest number of columns an input needs."""
        return 1 + max(c for cols in self.columns for c in cols)

    def unpack(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(B, T, F) → ``{name: (B, T, k) or (B, k)}`` and an all-true presence mask (B, parts)."""
        if x.ndim != 3 or x.shape[2] < self.width:
            raise ValueError(f"input must be (batch, time, >= {self.width} columns), got {tuple(x.shape)}")
        parts = {}
        for name, cols, series in zip(self.names, self.columns, self.series):
            index = torch.as_tensor(cols, device=x.device)
            picked = x.index_select(2, index)
            parts[name] = picked if series else picked[:, 0]
        return parts, torch.ones(x.shape[0], len(self.names), dtype=torch.bool, device=x.device)


def group_columns(names: Sequence[str], groups: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Column groups from column names: each group lists name ``prefixes`` (``"lab:"``) or exact names,
    and ``series``; a column goes to the first group that claims it, unclaimed columns are an error, and
    empty groups are left out. Returns :meth:`ColumnLayout.from_parts` input."""
    out: dict[str, dict[str, Any]] = {
        name: {"columns": [], "series": bool(g.get("series"))} for name, g in groups.items()
    }
    for j, column in enumerate(names):
        owner = next(
            (
                name
                for name, g in groups.items()
                if any(column == p or column.startswith(p) for p in g["prefixes"])
            ),
            None,
        )
        if owner is None:
            raise ValueError(f"column {column!r} belongs to no group ({', '.join(groups)})")
        out[owner]["columns"].append(j)
    return {name: part for name, part in out.items() if part["columns"]}
