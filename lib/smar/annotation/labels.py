"""Page labels on their way in: reading a label file, checking rows against the day's tasks,
one grade per (page, item, annotator), and the consensus of several annotators.

Pure functions over Python rows, pandas and Spark frames; `smar.annotation.jobs.ingest_page_labels`
does the reads and writes.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smar.annotation.label_studio import LabelRow, RejectedLabel, parse_csv, parse_export
from smar.errors import LabelImportError, MissingInput
from smar.storage import files
from smar.storage.uris import normalize_location

#: The key of one grade in silver.page_labels.
LABEL_KEYS: tuple[str, ...] = ("page_id", "item_id", "annotator")
#: Accepted label rows on their way from the parser to the checks against silver.annotation_tasks.
LABEL_COLUMNS = {
    "ordinal": "long", "row_number": "long", "task_id": "string", "item_id": "string",
    "grade": "int", "annotator": "string", "annotated_at": "timestamp", "raw_payload": "string",
}  # fmt: skip
REJECT_COLUMNS: tuple[str, ...] = ("row_number", "reason", "raw_payload")


@dataclass(frozen=True)
class ParsedLabelFile:
    """What a label file holds: accepted rows (with their source row numbers) and refused rows."""

    file_format: str
    rows: list[LabelRow]
    rejected: list[RejectedLabel]
    row_numbers: list[int]


def _accepted_row_numbers(
    text: str, file_format: str, rows: list[LabelRow], rejected: list[RejectedLabel]
) -> list[int]:
    """The source row number of each accepted row, in the parsers' convention: the task's index in
    a JSON export, the 0-based data line of a CSV (blank lines count, the header does not)."""
    if file_format == "json":
        first_index: dict[str, int] = {}
        for index, task in enumerate(json.loads(text)):
            data = task.get("data") if isinstance(task, dict) else None
            if isinstance(data, dict) and data.get("task_id") not in (None, ""):
                first_index.setdefault(str(data["task_id"]), index)
        return [first_index.get(row.task_id, -1) for row in rows]
    data_lines = list(csv.reader(io.StringIO(text)))[1:]
    refused = {reject.row_number for reject in rejected}
    free = [number for number, fields in enumerate(data_lines) if fields and number not in refused]
    return free[: len(rows)] if len(free) >= len(rows) else [-1] * len(rows)


def read_label_file(path: str | Path, file_format: str | None) -> ParsedLabelFile:
    """Parse a Label Studio JSON export or a CSV (`task_id,item_id,grade,annotator`) at location
    `path` (a local path or a URI); an unreadable file raises `LabelImportError` (nothing is imported)."""
    uri = normalize_location(path, what="label file")
    file_format = (file_format or PurePosixPath(uri).suffix.lstrip(".")).lower()
    if file_format not in ("json", "csv"):
        raise LabelImportError(f"{path}: unknown label file format {file_format!r}; use json or csv")
    if not files.is_file(uri):
        raise MissingInput(f"label file {path} does not exist")
    # A UTF-8 byte order mark (spreadsheet exports write one) is not part of the header.
    raw = files.read_bytes(uri).removeprefix(codecs.BOM_UTF8)
    try:
        if file_format == "json":
            rows, rejected = parse_export(raw)
            text = raw.decode("utf-8")
        else:
            text = raw.decode("utf-8")
            rows, rejected = parse_csv(text)
    except LabelImportError as error:
        raise LabelImportError(f"{path}: {error}; nothing was imported") from error
    except UnicodeDecodeError as error:
        raise LabelImportError(f"{path}: not UTF-8 ({error.reason}); nothing was imported") from error
    return ParsedLabelFile(file_format, rows, rejected, _accepted_row_numbers(text, file_format, rows, rejected))


def label_payload(row: LabelRow) -> str:
    return json.dumps(
        {"task_id": row.task_id, "item_id": row.item_id, "grade": row.grade, "annotator": row.annotator,
         "annotated_at": row.annotated_at},
        sort_keys=True, ensure_ascii=False,
    )  # fmt: skip


def parse_annotated_at(text: str | None) -> tuple[pd.Timestamp | None, str | None]:
    """(timestamp in UTC, None) or (None, reason); a time without zone is taken as UTC."""
    if text is None:
        return None, None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None, f"annotation.updated_at is not an ISO timestamp: {text!r}"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return pd.Timestamp(parsed).tz_convert("UTC"), None


def label_records(
    parsed: ParsedLabelFile, *, imported_at: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(accepted label records with `LABEL_COLUMNS`, reject records with `REJECT_COLUMNS`): the
    parser's rows, with rows whose annotation time does not parse moved to the rejects. A row
    without a time (a CSV's) counts as annotated when imported (`imported_at`)."""
    rejects: list[dict[str, Any]] = [
        {"row_number": reject.row_number, "reason": reject.reason, "raw_payload": reject.raw_payload}
        for reject in parsed.rejected
    ]
    records: list[dict[str, Any]] = []
    for ordinal, (row, row_number) in enumerate(zip(parsed.rows, parsed.row_numbers, strict=True)):
        annotated_at, problem = parse_annotated_at(row.annotated_at)
        if problem is None and annotated_at is None:
            annotated_at = pd.Timestamp(imported_at).tz_convert("UTC")
        if problem is not None:
            rejects.append({"row_number": row_number, "reason": problem, "raw_payload": label_payload(row)})
            continue
        records.append(
            {
                "ordinal": ordinal, "row_number": row_number, "task_id": row.task_id, "item_id": row.item_id,
                "grade": row.grade, "annotator": row.annotator, "annotated_at": annotated_at,
                "raw_payload": label_payload(row),
            }
        )  # fmt: skip
    return records, rejects


