"""Job bodies of ingest (step 0): raw input of one day -> validated bronze (and truth) tables
plus `bronze.rejects`, and the generator's raw files.

`ingest` reads the raw rows of one source (JSON lines / Parquet files read by Spark on the
executors, or the generator's and Qilin's rows landed once through the warehouse:
`smar.ingest.readers`), validates them in Spark against the tables' contracts
(`smar.ingest.validation`), runs the Great Expectations suites on a bounded sample of the
accepted rows (`smar.ingest.quality`), and replaces each table's `(ds, source)` slice.

The run is all-or-nothing per run: when any table's reject fraction is above the threshold, only
the rejects are written (so people can see why) and `IngestRejected` is raised; no bronze table is
touched. Reruns of the same (ds, source) replace exactly that slice.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeAlias

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smar.contracts import load_contract
from smar.errors import IngestRejected, InputRefused, SourceError
from smar.frames import to_pandas
from smar.ingest.generator import SizeName, generate_day
from smar.ingest.qilin import land_qilin
from smar.ingest.readers import LandedTable, land_driver_rows, read_input_files
from smar.ingest.sources import InputFile, input_files, land_generated
from smar.ingest.validation import ValidatedRows, validate_rows
from smar.lake import LANDING_FOLDER, Lakehouse, remove_run_folder
from smar.storage import files
from smar.storage.uris import join, normalize_location
from smar.vocabulary import canonical_json, parse_day

log = logging.getLogger(__name__)

JOB_NAME = "ingest"
RUNS_TABLE = "bronze.ingest_runs"
OTHER_SOURCE = "_other_source"
SourceKind = Literal["generator", "qilin", "files"]
#: Great Expectations validates at most this many accepted rows of each table: every rule is
#: already enforced on every row by `validate_rows` in Spark, and the suite must not pull a day
#: of rows into the driver.
QUALITY_SAMPLE_ROWS = 20_000
#: Raw input of one table: rows made on the driver (Arrow tables) or files Spark reads.
RawParts: TypeAlias = pa.Table | Sequence[pa.Table] | Sequence[InputFile]


@dataclass(frozen=True)
class TableIngestResult:
    table: str
    landed: int
    accepted: int
    rejected: int
    top_reasons: list[tuple[str, int]] = field(default_factory=list)

    @property
    def reject_fraction(self) -> float:
        return self.rejected / self.landed if self.landed else 0.0


def landing_folder(lake: Lakehouse, ds: str, source: str) -> str:
    """This run's own landing folder (a URI under the warehouse: engine-readable Parquet of rows
    made on the driver), removed at the end of the run: concurrent runs never share one."""
    safe_source = "".join(char if char.isalnum() or char in "-_" else "_" for char in source)[:80]
    return join(lake.settings.warehouse, LANDING_FOLDER, ds, safe_source, uuid.uuid4().hex)


def land(spark: SparkSession, folder: str, parts: RawParts, *, table: str) -> LandedTable:
    """`table`'s raw input as landing frames: files read by Spark, or driver rows landed in `folder`."""
    if isinstance(parts, pa.Table):
        parts = [parts]
    if parts and all(isinstance(part, InputFile) for part in parts):
        return read_input_files(spark, table, parts)
    return land_driver_rows(spark, folder, [part for part in parts if isinstance(part, pa.Table)], table=table)


def _reason_counts(rejected: DataFrame, limit: int = 5) -> list[tuple[str, int]]:
    # Group by the first reason's column part so the summary stays short on big inputs.
    head = F.regexp_extract(F.col("reason"), r"^([^:;]*)", 1)
    rows = (
        rejected.groupBy(head.alias("reason"))
        .count()
        .orderBy(F.col("count").desc(), F.col("reason"))
        .limit(limit)
        .collect()
    )
    return [(row["reason"], int(row["count"])) for row in rows]


def _slice_of(table: str, ds: str, source_label: str) -> dict[str, str]:
    """The bronze slice an ingest replaces: (ds, source) where the table has a source column."""
    values = {"ds": ds}
    if "source" in load_contract(table).column_names:
        values["source"] = source_label
    return values


