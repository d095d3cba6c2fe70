"""SMILES in: read CSV / SMI / SDF files (optionally gzipped) and canonicalise with an account of rejects.

Generators are trained on, and scored against, canonical SMILES; a silently dropped record changes a
dataset without anyone noticing, so :func:`canonicalize` returns a :class:`CanonicalizationReport` that
counts what was rejected and why.

Validity follows MOSES (``moses.utils.get_mol``): a record is valid when it is a non-empty string that
RDKit parses *and* sanitises. Rejection reasons:

- ``empty``: an empty or whitespace-only string, or a SMILES that parses to zero atoms;
- ``parse_failure``: not SMILES syntax RDKit understands (also an SDF record RDKit cannot read);
- ``sanitization_failure``: parsed, but chemically impossible (valence, kekulisation, ...);
- ``multi_fragment``: several disconnected parts (``CC.Cl``) under the ``reject`` policy;
- ``too_large``: more than :data:`MAX_HEAVY_ATOMS` heavy atoms or :data:`MAX_SMILES_CHARS` characters,
  counted **before** RDKit parses it (from the SMILES text, in linear time), so a hostile record (a
  10,000-atom chain) costs microseconds instead of hanging every later step: the metrics pad ChemNet's
  input to the longest SMILES of the whole set, and ring perception, SA score and BRICS grow with size.

Blank rows (an empty line, an empty SMILES field) are records too: they count as ``empty``, i.e. against
validity, never silently dropped.

Multi-fragment policy (``multi_fragment=``): ``"keep"`` (default, what MOSES does: a salt is a valid
molecule and is kept whole), ``"largest"`` (keep the largest fragment, RDKit's
``LargestFragmentChooser``: drops counter-ions and solvents, counted in ``fragments_stripped``) or
``"reject"``. Canonical SMILES are RDKit's ``MolToSmiles`` defaults (isomeric), as in MOSES.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TextIO

from medlearn.errors import InputError
from medlearn.lazy import require_extra

#: Accepted names of the SMILES column in CSV files, in order of preference.
SMILES_COLUMNS = ("SMILES", "smiles")
#: Rejection reasons counted by :class:`CanonicalizationReport`.
REJECTION_REASONS = ("empty", "parse_failure", "sanitization_failure", "multi_fragment", "too_large")
#: Per-molecule size limits (a record above either is ``too_large``, never parsed): far above drug-like
#: molecules (MOSES/ZINC ≤ 30 heavy atoms; ChEMBL's small molecules rarely above 100), far below what
#: makes one record cost more than the rest of a set.
MAX_HEAVY_ATOMS = 250
MAX_SMILES_CHARS = 2000
#: One atom of a SMILES: a bracket atom, a two-letter organic-subset atom, a one-letter (or aromatic) one.
_ATOM = re.compile(r"\[([0-9]*)([A-Za-z][a-z]?|\*)[^\]]*\]|Cl|Br|[BCNOSPFI*]|[bcnops]")
MultiFragmentPolicy = Literal["keep", "largest", "reject"]
_SMILES_SUFFIXES = {".smi", ".smiles", ".txt"}


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional library of the ``medlearn[molecules]`` extra, or say how to install it."""
    return require_extra(module, purpose, "molecules")


