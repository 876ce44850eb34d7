"""Ingest: landing tables -> validated bronze (and truth) tables plus `bronze.rejects`.

The job is all-or-nothing per run: when any table's reject fraction is above the threshold,
only the rejects are written (so people can see why) and `IngestRejectedError` is raised; no
bronze table is touched. Reruns of the same (ds, source) replace exactly that slice.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smar.contracts import load_contract
from smar.lake import Lakehouse
from smar.validation import validate_rows

log = logging.getLogger(__name__)

JOB_NAME = "ingest"


class IngestRejectedError(RuntimeError):
    """Too many rows were refused; only the rejects were written."""


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


def landing_path(lake: Lakehouse, ds: str, source: str, table: str) -> Path:
    """Where a landing copy of the raw rows goes (engine-readable Parquet)."""
    safe_source = "".join(char if char.isalnum() or char in "-_" else "_" for char in source)[:80]
    return lake.settings.warehouse.resolve() / "_landing" / ds / safe_source / f"{table}.parquet"


def land(spark: SparkSession, lake: Lakehouse, landed: pa.Table, *, ds: str, source: str, table: str) -> DataFrame:
    """Write the landing rows as Parquet and read them back through the engine."""
    path = landing_path(lake, ds, source, table)
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Non-compliant nested names ("item") match what the engine itself writes for arrays.
    pq.write_table(landed, path, use_compliant_nested_type=False)
    return spark.read.parquet(str(path))


def _reason_counts(rejected: DataFrame, limit: int = 5) -> list[tuple[str, int]]:
    # Group by the first reason's column part so the summary stays short on big inputs.
    head = F.regexp_extract(F.col("reason"), r"^([^:;]*)", 1)
    rows = rejected.groupBy(head.alias("reason")).count().orderBy(F.col("count").desc(), F.col("reason")).limit(limit).collect()
    return [(row["reason"], int(row["count"])) for row in rows]


def ingest_tables(
    spark: SparkSession,
    lake: Lakehouse,
    landed_tables: dict[str, pa.Table],
    *,
    ds: str,
    source: str,
    source_label: str,
    max_reject_fraction: float,
    run_quality_checks: bool = True,
) -> list[TableIngestResult]:
    """Validate every landed table, then write bronze slices and rejects (or only rejects).

    `source` names where the rows came from in `bronze.rejects` (a path, "generator"); bronze rows
    get `source = source_label` and each table's slice (ds, source_label) is replaced.
    """
    results: list[TableIngestResult] = []
    validated = {}
    for table, landed in landed_tables.items():
        frame = land(spark, lake, landed, ds=ds, source=source, table=table)
        rows = validate_rows(frame, table, ds=ds, job=JOB_NAME, source=source)
        rejected_count = rows.rejected.count()
        accepted_count = landed.num_rows - rejected_count
        reasons = _reason_counts(rows.rejected) if rejected_count else []
        results.append(TableIngestResult(table, landed.num_rows, accepted_count, rejected_count, reasons))
        validated[table] = rows

    all_rejects = None
    for rows in validated.values():
        all_rejects = rows.rejected if all_rejects is None else all_rejects.unionByName(rows.rejected)
    assert all_rejects is not None
    lake.overwrite_slice(all_rejects, "bronze.rejects", {"ds": ds, "job": JOB_NAME, "source": source})

    too_many = [result for result in results if result.reject_fraction > max_reject_fraction]
    if too_many:
        details = "; ".join(
            f"{r.table}: {r.rejected}/{r.landed} rows refused ({r.reject_fraction:.1%}), top reasons {r.top_reasons}"
            for r in too_many
        )
        raise IngestRejectedError(
            f"ingest of ds={ds} from {source} refused: reject fraction above {max_reject_fraction:.1%} "
            f"({details}). Only bronze.rejects was written; no bronze table changed. "
            f"Inspect: smar tables, or read bronze.rejects where ds='{ds}' and job='{JOB_NAME}'."
        )

    if run_quality_checks:
        from smar.quality import validate_frame

        for table, rows in validated.items():
            contract = load_contract(table)
            summary = validate_frame(
                rows.accepted.toPandas(),
                contract,
                reports_dir=lake.settings.reports,
                run_name=f"{table}-{ds}-{source_label}",
            )
            if not summary.success:
                raise IngestRejectedError(
                    f"{table}: Great Expectations suite failed after row validation: {summary.failed}. "
                    "This is a bug in the contract or the validator; nothing was written to bronze."
                )

    for table, rows in validated.items():
        contract = load_contract(table)
        slice_values = {"ds": ds}
        if "source" in contract.column_names:
            slice_values["source"] = source_label
        lake.overwrite_slice(rows.accepted, table, slice_values)
    return results