def _keys_from_other_sources(lake: Lakehouse, table: str, ds: str, source_label: str) -> DataFrame | None:
    """The keys of `table`'s rows of `ds` that other sources already wrote (with their source):
    a key must be unique per day across sources, so a second source cannot double-count it."""
    contract = load_contract(table)
    if not (contract.keys and contract.unique_keys and "source" in contract.column_names and lake.exists(table)):
        return None
    return (
        lake.read(table)
        .where((F.col("ds") == ds) & (F.col("source") != source_label))
        .select(*contract.keys, F.col("source").alias(OTHER_SOURCE))
        .dropDuplicates(contract.keys)
    )


def ingest_tables(
    spark: SparkSession,
    lake: Lakehouse,
    landed_tables: Mapping[str, RawParts],
    *,
    ds: str,
    source: str,
    source_label: str,
    max_reject_fraction: float,
    run_quality_checks: bool = True,
) -> list[TableIngestResult]:
    """Validate every landed table, then write bronze slices and rejects (or only rejects).

    `source` names where the rows came from in `bronze.rejects` (a path, "generator"); bronze rows
    get `source = source_label` and each table's slice (ds, source_label) is replaced. A key that
    another source already wrote for the day is refused (it would be counted twice).

    What a crash leaves: every table's slice is replaced in one atomic commit, so each table holds
    either its previous rows or this run's. The day's `bronze.ingest_runs` row is removed before
    the first bronze write and written after the last: a reader that finds no row for the day
    knows the day is incomplete.
    """
    folder = landing_folder(lake, ds, source)
    # Classic Spark re-runs the read and the validation for every action (counts, rejects, the
    # suite's sample, the writes): cache the checked rows there. (The embedded engine is left as it is.)
    persist = not lake.is_connect_session()
    validated: dict[str, ValidatedRows] = {}
    try:
        results: list[TableIngestResult] = []
        for table, parts in landed_tables.items():
            landed = land(spark, folder, parts, table=table)
            rows = validate_rows(
                landed.frames, table, ds=ds, job=JOB_NAME, source=source,
                existing_keys=_keys_from_other_sources(lake, table, ds, source_label), persist=persist,
            )  # fmt: skip
            landed_count = landed.landed
            rejected_count = rows.rejected.count()
            reasons = _reason_counts(rows.rejected) if rejected_count else []
            results.append(
                TableIngestResult(table, landed_count, landed_count - rejected_count, rejected_count, reasons)
            )
            validated[table] = rows

        all_rejects = None
        for rows in validated.values():
            all_rejects = rows.rejected if all_rejects is None else all_rejects.unionByName(rows.rejected)
        assert all_rejects is not None
        lake.write_rejects(all_rejects, ds=ds, job=JOB_NAME, source=source)

        too_many = [result for result in results if result.reject_fraction > max_reject_fraction]
        if too_many:
            details = "; ".join(
                f"{r.table}: {r.rejected}/{r.landed} rows refused ({r.reject_fraction:.1%}), top reasons {r.top_reasons}"
                for r in too_many
            )
            raise IngestRejected(
                f"ingest of ds={ds} from {source} refused: reject fraction above {max_reject_fraction:.1%} "
                f"({details}). Only bronze.rejects was written; no bronze table changed. "
                f"Inspect: smar tables, or read bronze.rejects where ds='{ds}' and job='{JOB_NAME}'."
            )

        if run_quality_checks:
            from smar.ingest.quality import validate_frame

            for table, rows in validated.items():
                summary = validate_frame(
                    to_pandas(rows.accepted.limit(QUALITY_SAMPLE_ROWS)),
                    load_contract(table),
                    reports_dir=lake.settings.reports,
                    run_name=f"{table}-{ds}-{source_label}",
                )
                if not summary.success:
                    raise IngestRejected(
                        f"{table}: Great Expectations suite failed after row validation: {summary.failed}. "
                        "This is a bug in the contract or the validator; nothing was written to bronze."
                    )

        # The day is incomplete from here until its run row is written again, after the last table.
        lake.overwrite_slice([], RUNS_TABLE, {"ds": ds, "source": source_label})
        for table, rows in validated.items():
            lake.overwrite_slice(rows.accepted, table, _slice_of(table, ds, source_label))
        written = [*validated, "bronze.rejects"]
        lake.overwrite_slice(
            [
                {
                    "ds": ds, "source": source_label, "input": source, "tables": written,
                    "table_versions": canonical_json({table: lake.version(table) for table in written}),
                    "rows_accepted": sum(result.accepted for result in results),
                    "rows_rejected": sum(result.rejected for result in results),
                    "completed_at": datetime.now(UTC),
                }
            ],
            RUNS_TABLE,
            {"ds": ds, "source": source_label},
        )  # fmt: skip
        return results
    finally:
        for rows in validated.values():
            rows.release()
        remove_run_folder(folder, join(lake.settings.warehouse, LANDING_FOLDER))


