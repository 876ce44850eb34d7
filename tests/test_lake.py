"""Lake I/O round trips on the embedded engine, checked through delta-rs too."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from smar.storage.uris import local_path

REJECT_COLUMNS = (
    "ds string, job string, target_table string, source string, row_number long, reason string, raw_payload string"
)


def _rejects(spark, rows):
    return spark.createDataFrame(rows, REJECT_COLUMNS)


def _sorted(frame, *columns):
    return sorted(tuple(row[c] for c in columns) for row in frame.collect())


def test_table_path_follows_layer_and_name(lake, settings):
    assert lake.table_uri("bronze.search_logs") == settings.warehouse + "/bronze/search_logs"
    assert lake.uri("bronze.search_logs") == str(local_path(settings.warehouse) / "bronze" / "search_logs")
    with pytest.raises(ValueError, match="layer.name"):
        lake.table_uri("search_logs")


def test_overwrite_slice_replaces_only_its_partition_and_is_idempotent(spark, lake):
    # Given two days of rejects
    lake.overwrite_slice(
        _rejects(spark, [("2026-11-01", "ingest", "t", "s", 1, "a", "{}")]),
        "bronze.rejects",
        {"ds": "2026-11-01", "job": "ingest"},
    )
    lake.overwrite_slice(
        _rejects(spark, [("2026-11-02", "ingest", "t", "s", 2, "b", "{}")]),
        "bronze.rejects",
        {"ds": "2026-11-02", "job": "ingest"},
    )
    # When day 1 is rewritten twice with new rows
    replacement = _rejects(
        spark, [("2026-11-01", "ingest", "t", "s", 3, "c", "{}"), ("2026-11-01", "ingest", "t", "s", 4, "d", "{}")]
    )
    lake.overwrite_slice(replacement, "bronze.rejects", {"ds": "2026-11-01", "job": "ingest"})
    lake.overwrite_slice(replacement, "bronze.rejects", {"ds": "2026-11-01", "job": "ingest"})
    # Then day 1 holds exactly the replacement and day 2 is untouched
    assert _sorted(lake.read("bronze.rejects"), "ds", "row_number") == [
        ("2026-11-01", 3),
        ("2026-11-01", 4),
        ("2026-11-02", 2),
    ]


def test_overwrite_slice_with_nested_columns_is_idempotent(spark, lake):
    frame = spark.createDataFrame(
        [("2026-11-01", "i1", "image", [0.1, 0.2], "generator"), ("2026-11-01", "w1", "web", None, "generator")],
        "ds string, item_id string, modality string, visual_embedding array<float>, source string",
    )
    for _ in range(2):
        lake.overwrite_slice(frame, "bronze.items", {"ds": "2026-11-01", "source": "generator"})
    rows = {row.item_id: row for row in lake.read("bronze.items").collect()}
    assert set(rows) == {"i1", "w1"}
    assert rows["i1"].visual_embedding == pytest.approx([0.1, 0.2])
    assert rows["w1"].visual_embedding is None


def test_an_empty_rerun_clears_the_slice(spark, lake):
    lake.overwrite_slice(
        _rejects(spark, [("2026-11-01", "ingest", "t", "s", 1, "a", "{}")]),
        "bronze.rejects",
        {"ds": "2026-11-01", "job": "ingest"},
    )
    lake.overwrite_slice(
        spark.createDataFrame([], REJECT_COLUMNS), "bronze.rejects", {"ds": "2026-11-01", "job": "ingest"}
    )
    assert lake.read("bronze.rejects").count() == 0


def test_merge_updates_matches_inserts_new_and_remerge_changes_nothing(spark, lake):
    base = _rejects(spark, [("d", "j", "t", "s", 1, "old", "{}"), ("d", "j", "t", "s", 2, "keep", "{}")])
    lake.append(base, "bronze.rejects")
    update = _rejects(spark, [("d", "j", "t", "s", 1, "new", "{}"), ("d", "j", "t", "s", 3, "added", "{}")])
    lake.merge(update, "bronze.rejects", update_when_changed=["reason"])
    after_first = _sorted(lake.read("bronze.rejects"), "row_number", "reason")
    assert after_first == [(1, "new"), (2, "keep"), (3, "added")]
    lake.merge(update, "bronze.rejects", update_when_changed=["reason"])
    assert _sorted(lake.read("bronze.rejects"), "row_number", "reason") == after_first


def test_read_at_version_and_history(spark, lake):
    lake.append(_rejects(spark, [("d", "j", "t", "s", 1, "a", "{}")]), "bronze.rejects")
    first_version = lake.version("bronze.rejects")
    lake.append(_rejects(spark, [("d", "j", "t", "s", 2, "b", "{}")]), "bronze.rejects")
    assert lake.version("bronze.rejects") == first_version + 1
    assert lake.read("bronze.rejects", version=first_version).count() == 1
    assert lake.read("bronze.rejects").count() == 2
    assert lake.row_count("bronze.rejects", version=first_version) == 1
    operations = [entry["operation"] for entry in lake.history("bronze.rejects")]
    assert operations[0] in ("WRITE", "APPEND") and "CREATE TABLE" in operations


def test_tables_written_by_the_engine_read_back_the_same_with_deltalake(spark, lake):
    when = datetime(2026, 11, 1, 12, tzinfo=UTC)
    frame = _rejects(spark, [("d", "j", "t", "s", 7, "r", '{"a":1}')]).withColumn("rejected_at", F.lit(when))
    lake.append(frame, "bronze.rejects")
    through_delta_rs = DeltaTable(lake.uri("bronze.rejects")).to_pyarrow_table().to_pylist()
    through_engine = [row.asDict() for row in lake.read("bronze.rejects").collect()]
    assert len(through_delta_rs) == len(through_engine) == 1
    for key in ("ds", "job", "target_table", "source", "row_number", "reason", "raw_payload"):
        assert through_delta_rs[0][key] == through_engine[0][key]
    assert through_delta_rs[0]["rejected_at"] == when
    # Shared columns stay nullable so every engine can write the table.
    assert all(field.nullable for field in DeltaTable(lake.uri("bronze.rejects")).schema().fields)


def test_list_tables_reports_versions_and_counts(spark, lake):
    lake.append(_rejects(spark, [("d", "j", "t", "s", 1, "a", "{}")]), "bronze.rejects")
    infos = {info.name: info for info in lake.list_tables()}
    assert infos["bronze.rejects"].exists and infos["bronze.rejects"].row_count == 1
    assert infos["bronze.rejects"].version == lake.version("bronze.rejects")
    assert not infos["bronze.search_logs"].exists and infos["bronze.search_logs"].row_count is None


def test_writing_without_a_required_column_is_a_clear_error(spark, lake):
    with pytest.raises(ValueError, match="required column 'reason' is missing"):
        lake.append(
            spark.createDataFrame([("d", "j", "t", "s")], "ds string, job string, target_table string, source string"),
            "bronze.rejects",
        )


def test_reading_a_missing_table_names_it(lake):
    with pytest.raises(FileNotFoundError, match="bronze.search_logs"):
        lake.read("bronze.search_logs")


def test_rewriting_a_slice_from_the_same_table_keeps_its_rows(spark, lake):
    # Given a table with an array column, When a slice is rewritten from a lazy read of itself,
    # Then the rows survive (the frame is staged before the old slice is deleted).
    frame = spark.createDataFrame(
        [("2026-11-01", f"i{n}", "image", [float(n)], "generator") for n in range(3)],
        "ds string, item_id string, modality string, visual_embedding array<float>, source string",
    )
    lake.overwrite_slice(frame, "bronze.items", {"ds": "2026-11-01", "source": "generator"})
    rewritten = lake.read("bronze.items").withColumn("title", F.lit("new"))
    lake.overwrite_slice(rewritten, "bronze.items", {"ds": "2026-11-01", "source": "generator"})
    rows = lake.read("bronze.items").collect()
    assert sorted(row.item_id for row in rows) == ["i0", "i1", "i2"]
    assert {row.title for row in rows} == {"new"}


def test_an_empty_rewrite_of_a_nested_slice_clears_it(spark, lake):
    frame = spark.createDataFrame(
        [("2026-11-01", "i1", "image", [1.0], "generator")],
        "ds string, item_id string, modality string, visual_embedding array<float>, source string",
    )
    lake.overwrite_slice(frame, "bronze.items", {"ds": "2026-11-01", "source": "generator"})
    lake.overwrite_slice(frame.limit(0), "bronze.items", {"ds": "2026-11-01", "source": "generator"})
    assert lake.read("bronze.items").count() == 0


def test_update_columns_sets_a_value_per_key_within_the_slice_and_commits_nothing_unchanged(spark, lake):
    # Given two days of tasks (nested items) in silver.annotation_tasks
    item = {"item_id": "i", "modality": "web", "title": "t", "body": "b", "single_modal_rank": 1, "display_position": 1}
    rows = [
        {"ds": ds, "task_id": f"{ds}/{n}", "page_id": f"p{n}", "query_id": "q", "query_text": "x", "items": [item],
         "strategy": "top", "round": 0, "budget": 0.2, "status": "open"}
        for ds in ("2026-11-01", "2026-11-02") for n in (1, 2)
    ]  # fmt: skip
    lake.overwrite_slice(rows[:2], "silver.annotation_tasks", {"ds": "2026-11-01"})
    lake.overwrite_slice(rows[2:], "silver.annotation_tasks", {"ds": "2026-11-02"})
    version = lake.version("silver.annotation_tasks")
    ids = [
        {"task_id": "2026-11-01/1", "label_studio_project_id": 7, "label_studio_task_id": 101},
        {"task_id": "2026-11-01/2", "label_studio_project_id": 7, "label_studio_task_id": 102},
        {"task_id": "2026-11-02/1", "label_studio_project_id": 7, "label_studio_task_id": 103},  # outside `where`
        {"task_id": "nowhere", "label_studio_project_id": 7, "label_studio_task_id": 104},  # no such row
    ]
    columns = ["label_studio_project_id", "label_studio_task_id"]
    # When each key's values are set on the day 2026-11-01, twice
    changed = lake.update_columns(ids, "silver.annotation_tasks", columns=columns, where={"ds": "2026-11-01"})
    again = lake.update_columns(ids, "silver.annotation_tasks", columns=columns, where={"ds": "2026-11-01"})
    # Then exactly that day's matching rows changed, in one commit, and the rerun committed nothing
    stored = {row["task_id"]: row for row in lake.read_arrow("silver.annotation_tasks").to_pylist()}
    assert (changed, again) == (2, 0) and lake.version("silver.annotation_tasks") == version + 1
    assert [stored[key]["label_studio_task_id"] for key in sorted(stored)] == [101, 102, None, None]
    assert len(stored) == 4 and stored["2026-11-01/1"]["items"][0]["item_id"] == "i"
