"""DICOM PS3.15 Table E.1-1: the attribute actions of the Basic Application Level Confidentiality Profile.

The table is not copied by hand here: it is read from ``dicom-anonymizer`` (KitwareMedical, BSD), which
generates one Python module per edition of the standard from the published table
(``dicom_anonymization_databases/dicomfields_<edition>.py``). We read the newest edition it ships
(:data:`EDITION`), so the list is the standard's, maintained upstream, and checked in our tests against an
independent transcription of an earlier edition (``tests/privacy/data/ps3_15_table_e1_1.tsv``).

Action codes (PS3.15 E.1.1): ``D`` replace with a non-zero-length dummy, ``Z`` zero length (or a dummy),
``X`` remove, ``K`` keep, ``C`` clean, ``U`` replace UIDs consistently; ``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``
and ``X/Z/U*`` leave the choice to the implementation (depending on the attribute's type in its IOD).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache

from medlearn.errors import MissingDependencyError

#: The edition of PS3.15 whose Table E.1-1 is applied (a module of dicom-anonymizer >= 2.1).
EDITION = "2026c"

#: dicom-anonymizer's list name -> the table's action code.
_CATEGORIES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}


@dataclass(frozen=True)
class ProfileTable:
    """Table E.1-1's Basic Profile column: one action per tag, plus masked rows for repeating groups
    (``50xx,xxxx`` curves, ``60xx,3000`` overlay data, ``60xx,4000`` overlay comments)."""

    edition: str
    actions: dict[int, str]
    #: (value, mask, action): a tag matches when ``tag & mask == value``.
    masked: tuple[tuple[int, int, str], ...] = field(default=())

    def action(self, tag: int) -> str | None:
        """The action code for ``tag`` (an int ``0xggggeeee``), or None when the table does not list it."""
        found = self.actions.get(tag)
        if found is not None:
            return found
        for value, mask, code in self.masked:
            if tag & mask == value:
                return code
        return None

    def __len__(self) -> int:
        return len(self.actions) + len(self.masked)


@lru_cache(maxsize=2)
def basic_profile(edition: str = EDITION) -> ProfileTable:
    """Load Table E.1-1 (Basic Profile column) of ``edition`` from dicom-anonymizer.

    Raises:
        MissingDependencyError: dicom-anonymizer is not installed (``pip install "medlearn[privacy]"``).
    """
    module_name = f"dicomanonymizer.dicom_anonymization_databases.dicomfields_{edition}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("dicomanonymizer"):
            raise MissingDependencyError(
                f"the PS3.15 {edition} table comes from dicom-anonymizer>=2.1: pip install 'medlearn[privacy]'"
            ) from None
        raise
    actions: dict[int, str] = {}
    masked: list[tuple[int, int, str]] = []
    for category, code in _CATEGORIES.items():
        for entry in getattr(module, category):
            if len(entry) == 2:
                actions[(entry[0] << 16) | entry[1]] = code
            else:  # (group, element, group mask, element mask)
                group, element, group_mask, element_mask = entry
                masked.append((((group << 16) | element), ((group_mask << 16) | element_mask), code))
    return ProfileTable(edition=edition, actions=actions, masked=tuple(masked))
