"""Job bodies shared by the CLI (`smar ...`) and the spark-submit entry points in `jobs/`.

Each function takes a session and a lakehouse, does one arrow of DESIGN.md §2, and returns a
small summary; neither the CLI nor the jobs hold logic of their own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pyspark.sql import SparkSession

from smar.generator import SizeName, generate_day
from smar.ingest import TableIngestResult, ingest_tables
from smar.lake import Lakehouse
from smar.sources import SourceError, land_file, land_generated, land_qilin

log = logging.getLogger(__name__)

SourceKind = Literal["generator", "qilin", "files"]
FILE_TABLES = {
    "search_logs": "bronze.search_logs",
    "items": "bronze.items",
    "users": "bronze.users",
    "relevance": "truth.relevance",
}


def land_files(path: Path, table: str | None) -> dict[str, pa.Table]:
    """A single file for `table`, or a folder of `<name>.{parquet,jsonl}` files named after tables."""
    if path.is_file():
        if table is None:
            raise SourceError(f"{path}: name the table it holds with --table (e.g. bronze.search_logs)")
        return {table: land_file(path, table)}
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder")
    landed: dict[str, pa.Table] = {}
    for candidate in sorted(path.iterdir()):
        name = candidate.name.split(".")[0]
        if name in FILE_TABLES and (table is None or FILE_TABLES[name] == table):
            landed[FILE_TABLES[name]] = land_file(candidate, FILE_TABLES[name])
    if not landed:
        raise SourceError(
            f"{path}: no input files found; expected files named {sorted(FILE_TABLES)} "
            "with .parquet, .jsonl, .json or .ndjson"
        )
    return landed


def run_ingest(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    source: SourceKind,
    path: Path | None = None,
    table: str | None = None,
    size: SizeName = "demo",
    seed: int | None = None,
    max_reject_fraction: float | None = None,
    run_quality_checks: bool = True,
) -> list[TableIngestResult]:
    """Land raw input of one kind for day `ds`, validate it, write bronze and rejects."""
    seed = lake.settings.seed if seed is None else seed
    threshold = lake.settings.max_reject_fraction if max_reject_fraction is None else max_reject_fraction
    if source == "generator":
        landed = land_generated(generate_day(ds, size=size, seed=seed))
        source_name = f"generator:{size}:{seed}"
    elif source == "qilin":
        if path is None:
            raise SourceError("--path is required for the qilin source (the folder with search_train.csv)")
        landed = land_qilin(path, ds)
        source_name = str(path)
    elif source == "files":
        if path is None:
            raise SourceError("--path is required for the files source")
        landed = land_files(path, table)
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


def write_generated_files(ds: str, out: Path, *, size: SizeName, seed: int, file_format: str = "parquet") -> list[Path]:
    """Write one generated day as raw files (`<table>.parquet` or `.jsonl`), for `ingest --source files`."""
    import json

    import pyarrow.parquet as pq

    day = generate_day(ds, size=size, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in (
        ("search_logs", day.search_logs),
        ("items", day.items),
        ("users", day.users),
        ("relevance", day.relevance),
    ):
        if file_format == "parquet":
            target = out / f"{name}.parquet"
            pq.write_table(data, target)
        elif file_format == "jsonl":
            target = out / f"{name}.jsonl"
            with target.open("w", encoding="utf-8") as handle:
                for row in data.to_pylist():
                    handle.write(json.dumps(row, default=str) + "\n")
        else:
            raise ValueError(f"unknown format {file_format!r}; use parquet or jsonl")
        written.append(target)
    return written
