"""MEDS (Medical Event Data Standard, schema v0.3) writer and reader.

The ``meds`` schema package is not a dependency; the layout and types it defines are followed here:

- ``data/<shard>.parquet``: ``subject_id`` int64, ``time`` timestamp[us] (null = static), ``code`` string,
  ``numeric_value`` float32, ``text_value`` large_string; each subject in exactly one shard, rows sorted
  by subject then time. MEDS allows extra columns: we add ``admission_id``, ``stay_id``, ``unit`` and
  ``source_table`` (strings) so that a round trip loses nothing but float32 precision.
- ``metadata/dataset.json`` (dataset_name, dataset_version = source fingerprint, etl_name, etl_version,
  meds_version, created_at, plus ``medlearn``: kind and data-quality notes) and
  ``metadata/codes.parquet`` (code, description, parent_codes list<string>).
- ``metadata/subject_ids.parquet`` (medlearn extension, only when source ids are not plain integers,
  e.g. eICU ``002-1039``): ``subject_id`` int64 → ``source_subject_id`` string.

Codes are ``"<code_system>//<code>"`` (split back at the first ``//``). The admission table travels as
events (``source_table`` = "admissions"): ``HOSPITAL_ADMISSION//<admission_type>`` at admit time,
``AGE`` (numeric_value = age in years) at admit time, ``HOSPITAL_DISCHARGE//EXPIRED`` or ``//ALIVE``
(plain ``HOSPITAL_DISCHARGE`` when unknown) at discharge, ``MEDS_DEATH`` at death, static
``GENDER//F``/``GENDER//M``, ``RACE//<race as the source spells it>`` at admit time. When reading MEDS
written by other ETLs, admissions without an ``admission_id`` are numbered per subject and discharges/deaths
assigned to the latest admission before them; ``MEDS_BIRTH`` gives the age when no ``AGE`` event exists.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from medlearn.ehr.io._tables import Checks, drop_duplicate_ids, drop_impossible_times
from medlearn.ehr.io.schema import ADMISSION_SCHEMA, EVENT_SCHEMA, EHRSource, conform
from medlearn.engine.data import fingerprint_files
from medlearn.errors import InputError
from medlearn.paths import prepare_out_dir

READER_VERSION = "3"  # 2: screened admissions (duplicate ids, impossible times); 3: RACE// rows
MEDS_VERSION = "0.3.3"
SEP = "//"
EXTRA_COLUMNS = ["admission_id", "stay_id", "unit", "source_table"]
_RESERVED = r"^(HOSPITAL_ADMISSION|HOSPITAL_DISCHARGE|MEDS_DEATH|MEDS_BIRTH|AGE|GENDER|RACE)(//|$)"
_INTEGER_ID = r"^(0|[1-9][0-9]{0,17})$"


def _arrow_schema():  # pyarrow is imported here only: medlearn.ehr.io.meds stays light to import
    import pyarrow as pa

    return pa.schema(
        [
            ("subject_id", pa.int64()),
            ("time", pa.timestamp("us")),
            ("code", pa.string()),
            ("numeric_value", pa.float32()),
            ("text_value", pa.large_string()),
        ]
        + [(name, pa.string()) for name in EXTRA_COLUMNS]
    )


def _admission_rows(admissions: pl.LazyFrame) -> pl.LazyFrame:
    """The admission table as MEDS rows (see the module docstring)."""
    base = {"subject_id": pl.col("subject_id"), "admission_id": pl.col("admission_id")}
    died = pl.col("died_in_hospital")
    parts = [
        admissions.select(
            **base,
            time=pl.col("admit_time"),
            code=(pl.lit("HOSPITAL_ADMISSION//") + pl.col("admission_type")).fill_null(
                pl.lit("HOSPITAL_ADMISSION")
            ),
        ),
        admissions.filter(pl.col("age_years").is_not_null()).select(
            **base, time=pl.col("admit_time"), code=pl.lit("AGE"), value_num=pl.col("age_years")
        ),
        admissions.select(
            **base,
            time=pl.col("discharge_time"),
            code=pl.when(died)
            .then(pl.lit("HOSPITAL_DISCHARGE//EXPIRED"))
            .when(~died)
            .then(pl.lit("HOSPITAL_DISCHARGE//ALIVE"))
            .otherwise(pl.lit("HOSPITAL_DISCHARGE")),
        ),
        admissions.filter(pl.col("death_time").is_not_null()).select(
            **base, time=pl.col("death_time"), code=pl.lit("MEDS_DEATH")
        ),
        admissions.filter(pl.col("race").is_not_null()).select(
            **base, time=pl.col("admit_time"), code=pl.lit("RACE//") + pl.col("race")
        ),
        admissions.filter(pl.col("sex").is_not_null())
        .group_by("subject_id")
        .agg(pl.col("sex").first())
        .select("subject_id", code=pl.lit("GENDER//") + pl.col("sex")),
    ]
    return pl.concat([conform(p, EVENT_SCHEMA) for p in parts], how="vertical").with_columns(
        source_table=pl.lit("admissions")
    )


def write_meds(source: EHRSource, out: Path, force: bool = False, subjects_per_shard: int = 10_000) -> Path:
    """Write ``source`` as a MEDS dataset in the folder ``out`` (refused if non-empty unless ``force``)."""
    import pyarrow.parquet as pq

    out = prepare_out_dir(Path(out), force)
    (out / "data").mkdir(exist_ok=True)
    (out / "metadata").mkdir(exist_ok=True)
    rows = pl.concat(
        [
            source.events.with_columns(code=pl.concat_str("code_system", pl.lit(SEP), "code")),
            _admission_rows(source.admissions),
        ],
        how="vertical",
    )
    subjects = rows.select(pl.col("subject_id").drop_nulls().unique().sort()).collect().to_series()
    if subjects.str.contains(_INTEGER_ID).all():
        ids = pl.DataFrame({"subject_id": subjects.cast(pl.Int64), "source_subject_id": subjects})
    else:
        ids = pl.DataFrame(
            {
                "subject_id": pl.int_range(1, len(subjects) + 1, eager=True, dtype=pl.Int64),
                "source_subject_id": subjects,
            }
        )
        ids.write_parquet(out / "metadata" / "subject_ids.parquet")
    meds = rows.join(ids.lazy(), left_on="subject_id", right_on="source_subject_id", how="inner").select(
        pl.col("subject_id_right").alias("subject_id"),
        "time",
        "code",
        pl.col("value_num").cast(pl.Float32).alias("numeric_value"),
        pl.col("value_text").alias("text_value"),
        *EXTRA_COLUMNS,
    )
    schema, codes = _arrow_schema(), []
    for shard, start in enumerate(range(0, max(len(ids), 1), subjects_per_shard)):
        members = ids["subject_id"].slice(start, subjects_per_shard)
        frame = (
            meds.filter(pl.col("subject_id").is_in(members.implode()))
            .sort("subject_id", "time", "code", nulls_last=False)
            .collect()
        )
        codes.append(frame.select(pl.col("code").unique()))
        pq.write_table(frame.to_arrow().cast(schema), out / "data" / f"{shard}.parquet")
    _write_metadata(source, out, pl.concat(codes).unique())
    return out


def _write_metadata(source: EHRSource, out: Path, used: pl.DataFrame) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medlearn import __version__

    described = used
    if source.codes is not None:
        labels = (
            source.codes.select(
                code=pl.concat_str("code_system", pl.lit(SEP), "code"), description=pl.col("description")
            )
            .unique("code", keep="first")
            .collect()
        )
        described = used.join(labels, on="code", how="left")
    described = described.with_columns(
        pl.col("description")
        if "description" in described.columns
        else pl.lit(None, pl.String).alias("description")
    )
    table = pa.table(
        {
            "code": described["code"].to_list(),
            "description": described["description"].to_list(),
            "parent_codes": [None] * len(described),
        },
        schema=pa.schema(
            [("code", pa.string()), ("description", pa.string()), ("parent_codes", pa.list_(pa.string()))]
        ),
    )
    pq.write_table(table.sort_by("code"), out / "metadata" / "codes.parquet")
    meta = {
        "dataset_name": source.name,
        "dataset_version": source.fingerprint,
        "etl_name": "medlearn.ehr.io",
        "etl_version": __version__,
        "meds_version": MEDS_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "medlearn": {"kind": source.kind, "notes": source.notes},
    }
    (out / "metadata" / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")


def source_files(root: Path) -> list[Path]:
    """The files :func:`read_meds` reads, for the fingerprint."""
    meta = root / "metadata" / "dataset.json"
    if not meta.is_file():
        raise InputError(f"{meta}: missing (a MEDS dataset has metadata/dataset.json and data/*.parquet)")
    shards = sorted((root / "data").rglob("*.parquet")) if (root / "data").is_dir() else []
    if not shards:
        raise InputError(f"{root / 'data'}: no parquet shards (a MEDS dataset has data/*.parquet)")
    extra = [
        p
        for p in (root / "metadata" / "subject_ids.parquet", root / "metadata" / "codes.parquet")
        if p.is_file()
    ]
    return [meta, *shards, *extra]


def fingerprint(root: Path) -> str:
    """Content hash of the files read and the reader version: the key of every cache."""
    return fingerprint_files(source_files(Path(root)), extra=f"meds:{READER_VERSION}")


def read_meds(root: Path, *, defer_checks: bool = False) -> EHRSource:
    """Read a MEDS dataset folder (``data/``, ``metadata/``) into an :class:`EHRSource`.

    Admissions are screened like the CSV readers': a repeated ``admission_id`` keeps its first
    ``HOSPITAL_ADMISSION`` row, an admission without a time or discharged before it is dropped, and each
    reason is counted in the notes."""
    root = Path(root)
    files = source_files(root)
    try:
        meta = json.loads(files[0].read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{files[0]}: not valid JSON ({exc})") from exc
    shards = [p for p in files[1:] if p.parent != root / "metadata"]
    data = pl.scan_parquet(shards)
    have = data.collect_schema()
    for column in ("subject_id", "time", "code"):
        if column not in have:
            raise InputError(f"{shards[0]}: missing required column '{column}'")
    data = data.select(
        pl.col("subject_id").cast(pl.Int64),
        pl.col("time").cast(pl.Datetime("us")),
        pl.col("code").cast(pl.String),
        *[
            (pl.col(c).cast(pl.Float64) if c in have else pl.lit(None, pl.Float64)).alias("value_num")
            for c in ("numeric_value",)
        ],
        *[
            (pl.col(c).cast(pl.String) if c in have else pl.lit(None, pl.String)).alias(a)
            for c, a in [("text_value", "value_text"), *[(e, e) for e in EXTRA_COLUMNS]]
        ],
    )
    id_map = root / "metadata" / "subject_ids.parquet"
    if id_map.is_file():
        data = (
            data.join(pl.scan_parquet(id_map), on="subject_id", how="left")
            .with_columns(pl.col("source_subject_id").alias("subject_id"))
            .drop("source_subject_id")
        )
    data = data.with_columns(pl.col("subject_id").cast(pl.String))
    parts = pl.col("code").str.splitn(SEP, 2)
    reserved = pl.col("code").str.contains(_RESERVED)
    events = data.filter(~reserved).with_columns(
        code_system=pl.when(parts.struct.field("field_1").is_null())
        .then(pl.lit("MEDS"))
        .otherwise(parts.struct.field("field_0")),
        code=pl.coalesce(parts.struct.field("field_1"), pl.col("code")),
        source_table=pl.col("source_table").fill_null(pl.lit("meds")),
    )
    notes = list(meta.get("medlearn", {}).get("notes", [])) if isinstance(meta, dict) else []
    codes = None
    if (codes_path := root / "metadata" / "codes.parquet").is_file():
        codes = (
            pl.scan_parquet(codes_path)
            .select(pl.col("code").cast(pl.String), "description")
            .filter(~pl.col("code").str.contains(_RESERVED))
            .select(
                code_system=pl.col("code").str.splitn(SEP, 2).struct.field("field_0"),
                code=pl.col("code").str.splitn(SEP, 2).struct.field("field_1"),
                description=pl.col("description").cast(pl.String),
            )
            .filter(pl.col("code").is_not_null())
        )
    checks = Checks()
    admissions = _admissions(data.filter(reserved), checks, str(root / "data"))
    if not defer_checks:  # else read_source collects them with the cache write
        notes += checks.run()
    return EHRSource(
        name=str(meta.get("dataset_name") or root.name) if isinstance(meta, dict) else root.name,
        root=root,
        events=conform(events, EVENT_SCHEMA),
        admissions=admissions,
        fingerprint=fingerprint(root),
        notes=notes,
        pending_checks=checks if defer_checks else None,
        codes=codes,
        kind="meds",
    )


def _admissions(rows: pl.LazyFrame, checks: Checks, where: str) -> pl.LazyFrame:
    """Rebuild the admission table from the reserved admission codes (screened, counted in ``checks``)."""
    suffix = pl.col("code").str.splitn(SEP, 2).struct.field("field_1")
    kind = pl.col("code").str.splitn(SEP, 2).struct.field("field_0")
    numbered = pl.concat_str("subject_id", pl.lit("#"), pl.col("time").dt.strftime("%Y%m%d%H%M%S"))
    adm = rows.filter(kind == "HOSPITAL_ADMISSION").with_columns(
        pl.coalesce("admission_id", numbered).alias("admission_id")
    )
    adm = drop_duplicate_ids(adm, checks, where, "admission_id")
    others = rows.filter(kind.is_in(["HOSPITAL_DISCHARGE", "MEDS_DEATH", "AGE", "RACE"]))
    known = others.filter(pl.col("admission_id").is_not_null()).with_columns(assigned=pl.lit(False))
    unknown = others.filter(pl.col("admission_id").is_null() & pl.col("time").is_not_null()).drop(
        "admission_id"
    )
    starts = adm.select("subject_id", "admission_id", admit=pl.col("time")).drop_nulls("admit").sort("admit")
    assigned = (
        unknown.sort("time")
        .join_asof(
            starts,
            left_on="time",
            right_on="admit",
            by="subject_id",
            strategy="backward",
            check_sortedness=False,
        )
        .drop("admit")
        .with_columns(assigned=pl.lit(True))
    )
    others = pl.concat([known, assigned.select(known.collect_schema().names())], how="vertical")

    def first(code: str, value: pl.Expr, name: str) -> pl.LazyFrame:
        return others.filter(kind == code).group_by("admission_id").agg(value.first().alias(name))

    discharge = (
        others.filter(kind == "HOSPITAL_DISCHARGE")
        .group_by("admission_id")
        .agg(
            pl.col("time").first().alias("discharge_time"),
            pl.when(suffix == "EXPIRED").then(True).when(suffix == "ALIVE").then(False).first().alias("died"),
        )
    )
    sex = rows.filter(kind == "GENDER").group_by("subject_id").agg(suffix.first().alias("sex"))
    birth = (
        rows.filter(kind == "MEDS_BIRTH").group_by("subject_id").agg(pl.col("time").first().alias("birth"))
    )
    table = (
        adm.select("subject_id", "admission_id", admit_time=pl.col("time"), admission_type=suffix)
        .join(discharge, on="admission_id", how="left")
        .join(first("MEDS_DEATH", pl.col("time"), "death_time"), on="admission_id", how="left")
        .join(first("MEDS_DEATH", pl.col("assigned"), "guessed"), on="admission_id", how="left")
        .join(first("AGE", pl.col("value_num"), "age"), on="admission_id", how="left")
        .join(first("RACE", suffix, "race"), on="admission_id", how="left")
        .join(sex, on="subject_id", how="left")
        .join(birth, on="subject_id", how="left")
    )
    # a death assigned by time (foreign MEDS) counts for this stay only up to a day after discharge
    in_stay = ~pl.col("guessed").fill_null(False) | (
        pl.col("death_time") <= pl.col("discharge_time") + pl.duration(days=1)
    )
    from_birth = (pl.col("admit_time") - pl.col("birth")).dt.total_seconds() / (86400 * 365.2425)
    table = drop_impossible_times(
        table,
        checks,
        where,
        pl.col("admit_time"),
        pl.col("discharge_time"),
        "HOSPITAL_ADMISSION time",
        "HOSPITAL_DISCHARGE time",
    )
    return conform(
        table.with_columns(
            death_time=pl.when(in_stay).then(pl.col("death_time")),
            died_in_hospital=pl.coalesce(
                "died", pl.when(in_stay & pl.col("death_time").is_not_null()).then(True)
            ),
            age_years=pl.coalesce(pl.col("age").cast(pl.Float64), from_birth),
        ).sort("subject_id", "admit_time", "admission_id"),
        ADMISSION_SCHEMA,
    )
