"""Job bodies of step 2 (docs/architecture.md): budgeted candidate pages, the Label Studio round trip,
iso-label anchor rounds and the annotation cost table. Each takes (spark, lake, *, ...) and returns
a small summary; the CLI (`smar.cli.annotation`) and `jobs/*.py` only call these.

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

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smar.annotation.cost import AnnotationCostRow, annotation_cost_rows
from smar.annotation.export import selection, selection_name, write_export_files
from smar.annotation.iso_label import DEFAULT_BOUNDARIES
from smar.annotation.labels import (
    LABEL_COLUMNS,
    LABEL_KEYS,
    REJECT_COLUMNS,
    check_against_tasks,
    compare_with_stored,
    label_consensus,
    label_records,
    latest_per_key,
    read_label_file,
    reason_kinds,
)
from smar.annotation.simulate import simulate_grades, write_simulated_export
from smar.annotation.summaries import (
    BuildTasksSummary,
    ExportSummary,
    IngestLabelsSummary,
    IsoLabelRoundSummary,
    RoundTripSummary,
    SimulateSummary,
    TaskSliceSummary,
)
from smar.annotation.tasks import (
    build_tasks_frame,
    candidate_pages,
    check_strategy,
    iso_label_history,
    iso_label_round_frames,
)
from smar.errors import InputRefused, LabelImportError, MissingInput
from smar.lake import Lakehouse
from smar.predicates import predicate
from smar.storage import files
from smar.storage.uris import join, normalize_location, parent
from smar.vocabulary import (
    ANNOTATED_SPLITS,
    DEFAULT_BUDGET,
    EVALUATION_SPLITS,
    FULL,
    ISO_LABEL,
    ISO_LABEL_BUDGET,
    parse_day,
)

log = logging.getLogger(__name__)

TASKS_TABLE = "silver.annotation_tasks"
LABELS_TABLE = "silver.page_labels"
ANCHORS_TABLE = "silver.iso_label_anchors"
COST_TABLE = "gold.annotation_cost"
INGEST_JOB = "ingest_page_labels"
SIMULATED_EXPORT = "annotations_simulated.json"
#: The grain of one page's consensus (annotation steps); the replay pools a query's pages instead.
PAGE_CONSENSUS_KEYS: tuple[str, ...] = ("ds", "page_id", "query_id", "item_id", "modality")


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
    return TaskSliceSummary(
        strategy, float(budget), int(round_number), int(row["tasks"]), int(row["items_shown"]), int(row["candidates"])
    )


def _inputs(lake: Lakehouse, ds: str, splits: Sequence[str]) -> DataFrame:
    for table in ("silver.single_modal_scores", "bronze.search_logs", "bronze.items"):
        if not lake.exists(table):
            raise MissingInput(f"{table} does not exist; run the job that writes it for ds={ds} first")
    return candidate_pages(
        lake.read("silver.single_modal_scores"),
        lake.read("bronze.search_logs"),
        lake.read("bronze.items"),
        ds=ds,
        splits=splits,
    )


def _seed(lake: Lakehouse, seed: int | None) -> int:
    return lake.settings.seed if seed is None else int(seed)


# -- build ----------------------------------------------------------------------------------------
def build_annotation_tasks(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    strategy: str = "top",
    budget: float = DEFAULT_BUDGET,
    seed: int | None = None,
    splits: Sequence[str] = ANNOTATED_SPLITS,
    eval_splits: Sequence[str] = EVALUATION_SPLITS,
    eval_strategy: str = FULL,
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
        if eval_strategy == ISO_LABEL:
            raise InputRefused("the evaluation set cannot use iso_label; use full or a budget strategy")
        check_strategy(eval_strategy, eval_budget)
        if eval_strategy == FULL:
            eval_budget = 1.0
    overlap = set(splits) & set(eval_splits)
    if overlap:
        raise InputRefused(f"splits {sorted(overlap)} are both annotated and held out for evaluation")

    slices: list[TaskSliceSummary] = []
    frames: dict[tuple[str, float, int], list[DataFrame]] = {}
    if strategy == ISO_LABEL:
        round_zero = run_iso_label_round(
            spark,
            lake,
            ds=ds,
            round_number=0,
            seed=seed,
            splits=splits,
            max_judgements_per_query=max_judgements_per_query,
            created_at=created_at,
        )
        log.info("iso_label round 0: %d tasks", round_zero.tasks_written)
        slices.append(_summarise_slice(lake, ds, ISO_LABEL, ISO_LABEL_BUDGET, 0))
    else:
        budget = 1.0 if strategy == FULL else budget
        frames.setdefault((strategy, budget, 0), []).append(
            build_tasks_frame(
                _inputs(lake, ds, splits),
                strategy=strategy,
                budget=budget,
                seed=seed,
                band_index=band_index,
                created_at=created_at,
            )
        )
    if eval_splits:
        frames.setdefault((eval_strategy, eval_budget, 0), []).append(
            build_tasks_frame(
                _inputs(lake, ds, eval_splits),
                strategy=eval_strategy,
                budget=eval_budget,
                seed=seed,
                band_index=band_index,
                created_at=created_at,
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
    labels = lake.read(LABELS_TABLE) if lake.exists(LABELS_TABLE) else lake.frame([], LABELS_TABLE)
    if ds is not None:
        labels = labels.where(F.col("ds") == ds)
    return label_consensus(labels, PAGE_CONSENSUS_KEYS)


def run_iso_label_round(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    round_number: int,
    seed: int | None = None,
    splits: Sequence[str] = ANNOTATED_SPLITS,
    grades: Sequence[int] = DEFAULT_BOUNDARIES,
    max_judgements_per_query: int | None = None,
    created_at: datetime | None = None,
) -> IsoLabelRoundSummary:
    """Round r of the iso-label search: replay rounds < r from silver.page_labels, write round r's
    tasks (only pages still searching) and the anchors found so far (silver.iso_label_anchors,
    slice ds). Run r = 0, 1, 2, ... with labels imported in between until `done`."""
    if round_number < 0:
        raise InputRefused(f"round_number must be >= 0, got {round_number}")
    seed = _seed(lake, seed)
    candidates = _inputs(lake, ds, splits)
    empty_history = spark.createDataFrame([], "page_id string, item_id string, label_round int, mean_grade double")
    if round_number == 0:
        history = empty_history
    else:
        previous = (
            lake.read(TASKS_TABLE).where(predicate(_slice_values(ds, ISO_LABEL, ISO_LABEL_BUDGET, round_number - 1)))
            if lake.exists(TASKS_TABLE)
            else None
        )
        if previous is None or previous.limit(1).count() == 0:
            raise InputRefused(f"no iso_label tasks of round {round_number - 1} for ds={ds}; run that round first")
        history = iso_label_history(
            lake.read(TASKS_TABLE).where(F.col("ds") == ds),
            page_label_consensus(lake, ds=ds),
            round_number=round_number,
        )
    tasks, anchors, page_states = iso_label_round_frames(
        candidates,
        history,
        round_number=round_number,
        seed=seed,
        grades=grades,
        max_judgements_per_query=max_judgements_per_query,
        created_at=created_at,
    )
    lake.overwrite_slice(tasks, TASKS_TABLE, _slice_values(ds, ISO_LABEL, ISO_LABEL_BUDGET, round_number))
    lake.overwrite_slice(anchors, ANCHORS_TABLE, {"ds": ds})
    written = _summarise_slice(lake, ds, ISO_LABEL, ISO_LABEL_BUDGET, round_number)
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
def export_annotation_tasks(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    strategy: str | None = None,
    budget: float | None = None,
    round_number: int | None = None,
    out_dir: str | Path | None = None,
    mark_exported: bool = True,
    max_tasks: int | None = None,
) -> ExportSummary:
    """Write the selected tasks for annotators (`smar.annotation.export`): Label Studio task JSON,
    the labeling config XML, and a plain CSV. Default folder:
    <reports>/annotation/<ds>/<strategy>-b<budget>-r<round> ("all" for an unset filter).
    `max_tasks` caps the export at the first tasks by task_id; only those are marked exported."""
    chosen = selection(ds, strategy, budget, round_number)
    if not lake.exists(TASKS_TABLE):
        raise MissingInput(f"{TASKS_TABLE} does not exist; run build-tasks for ds={ds} first")
    if max_tasks is not None and max_tasks < 1:
        raise InputRefused(f"--max-tasks must be at least 1, got {max_tasks}")
    matching = lake.read(TASKS_TABLE).where(predicate(chosen))
    # Capped: the first tasks by task_id (a content hash), a deterministic sample of the day's pages.
    ordered = matching.orderBy("task_id")
    selected = ordered if max_tasks is None else ordered.limit(max_tasks)
    if not selected.limit(1).collect():
        raise InputRefused(f"no annotation tasks match {predicate(chosen)}; run build-tasks first")
    # A location (local path or URI), written through the filesystem layer.
    folder = normalize_location(out_dir) if out_dir else join(lake.settings.reports, "annotation", ds, selection_name(strategy, budget, round_number))  # fmt: skip
    # Streamed: Spark hands the rows over one partition at a time and the files are written as
    # they come, so the driver never holds the day's tasks.
    written = write_export_files((row.asDict(recursive=True) for row in selected.toLocalIterator()), folder)
    counts = written.counts
    if capped := max_tasks is not None and (total := matching.count()) > counts.tasks:
        log.warning("exported %d of the %d matching tasks (--max-tasks %d)", counts.tasks, total, max_tasks)
    if mark_exported:
        # Only open tasks move to exported (labelled ones stay labelled), and only those written.
        lake.set_values(
            TASKS_TABLE, {"status": "exported"}, where={**chosen, "status": "open"},
            keys=selected.select("task_id") if capped else None,
        )  # fmt: skip
    log.info("exported %d tasks (%d items) to %s", counts.tasks, counts.items, folder)
    return ExportSummary(ds, folder, written.tasks_json, written.tasks_csv, written.labeling_config, *counts)


# -- simulated annotators -------------------------------------------------------------------------
def day_truth(lake: Lakehouse, ds: str) -> dict[tuple[str, str], int]:
    """truth.relevance of `ds`, (query_id, item_id) -> grade: what the simulated annotators see."""
    if not lake.exists("truth.relevance"):
        raise MissingInput("truth.relevance does not exist: the simulated annotator needs generator data")
    table = lake.read_arrow("truth.relevance", filters=[("ds", "=", ds)])
    columns = (table.column(name).to_pylist() for name in ("query_id", "item_id", "grade"))
    return {(query_id, item_id): grade for query_id, item_id, grade in zip(*columns)}


def simulate_annotators(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    tasks_file: str | Path,
    out_path: str | Path | None = None,
    n_annotators: int = 2,
    noise: float = 0.0,
    disagreement: float = 0.0,
    seed: int | None = None,
) -> SimulateSummary:
    """Grade an exported tasks JSON from truth.relevance (see `smar.annotation.simulate` for the
    noise model) and write a real Label Studio JSON export next to it (annotations_simulated.json)."""
    try:
        tasks = json.loads(files.read_text(tasks_file := normalize_location(tasks_file, what="--tasks-file")))
    except json.JSONDecodeError as error:
        raise LabelImportError(f"{tasks_file}: tasks file is not valid JSON: {error}") from error
    simulated = simulate_grades(
        tasks, day_truth(lake, ds), n_annotators=n_annotators, noise=noise, disagreement=disagreement,
        seed=_seed(lake, seed),
    )  # fmt: skip
    path = write_simulated_export(tasks, simulated, normalize_location(out_path) if out_path else join(parent(tasks_file), SIMULATED_EXPORT))  # fmt: skip
    log.info("simulated %d grades for %d tasks into %s", len(simulated.grades), len(tasks), path)
    return SimulateSummary(
        ds, path, len(tasks), simulated.items_graded, len(simulated.grades), simulated.annotators,
        simulated.noisy_items, simulated.disagreements,
    )  # fmt: skip


# -- import ---------------------------------------------------------------------------------------
def ingest_page_labels(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    path: str | Path,
    file_format: str | None = None,
    max_reject_fraction: float | None = None,
) -> IngestLabelsSummary:
    """Import a Label Studio JSON export or a `task_id,item_id,grade,annotator` CSV into
    silver.page_labels by MERGE on (page_id, item_id, annotator).

    The newest grade wins, by its annotation time: a matched row is rewritten only by a grade made
    at least as late whose value differs, so an old export imported after a newer one changes
    nothing (counted as `stale`), and re-importing a file commits nothing. A CSV carries no time:
    its grades count as made when imported. Within one file, several grades of the same (page,
    item, annotator) keep the latest time, then the last in the file (`superseded_in_file`).
    Refused rows (unknown task or item of `ds`, grade out of range, missing fields, cancelled
    annotations) go to bronze.rejects, slice (ds, job, source=path). Above `max_reject_fraction`
    (default: the settings') only the rejects are written and `InputRefused` is raised. An
    unreadable file raises LabelImportError and writes nothing.
    """
    parse_day(ds)
    source = str(path)  # as given: a path, or a URI (s3://...)
    parsed = read_label_file(path, file_format)
    if not lake.exists(TASKS_TABLE):
        raise MissingInput(f"{TASKS_TABLE} does not exist; nothing to match labels against")
    threshold = lake.settings.max_reject_fraction if max_reject_fraction is None else max_reject_fraction
    label_rows, reject_records = label_records(parsed, imported_at=datetime.now(UTC))
    labels = spark.createDataFrame(
        pd.DataFrame(label_rows, columns=list(LABEL_COLUMNS)),
        ", ".join(f"{name} {spark_type}" for name, spark_type in LABEL_COLUMNS.items()),
    )
    checked: pd.DataFrame = check_against_tasks(
        labels, lake.read(TASKS_TABLE).where(F.col("ds") == ds), ds=ds
    ).toPandas()
    reject_records += checked.loc[checked["reason"].notna(), list(REJECT_COLUMNS)].to_dict("records")
    deduplicated, superseded = latest_per_key(checked[checked["reason"].isna()])
    rejects = lake.frame(
        [
            {"ds": ds, "job": INGEST_JOB, "target_table": LABELS_TABLE, "source": source, **record}
            for record in reject_records
        ],
        "bronze.rejects",
    ).withColumn("rejected_at", F.current_timestamp())
    lake.write_rejects(rejects, ds=ds, job=INGEST_JOB, source=source)
    total = len(deduplicated) + superseded + len(reject_records)
    if total and len(reject_records) / total > threshold:
        raise InputRefused(
            f"label import of {source} for ds={ds} refused: {len(reject_records)}/{total} rows refused "
            f"({len(reject_records) / total:.1%}, above {threshold:.1%}); kinds {reason_kinds(reject_records)}. "
            "Only bronze.rejects was written; silver.page_labels did not change."
        )

    keys = list(LABEL_KEYS)
    inserted = updated = unchanged = stale = 0
    if len(deduplicated):
        existing: pd.DataFrame = pd.DataFrame(columns=[*keys, "existing_grade", "existing_annotated_at"])
        if lake.exists(LABELS_TABLE):
            key_frame = spark.createDataFrame(deduplicated[keys], "page_id string, item_id string, annotator string")
            existing = (
                lake.read(LABELS_TABLE).join(key_frame, on=keys, how="inner")
                .select(*keys, F.col("grade").alias("existing_grade"),
                        F.col("annotated_at").alias("existing_annotated_at"))
                .toPandas()
            )  # fmt: skip
        changes, (inserted, updated, unchanged, stale) = compare_with_stored(deduplicated, existing)
        changes = changes.assign(ds=ds, source_file=source)
        if len(changes):
            columns = [column for column in lake.frame([], LABELS_TABLE).columns if column in changes.columns]
            frame = lake.frame(changes[columns], LABELS_TABLE).withColumn("ingested_at", F.current_timestamp())
            lake.merge(frame, LABELS_TABLE, update_when_changed=["grade"], newest_by="annotated_at")

    marked = 0
    labelled_tasks = sorted(set(deduplicated["task_id"])) if len(deduplicated) else []
    if labelled_tasks:
        marked = lake.set_values(
            TASKS_TABLE, {"status": "labelled"}, where={"ds": ds},
            keys=spark.createDataFrame([(task_id,) for task_id in labelled_tasks], "task_id string"),
        )  # fmt: skip
    summary = IngestLabelsSummary(
        ds=ds, source=source, accepted=len(deduplicated), inserted=inserted, updated=updated,
        unchanged=unchanged, stale=stale, superseded_in_file=superseded, rejected=len(reject_records),
        reject_reasons=reason_kinds(reject_records), tasks_marked_labelled=marked,
    )  # fmt: skip
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
    (`smar.annotation.cost`); written to gold.annotation_cost."""
    if not lake.exists(TASKS_TABLE):
        raise MissingInput(f"{TASKS_TABLE} does not exist; run build-tasks for ds={ds} first")
    tasks = lake.read(TASKS_TABLE).where(F.col("ds") == ds)
    rows = annotation_cost_rows(tasks, page_label_consensus(lake, ds=ds), ds=ds)
    frame = lake.frame([row.__dict__ for row in rows], COST_TABLE).withColumn(
        "created_at", F.current_timestamp() if created_at is None else F.lit(created_at).cast("timestamp")
    )
    lake.overwrite_slice(frame, COST_TABLE, {"ds": ds})
    return rows


# -- the whole round trip -------------------------------------------------------------------------
#: Labels one slice: (spark, lake, *, ds, strategy, budget, round_number, out_root, n_annotators, noise,
#: disagreement, seed) -> (export or push, simulation, imports); files: `_label_slice`, a server:
#: `label_studio_jobs.server_labeller`.
SliceLabeller = Callable[..., tuple[Any, Any, tuple[IngestLabelsSummary, ...]]]


def _label_slice(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    ds: str,
    strategy: str, budget: float, round_number: int, out_root: str | Path | None,
    n_annotators: int, noise: float, disagreement: float, seed: int,
) -> tuple[ExportSummary, SimulateSummary, tuple[IngestLabelsSummary, ...]]:  # fmt: skip
    """Export one task slice, have the simulated team grade it, import their export."""
    out_dir = (
        None if out_root is None else join(normalize_location(out_root), selection_name(strategy, budget, round_number))
    )
    exported = export_annotation_tasks(
        spark, lake, ds=ds, strategy=strategy, budget=budget, round_number=round_number, out_dir=out_dir
    )
    simulated = simulate_annotators(
        spark, lake, ds=ds, tasks_file=exported.tasks_json, n_annotators=n_annotators, noise=noise,
        disagreement=disagreement, seed=seed,
    )  # fmt: skip
    imported = ingest_page_labels(spark, lake, ds=ds, path=simulated.export_file)
    return exported, simulated, (imported,)


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
    splits: Sequence[str] = ANNOTATED_SPLITS,
    eval_splits: Sequence[str] = EVALUATION_SPLITS,
    eval_strategy: str = FULL,
    band_index: int = 1,
    max_judgements_per_query: int | None = None,
    max_rounds: int = 64,
    out_root: str | Path | None = None,
    created_at: datetime | None = None,
    labeller: SliceLabeller | None = None,
) -> RoundTripSummary:
    """build tasks -> export -> simulated annotators -> import labels (iso_label: round after
    round until every page is done or `max_rounds`), then the cost table. For the demo.
    `labeller` labels each slice (default: through files; see `SliceLabeller`)."""
    seed = _seed(lake, seed)
    built = build_annotation_tasks(
        spark,
        lake,
        ds=ds,
        strategy=strategy,
        budget=budget,
        seed=seed,
        splits=splits,
        eval_splits=eval_splits,
        eval_strategy=eval_strategy,
        band_index=band_index,
        max_judgements_per_query=max_judgements_per_query,
        created_at=created_at,
    )
    exports: list[Any] = []
    simulations: list[Any] = []
    imports: list[IngestLabelsSummary] = []

    def label(slice_strategy: str, slice_budget: float, round_number: int) -> None:
        exported, simulated, imported = (labeller or _label_slice)(
            spark, lake, ds=ds, strategy=slice_strategy, budget=slice_budget, round_number=round_number,
            out_root=out_root, n_annotators=n_annotators, noise=noise, disagreement=disagreement, seed=seed,
        )  # fmt: skip
        exports.append(exported)
        simulations.append(simulated)
        imports.extend(imported)

    for written in built.slices:
        if written.tasks:
            label(written.strategy, written.budget, written.round)
    iso_rounds: list[IsoLabelRoundSummary] = []
    if strategy == ISO_LABEL:
        for round_number in range(1, max_rounds + 1):
            summary = run_iso_label_round(
                spark,
                lake,
                ds=ds,
                round_number=round_number,
                seed=seed,
                splits=splits,
                max_judgements_per_query=max_judgements_per_query,
                created_at=created_at,
            )
            iso_rounds.append(summary)
            if summary.done:
                break
            label(ISO_LABEL, ISO_LABEL_BUDGET, round_number)
        else:
            log.warning("iso_label stopped after max_rounds=%d with pages still searching", max_rounds)
    cost = annotation_cost(spark, lake, ds=ds, created_at=created_at)
    return RoundTripSummary(
        ds=ds,
        strategy=strategy,
        budget=ISO_LABEL_BUDGET if strategy == ISO_LABEL else budget,
        built=built,
        exports=tuple(exports),
        simulations=tuple(simulations),
        imports=tuple(imports),
        iso_rounds=tuple(iso_rounds),
        cost=tuple(cost),
    )
