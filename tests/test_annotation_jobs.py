"""Step 2 as jobs: budgeted task rows, the Label Studio round trip, iso-label rounds, rejects and
the cost table, on the tiny generator day with stand-in single-modal scores."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from smar.annotation import jobs
from smar.annotation.iso_label import judgement_bound
from smar.annotation.label_studio import LabelImportError, annotations_export
from smar.annotation.strategies import label_count
from smar.errors import InputRefused
from smar.storage.uris import local_path
from tests.fixtures_scores import write_standin_scores

DS = "2026-11-01"
FIXED_TIME = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def tiny_day(tmp_path_factory, spark) -> Path:
    """A warehouse holding the tiny generator day in bronze/truth plus stand-in scores, built once."""
    from smar.config import SmarSettings
    from smar.ingest.jobs import run_ingest
    from smar.lake import Lakehouse

    root = tmp_path_factory.mktemp("tiny_day")
    lake = Lakehouse(spark, SmarSettings(warehouse=root / "warehouse", artifacts=root / "a", reports=root / "r"))
    run_ingest(spark, lake, ds=DS, source="generator", size="tiny", seed=5, run_quality_checks=False)
    write_standin_scores(spark, lake, DS)
    return root / "warehouse"


@pytest.fixture()
def day_lake(tiny_day, lake):
    """The per-test lake, started from a copy of the tiny day (Delta logs hold relative paths)."""
    shutil.copytree(tiny_day, local_path(lake.settings.warehouse))
    return lake


def _truth(lake) -> dict[tuple[str, str], int]:
    table = lake.read_arrow("truth.relevance").to_pylist()
    return {(row["query_id"], row["item_id"]): row["grade"] for row in table}


def _tasks(lake, **where) -> list[dict]:
    frame = lake.read("silver.annotation_tasks")
    for column, value in where.items():
        frame = frame.where(F.col(column) == value)
    return [row.asDict(recursive=True) for row in frame.orderBy("task_id").collect()]


def _candidates_by_modality(lake, page_id: str) -> Counter:
    rows = lake.read("silver.single_modal_scores").where(F.col("request_id") == page_id).collect()
    return Counter(row["modality"] for row in rows)


# -- budget strategies ------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["top", "slice", "random", "stratified"])
def test_each_strategy_honours_the_budget_on_task_rows(spark, day_lake, strategy):
    # Given the tiny day with scores, When tasks are built at budget 0.3 (plus the full eval set)
    summary = jobs.build_annotation_tasks(spark, day_lake, ds=DS, strategy=strategy, budget=0.3, seed=3)
    tasks = _tasks(day_lake, strategy=strategy)
    assert tasks and summary.slices[0].tasks == len(tasks)
    for task in tasks:
        # Then per modality: round-half-up(p * n), at least 1, never more than n
        candidates = _candidates_by_modality(day_lake, task["page_id"])
        shown = Counter(item["modality"] for item in task["items"])
        assert set(shown) == set(candidates)
        for modality, n_items in candidates.items():
            expected = min(n_items, max(1, int(0.3 * n_items + 0.5)))
            assert shown[modality] == expected == label_count(n_items, 0.3)
        assert task["n_candidates"] == sum(candidates.values())
        ranks = defaultdict(list)
        for item in task["items"]:
            ranks[item["modality"]].append(item["single_modal_rank"])
        if strategy == "top":  # And top takes exactly the head of each ranked list
            assert all(sorted(r) == list(range(1, len(r) + 1)) for r in ranks.values())
        if strategy == "slice":  # And slice takes the second band, clamped to the list's end
            for modality, r in ranks.items():
                count, n_items = len(r), candidates[modality]
                start = min(count, n_items - count) + 1
                assert sorted(r) == list(range(start, start + count))
    # And the test split got every candidate, as the fully labelled evaluation set
    full = _tasks(day_lake, strategy="full")
    assert full and all(len(task["items"]) == task["n_candidates"] for task in full)
    assert {task["page_id"] for task in full}.isdisjoint({task["page_id"] for task in tasks})


def test_shown_order_is_recorded_interleaved_and_reproducible(spark, day_lake):
    # Given random-strategy tasks built twice with the same seed and one other seed
    jobs.build_annotation_tasks(
        spark, day_lake, ds=DS, strategy="random", budget=0.5, seed=11, eval_splits=(), created_at=FIXED_TIME
    )
    first = _tasks(day_lake)
    version = day_lake.version("silver.annotation_tasks")
    jobs.build_annotation_tasks(
        spark, day_lake, ds=DS, strategy="random", budget=0.5, seed=11, eval_splits=(), created_at=FIXED_TIME
    )
    again = _tasks(day_lake)
    # Then the rerun replaced its slice with identical rows (it commits new versions, same rows)
    assert again == first and day_lake.version("silver.annotation_tasks") > version
    # And display positions are 1..n in stored order
    for task in first:
        assert [item["display_position"] for item in task["items"]] == list(range(1, len(task["items"]) + 1))

    # And the order is interleaved: some page does not show its modalities as contiguous blocks
    def grouped(task):
        modalities = [item["modality"] for item in task["items"]]
        blocks = [m for i, m in enumerate(modalities) if i == 0 or modalities[i - 1] != m]
        return len(blocks) == len(set(modalities))

    assert not all(grouped(task) for task in first)

    # And neither is it the single-modal rank order within each modality everywhere
    def rank_sorted(task):
        by_modality = defaultdict(list)
        for item in task["items"]:
            by_modality[item["modality"]].append(item["single_modal_rank"])
        return all(r == sorted(r) for r in by_modality.values())

    assert not all(rank_sorted(task) for task in first)
    # When another seed is used, the recorded order changes somewhere
    jobs.build_annotation_tasks(
        spark, day_lake, ds=DS, strategy="random", budget=0.5, seed=12, eval_splits=(), created_at=FIXED_TIME
    )
    assert _tasks(day_lake) != first


# -- the round trip -----------------------------------------------------------------------------------
def test_round_trip_reproduces_truth_grades_exactly(spark, day_lake):
    # Given top tasks, When exported, graded by two noiseless simulated annotators and imported
    result = jobs.run_annotation_round_trip(spark, day_lake, ds=DS, strategy="top", budget=0.3, seed=4, n_annotators=2)
    truth = _truth(day_lake)
    labels = day_lake.read_arrow("silver.page_labels").to_pylist()
    shown = {(task["task_id"], item["item_id"]) for task in _tasks(day_lake) for item in task["items"]}
    # Then every shown item has one label per annotator, equal to the hidden grade
    assert len(labels) == 2 * len(shown) == result.labels_accepted and result.labels_rejected == 0
    assert {(row["task_id"], row["item_id"]) for row in labels} == shown
    assert all(row["grade"] == truth[(row["query_id"], row["item_id"])] for row in labels)
    # And the consensus view has mean = truth, two annotators each
    consensus = jobs.page_label_consensus(day_lake, ds=DS).collect()
    assert len(consensus) == len(shown)
    assert all(
        row["mean_grade"] == truth[(row["query_id"], row["item_id"])] and row["n_annotators"] == 2 for row in consensus
    )
    # And the export folder holds the Label Studio tasks, the labeling config and the CSV
    top_export = next(export for export in result.exports if "top" in local_path(export.folder).name)
    assert "<Choices" in local_path(top_export.labeling_config).read_text()
    assert len(json.loads(local_path(top_export.tasks_json).read_text())) == top_export.tasks
    with local_path(top_export.tasks_csv).open() as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == top_export.items
    # And every task is now labelled
    assert {task["status"] for task in _tasks(day_lake)} == {"labelled"}


def test_consensus_averages_disagreeing_annotators(spark, day_lake):
    # Given two annotators where the second always moves the (true) grade by one step
    jobs.run_annotation_round_trip(
        spark, day_lake, ds=DS, strategy="top", budget=0.2, seed=4, eval_splits=(), disagreement=1.0
    )
    truth = _truth(day_lake)
    # When the consensus view aggregates them
    consensus = jobs.page_label_consensus(day_lake, ds=DS).collect()
    # Then each item has two grades one apart, and their mean is half a step from the truth
    assert consensus and all(row["n_annotators"] == 2 and row["max_grade"] - row["min_grade"] == 1 for row in consensus)
    assert all(abs(row["mean_grade"] - truth[(row["query_id"], row["item_id"])]) == 0.5 for row in consensus)


def test_reimport_is_idempotent_and_a_changed_grade_wins_with_history(spark, day_lake):
    # Given a completed round trip
    result = jobs.run_annotation_round_trip(
        spark, day_lake, ds=DS, strategy="stratified", budget=0.2, seed=4, eval_splits=()
    )
    export_file = local_path(result.simulations[0].export_file)
    version = day_lake.version("silver.page_labels")
    tasks_version = day_lake.version("silver.annotation_tasks")
    before = sorted(
        day_lake.read_arrow("silver.page_labels").to_pylist(),
        key=lambda r: (r["page_id"], r["item_id"], r["annotator"]),
    )
    # When the same file is imported again
    again = jobs.ingest_page_labels(spark, day_lake, ds=DS, path=export_file)
    # Then nothing changes: no insert or update, no new Delta version, identical rows
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, result.imports[0].accepted)
    assert day_lake.version("silver.page_labels") == version
    assert day_lake.version("silver.annotation_tasks") == tasks_version
    after = sorted(
        day_lake.read_arrow("silver.page_labels").to_pylist(),
        key=lambda r: (r["page_id"], r["item_id"], r["annotator"]),
    )
    assert after == before
    # When one grade is changed in a later export
    export = json.loads(export_file.read_text())
    choice = export[0]["annotations"][0]["result"][0]["value"]["choices"]
    old_grade = int(choice[0])
    choice[0] = str((old_grade + 2) % 5)
    changed_file = export_file.with_name("corrected.json")
    changed_file.write_text(json.dumps(export))
    changed = jobs.ingest_page_labels(spark, day_lake, ds=DS, path=changed_file)
    # Then exactly that row is updated, the latest value wins and the old one stays in history
    assert (changed.inserted, changed.updated) == (0, 1)
    item_id = export[0]["data"]["items"][0]["item_id"]
    annotator = export[0]["annotations"][0]["completed_by"]["email"]

    def grade_at(version_number=None):
        rows = day_lake.read_arrow("silver.page_labels", version=version_number).to_pylist()
        return next(
            r["grade"]
            for r in rows
            if r["item_id"] == item_id and r["annotator"] == annotator and r["task_id"] == export[0]["data"]["task_id"]
        )

    assert grade_at() == (old_grade + 2) % 5 and grade_at(version) == old_grade
    assert day_lake.version("silver.page_labels") == version + 1


def test_a_capped_export_streams_the_first_tasks_and_marks_only_them_exported(spark, day_lake):
    # Given the day's top tasks
    jobs.build_annotation_tasks(spark, day_lake, ds=DS, strategy="top", budget=0.2, seed=1, eval_splits=())
    all_ids = sorted(
        row["task_id"] for row in day_lake.read("silver.annotation_tasks").where(F.col("strategy") == "top").collect()
    )
    assert len(all_ids) > 3
    # When at most 3 are exported
    exported = jobs.export_annotation_tasks(spark, day_lake, ds=DS, strategy="top", max_tasks=3)
    # Then the files hold the first 3 by task_id, as JSON and as CSV, and only those are exported
    tasks = json.loads(local_path(exported.tasks_json).read_text())
    assert [task["data"]["task_id"] for task in tasks] == all_ids[:3] and exported.tasks == 3
    with local_path(exported.tasks_csv).open() as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == exported.items and {line["task_id"] for line in lines} == set(all_ids[:3])
    status = {
        row["task_id"]: row["status"]
        for row in day_lake.read("silver.annotation_tasks").where(F.col("strategy") == "top").collect()
    }
    assert {task for task, value in status.items() if value == "exported"} == set(all_ids[:3])
    with pytest.raises(InputRefused, match="at least 1"):
        jobs.export_annotation_tasks(spark, day_lake, ds=DS, strategy="top", max_tasks=0)


# -- rejects and malformed input ------------------------------------------------------------------------
def test_each_reject_class_goes_to_rejects_with_a_reason(spark, day_lake, tmp_path):
    # Given exported top tasks and an export with one good task and one of each bad kind
    jobs.build_annotation_tasks(spark, day_lake, ds=DS, strategy="top", budget=0.2, seed=1, eval_splits=())
    exported = jobs.export_annotation_tasks(spark, day_lake, ds=DS, strategy="top")
    tasks = json.loads(local_path(exported.tasks_json).read_text())[:4]
    good, unknown_task, unknown_item, out_of_range = (json.loads(json.dumps(task)) for task in tasks)
    unknown_task["data"]["task_id"] = "no-such-task"
    unknown_item["data"]["items"][0]["item_id"] = "no-such-item"
    grades = {}
    for task in (good, unknown_task, unknown_item, out_of_range):
        for item in task["data"]["items"][:1]:
            grades[(task["data"]["task_id"], item["item_id"], "ann@example.org")] = 2
    export = annotations_export([good, unknown_task, unknown_item, out_of_range], grades)
    export[3]["annotations"][0]["result"][0]["value"]["choices"] = ["7"]
    missing = json.loads(json.dumps(export[0]))
    del missing["annotations"][0]["completed_by"]
    export.append(missing)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(export))
    # When imported (twice: the rerun must replace its rejects, not add to them); the file is
    # mostly bad on purpose, so the reject threshold is lifted
    summary = jobs.ingest_page_labels(spark, day_lake, ds=DS, path=path, max_reject_fraction=1.0)
    rejects_version = day_lake.version("bronze.rejects")
    summary = jobs.ingest_page_labels(spark, day_lake, ds=DS, path=path, max_reject_fraction=1.0)
    assert day_lake.version("bronze.rejects") == rejects_version  # the same rejects: no new commit
    # Then only the good label lands and each bad class is refused with its reason
    assert summary.accepted == 1 and summary.rejected == 4
    rejects = (
        day_lake.read("bronze.rejects")
        .where((F.col("job") == "ingest_page_labels") & (F.col("source") == str(path)))
        .collect()
    )
    reasons = sorted(row["reason"] for row in rejects)
    assert len(rejects) == 4
    assert any(r.startswith("unknown task no-such-task") for r in reasons)
    assert any(r.startswith("unknown item no-such-item") for r in reasons)
    assert any("out of range" in r for r in reasons)
    assert any("missing field" in r and "completed_by" in r for r in reasons)
    assert all(row["target_table"] == "silver.page_labels" and row["raw_payload"] for row in rejects)
    assert len(day_lake.read_arrow("silver.page_labels").to_pylist()) == 1


def test_csv_import_refuses_missing_fields_unknown_items_and_bad_grades(spark, day_lake, tmp_path):
    # Given the exported CSV, filled in by hand with one good line and three bad ones
    jobs.build_annotation_tasks(spark, day_lake, ds=DS, strategy="top", budget=0.2, seed=1, eval_splits=())
    exported = jobs.export_annotation_tasks(spark, day_lake, ds=DS, strategy="top")
    with local_path(exported.tasks_csv).open() as handle:
        lines = list(csv.DictReader(handle))
    lines[0].update(grade="3", annotator="a")
    lines[1].update(grade="", annotator="a")
    lines[2].update(grade="5", annotator="a")
    lines[3].update(item_id="no-such-item", grade="1", annotator="a")
    path = tmp_path / "filled.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerows(lines[:4])
    # When imported (three bad lines of four on purpose: the reject threshold is lifted)
    summary = jobs.ingest_page_labels(spark, day_lake, ds=DS, path=path, max_reject_fraction=1.0)
    # Then one label lands and each bad line is refused at its own row number
    assert summary.accepted == 1 and summary.rejected == 3
    rejects = {
        row["row_number"]: row["reason"]
        for row in day_lake.read("bronze.rejects").where(F.col("source") == str(path)).collect()
    }
    assert rejects[1].startswith("missing field grade")
    assert "out of range" in rejects[2]
    assert rejects[3].startswith("unknown item no-such-item")
    label = day_lake.read_arrow("silver.page_labels").to_pylist()
    assert [(row["item_id"], row["grade"]) for row in label] == [(lines[0]["item_id"], 3)]


def test_malformed_json_fails_clearly_and_writes_nothing(spark, day_lake, tmp_path):
    # Given tasks and a truncated export file
    jobs.build_annotation_tasks(spark, day_lake, ds=DS, strategy="top", budget=0.2, seed=1, eval_splits=())
    rejects_version = day_lake.version("bronze.rejects") if day_lake.exists("bronze.rejects") else None
    tasks_version = day_lake.version("silver.annotation_tasks")
    path = tmp_path / "broken.json"
    path.write_text('[{"id": 1, "data": {"task_id": "x"}, "annotations": [')
    # When imported, Then it fails naming the file and the JSON problem
    with pytest.raises(
        LabelImportError, match=r"broken\.json: Label Studio export is not valid JSON.*nothing was imported"
    ):
        jobs.ingest_page_labels(spark, day_lake, ds=DS, path=path)
    # And nothing was written anywhere
    assert not day_lake.exists("silver.page_labels")
    assert (day_lake.version("bronze.rejects") if day_lake.exists("bronze.rejects") else None) == rejects_version
    assert day_lake.version("silver.annotation_tasks") == tasks_version


# -- iso-label rounds -----------------------------------------------------------------------------------
def _write_oracle_scores(spark, lake) -> None:
    """Scores that follow the hidden grade (ties by item id): every ranked list is monotone."""
    logs = lake.read("bronze.search_logs").where(F.col("ds") == DS)
    truth = lake.read("truth.relevance").select("query_id", "item_id", "grade")
    order = Window.partitionBy("request_id", "modality").orderBy(F.col("grade").desc(), F.col("item_id").asc())
    scored = logs.join(truth, on=["query_id", "item_id"], how="inner").select(
        "ds", "request_id", "query_id", "item_id", "modality", "position",
        F.col("grade").cast("double").alias("score"),
        F.row_number().over(order).alias("rank_in_modality"),
        F.lit(0.5).alias("score_percentile_in_modality"),
        F.lit("oracle").alias("model_version"),
    )  # fmt: skip
    lake.overwrite_slice(scored, "silver.single_modal_scores", {"ds": DS})


def test_iso_label_rounds_find_true_boundaries_on_monotone_lists(spark, day_lake):
    # Given rankings that are monotone in the hidden grade and a noiseless simulated annotator
    _write_oracle_scores(spark, day_lake)
    # When iso-label rounds run to completion through the real export/import path
    result = jobs.run_annotation_round_trip(spark, day_lake, ds=DS, strategy="iso_label", seed=2, eval_splits=())
    # Then the last round has nothing left to ask, every page is done, with no inconsistency
    assert result.iso_rounds and result.iso_rounds[-1].done
    assert result.iso_rounds[-1].pages_done == result.iso_rounds[-1].pages > 0
    assert result.iso_rounds[-1].inconsistencies == 0
    # And every anchor sits on the true boundary: (items graded >= g) in that modality
    truth = _truth(day_lake)
    scores = day_lake.read("silver.single_modal_scores").collect()
    grades_by_list = defaultdict(list)
    for row in scores:
        grades_by_list[(row["request_id"], row["modality"])].append(truth[(row["query_id"], row["item_id"])])
    anchors = day_lake.read("silver.iso_label_anchors").collect()
    pages = {task["page_id"] for task in _tasks(day_lake, strategy="iso_label")}
    assert {row["page_id"] for row in anchors} == pages
    for row in anchors:
        grades = grades_by_list[(row["page_id"], row["modality"])]
        assert row["boundary_position"] == sum(grade >= row["grade_boundary"] for grade in grades)
        if row["item_id"] is not None:
            assert row["judged_grade"] == truth[(row["query_id"], row["item_id"])]
            assert (row["judged_grade"] >= row["grade_boundary"]) == (row["side"] == "above")
        # And within the judgement budget: at most ceil(log2(n + 1)) per boundary of the modality
        assert row["judgements_used"] <= min(len(grades), 4 * judgement_bound(len(grades)))
    # And each page x modality x boundary has both sides recorded
    sides = Counter((row["page_id"], row["modality"], row["grade_boundary"]) for row in anchors)
    assert set(sides.values()) == {2}
    # And the cost table counts every iso-label item judged, below full annotation
    iso_cost = next(row for row in result.cost if row.strategy == "iso_label")
    judged = {
        (task["page_id"], item["item_id"]) for task in _tasks(day_lake, strategy="iso_label") for item in task["items"]
    }
    assert iso_cost.items_labelled == len(judged) < iso_cost.full_annotation_items


def test_iso_label_rounds_terminate_on_noisy_grades_under_a_cap(spark, day_lake):
    # Given the stand-in (non-monotone) rankings, noisy annotators and a cap of 6 judgements/query
    result = jobs.run_annotation_round_trip(
        spark, day_lake, ds=DS, strategy="iso_label", seed=2, eval_splits=(),
        noise=0.3, disagreement=0.3, max_judgements_per_query=6,
    )  # fmt: skip
    # Then the rounds stop by themselves, and no page was asked more than the cap
    assert result.iso_rounds[-1].done and len(result.iso_rounds) <= 6
    judged = Counter(task["page_id"] for task in _tasks(day_lake, strategy="iso_label") for _ in task["items"])
    assert judged and max(judged.values()) <= 6
    # And a round whose predecessor is missing is refused
    with pytest.raises(ValueError, match="run that round first"):
        jobs.run_iso_label_round(spark, day_lake, ds=DS, round_number=len(result.iso_rounds) + 5)


# -- cost -------------------------------------------------------------------------------------------------
def test_annotation_cost_counts_items_and_the_full_counterfactual(spark, day_lake):
    # Given top tasks at 0.2 and the full evaluation set, unlabelled
    jobs.build_annotation_tasks(spark, day_lake, ds=DS, strategy="top", budget=0.2, seed=1)
    tasks = _tasks(day_lake)
    # When the cost table is computed (twice: the day's slice is replaced)
    jobs.annotation_cost(spark, day_lake, ds=DS)
    rows = jobs.annotation_cost(spark, day_lake, ds=DS)
    # Then per strategy: items = shown pairs, full = all candidates of the same pages
    by_strategy = {row.strategy: row for row in rows}
    for strategy in ("top", "full"):
        mine = [task for task in tasks if task["strategy"] == strategy]
        items = sum(len(task["items"]) for task in mine)
        full = sum(task["n_candidates"] for task in mine)
        row = by_strategy[strategy]
        assert (row.n_queries, row.items_labelled, row.full_annotation_items) == (len(mine), items, full)
        assert row.fraction_of_full == pytest.approx(items / full)
        assert row.judgements_per_query == pytest.approx(items / len(mine))
        assert row.labels_received == 0 and row.labels_per_item is None
    assert by_strategy["full"].fraction_of_full == 1.0 and by_strategy["top"].fraction_of_full < 0.5
    stored = day_lake.read("gold.annotation_cost").collect()
    assert sorted((row["strategy"], row["items_labelled"]) for row in stored) == sorted(
        (row.strategy, row.items_labelled) for row in rows
    )


# -- the newest grade wins, whatever the order of the files ---------------------------------------------
def _one_label_export(task: dict, grade: int, annotated_at: str) -> list[dict]:
    item = task["data"]["items"][0]
    export = annotations_export([task], {(task["data"]["task_id"], item["item_id"], "ann@example.org"): grade})
    export[0]["annotations"][0]["updated_at"] = annotated_at
    return export


def test_an_older_export_imported_later_does_not_overwrite_a_newer_grade(spark, day_lake, tmp_path):
    jobs.build_annotation_tasks(spark, day_lake, ds=DS, strategy="top", budget=0.2, seed=1, eval_splits=())
    exported = jobs.export_annotation_tasks(spark, day_lake, ds=DS, strategy="top")
    task = json.loads(local_path(exported.tasks_json).read_text())[0]
    newer, older = tmp_path / "newer.json", tmp_path / "older.json"
    newer.write_text(json.dumps(_one_label_export(task, 3, "2026-11-03T10:00:00Z")))
    older.write_text(json.dumps(_one_label_export(task, 1, "1970-01-01T00:00:00Z")))
    # When the newer export is imported first and the stale one after it
    jobs.ingest_page_labels(spark, day_lake, ds=DS, path=newer)
    version = day_lake.version("silver.page_labels")
    stale = jobs.ingest_page_labels(spark, day_lake, ds=DS, path=older)
    # Then the newer grade stays, the stale one is counted and nothing is committed
    (row,) = day_lake.read_arrow("silver.page_labels").to_pylist()
    assert row["grade"] == 3
    assert (stale.stale, stale.updated, stale.inserted) == (1, 0, 0)
    assert day_lake.version("silver.page_labels") == version


def test_a_csv_with_a_byte_order_mark_and_repeated_grades_keeps_the_last_one(spark, day_lake, tmp_path):
    jobs.build_annotation_tasks(spark, day_lake, ds=DS, strategy="top", budget=0.2, seed=1, eval_splits=())
    exported = jobs.export_annotation_tasks(spark, day_lake, ds=DS, strategy="top")
    with local_path(exported.tasks_csv).open() as handle:
        first = next(csv.DictReader(handle))
    # Given a spreadsheet export: a BOM, and the same item graded twice by one annotator
    lines = [
        "task_id,item_id,grade,annotator",
        *(f"{first['task_id']},{first['item_id']},{grade},a" for grade in (1, 4)),
    ]
    path = tmp_path / "labels.csv"
    path.write_bytes("\ufeff".encode() + "\n".join(lines).encode() + b"\n")
    # When imported
    summary = jobs.ingest_page_labels(spark, day_lake, ds=DS, path=path)
    # Then the header is read, the later grade wins and the earlier is reported as superseded
    assert (summary.accepted, summary.superseded_in_file, summary.rejected) == (1, 1, 0)
    (row,) = day_lake.read_arrow("silver.page_labels").to_pylist()
    assert row["grade"] == 4


def test_a_label_file_over_the_reject_threshold_writes_only_the_rejects(spark, day_lake, tmp_path):
    from smar.errors import InputRefused

    jobs.build_annotation_tasks(spark, day_lake, ds=DS, strategy="top", budget=0.2, seed=1, eval_splits=())
    path = tmp_path / "wrong-day.csv"
    path.write_text("task_id,item_id,grade,annotator\n" + "".join(f"no-task-{i},x,2,a\n" for i in range(5)))
    with pytest.raises(InputRefused, match=r"5/5 rows refused"):
        jobs.ingest_page_labels(spark, day_lake, ds=DS, path=path)
    assert not day_lake.exists("silver.page_labels")
    assert day_lake.read("bronze.rejects").where(F.col("source") == str(path)).count() == 5