# ----------------------------------------------------------------------------------------- reading
def read_smiles(path: str | Path) -> list[str | None]:
    """The SMILES of a file, one entry per record, in file order.

    ``.csv``/``.tsv`` (column ``SMILES`` or ``smiles``), ``.smi``/``.smiles``/``.txt`` (first
    whitespace-separated field of each line; a first line ``SMILES ...`` is a header) and
    ``.sdf``/``.mol`` (each record written as SMILES, hydrogens as drawn); each may end in ``.gz``.
    SDF records RDKit cannot read are ``None`` so that :func:`canonicalize` counts them as parse
    failures, and a blank line (or blank CSV row) is an empty SMILES ``""`` counted as ``empty``,
    instead of the list silently shrinking: a generator's empty sample counts against validity.

    Raises:
        InputError: missing, empty, unreadable or malformed file, or no SMILES column (the message
            names the file and the columns found).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    suffixes = [s.lower() for s in path.suffixes]
    kind = (
        suffixes[-2]
        if suffixes and suffixes[-1] == ".gz" and len(suffixes) > 1
        else (suffixes[-1] if suffixes else "")
    )
    try:
        if kind in (".csv", ".tsv"):
            records = _read_csv(path, delimiter="\t" if kind == ".tsv" else ",")
        elif kind in _SMILES_SUFFIXES:
            records = _read_smi(path)
        elif kind in (".sdf", ".mol", ".sd"):
            records = _read_sdf(path)
        else:
            raise InputError(
                f"{path}: unknown molecule file type {kind or '(none)'!r}; "
                "use .csv, .tsv, .smi, .txt or .sdf (optionally .gz)"
            )
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the file ({exc})") from exc
    if all(record == "" for record in records):  # nothing but blank lines is an empty file, not samples
        raise InputError(f"{path}: the file holds no molecules")
    return records


def _open_text(path: Path) -> TextIO:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _read_csv(path: Path, delimiter: str) -> list[str | None]:
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: the file is empty")
            column = next((header.index(name) for name in SMILES_COLUMNS if name in header), None)
            if column is None:
                raise InputError(
                    f"{path}: no SMILES column; expected one named "
                    f"{' or '.join(SMILES_COLUMNS)}, found columns {header}"
                )
            # a blank line is an empty record (it counts against validity), not nothing
            return [row[column].strip() if column < len(row) else "" for row in reader]
        except csv.Error as exc:
            raise InputError(f"{path}: malformed CSV at line {reader.line_num} ({exc})") from exc


def _read_smi(path: Path) -> list[str | None]:
    with _open_text(path) as handle:
        fields = [line.split(maxsplit=1) for line in handle]
    smiles: list[str | None] = [f[0] if f else "" for f in fields]  # a blank line is an empty record
    if smiles and smiles[0] is not None and smiles[0].lower() == "smiles":
        smiles = smiles[1:]
    return smiles


def heavy_atoms(smiles: str) -> int:
    """The heavy atoms a SMILES writes, counted from its text (no parsing: linear time, any length).

    Bracket hydrogens (``[H]``, ``[2H]``) are not heavy; ``*`` is counted. Equal to RDKit's
    ``GetNumHeavyAtoms`` for valid SMILES without dummy atoms.
    """
    return sum(match.group(2) != "H" for match in _ATOM.finditer(smiles))


def too_large(smiles: str, max_heavy_atoms: int = MAX_HEAVY_ATOMS, max_chars: int = MAX_SMILES_CHARS) -> bool:
    """Whether a SMILES is over the per-molecule limits (checked before any RDKit work)."""
    return len(smiles) > max_chars or heavy_atoms(smiles) > max_heavy_atoms


def _read_sdf(path: Path) -> list[str | None]:
    chem = require("rdkit.Chem", "to read SDF files")
    rdbase = require("rdkit.rdBase", "to read SDF files")
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if not raw.strip():
        raise InputError(f"{path}: the file is empty")
    if b"M  END" not in raw and b"$$$$" not in raw:
        raise InputError(f"{path}: not an SDF file (no 'M  END' or '$$$$' record terminator)")
    _block = rdbase.BlockLogs()
    supplier = chem.ForwardSDMolSupplier(io.BytesIO(raw), sanitize=False, removeHs=False)
    records: list[str | None] = []
    for mol in supplier:
        records.append(None if mol is None else chem.MolToSmiles(mol, canonical=False))
    del _block
    return records


# -------------------------------------------------------------------------------- canonicalisation
@dataclass
class CanonicalizationReport:
    """What :func:`canonicalize` did to a list of SMILES: how many were kept, rejected and why."""

    n_input: int = 0
    n_valid: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECTION_REASONS, 0))
    fragments_stripped: int = 0
    n_duplicates: int = 0
    multi_fragment: str = "keep"

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, e.g. to store next to a prepared dataset."""
        return {
            "n_input": self.n_input,
            "n_valid": self.n_valid,
            "n_rejected": self.n_rejected,
            "rejected": dict(self.rejected),
            "fragments_stripped": self.fragments_stripped,
            "n_duplicates": self.n_duplicates,
            "multi_fragment": self.multi_fragment,
        }

    def summary(self) -> str:
        """One line for logs: ``1000 SMILES: 990 valid (12 duplicates); rejected 10: parse_failure 7``."""
        reasons = ", ".join(f"{k} {v}" for k, v in self.rejected.items() if v) or "none"
        stripped = (
            f"; {self.fragments_stripped} reduced to their largest fragment"
            if self.fragments_stripped
            else ""
        )
        return (
            f"{self.n_input} SMILES: {self.n_valid} valid ({self.n_duplicates} duplicates); "
            f"rejected {self.n_rejected}: {reasons}{stripped}"
        )


