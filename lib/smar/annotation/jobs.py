"""Job bodies of step 2 (DESIGN.md §2-3): budgeted candidate pages, the Label Studio round trip,
iso-label anchor rounds and the annotation cost table. Each takes (spark, lake, *, ...) and returns
a small summary; the CLI (`smar.annotation.commands`) and `jobs/*.py` only call these.

Writes and their slices (a rerun replaces exactly its own slice):

| job | table | slice |
|---|---|---|
| build_annotation_tasks | silver.annotation_tasks | (ds, strategy, budget, round) |
| run_iso_label_round | silver.annotation_tasks, silver.iso_label_anchors | (ds, iso_label, 0, round), (ds) |
| ingest_page_labels | silver.page_labels (MERGE), bronze.rejects | keys (page_id, item_id, annotator); (ds, job, source) |
| annotation_cost | gold.annotation_cost | (ds) |

Task `status` moves open -> exported (export_annotation_tasks) -> labelled (ingest_page_labels),
by in-place updates that run only when some row really changes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smar.annotation.iso_label import DEFAULT_BOUNDARIES
from smar.annotation.label_studio import (
    LabelImportError,
    LabelRow,
    RejectedLabel,
    build_task,
    labeling_config,
    parse_csv,
    parse_export,
)
from smar.annotation.simulate import simulate_grades, write_simulated_export
from smar.annotation.strategies import DEFAULT_BUDGET
from smar.annotation.tasks import (
    DEFAULT_EVAL_SPLITS,
    DEFAULT_PAGE_SPLITS,
    FULL_STRATEGY,
    ISO_LABEL_BUDGET,
    ISO_LABEL_STRATEGY,
    build_tasks_frame,
    candidate_pages,
    check_strategy,
    iso_label_history,
    iso_label_round_frames,
)
from smar.contracts import load_contract
from smar.lake import Lakehouse, predicate, sql_literal

log = logging.getLogger(__name__)

TASKS_TABLE = "silver.annotation_tasks"
LABELS_TABLE = "silver.page_labels"
ANCHORS_TABLE = "silver.iso_label_anchors"
COST_TABLE = "gold.annotation_cost"
REJECTS_TABLE = "bronze.rejects"
INGEST_JOB = "ingest_page_labels"
TASKS_JSON = "tasks.json"
TASKS_CSV = "tasks.csv"
LABELING_CONFIG = "labeling_config.xml"
SIMULATED_EXPORT = "annotations_simulated.json"
# Accepted label rows on their way from the parser to the checks against silver.annotation_tasks.
LABEL_COLUMNS = {
    "ordinal": "long", "row_number": "long", "task_id": "string", "item_id": "string",
    "grade": "int", "annotator": "string", "annotated_at": "timestamp", "raw_payload": "string",
}  # fmt: skip
EXPORT_CSV_COLUMNS = (
    "task_id", "page_id", "query_id", "query_text", "display_position",
    "item_id", "modality", "title", "body", "grade", "annotator",
)  # fmt: skip


# -- summaries ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSliceSummary:
    """One written slice of silver.annotation_tasks."""

    strategy: str
    budget: float
    round: int
    tasks: int
    items_shown: int
    candidates: int


@dataclass(frozen=True)
class BuildTasksSummary:
    ds: str
    slices: tuple[TaskSliceSummary, ...]


@dataclass(frozen=True)
class IsoLabelRoundSummary:
    ds: str
    round: int
    tasks_written: int
    items_to_judge: int
    pages: int
    pages_done: int
    anchors_written: int
    inconsistencies: int

    @property
    def done(self) -> bool:
        """True when no page needs another round (every boundary found or every cap spent)."""
        return self.tasks_written == 0


@dataclass(frozen=True)
class ExportSummary:
    ds: str
    folder: Path
    tasks_json: Path
    tasks_csv: Path
    labeling_config: Path
    tasks: int
    items: int


@dataclass(frozen=True)
class SimulateSummary:
    ds: str
    export_file: Path
    tasks: int
    items_graded: int
    labels: int
    annotators: tuple[str, ...]
    noisy_items: int
    disagreements: int


@dataclass(frozen=True)
class IngestLabelsSummary:
    ds: str
    source: str
    accepted: int
    inserted: int
    updated: int
    unchanged: int
    superseded_in_file: int
    rejected: int
    reject_reasons: dict[str, int]
    tasks_marked_labelled: int


@dataclass(frozen=True)
class AnnotationCostRow:
    """One row of gold.annotation_cost (see its contract)."""

    ds: str
    strategy: str
    budget: float
    n_queries: int
    n_rounds: int
    items_labelled: int
    judgements_per_query: float
    full_annotation_items: int
    full_judgements_per_query: float
    fraction_of_full: float
    labels_received: int
    items_with_labels: int
    labels_per_item: float | None


@dataclass(frozen=True)
class RoundTripSummary:
    ds: str
    strategy: str
    budget: float
    built: BuildTasksSummary
    exports: tuple[ExportSummary, ...]
    simulations: tuple[SimulateSummary, ...]
    imports: tuple[IngestLabelsSummary, ...]
    iso_rounds: tuple[IsoLabelRoundSummary, ...] = field(default=())
    cost: tuple[AnnotationCostRow, ...] = field(default=())

    @property
    def labels_accepted(self) -> int:
        return sum(result.accepted for result in self.imports)

    @property
    def labels_rejected(self) -> int:
        return sum(result.rejected for result in self.imports)


# -- helpers --------------------------------------------------------------------------------------
def _slice_values(ds: str, strategy: str, budget: float, round_number: int) -> dict[str, Any]:
    return {"ds": ds, "strategy": strategy, "budget": float(budget), "round": int(round_number)}


def _summarise_slice(lake: Lakehouse, ds: str, strategy: str, budget: float, round_number: int) -> TaskSliceSummary:
    row = (
        lake.read(TASKS_TABLE)
        .where(predicate(_slice_values(ds, strategy, budget, round_number)))
        .agg(
            F.count(F.lit(1)).alias("tasks"),
            F.coalesce(F.sum(F.size("items")), F.lit(0)).alias("items_shown"),
            F.coalesce(F.sum("n_candidates"), F.lit(0)).alias("candidates"),
        )
        .collect()[0]
    )
    return TaskSliceSummary(strategy, float(budget), int(round_number), int(row["tasks"]), int(row["items_shown"]), int(row["candidates"]))


def _inputs(lake: Lakehouse, ds: str, splits: Sequence[str]) -> DataFrame:
    for table in ("silver.single_modal_scores", "bronze.search_logs", "bronze.items"):
        if not lake.exists(table):
            raise FileNotFoundError(f"{table} does not exist; run the job that writes it for ds={ds} first")
    return candidate_pages(
        lake.read("silver.single_modal_scores"),
        lake.read("bronze.search_logs"),
        lake.read("bronze.items"),
        ds=ds,
        splits=splits,
    )


def _seed(lake: Lakehouse, seed: int | None) -> int:
    return lake.settings.seed if seed is None else int(seed)


def _update_status(lake: Lakehouse, condition: str, new_status: str) -> int:
    """Set `status` on the tasks matching `condition` whose status differs; returns how many
    changed. Nothing is committed when nothing would change (re-runs add no Delta version)."""
    spark = lake.spark
    assert spark is not None
    changing = f"({condition}) AND `status` <> {sql_literal(new_status)}"
    to_change = lake.read(TASKS_TABLE).where(changing).count()
    if to_change:
        spark.sql(
            f"UPDATE delta.`{lake.uri(TASKS_TABLE)}` SET status = {sql_literal(new_status)} WHERE {changing}"
        ).collect()
    return to_change


def _mark_tasks(lake: Lakehouse, *, ds: str, task_ids: Sequence[str], new_status: str) -> int:
    """Set `status` on the given tasks of `ds` (a MERGE against their ids, which may be many)."""
    spark = lake.spark
    assert spark is not None
    ids = spark.createDataFrame([(task_id,) for task_id in sorted(set(task_ids))], "task_id string")
    to_change = (
        lake.read(TASKS_TABLE)
        .where((F.col("ds") == ds) & (F.col("status") != new_status))
        .join(ids, on="task_id", how="inner")
        .count()
    )
    if to_change:
        ids.createOrReplaceTempView("annotation_status_source")
        spark.sql(
            f"MERGE INTO delta.`{lake.uri(TASKS_TABLE)}` AS target USING annotation_status_source AS source "
            f"ON target.task_id = source.task_id AND target.ds = {sql_literal(ds)} "
            f"WHEN MATCHED AND target.status <> {sql_literal(new_status)} "
            f"THEN UPDATE SET status = {sql_literal(new_status)}"
        ).collect()
    return to_change


# -- build ----------------------------------------------------------------------------------------
def build_annotation_tasks(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    strategy: str = "top",
    budget: float = DEFAULT_BUDGET,
    seed: int | None = None,
    splits: Sequence[str] = DEFAULT_PAGE_SPLITS,
    eval_splits: Sequence[str] = DEFAULT_EVAL_SPLITS,
    eval_strategy: str = FULL_STRATEGY,
    eval_budget: float = 1.0,
    band_index: int = 1,
    max_judgements_per_query: int | None = None,
    created_at: datetime | None = None,
) -> BuildTasksSummary:
    """Write silver.annotation_tasks for `ds`: one page per query of `splits` under `strategy`
    (iso_label: its round 0), and one per query of `eval_splits` under `eval_strategy` (default
    `full`, every candidate: the fully labelled evaluation set; pass eval_splits=() to skip)."""
    seed = _seed(lake, seed)
    check_strategy(strategy, budget)
    if eval_splits:
        if eval_strategy == ISO_LABEL_STRATEGY:
            raise ValueError("the evaluation set cannot use iso_label; use full or a budget strategy")
        check_strategy(eval_strategy, eval_budget)
        if eval_strategy == FULL_STRATEGY:
            eval_budget = 1.0
    overlap = set(splits) & set(eval_splits)
    if overlap:
        raise ValueError(f"splits {sorted(overlap)} are both annotated and held out for evaluation")

    slices: list[TaskSliceSummary] = []
    frames: dict[tuple[str, float, int], list[DataFrame]] = {}
    if strategy == ISO_LABEL_STRATEGY:
        round_zero = run_iso_label_round(
            spark, lake, ds=ds, round_number=0, seed=seed, splits=splits,
            max_judgements_per_query=max_judgements_per_query, created_at=created_at,
        )
        log.info("iso_label round 0: %d tasks", round_zero.tasks_written)
        slices.append(_summarise_slice(lake, ds, ISO_LABEL_STRATEGY, ISO_LABEL_BUDGET, 0))
    else:
        budget = 1.0 if strategy == FULL_STRATEGY else budget
        frames.setdefault((strategy, budget, 0), []).append(
            build_tasks_frame(
                _inputs(lake, ds, splits), strategy=strategy, budget=budget, seed=seed,
                band_index=band_index, created_at=created_at,
            )
        )
    if eval_splits:
        frames.setdefault((eval_strategy, eval_budget, 0), []).append(
            build_tasks_frame(
                _inputs(lake, ds, eval_splits), strategy=eval_strategy, budget=eval_budget,
                seed=seed, band_index=band_index, created_at=created_at,
            )
        )
    for (slice_strategy, slice_budget, round_number), parts in frames.items():
        frame = parts[0]
        for part in parts[1:]:
            frame = frame.unionByName(part)
        lake.overwrite_slice(frame, TASKS_TABLE, _slice_values(ds, slice_strategy, slice_budget, round_number))
        written = _summarise_slice(lake, ds, slice_strategy, slice_budget, round_number)
        log.info("annotation tasks %s: %s", ds, written)
        slices.append(written)
    return BuildTasksSummary(ds, tuple(slices))


def page_label_consensus(lake: Lakehouse, *, ds: str | None = None) -> DataFrame:
    """Several annotators per item -> one row per (ds, page_id, query_id, item_id, modality) with
    mean_grade, n_annotators, min_grade and max_grade (the spread shows disagreement)."""
    spark = lake.spark
    assert spark is not None
    if not lake.exists(LABELS_TABLE):
        return spark.createDataFrame(
            [],
            "ds string, page_id string, query_id string, item_id string, modality string, "
            "mean_grade double, n_annotators long, min_grade int, max_grade int",
        )
    labels = lake.read(LABELS_TABLE)
    if ds is not None:
        labels = labels.where(F.col("ds") == ds)
    return labels.groupBy("ds", "page_id", "query_id", "item_id", "modality").agg(
        F.avg(F.col("grade").cast("double")).alias("mean_grade"),
        F.count(F.lit(1)).alias("n_annotators"),
        F.min("grade").alias("min_grade"),
        F.max("grade").alias("max_grade"),
    )


def run_iso_label_round(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    round_number: int,
    seed: int | None = None,
    splits: Sequence[str] = DEFAULT_PAGE_SPLITS,
    grades: Sequence[int] = DEFAULT_BOUNDARIES,
    max_judgements_per_query: int | None = None,
    created_at: datetime | None = None,
) -> IsoLabelRoundSummary:
    """Round r of the iso-label search: replay rounds < r from silver.page_labels, write round r's
    tasks (only pages still searching) and the anchors found so far (silver.iso_label_anchors,
    slice ds). Run r = 0, 1, 2, ... with labels imported in between until `done`."""
    if round_number < 0:
        raise ValueError(f"round_number must be >= 0, got {round_number}")
    seed = _seed(lake, seed)
    candidates = _inputs(lake, ds, splits)
    empty_history = spark.createDataFrame(
        [], "page_id string, item_id string, label_round int, mean_grade double"
    )
    if round_number == 0:
        history = empty_history
    else:
        previous = (
            lake.read(TASKS_TABLE).where(
                predicate(_slice_values(ds, ISO_LABEL_STRATEGY, ISO_LABEL_BUDGET, round_number - 1))
            )
            if lake.exists(TASKS_TABLE)
            else None
        )
        if previous is None or previous.limit(1).count() == 0:
            raise ValueError(
                f"no iso_label tasks of round {round_number - 1} for ds={ds}; run that round first"
            )
        history = iso_label_history(
            lake.read(TASKS_TABLE).where(F.col("ds") == ds),
            page_label_consensus(lake, ds=ds),
            round_number=round_number,
        )
    tasks, anchors, page_states = iso_label_round_frames(
        candidates, history, round_number=round_number, seed=seed, grades=grades,
        max_judgements_per_query=max_judgements_per_query, created_at=created_at,
    )
    lake.overwrite_slice(tasks, TASKS_TABLE, _slice_values(ds, ISO_LABEL_STRATEGY, ISO_LABEL_BUDGET, round_number))
    lake.overwrite_slice(anchors, ANCHORS_TABLE, {"ds": ds})
    written = _summarise_slice(lake, ds, ISO_LABEL_STRATEGY, ISO_LABEL_BUDGET, round_number)
    states = page_states.agg(
        F.count(F.lit(1)).alias("pages"),
        F.coalesce(F.sum(F.col("search_done").cast("int")), F.lit(0)).alias("pages_done"),
        F.coalesce(F.sum("inconsistencies"), F.lit(0)).alias("inconsistencies"),
    ).collect()[0]
    anchors_written = lake.read(ANCHORS_TABLE).where(F.col("ds") == ds).count()
    summary = IsoLabelRoundSummary(
        ds=ds,
        round=round_number,
        tasks_written=written.tasks,
        items_to_judge=written.items_shown,
        pages=int(states["pages"]),
        pages_done=int(states["pages_done"]),
        anchors_written=int(anchors_written),
        inconsistencies=int(states["inconsistencies"]),
    )
    log.info("iso_label round %d: %s", round_number, summary)
    return summary


# -- export ---------------------------------------------------------------------------------------
def _selection_name(strategy: str | None, budget: float | None, round_number: int | None) -> str:
    return "-".join(
        (
            strategy or "all",
            "ball" if budget is None else f"b{budget:g}",
            "rall" if round_number is None else f"r{round_number}",
        )
    )


def _task_condition(ds: str, strategy: str | None, budget: float | None, round_number: int | None) -> str:
    values: dict[str, Any] = {"ds": ds}
    if strategy is not None:
        values["strategy"] = strategy
    if budget is not None:
        values["budget"] = float(budget)
    if round_number is not None:
        values["round"] = int(round_number)
    return predicate(values)


def export_annotation_tasks(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    strategy: str | None = None,
    budget: float | None = None,
    round_number: int | None = None,
    out_dir: Path | None = None,
    mark_exported: bool = True,
) -> ExportSummary:
    """Write the selected tasks for annotators: Label Studio task JSON (one task per page, items in
    display order), the labeling config XML, and a plain CSV (one line per shown item, with empty
    `grade` and `annotator` columns to fill in). Default folder:
    <reports>/annotation/<ds>/<strategy>-b<budget>-r<round> ("all" for an unset filter)."""
    condition = _task_condition(ds, strategy, budget, round_number)
    if not lake.exists(TASKS_TABLE):
        raise FileNotFoundError(f"{TASKS_TABLE} does not exist; run build-tasks for ds={ds} first")
    rows = lake.read(TASKS_TABLE).where(condition).orderBy("task_id").collect()
    if not rows:
        raise ValueError(f"no annotation tasks match {condition}; run build-tasks first")
    folder = out_dir or lake.settings.reports / "annotation" / ds / _selection_name(strategy, budget, round_number)
    folder.mkdir(parents=True, exist_ok=True)

    tasks_json: list[dict[str, Any]] = []
    csv_buffer = io.StringIO()
    writer = csv.writer(csv_buffer, lineterminator="\n")
    writer.writerow(EXPORT_CSV_COLUMNS)
    n_items = 0
    for row in rows:
        shown = sorted((item.asDict() for item in row["items"]), key=lambda item: item["display_position"])
        tasks_json.append(build_task(row["task_id"], row["page_id"], row["query_id"], row["query_text"], shown))
        for item in shown:
            n_items += 1
            writer.writerow(
                (
                    row["task_id"], row["page_id"], row["query_id"], row["query_text"],
                    item["display_position"], item["item_id"], item["modality"],
                    item["title"] or "", item["body"] or "", "", "",
                )
            )
    tasks_path = folder / TASKS_JSON
    tasks_path.write_text(json.dumps(tasks_json, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    csv_path = folder / TASKS_CSV
    csv_path.write_text(csv_buffer.getvalue(), encoding="utf-8")
    config_path = folder / LABELING_CONFIG
    config_path.write_text(labeling_config(), encoding="utf-8")
    if mark_exported:
        # Only open tasks move to exported; labelled ones stay labelled.
        _update_status(lake, f"({condition}) AND `status` = 'open'", "exported")
    log.info("exported %d tasks (%d items) to %s", len(rows), n_items, folder)
    return ExportSummary(ds, folder, tasks_path, csv_path, config_path, len(rows), n_items)


# -- simulated annotators -------------------------------------------------------------------------
def simulate_annotators(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    tasks_file: Path,
    out_path: Path | None = None,
    n_annotators: int = 2,
    noise: float = 0.0,
    disagreement: float = 0.0,
    seed: int | None = None,
) -> SimulateSummary:
    """Grade an exported tasks JSON from truth.relevance (see `smar.annotation.simulate` for the
    noise model) and write a real Label Studio JSON export next to it (annotations_simulated.json)."""
    try:
        tasks = json.loads(Path(tasks_file).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise LabelImportError(f"{tasks_file}: tasks file is not valid JSON: {error}") from error
    if not lake.exists("truth.relevance"):
        raise FileNotFoundError("truth.relevance does not exist: the simulated annotator needs generator data")
    truth_table = lake.read_arrow("truth.relevance", filters=[("ds", "=", ds)])
    truth = {
        (query_id, item_id): grade
        for query_id, item_id, grade in zip(
            truth_table.column("query_id").to_pylist(),
            truth_table.column("item_id").to_pylist(),
            truth_table.column("grade").to_pylist(),
        )
    }
    simulated = simulate_grades(
        tasks, truth, n_annotators=n_annotators, noise=noise, disagreement=disagreement, seed=_seed(lake, seed)
    )
    path = write_simulated_export(tasks, simulated, out_path or Path(tasks_file).parent / SIMULATED_EXPORT)
    log.info("simulated %d grades for %d tasks into %s", len(simulated.grades), len(tasks), path)
    return SimulateSummary(
        ds, path, len(tasks), simulated.items_graded, len(simulated.grades), simulated.annotators,
        simulated.noisy_items, simulated.disagreements,
    )


# -- import ---------------------------------------------------------------------------------------
def _accepted_row_numbers(text: str, file_format: str, rows: list[LabelRow], rejected: list[RejectedLabel]) -> list[int]:
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


def _parse_label_file(path: Path, file_format: str | None) -> tuple[str, list[LabelRow], list[RejectedLabel], list[int]]:
    file_format = (file_format or path.suffix.lstrip(".")).lower()
    if file_format not in ("json", "csv"):
        raise LabelImportError(f"{path}: unknown label file format {file_format!r}; use json or csv")
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} does not exist")
    raw = path.read_bytes()
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
    return file_format, rows, rejected, _accepted_row_numbers(text, file_format, rows, rejected)


def _payload(row: LabelRow) -> str:
    return json.dumps(
        {"task_id": row.task_id, "item_id": row.item_id, "grade": row.grade, "annotator": row.annotator,
         "annotated_at": row.annotated_at},
        sort_keys=True, ensure_ascii=False,
    )  # fmt: skip


def _parse_time(text: str | None) -> tuple[pd.Timestamp | None, str | None]:
    """(timestamp in UTC, None) or (None, reason); a time without zone is taken as UTC."""
    if text is None:
        return None, None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None, f"annotation.updated_at is not an ISO timestamp: {text!r}"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return pd.Timestamp(parsed).tz_convert("UTC"), None


def ingest_page_labels(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    path: Path,
    file_format: str | None = None,
) -> IngestLabelsSummary:
    """Import a Label Studio JSON export or a `task_id,item_id,grade,annotator` CSV into
    silver.page_labels by MERGE on (page_id, item_id, annotator).

    A matched row is rewritten only when its grade changed (the latest import wins; the old value
    stays in the Delta history), so re-importing a file commits nothing to silver.page_labels.
    Within one file, several grades of the same (page, item, annotator) keep the latest
    `updated_at` (then the last in the file). Refused rows (unknown task or item of `ds`, grade
    out of range, missing fields, cancelled annotations) go to bronze.rejects, slice (ds, job,
    source=path). An unreadable file raises LabelImportError and writes nothing.
    """
    path = Path(path)
    source = str(path)
    file_format, rows, parse_rejects, row_numbers = _parse_label_file(path, file_format)
    if not lake.exists(TASKS_TABLE):
        raise FileNotFoundError(f"{TASKS_TABLE} does not exist; nothing to match labels against")

    reject_records: list[dict[str, Any]] = [
        {"row_number": reject.row_number, "reason": reject.reason, "raw_payload": reject.raw_payload}
        for reject in parse_rejects
    ]
    label_records: list[dict[str, Any]] = []
    for ordinal, (row, row_number) in enumerate(zip(rows, row_numbers)):
        annotated_at, problem = _parse_time(row.annotated_at)
        if problem is not None:
            reject_records.append({"row_number": row_number, "reason": problem, "raw_payload": _payload(row)})
            continue
        label_records.append(
            {
                "ordinal": ordinal, "row_number": row_number, "task_id": row.task_id, "item_id": row.item_id,
                "grade": row.grade, "annotator": row.annotator, "annotated_at": annotated_at,
                "raw_payload": _payload(row),
            }
        )  # fmt: skip

    labels = spark.createDataFrame(
        pd.DataFrame(label_records, columns=list(LABEL_COLUMNS)),
        ", ".join(f"{name} {spark_type}" for name, spark_type in LABEL_COLUMNS.items()),
    )
    tasks = lake.read(TASKS_TABLE).where(F.col("ds") == ds)
    known_tasks = tasks.select("task_id", "page_id", "query_id", "strategy", "round").dropDuplicates(["task_id"])
    known_items = tasks.select("task_id", F.explode("items").alias("item")).select(
        "task_id", F.col("item.item_id").alias("item_id"), F.col("item.modality").alias("modality")
    ).dropDuplicates(["task_id", "item_id"])
    checked = (
        labels.join(known_tasks, on="task_id", how="left")
        .join(known_items, on=["task_id", "item_id"], how="left")
        .withColumn(
            "reason",
            F.when(F.col("page_id").isNull(), F.concat(F.lit("unknown task "), F.col("task_id"), F.lit(f" for ds {ds}")))
            .when(F.col("modality").isNull(), F.concat(F.lit("unknown item "), F.col("item_id"), F.lit(" for task "), F.col("task_id")))
        )
        .toPandas()
    )
    refused = checked[checked["reason"].notna()]
    reject_records += refused[["row_number", "reason", "raw_payload"]].to_dict("records")
    valid = checked[checked["reason"].isna()].copy()

    # The latest grade per key wins inside the file: updated_at, then the order in the file.
    keys = ["page_id", "item_id", "annotator"]
    valid = valid.sort_values(["annotated_at", "ordinal"], kind="stable", na_position="first")
    deduplicated = valid.drop_duplicates(keys, keep="last")
    superseded = len(valid) - len(deduplicated)

    inserted = updated = unchanged = 0
    label_contract = load_contract(LABELS_TABLE)
    if len(deduplicated):
        existing = pd.DataFrame(columns=[*keys, "existing_grade"])
        if lake.exists(LABELS_TABLE):
            key_frame = spark.createDataFrame(deduplicated[keys], "page_id string, item_id string, annotator string")
            existing = (
                lake.read(LABELS_TABLE).join(key_frame, on=keys, how="inner")
                .select(*keys, F.col("grade").alias("existing_grade")).toPandas()
            )
        compared = deduplicated.merge(existing, on=keys, how="left")
        is_new = compared["existing_grade"].isna()
        is_changed = ~is_new & (compared["existing_grade"] != compared["grade"])
        inserted, updated = int(is_new.sum()), int(is_changed.sum())
        unchanged = len(compared) - inserted - updated
        changes = compared[is_new | is_changed].assign(ds=ds, source_file=source)
        if len(changes):
            columns = [column for column in label_contract.column_names if column in changes.columns]
            frame = spark.createDataFrame(
                changes[columns],
                ", ".join(f"`{column}` {label_contract.column(column).type}" for column in columns),
            ).withColumn("ingested_at", F.current_timestamp())
            lake.merge(frame, LABELS_TABLE, update_when_changed=["grade"])

    rejects_frame = spark.createDataFrame(
        pd.DataFrame(reject_records, columns=["row_number", "reason", "raw_payload"]),
        "row_number long, reason string, raw_payload string",
    ).select(
        F.lit(ds).alias("ds"), F.lit(INGEST_JOB).alias("job"), F.lit(LABELS_TABLE).alias("target_table"),
        F.lit(source).alias("source"), "row_number", "reason", "raw_payload",
        F.current_timestamp().alias("rejected_at"),
    )
    lake.overwrite_slice(rejects_frame, REJECTS_TABLE, {"ds": ds, "job": INGEST_JOB, "source": source})

    marked = 0
    labelled_tasks = sorted(set(deduplicated["task_id"])) if len(deduplicated) else []
    if labelled_tasks:
        marked = _mark_tasks(lake, ds=ds, task_ids=labelled_tasks, new_status="labelled")
    reasons: dict[str, int] = {}
    for record in reject_records:
        # Group reasons by their kind, not the ids inside them.
        kind = " ".join(str(record["reason"]).split()[:2])
        reasons[kind] = reasons.get(kind, 0) + 1
    summary = IngestLabelsSummary(
        ds=ds, source=source, accepted=len(deduplicated), inserted=inserted, updated=updated,
        unchanged=unchanged, superseded_in_file=superseded, rejected=len(reject_records),
        reject_reasons=dict(sorted(reasons.items())), tasks_marked_labelled=marked,
    )
    log.info("imported labels from %s: %s", source, summary)
    return summary


# -- cost -----------------------------------------------------------------------------------------
def annotation_cost(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    created_at: datetime | None = None,
) -> list[AnnotationCostRow]:
    """Per strategy and budget of `ds`: queries, rounds, items sent for a page grade, judgements
    per query, and the counterfactual of grading every candidate of the same pages
    (fraction_of_full = items_labelled / full_annotation_items); written to gold.annotation_cost."""
    if not lake.exists(TASKS_TABLE):
        raise FileNotFoundError(f"{TASKS_TABLE} does not exist; run build-tasks for ds={ds} first")
    tasks = lake.read(TASKS_TABLE).where(F.col("ds") == ds)
    group = ["strategy", "budget"]
    shown = tasks.select(*group, "round", "page_id", "query_id", F.explode("items").alias("item")).select(
        *group, "round", "page_id", "query_id", F.col("item.item_id").alias("item_id")
    )
    pairs = shown.select(*group, "page_id", "item_id").dropDuplicates()
    label_counts = page_label_consensus(lake, ds=ds).select("page_id", "item_id", "n_annotators")
    labelled = pairs.join(label_counts, on=["page_id", "item_id"], how="left").groupBy(*group).agg(
        F.count(F.lit(1)).alias("items_labelled"),
        F.coalesce(F.sum("n_annotators"), F.lit(0)).alias("labels_received"),
        F.count("n_annotators").alias("items_with_labels"),
    )
    pages = tasks.select(*group, "page_id", "n_candidates").dropDuplicates([*group, "page_id"]).groupBy(*group).agg(
        F.coalesce(F.sum("n_candidates"), F.lit(0)).alias("full_annotation_items")
    )
    queries = shown.groupBy(*group).agg(
        F.countDistinct("query_id").alias("n_queries"), F.countDistinct("round").alias("n_rounds")
    )
    collected = (
        queries.join(labelled, on=group, how="inner").join(pages, on=group, how="inner")
        .orderBy("strategy", "budget").collect()
    )
    rows = []
    for row in collected:
        n_queries, items, full = int(row["n_queries"]), int(row["items_labelled"]), int(row["full_annotation_items"])
        with_labels = int(row["items_with_labels"])
        rows.append(
            AnnotationCostRow(
                ds=ds, strategy=row["strategy"], budget=float(row["budget"]), n_queries=n_queries,
                n_rounds=int(row["n_rounds"]), items_labelled=items,
                judgements_per_query=items / n_queries if n_queries else 0.0,
                full_annotation_items=full,
                full_judgements_per_query=full / n_queries if n_queries else 0.0,
                fraction_of_full=items / full if full else 0.0,
                labels_received=int(row["labels_received"]), items_with_labels=with_labels,
                labels_per_item=int(row["labels_received"]) / with_labels if with_labels else None,
            )
        )  # fmt: skip
    contract = load_contract(COST_TABLE)
    records = [{**row.__dict__} for row in rows]
    frame = spark.createDataFrame(
        pd.DataFrame(records, columns=[c for c in contract.column_names if c != "created_at"]),
        ", ".join(f"`{c.name}` {c.type}" for c in contract.columns if c.name != "created_at"),
    ).withColumn("created_at", F.current_timestamp() if created_at is None else F.lit(created_at).cast("timestamp"))
    lake.overwrite_slice(frame, COST_TABLE, {"ds": ds})
    return rows


# -- the whole round trip -------------------------------------------------------------------------
def _label_slice(
    spark: SparkSession, lake: Lakehouse, *, ds: str, strategy: str, budget: float, round_number: int,
    out_root: Path | None, n_annotators: int, noise: float, disagreement: float, seed: int,
) -> tuple[ExportSummary, SimulateSummary, IngestLabelsSummary]:
    """Export one task slice, have the simulated team grade it, import their export."""
    out_dir = None if out_root is None else out_root / _selection_name(strategy, budget, round_number)
    exported = export_annotation_tasks(
        spark, lake, ds=ds, strategy=strategy, budget=budget, round_number=round_number, out_dir=out_dir
    )
    simulated = simulate_annotators(
        spark, lake, ds=ds, tasks_file=exported.tasks_json, n_annotators=n_annotators,
        noise=noise, disagreement=disagreement, seed=seed,
    )
    imported = ingest_page_labels(spark, lake, ds=ds, path=simulated.export_file)
    return exported, simulated, imported


def run_annotation_round_trip(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    strategy: str = "top",
    budget: float = DEFAULT_BUDGET,
    seed: int | None = None,
    n_annotators: int = 2,
    noise: float = 0.0,
    disagreement: float = 0.0,
    splits: Sequence[str] = DEFAULT_PAGE_SPLITS,
    eval_splits: Sequence[str] = DEFAULT_EVAL_SPLITS,
    eval_strategy: str = FULL_STRATEGY,
    band_index: int = 1,
    max_judgements_per_query: int | None = None,
    max_rounds: int = 64,
    out_root: Path | None = None,
    created_at: datetime | None = None,
) -> RoundTripSummary:
    """build tasks -> export -> simulated annotators -> import labels (iso_label: round after
    round until every page is done or `max_rounds`), then the cost table. For the demo."""
    seed = _seed(lake, seed)
    built = build_annotation_tasks(
        spark, lake, ds=ds, strategy=strategy, budget=budget, seed=seed, splits=splits,
        eval_splits=eval_splits, eval_strategy=eval_strategy, band_index=band_index,
        max_judgements_per_query=max_judgements_per_query, created_at=created_at,
    )
    exports: list[ExportSummary] = []
    simulations: list[SimulateSummary] = []
    imports: list[IngestLabelsSummary] = []

    def label(slice_strategy: str, slice_budget: float, round_number: int) -> None:
        exported, simulated, imported = _label_slice(
            spark, lake, ds=ds, strategy=slice_strategy, budget=slice_budget, round_number=round_number,
            out_root=out_root, n_annotators=n_annotators, noise=noise, disagreement=disagreement, seed=seed,
        )  # fmt: skip
        exports.append(exported)
        simulations.append(simulated)
        imports.append(imported)

    for written in built.slices:
        if written.tasks:
            label(written.strategy, written.budget, written.round)
    iso_rounds: list[IsoLabelRoundSummary] = []
    if strategy == ISO_LABEL_STRATEGY:
        for round_number in range(1, max_rounds + 1):
            summary = run_iso_label_round(
                spark, lake, ds=ds, round_number=round_number, seed=seed, splits=splits,
                max_judgements_per_query=max_judgements_per_query, created_at=created_at,
            )
            iso_rounds.append(summary)
            if summary.done:
                break
            label(ISO_LABEL_STRATEGY, ISO_LABEL_BUDGET, round_number)
        else:
            log.warning("iso_label stopped after max_rounds=%d with pages still searching", max_rounds)
    cost = annotation_cost(spark, lake, ds=ds, created_at=created_at)
    return RoundTripSummary(
        ds=ds, strategy=strategy, budget=ISO_LABEL_BUDGET if strategy == ISO_LABEL_STRATEGY else budget,
        built=built, exports=tuple(exports), simulations=tuple(simulations), imports=tuple(imports),
        iso_rounds=tuple(iso_rounds), cost=tuple(cost),
    )

