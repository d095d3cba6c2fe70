"""The concept table shipped with medlearn (``concepts.yaml`` beside this module), loaded and checked.

Why a table and not code: which item ids, lab names and LOINC/RxNorm/SNOMED codes carry "creatinine" in
each source is data that clinicians and data engineers read, review and extend; keeping it in one YAML
file (with the label each source's dictionary gives every id) makes every row checkable against the
source's own dictionary (``tests/ehr/test_concepts_table.py``). ricu's concept dictionary (eth-mds/ricu,
GPL-3; Bennett et al., "ricu: R's interface to intensive care data", GigaScience 2023) was read as a
reference of facts; the table is medlearn's own.

Each concept has a ``kind``: ``numeric`` (a value converted to the canonical ``unit``), ``event``
(something happened: a drug order or infusion, a ventilation episode) or ``static`` (a column of the
admission table, documented here only: age and sex are features in every mode).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medlearn.errors import ConfigError

TABLE_PATH = Path(__file__).with_name("concepts.yaml")
#: The sources the table maps (the ``kind`` of :class:`medlearn.ehr.io.EHRSource`).
SOURCES = ("mimic4", "mimic3", "eicu", "fhir")
#: ``code_system`` of the concept events :func:`medlearn.ehr.concepts.map_concepts` emits.
CONCEPT_SYSTEM = "CONCEPT"  # numeric concepts: value in the canonical unit
CONCEPT_EVENT_SYSTEM = "CONCEPT_EVENT"  # event concepts: no value
#: Code systems whose codes are names looked up in the reader's ``codes`` table when ``by_name`` is set.
NAMED_SYSTEMS = ("NDC", "RXNORM")


def normalise_unit(unit: str) -> str:
    """A unit spelling as the table keys it: lower case, trimmed, HTML degree entity and micro signs
    unified (eICU writes ``&#176;C``; sources mix ``µ``, ``μ`` and ``u``)."""
    text = unit.strip().lower().replace("&#176;", "°").replace("µ", "u").replace("μ", "u")
    return re.sub(r"\s+", " ", text)


class SourceMap(BaseModel):
    """Where one source keeps a concept: exact ``codes`` (code → label in the source's dictionary) or a
    case-insensitive ``pattern`` (on the code, or on its name with ``by_name``), vetoed by ``exclude``."""

    model_config = ConfigDict(extra="forbid")
    table: str
    system: str | None = None
    codes: dict[str, str] = Field(default_factory=dict)
    pattern: str | None = None
    exclude: str | None = None
    by_name: bool = False
    #: the unit assumed when a row carries none (e.g. eICU physicalExam has no unit column)
    unit: str | None = None
    #: static concepts: the admission-table column(s) it comes from (documentation)
    column: str | None = None
    #: categorical static concepts: category → the source's spellings of it
    values: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_way_to_match(self) -> SourceMap:
        if self.column is None and self.system is None:
            raise ValueError("needs 'system' (or 'column' for a static concept)")
        if self.system is not None and not self.codes and self.pattern is None:
            raise ValueError("needs 'codes' or 'pattern'")
        for regex in (self.pattern, self.exclude):
            if regex is not None:
                re.compile(regex)
        if self.by_name and self.system not in NAMED_SYSTEMS:
            raise ValueError(f"by_name is only for {', '.join(NAMED_SYSTEMS)} codes")
        return self


class Concept(BaseModel):
    """One harmonised concept (see the header of ``concepts.yaml``)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    kind: Literal["numeric", "event", "static"]
    category: str
    unit: str | None = None
    range: tuple[float, float] | None = None
    low_inclusive: bool = False
    units: dict[str, float | tuple[float, float]] = Field(default_factory=dict)
    map: dict[str, list[SourceMap]]

    @model_validator(mode="after")
    def _consistent(self) -> Concept:
        unknown = set(self.map) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown source(s) {sorted(unknown)}; known: {', '.join(SOURCES)}")
        if self.kind == "numeric":
            if self.unit is None or self.range is None:
                raise ValueError("a numeric concept needs 'unit' and 'range'")
            if normalise_unit(self.unit) not in self.units:
                raise ValueError(f"'units' must list the canonical unit {self.unit!r} (factor 1)")
            for spelling in [m.unit for maps in self.map.values() for m in maps if m.unit]:
                if normalise_unit(spelling) not in self.units:
                    raise ValueError(f"assumed unit {spelling!r} is not in 'units'")
        for spelling, factor in self.units.items():
            if spelling != normalise_unit(spelling):
                raise ValueError(
                    f"unit spelling {spelling!r} must be written as {normalise_unit(spelling)!r}"
                )
            values = factor if isinstance(factor, tuple) else (factor,)
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"unit {spelling!r}: conversion must be finite")
        return self

    def conversion(self, unit: str) -> tuple[float, float] | None:
        """(factor, offset) from ``unit`` to the canonical unit, or None when the unit is not known."""
        found = self.units.get(normalise_unit(unit))
        if found is None:
            return None
        return (float(found), 0.0) if not isinstance(found, tuple) else (float(found[0]), float(found[1]))


@lru_cache(maxsize=4)
def load_concepts(path: Path | None = None) -> dict[str, Concept]:
    """Concept name → :class:`Concept`, from the shipped table (or ``path``); a malformed table is a
    :class:`ConfigError` naming the concept and the problem."""
    import yaml
    from pydantic import ValidationError

    path = Path(path) if path is not None else TABLE_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the concept table ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the concept table must be a mapping of concept names")
    concepts = {}
    for name, body in raw.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: concept {name!r}: expected a mapping")
        try:
            concepts[str(name)] = Concept(name=str(name), **body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}: concept {name!r}: {where}: {first['msg']}") from None
    return concepts
