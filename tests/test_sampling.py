"""Bounded query samples (smar.sampling): deterministic, capped per split, independent of how the
rows arrive, and what the trainers read when a cap binds."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest

from smar.config import SmarSettings
from smar.ingest.jobs import run_ingest
from smar.lake import Lakehouse
from smar.sampling import QuerySample, sample_dataset_queries, sample_frame_queries, sample_key, sample_query_ids
from smar.single_modal.jobs import train_single_modal
from smar.splits import query_split
from smar.storage.uris import local_path

QUERIES = [f"q{number:04d}" for number in range(600)]
DS = "2026-11-01"


def _batches(query_ids: list[str], *, rows_per_batch: int, repeats: int = 3, seed: int = 0) -> list[pa.RecordBatch]:
    rows = [query for query in query_ids for _ in range(repeats)]
    random.Random(seed).shuffle(rows)
    return [
        pa.RecordBatch.from_pydict({"query_id": rows[start : start + rows_per_batch]})
        for start in range(0, len(rows), rows_per_batch)
    ]


def test_a_cap_above_the_queries_keeps_every_query_of_the_splits():
    sample = sample_query_ids(_batches(QUERIES, rows_per_batch=97), splits=["test", "page_train"], max_per_split=10_000)
    for split in ("test", "page_train"):
        assert list(sample.query_ids[split]) == sorted(q for q in QUERIES if query_split(q) == split)
    assert sample.capped == ()
    assert set(sample.ids()) == {q for q in QUERIES if query_split(q) in ("test", "page_train")}


def test_a_binding_cap_keeps_the_smallest_keys_whatever_the_batch_order():
    cap = 25
    expected = sorted(sorted((q for q in QUERIES if query_split(q) == "test"), key=sample_key)[:cap])
    results = {
        sample_query_ids(
            _batches(QUERIES, rows_per_batch=size, seed=seed), splits=["test"], max_per_split=cap
        ).query_ids["test"]
        for size, seed in ((7, 0), (50, 1), (10_000, 2))
    }
    assert results == {tuple(expected)}
    capped = sample_query_ids(_batches(QUERIES, rows_per_batch=13), splits=["test"], max_per_split=cap)
    assert capped.capped == ("test",)
    assert capped.describe() == {"queries": {"test": cap}, "capped": ["test"]}


def test_nulls_and_other_splits_are_ignored_and_a_zero_cap_is_refused():
    batch = pa.RecordBatch.from_pydict({"query_id": [None, *QUERIES[:50]]})
    sample = sample_query_ids([batch], splits=["single_modal_train"], max_per_split=1_000)
    assert all(query_split(q) == "single_modal_train" for q in sample.ids())
    assert isinstance(sample, QuerySample)
    with pytest.raises(ValueError, match="at least 1"):
        sample_query_ids([batch], splits=["test"], max_per_split=0)


def _tiny_day(spark, tmp_path, **caps: int) -> Lakehouse:
    """One tiny generated day (seed 5) ingested into a fresh warehouse whose settings carry `caps`."""
    settings = SmarSettings(
        warehouse=tmp_path / "warehouse", artifacts=tmp_path / "artifacts", reports=tmp_path / "reports", **caps
    )
    lake = Lakehouse(spark, settings)
    run_ingest(spark, lake, ds=DS, source="generator", size="tiny", seed=5, run_quality_checks=False)
    return lake


def test_single_modal_training_reads_only_the_capped_sample(spark, tmp_path):
    lake, ds = _tiny_day(spark, tmp_path, max_training_queries=6), DS
    summary = train_single_modal(lake, ds_list=[ds], epochs=1, seed=0)
    metadata = json.loads((local_path(summary.artifact_dir) / "web" / "metadata.json").read_text())
    recorded = metadata["query_split"]["sample"]
    # The tiny day (seed 5) has 8 single_modal_train queries and fewer test queries than that.
    full = sample_dataset_queries(
        lake.dataset("bronze.search_logs"),
        ds_values=[ds],
        splits=("single_modal_train", "test"),
        max_per_split=1_000,
        what="test",
    )
    assert len(full.query_ids["single_modal_train"]) > 6
    assert recorded["queries"]["single_modal_train"] == 6
    assert "single_modal_train" in recorded["capped"]
    assert recorded["queries"]["test"] == min(6, len(full.query_ids["test"]))
    assert 0 < metadata["validation_metrics"]["test_queries"] <= recorded["queries"]["test"]


def test_spark_keeps_the_same_sample_as_the_arrow_scan(spark):
    frame = spark.createDataFrame([(query,) for query in QUERIES for _ in range(2)], "query_id string")
    kept, total = sample_frame_queries(frame, max_queries=40)
    assert total == len(QUERIES)
    # The Arrow scan keeps per split; over one split the two rules must pick the same queries.
    assert kept == sorted(sorted(QUERIES, key=sample_key)[:40])
    test_queries = [query for query in QUERIES if query_split(query) == "test"]
    test_frame = spark.createDataFrame([(query,) for query in test_queries], "query_id string")
    arrow = sample_query_ids(_batches(QUERIES, rows_per_batch=101), splits=["test"], max_per_split=20)
    assert sample_frame_queries(test_frame, max_queries=20)[0] == list(arrow.query_ids["test"])
    assert sample_frame_queries(frame, max_queries=len(QUERIES)) == (None, len(QUERIES))


def test_a_replay_over_the_cap_evaluates_the_sample_and_says_so(spark, tmp_path):
    from smar.replay.jobs import replay_config, replay_evaluate

    lake, ds = _tiny_day(spark, tmp_path, max_replay_queries=2), DS
    summary = replay_evaluate(
        spark, lake, control="production", candidate="production", ds_start=ds, ds_end=ds,
        config=replay_config(n_resamples=200),
    )  # fmt: skip
    # The tiny day has 3 test queries: two are replayed, and the report says so.
    assert summary.n_queries == 2
    report = local_path(summary.report_markdown).read_text()
    assert "a hash sample of 2 of the 3 queries in scope" in report and "SMAR_MAX_REPLAY_QUERIES" in report
