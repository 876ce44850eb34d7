"""Ingest: every class of bad input is refused with its reason; nothing is dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smar.errors import IngestRejected, SourceError
from smar.ingest.jobs import run_ingest, write_generated_files

DS = "2026-11-01"


def _impression(**overrides):
    row = {
        "ds": DS,
        "request_id": "r1",
        "query_id": "q1",
        "query_text": "tea",
        "user_id": "u1",
        "request_ts": "2026-11-01T10:00:00Z",
        "item_id": "w1",
        "modality": "web",
        "position": 1,
        "production_score": 12.5,
        "clicked": 1,
        "dwell_seconds": 30.0,
        "source": "file",
    }
    row.update(overrides)
    return row


def _write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture()
def bad_logs(tmp_path: Path) -> Path:
    good = [json.dumps(_impression(request_id=f"r{i}", position=1)).encode() for i in range(4)]
    missing = _impression(request_id="m1")
    del missing["query_id"]
    lines = good + [
        json.dumps(missing).encode(),  # 4 missing column
        json.dumps(_impression(request_id="t1", position="first")).encode(),  # 5 wrong type
        json.dumps(_impression(request_id=None)).encode(),  # 6 null key
        json.dumps(_impression(request_id="r0", position=1)).encode(),  # 7 duplicate key
        json.dumps(_impression(request_id="x1", modality="audio")).encode(),  # 8 unknown modality
        json.dumps(_impression(request_id="x2", dwell_seconds=-3.0)).encode(),  # 9 negative dwell
        json.dumps(_impression(request_id="x3", clicked=2)).encode(),  # 10 click not 0/1
        b'{"ds": "2026-11-01", "request_id": "broken"',  # 11 malformed JSON
        b'{"ds": "2026-11-01", "query_text": "caf\xe9"}',  # 12 undecodable text
        json.dumps(_impression(request_id="x4", ds="2026-10-31")).encode(),  # 13 other day
    ]
    return _write_lines(tmp_path / "search_logs.jsonl", lines)


def _rejects_by_row(lake) -> dict[int, str]:
    return {row.row_number: row.reason for row in lake.read("bronze.rejects").collect()}


def test_every_reject_class_lands_in_rejects_with_its_reason(spark, lake, bad_logs):
    results = run_ingest(
        spark,
        lake,
        ds=DS,
        source="files",
        path=bad_logs,
        table="bronze.search_logs",
        max_reject_fraction=1.0,
        run_quality_checks=False,
    )
    reasons = _rejects_by_row(lake)
    assert "missing column(s): query_id" in reasons[4]
    assert "column 'position': value 'first' is not a valid int" in reasons[5]
    assert "column 'request_id' is null but required" in reasons[6]
    assert "duplicate key (request_id, position) = (r0, 1), first seen at row 0" in reasons[7]
    assert "column 'modality': value 'audio' not in [web, image, video, answer]" in reasons[8]
    assert "column 'dwell_seconds': value -3.0 below minimum 0" in reasons[9]
    assert "column 'clicked': value '2' not in [0, 1]" in reasons[10]
    assert reasons[11].startswith("malformed JSON on line 12")
    assert reasons[12].startswith("undecodable text: invalid UTF-8")
    assert "row is for '2026-10-31' but this run ingests '2026-11-01'" in reasons[13]
    assert sorted(reasons) == list(range(4, 14))
    # Nothing dropped: accepted + rejected == landed, and the raw payload is kept.
    (result,) = results
    assert (result.landed, result.accepted, result.rejected) == (14, 4, 10)
    assert lake.read("bronze.search_logs").count() == 4
    payloads = {row.row_number: row.raw_payload for row in lake.read("bronze.rejects").collect()}
    assert '"audio"' in payloads[8] and "broken" in payloads[11]


def test_over_the_threshold_only_rejects_are_written_and_the_run_fails(spark, lake, bad_logs):
    with pytest.raises(IngestRejected, match=r"reject fraction above 5.0%.*bronze.search_logs: 10/14"):
        run_ingest(
            spark,
            lake,
            ds=DS,
            source="files",
            path=bad_logs,
            table="bronze.search_logs",
            max_reject_fraction=0.05,
            run_quality_checks=False,
        )
    assert lake.read("bronze.rejects").count() == 10
    assert not lake.exists("bronze.search_logs")


def test_a_parquet_file_missing_a_required_column_is_refused_row_by_row(spark, lake, tmp_path):
    rows = [_impression(request_id=f"r{i}") for i in range(3)]
    for row in rows:
        del row["modality"]
        del row["request_ts"]
    path = tmp_path / "search_logs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(IngestRejected):
        run_ingest(spark, lake, ds=DS, source="files", path=path, table="bronze.search_logs", run_quality_checks=False)
    reasons = set(_rejects_by_row(lake).values())
    assert reasons == {"missing column(s): modality"}


def test_rerunning_the_same_day_gives_the_same_tables(spark, lake, tmp_path):
    raw = tmp_path / "raw"
    write_generated_files(DS, raw, size="tiny", seed=11, file_format="jsonl")
    snapshots = []
    for _ in range(2):
        run_ingest(spark, lake, ds=DS, source="files", path=raw, run_quality_checks=False)
        snapshots.append(
            {
                name: sorted(map(str, lake.read(name).drop("rejected_at").collect()))
                for name in ("bronze.search_logs", "bronze.items", "bronze.users", "truth.relevance", "bronze.rejects")
            }
        )
    assert snapshots[0] == snapshots[1]
    assert len(snapshots[0]["bronze.search_logs"]) == 900
    assert snapshots[0]["bronze.rejects"] == []


def test_generator_source_round_trips_exactly(spark, lake):
    from smar.ingest.generator import generate_day

    run_ingest(spark, lake, ds=DS, source="generator", size="tiny", seed=5, run_quality_checks=False)
    expected = generate_day(DS, size="tiny", seed=5).search_logs.to_pandas()
    written = lake.read_arrow("bronze.search_logs").to_pandas()
    key = ["request_id", "position"]
    merged = expected.merge(written, on=key, suffixes=("", "_written"), how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert (merged["item_id"] == merged["item_id_written"]).all()
    assert (merged["clicked"] == merged["clicked_written"]).all()


def test_unknown_inputs_fail_before_anything_is_written(spark, lake, tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        run_ingest(spark, lake, ds=DS, source="files", path=tmp_path / "nope.jsonl", table="bronze.search_logs")
    empty = tmp_path / "search_logs.jsonl"
    empty.write_text("")
    with pytest.raises(SourceError, match="file is empty"):
        run_ingest(spark, lake, ds=DS, source="files", path=empty, table="bronze.search_logs")
    odd = tmp_path / "search_logs.xml"
    odd.write_text("<x/>")
    with pytest.raises(SourceError, match="unknown input format"):
        run_ingest(spark, lake, ds=DS, source="files", path=odd, table="bronze.search_logs")
    assert not lake.exists("bronze.rejects")