class SmilesCanonicalizer:
    """Canonicalise one SMILES at a time and say why a record was rejected.

    A class so that the RDKit import and the fragment chooser are set up once per process (metrics
    workers reuse one instance for hundreds of thousands of molecules).
    """

    def __init__(
        self,
        multi_fragment: MultiFragmentPolicy = "keep",
        max_heavy_atoms: int = MAX_HEAVY_ATOMS,
        max_chars: int = MAX_SMILES_CHARS,
    ) -> None:
        if multi_fragment not in ("keep", "largest", "reject"):
            raise ValueError(f"multi_fragment must be 'keep', 'largest' or 'reject', not {multi_fragment!r}")
        self.multi_fragment = multi_fragment
        self.max_heavy_atoms, self.max_chars = max_heavy_atoms, max_chars
        self._chem = require("rdkit.Chem", "to canonicalise SMILES")
        self._chooser = None
        if multi_fragment == "largest":
            std = require("rdkit.Chem.MolStandardize.rdMolStandardize", "to pick the largest fragment")
            self._chooser = std.LargestFragmentChooser()

    def __call__(self, smiles: object) -> tuple[str | None, str | None]:
        """``(canonical SMILES, None)`` for a kept record, ``(None, reason)`` for a rejected one.

        The reason is ``"fragments_stripped"`` (with a SMILES) when the largest fragment was kept.
        """
        if not isinstance(smiles, str):  # None (unreadable record), or a NaN from a dataframe column
            return None, "parse_failure"
        if not smiles.strip():
            return None, "empty"
        if too_large(smiles, self.max_heavy_atoms, self.max_chars):
            return None, "too_large"
        chem = self._chem
        mol = chem.MolFromSmiles(smiles)
        if mol is None:
            unsanitized = chem.MolFromSmiles(smiles, sanitize=False)
            return None, "parse_failure" if unsanitized is None else "sanitization_failure"
        if mol.GetNumAtoms() == 0:
            return None, "empty"
        note = None
        if self.multi_fragment != "keep" and len(chem.GetMolFrags(mol)) > 1:
            if self.multi_fragment == "reject":
                return None, "multi_fragment"
            mol, note = self._chooser.choose(mol), "fragments_stripped"
        return chem.MolToSmiles(mol), note


def canonicalize(
    smiles: Sequence[str | None],
    multi_fragment: MultiFragmentPolicy = "keep",
) -> tuple[list[str | None], CanonicalizationReport]:
    """Canonical SMILES aligned with the input (``None`` where rejected) and the report of rejects.

    Aligned rather than filtered so that labels or properties stored beside the SMILES stay matched;
    use :func:`load_smiles` for the filtered list.
    """
    rdbase = require("rdkit.rdBase", "to canonicalise SMILES")
    canonicalizer = SmilesCanonicalizer(multi_fragment)
    report = CanonicalizationReport(n_input=len(smiles), multi_fragment=multi_fragment)
    out: list[str | None] = []
    seen: set[str] = set()
    _block = rdbase.BlockLogs()  # RDKit's per-molecule parse errors would flood stderr
    for record in smiles:
        canonical, note = canonicalizer(record)
        out.append(canonical)
        if canonical is None:
            report.rejected[note or "parse_failure"] += 1
            continue
        report.n_valid += 1
        report.fragments_stripped += note == "fragments_stripped"
        report.n_duplicates += canonical in seen
        seen.add(canonical)
    del _block
    return out, report


def load_smiles(
    path: str | Path,
    multi_fragment: MultiFragmentPolicy = "keep",
    deduplicate: bool = False,
) -> tuple[list[str], CanonicalizationReport]:
    """Read a file and return its valid canonical SMILES (file order) with the canonicalisation report."""
    canonical, report = canonicalize(read_smiles(path), multi_fragment=multi_fragment)
    kept = [s for s in canonical if s is not None]
    return (list(dict.fromkeys(kept)) if deduplicate else kept), report
