"""Shared plumbing of the CSV readers: find a table, scan it lazily without type inference, parse times
and numbers without ever raising, and count what could not be parsed.

Why every column is scanned as a string: type inference on a sample is how one odd row ("___", "<0.5")
crashes a load after minutes. We read ``String`` with the full header as the explicit schema (with a
full schema and no inference, polars 2.x streams the decompression of ``.csv.gz``: a 368 MB
labevents-shaped file scanned at 168 MiB peak RSS on this machine, so ``pl.read_csv`` is never needed),
then cast with ``strict=False`` so unparsable values become null, and count them for
:attr:`EHRSource.notes`.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from medlearn.ehr.io.schema import EVENT_SCHEMA
from medlearn.errors import InputError

#: The timestamp layout of MIMIC exports; fractional seconds are accepted too.
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
_END_OF_DAY = pl.duration(hours=23, minutes=59, seconds=59)
#: A per-row true value for :class:`Checks` (a bare ``pl.lit(True)`` would sum to 1 on any frame).
EVERY_ROW = pl.int_range(pl.len()) >= 0


def find_table(root: Path, stem: str, upper_too: bool = False) -> Path | None:
    """``root/stem.csv.gz`` or ``root/stem.csv`` (also the upper-case stem when ``upper_too``)."""
    parent, name = (root / stem).parent, Path(stem).name
    names = [name, name.upper(), name.lower()] if upper_too else [name]
    for candidate in names:
        for suffix in (".csv.gz", ".csv"):
            if (parent / f"{candidate}{suffix}").is_file():
                return parent / f"{candidate}{suffix}"
    return None


def require_table(root: Path, stem: str, dataset: str, upper_too: bool = False) -> Path:
    """Like :func:`find_table`, but a missing table is an :class:`InputError` naming the expected file."""
    path = find_table(root, stem, upper_too)
    if path is None:
        raise InputError(f"{root / (stem + '.csv.gz')}: required table is missing ({dataset} needs it)")
    return path


def read_header(path: Path) -> list[str]:
    """The column names of a (gzipped) CSV, read from its first line only."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as raw:
            line = raw.readline().decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the header line ({exc})") from exc
    if not line.strip():
        raise InputError(f"{path}: file is empty (no header line)")
    return [name.strip() for name in next(csv.reader(io.StringIO(line)))]


def scan_raw(path: Path) -> pl.LazyFrame:
    """Every column of ``path`` as strings, header taken as the explicit schema (no inference)."""
    header = read_header(path)
    if len(set(header)) != len(header):
        raise InputError(f"{path}: duplicate column names in the header")
    return pl.scan_csv(path, schema={name: pl.String for name in header}, has_header=True)


def scan_table(
    path: Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
    lower: bool = False,
    checks: Checks | None = None,
) -> pl.LazyFrame:
    """Scan ``path`` lazily, all columns as strings, returning ``required`` + ``optional`` columns.

    Missing required columns raise :class:`InputError` naming the file and the column; missing optional
    ones come back as null strings. ``lower`` matches headers case-insensitively (MIMIC-III ships both
    spellings) and returns lower-case names. Rows whose selected columns are all null (blank lines,
    which polars reads as all-null rows) are dropped. With ``checks``, blank lines are counted on
    every column, which also parses every field once: polars skips malformed rows (more fields than
    the header) when it reads only some columns, so this is where such a file is refused.
    """
    frame = scan_raw(path)
    header = frame.collect_schema().names()
    by_key = {(name.lower() if lower else name): name for name in header}
    for column in required:
        if column not in by_key:
            raise InputError(f"{path}: missing required column '{column}'")
    if checks is not None:
        checks.add(
            frame,
            str(path),
            {
                f"{path.name}: {{n}} blank line(s) (read as all-null rows) dropped": pl.all_horizontal(
                    pl.all().is_null()
                )
            },
        )
    wanted = list(dict.fromkeys([*required, *optional]))
    selected = frame.select(
        [pl.col(by_key[c]).alias(c) if c in by_key else pl.lit(None, pl.String).alias(c) for c in wanted]
    )
    present = [c for c in wanted if c in by_key]
    return selected.filter(~pl.all_horizontal([pl.col(c).is_null() for c in present]))