def completed_ingest(lake: Lakehouse, ds: str) -> bool:
    """Whether some ingest of `ds` finished writing all its tables (`bronze.ingest_runs`)."""
    if not lake.exists(RUNS_TABLE):
        return False
    return lake.read_arrow(RUNS_TABLE, filters=[("ds", "=", ds)]).num_rows > 0


def run_ingest(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    source: SourceKind,
    path: str | Path | None = None,
    table: str | None = None,
    size: SizeName = "demo",
    seed: int | None = None,
    max_reject_fraction: float | None = None,
    run_quality_checks: bool = True,
) -> list[TableIngestResult]:
    """Land raw input of one kind for day `ds`, validate it, write bronze and rejects."""
    parse_day(ds)
    lake.expire_leftovers()
    seed = lake.settings.seed if seed is None else seed
    threshold = lake.settings.max_reject_fraction if max_reject_fraction is None else max_reject_fraction
    if source == "generator":
        landed: Mapping[str, RawParts] = land_generated(generate_day(ds, size=size, seed=seed))
        source_name = f"generator:{size}:{seed}"
    elif source == "qilin":
        if path is None:
            raise SourceError("--path is required for the qilin source (the folder with search_train.csv)")
        landed = land_qilin(normalize_location(path, what="--path"), ds)
        source_name = str(path)
    elif source == "files":
        if path is None:
            raise SourceError("--path is required for the files source")
        landed = input_files(path, table)
        source_name = str(path)
    else:
        raise SourceError(f"unknown source {source!r}; use generator, qilin or files")
    return ingest_tables(
        spark,
        lake,
        landed,
        ds=ds,
        source=source_name,
        source_label={"generator": "generator", "qilin": "qilin", "files": "file"}[source],
        max_reject_fraction=threshold,
        run_quality_checks=run_quality_checks,
    )


def write_generated_files(
    ds: str, out: str | Path, *, size: SizeName, seed: int, file_format: str = "parquet"
) -> list[str]:
    """Write one generated day as raw files (`<table>.parquet` or `.jsonl`) under `out` (a local
    path or a URI), for `ingest --source files`; returns the files' URIs."""
    if file_format not in ("parquet", "jsonl"):
        raise InputRefused(f"unknown format {file_format!r}; use parquet or jsonl")
    folder = normalize_location(out, what="--out")
    day = generate_day(ds, size=size, seed=seed)
    written = []
    for name, data in (
        ("search_logs", day.search_logs),
        ("items", day.items),
        ("users", day.users),
        ("relevance", day.relevance),
    ):
        if file_format == "parquet":
            buffer = io.BytesIO()
            pq.write_table(data, buffer)
            content = buffer.getvalue()
        else:
            content = "".join(json.dumps(row, default=str) + "\n" for row in data.to_pylist()).encode("utf-8")
        written.append(files.write_bytes(join(folder, f"{name}.{file_format}"), content))
    return written