def check_against_tasks(labels: DataFrame, tasks: DataFrame, *, ds: str) -> DataFrame:
    """Label rows joined with their task (page_id, query_id, strategy, round) and item (modality);
    `reason` names an unknown task or an item the task did not show, null for a good row."""
    known_tasks = tasks.select("task_id", "page_id", "query_id", "strategy", "round").dropDuplicates(["task_id"])
    known_items = (
        tasks.select("task_id", F.explode("items").alias("item"))
        .select("task_id", F.col("item.item_id").alias("item_id"), F.col("item.modality").alias("modality"))
        .dropDuplicates(["task_id", "item_id"])
    )
    return (
        labels.join(known_tasks, on="task_id", how="left")
        .join(known_items, on=["task_id", "item_id"], how="left")
        .withColumn(
            "reason",
            F.when(F.col("page_id").isNull(), F.concat(F.lit("unknown task "), F.col("task_id"), F.lit(f" for ds {ds}")))
            .when(F.col("modality").isNull(), F.concat(F.lit("unknown item "), F.col("item_id"), F.lit(" for task "), F.col("task_id"))),
        )
    )  # fmt: skip


def latest_per_key(valid: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One grade per (page, item, annotator): the latest `annotated_at`, then the last in the
    file. Returns the kept rows and how many were superseded."""
    ordered = valid.sort_values(["annotated_at", "ordinal"], kind="stable", na_position="first")
    kept = ordered.drop_duplicates(list(LABEL_KEYS), keep="last")
    return kept, len(valid) - len(kept)


def compare_with_stored(incoming: pd.DataFrame, stored: pd.DataFrame) -> tuple[pd.DataFrame, tuple[int, int, int, int]]:
    """The incoming grades to write, and (inserted, updated, unchanged, stale) counts.

    `stored` holds the keys with `existing_grade` and `existing_annotated_at`. A grade is new when
    its key is not stored; stale when the stored grade was made later (the newest wins, whatever
    the order in which files arrive); updated when it differs and is at least as new; unchanged
    otherwise."""
    compared = incoming.merge(stored, on=list(LABEL_KEYS), how="left")
    is_new = compared["existing_grade"].isna()
    is_stale = (
        ~is_new
        & compared["existing_annotated_at"].notna()
        & (
            pd.to_datetime(compared["annotated_at"], utc=True)
            < pd.to_datetime(compared["existing_annotated_at"], utc=True)
        )
    )
    is_changed = ~is_new & ~is_stale & (compared["existing_grade"] != compared["grade"])
    inserted, updated, stale = int(is_new.sum()), int(is_changed.sum()), int(is_stale.sum())
    return compared[is_new | is_changed], (inserted, updated, len(compared) - inserted - updated - stale, stale)


def reason_kinds(rejects: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Reject counts by kind (the reason's first two words, not the ids inside it)."""
    kinds: dict[str, int] = {}
    for record in rejects:
        kind = " ".join(str(record["reason"]).split()[:2])
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


def label_consensus(labels: DataFrame, by: Sequence[str]) -> DataFrame:
    """Several grades per item -> one row per `by` with mean_grade, n_annotators (grades counted),
    min_grade and max_grade (the spread shows disagreement).

    The annotation steps group by (ds, page_id, query_id, item_id, modality): one page's
    consensus; the replay by (query_id, item_id): every page and round of a query pooled."""
    return labels.groupBy(*by).agg(
        F.avg(F.col("grade").cast("double")).alias("mean_grade"),
        F.count(F.lit(1)).alias("n_annotators"),
        F.min("grade").alias("min_grade"),
        F.max("grade").alias("max_grade"),
    )