def to_datetime(column: str | pl.Expr) -> pl.Expr:
    """Parse ``YYYY-MM-DD HH:MM:SS[.f]``; anything else (bad day, garbage) becomes null."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.str.strip_chars().str.strptime(pl.Datetime("us"), DATETIME_FORMAT, strict=False)


def to_end_of_day(column: str | pl.Expr) -> pl.Expr:
    """A date-only value (or the date part of ``YYYY-MM-DD 00:00:00``) as 23:59:59 of that day.

    Information dated to a day is only certain once the day has ended, so this is the leak-free choice.
    """
    expr = pl.col(column) if isinstance(column, str) else column
    date = expr.str.strip_chars().str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    return date.cast(pl.Datetime("us")) + _END_OF_DAY


def to_float(column: str | pl.Expr, thousands: bool = False) -> pl.Expr:
    """Parse a number; non-numeric text ("<0.5", "1-2", "ERROR") and non-finite values become null.

    ``thousands`` also accepts ``500,000``-style grouping (prescription doses).
    """
    text = (pl.col(column) if isinstance(column, str) else column).str.strip_chars()
    if thousands:
        grouped = text.str.contains(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
        text = pl.when(grouped).then(text.str.replace_all(",", "", literal=True)).otherwise(text)
    value = text.cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def bad_count(raw: str, parsed: pl.Expr) -> pl.Expr:
    """Rows where ``raw`` had a value but parsing gave null (a boolean expression to sum)."""
    return pl.col(raw).is_not_null() & parsed.is_null()


def ndc() -> pl.Expr:
    """The ``ndc`` column, null when empty or "0" (MIMIC's placeholder for "no NDC")."""
    code = pl.col("ndc").str.strip_chars()
    return pl.when(code.is_not_null() & (code != "") & (code != "0")).then(code)


def medication_code(drug: str = "drug") -> tuple[pl.Expr, pl.Expr]:
    """(code_system, code) of a MIMIC prescription: ("NDC", ndc) when present, else ("DRUG", name)."""
    system = pl.when(ndc().is_not_null()).then(pl.lit("NDC")).otherwise(pl.lit("DRUG"))
    return system, pl.coalesce(ndc(), pl.col(drug))


def ndc_names(frame: pl.LazyFrame, drug: str = "drug") -> pl.LazyFrame:
    """(code_system "NDC", code, description = first drug name seen with it) for the codes table."""
    return (
        frame.filter(ndc().is_not_null())
        .group_by(ndc().alias("code"))
        .agg(pl.col(drug).drop_nulls().first().alias("description"))
        .select(pl.lit("NDC").alias("code_system"), "code", "description")
    )


def make_events(
    frame: pl.LazyFrame,
    source_table: str,
    time: pl.Expr,
    code_system: str | pl.Expr,
    code: pl.Expr,
    subject: pl.Expr | None = None,
    admission: pl.Expr | None = None,
    stay: pl.Expr | None = None,
    value_num: pl.Expr | None = None,
    unit: pl.Expr | None = None,
    value_text: pl.Expr | None = None,
) -> pl.LazyFrame:
    """Map one source table to :data:`EVENT_SCHEMA` (rows without a code are dropped)."""

    def col(expr: pl.Expr | None, name: str) -> pl.Expr:
        dtype = EVENT_SCHEMA[name]
        return (pl.lit(None, dtype) if expr is None else expr.cast(dtype)).alias(name)

    system = pl.lit(code_system) if isinstance(code_system, str) else code_system
    return frame.select(
        col(pl.col("subject_id") if subject is None else subject, "subject_id"),
        col(admission, "admission_id"),
        col(stay, "stay_id"),
        col(time, "time"),
        col(system, "code_system"),
        col(code.str.strip_chars(), "code"),
        col(value_num, "value_num"),
        col(unit, "unit"),
        col(value_text, "value_text"),
        col(pl.lit(source_table), "source_table"),
    ).filter(pl.col("code").is_not_null() & (pl.col("code") != ""))


#: Every note about an admission (or unit stay) left out of the admission table contains one of these
#: phrases: :func:`admission_notes` finds them for the run log and the report's data-quality section.
DROPPED_ADMISSIONS = "dropped from the admissions"
DROPPED_UNIT_STAYS = "dropped from the unit stays"
NOT_IN_TRAINING = "not in any training cohort"


def admission_notes(notes: Iterable[str]) -> list[str]:
    """The notes that count admissions (or unit stays) dropped or kept out of training cohorts."""
    markers = (DROPPED_ADMISSIONS, DROPPED_UNIT_STAYS, NOT_IN_TRAINING)
    return [note for note in notes if any(marker in note for marker in markers)]


def drop_duplicate_ids(
    frame: pl.LazyFrame, checks: Checks, where: str, id_col: str, what: str = "admissions"
) -> pl.LazyFrame:
    """``frame`` with the first row of each ``id_col`` (in file order) and no row without one.

    A duplicated id is never counted twice: the later rows are dropped, and both the duplicates and the
    rows without an id are counted in the notes. ``frame`` must still be in file order (before any join).
    """
    name = Path(where).name
    ident = pl.col(id_col)
    checks.add(
        frame,
        where,
        {
            f"{name}: {{n}} duplicate {id_col} row(s) dropped from the {what} (the first row of each "
            f"{id_col} is kept)": ident.is_not_null() & ~ident.is_first_distinct(),
            f"{name}: {{n}} row(s) without a {id_col} dropped from the {what}": ident.is_null(),
        },
    )
    return frame.filter(ident.is_not_null() & ident.is_first_distinct())


def drop_impossible_times(
    frame: pl.LazyFrame,
    checks: Checks,
    where: str,
    admit: pl.Expr,
    discharge: pl.Expr,
    admit_label: str,
    discharge_label: str,
) -> pl.LazyFrame:
    """``frame`` without the admissions that cannot be placed in time, each reason counted in the notes.

    Dropped: no usable admission time (missing or malformed), a discharge before the admission. Kept but
    counted: no usable discharge time (an ongoing stay can still be predicted for; it has no length of
    stay, so no training cohort takes it).
    """
    name = Path(where).name
    checks.add(
        frame,
        where,
        {
            f"{name}: {{n}} admission(s) without a usable {admit_label} {DROPPED_ADMISSIONS} "
            "(cannot be placed in time)": admit.is_null(),
            f"{name}: {{n}} admission(s) with {discharge_label} before {admit_label} {DROPPED_ADMISSIONS} "
            "(impossible times)": admit.is_not_null() & (discharge < admit).fill_null(False),
            f"{name}: {{n}} admission(s) without a usable {discharge_label} kept (ongoing stays can be "
            f"predicted for) but {NOT_IN_TRAINING} (no length of stay)": admit.is_not_null()
            & discharge.is_null(),
        },
    )
    return frame.filter(admit.is_not_null() & (discharge.is_null() | (discharge >= admit)))


def screen_admissions(
    frame: pl.LazyFrame,
    checks: Checks,
    where: str,
    id_col: str,
    admit: str,
    discharge: str,
) -> pl.LazyFrame:
    """An admissions CSV (raw strings, file order) without duplicated ids and impossible times, counted:
    :func:`drop_duplicate_ids` then :func:`drop_impossible_times` on the ``admit``/``discharge`` columns."""
    unique = drop_duplicate_ids(frame, checks, where, id_col)
    return drop_impossible_times(
        unique, checks, where, to_datetime(admit), to_datetime(discharge), f"'{admit}'", f"'{discharge}'"
    )


class Checks:
    """Data-quality counts gathered while a reader builds its lazy tables, computed in one pass.

    ``add(frame, where, {"message with {n}": boolean_expr})`` registers counts on one table; ``run``
    collects every table's counts (in parallel) and returns the messages whose count is above zero
    (or all of them for messages registered with ``always=True``).
    """

    def __init__(self) -> None:
        self._items: list[tuple[pl.LazyFrame, str, list[tuple[str, pl.Expr, bool]]]] = []

    def add(self, frame: pl.LazyFrame, where: str, counts: dict[str, pl.Expr], always: bool = False) -> None:
        self._items.append((frame, where, [(msg, expr, always) for msg, expr in counts.items()]))

    def run(self) -> list[str]:
        return self.notes_from(collect_all_checked(self.queries(), self.wheres()))

    def queries(self) -> list[pl.LazyFrame]:
        """One single-row query of counts per registered table (collect them with other work)."""
        return [
            frame.select([expr.cast(pl.Int64).sum().alias(f"c{i}") for i, (_, expr, _) in enumerate(items)])
            for frame, _, items in self._items
        ]

    def wheres(self) -> list[str]:
        return [where for _, where, _ in self._items]

    def notes_from(self, results: Sequence[pl.DataFrame]) -> list[str]:
        """The messages of :meth:`queries`' collected ``results``."""
        notes = []
        for (_, _, items), result in zip(self._items, results):
            for i, (message, _, always) in enumerate(items):
                n = int(result[f"c{i}"][0] or 0)
                if n or always:
                    notes.append(message.format(n=f"{n:,}"))
        return notes


def collect_all_checked(frames: Sequence[pl.LazyFrame], wheres: Iterable[str]) -> list[pl.DataFrame]:
    """``pl.collect_all`` that turns a parse failure into an :class:`InputError` naming the table."""
    wheres = list(wheres)
    try:
        return pl.collect_all(list(frames))
    except pl.exceptions.PolarsError:
        for frame, where in zip(frames, wheres):  # find the culprit, one table at a time
            try:
                frame.collect()
            except pl.exceptions.PolarsError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(f"{where}: cannot be read as CSV ({first})") from exc
        raise
