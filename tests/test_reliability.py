"""No row lost, no half-written day: the hostile-input, crash, rerun and concurrency cases.

Each test names the defect it guards against. Jobs that must be killed or run side by side run
in their own processes (`smar` on the command line, or a short script), as a user would run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smar.config import SmarSettings
from smar.errors import SourceError
from smar.ingest.jobs import completed_ingest, run_ingest
from smar.lake import LANDING_FOLDER, STAGING_FOLDER, Lakehouse
from smar.storage.uris import local_path

DS = "2026-11-01"
SMAR = [sys.executable, "-m", "smar.cli"]


def _impression(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
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


def _jsonl(path: Path, rows: list[dict[str, object]], *, prefix: bytes = b"") -> Path:
    path.write_bytes(prefix + b"\n".join(json.dumps(row).encode() for row in rows) + b"\n")
    return path


def _rejects(lake: Lakehouse, job: str = "ingest") -> list[dict[str, object]]:
    table = lake.read_arrow("bronze.rejects", filters=[("ds", "=", DS), ("job", "=", job)])
    return sorted(table.to_pylist(), key=lambda row: row["row_number"])


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SMAR_WAREHOUSE": str(tmp_path / "warehouse"),
        "SMAR_ARTIFACTS": str(tmp_path / "artifacts"),
        "SMAR_REPORTS": str(tmp_path / "reports"),
        "RUST_LOG": "error",
    }


def _smar(tmp_path: Path, *arguments: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMAR, *arguments], capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=_env(tmp_path)
    )


# -- 1, 14: a crash leaves every table readable, and the day marked incomplete ---------------------


def test_a_kill_between_staging_and_commit_leaves_the_previous_rows(tmp_path: Path) -> None:
    # Given a day ingested once
    first = _smar(tmp_path, "ingest", "--ds", DS, "--size", "tiny", "--skip-quality")
    assert first.returncode == 0, first.stderr
    lake = Lakehouse(None, SmarSettings(warehouse=tmp_path / "warehouse"))
    before = {table: lake.row_count(table) for table in ("bronze.items", "bronze.users", "bronze.search_logs")}
    assert all(before.values()) and completed_ingest(lake, DS)

    # When a rerun (another seed: other rows) is killed right after staging bronze.items, before its commit
    script = textwrap.dedent(
        f"""
        import os, sys
        from smar.lake import Lakehouse
        original = Lakehouse._commit
        def commit(self, table, write):
            if table == "bronze.items":
                os._exit(137)  # as kill -9: no cleanup, no finally
            return original(self, table, write)
        Lakehouse._commit = commit
        from smar.cli import main
        sys.exit(main(["ingest", "--ds", "{DS}", "--size", "tiny", "--seed", "7", "--skip-quality"]))
        """
    )
    killed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=_env(tmp_path)
    )
    assert killed.returncode == 137, killed.stderr[-2000:]

    # Then every table reads back, bronze.items with its previous rows of the day
    assert lake.row_count("bronze.items") == before["bronze.items"]
    assert lake.row_count("bronze.users") == before["bronze.users"]
    # and the day is marked incomplete, so scoring refuses it instead of scoring half a day
    assert not completed_ingest(lake, DS)
    refused = _smar(tmp_path, "score", "--ds", DS)
    assert refused.returncode == 2 and "no completed ingest" in refused.stderr
    # And a rerun completes the day and clears the killed run's staging table once it is old
    again = _smar(tmp_path, "ingest", "--ds", DS, "--size", "tiny", "--skip-quality")
    assert again.returncode == 0, again.stderr
    assert completed_ingest(lake, DS)
    leftovers = Lakehouse(None, SmarSettings(warehouse=tmp_path / "warehouse", leftover_retention_hours=0))
    leftovers.expire_leftovers(now=time.time() + 1)
    assert not (tmp_path / "warehouse" / STAGING_FOLDER).exists()


def test_every_slice_replace_of_a_nested_table_is_one_commit(lake: Lakehouse) -> None:
    # Given bronze.items (array column) with a day
    run_ingest(lake.session, lake, ds=DS, source="generator", size="tiny", run_quality_checks=False)
    versions_before = lake.version("bronze.items")
    # When the same day is ingested again
    run_ingest(lake.session, lake, ds=DS, source="generator", size="tiny", run_quality_checks=False)
    # Then the slice was replaced by exactly one commit, a WRITE (not DELETE + append)
    history = lake.history("bronze.items")
    assert lake.version("bronze.items") == versions_before + 1
    assert history[0]["operation"] == "WRITE"
    # and nothing was left under _landing or _staging
    warehouse = local_path(lake.settings.warehouse)
    assert not (warehouse / LANDING_FOLDER).exists() and not (warehouse / STAGING_FOLDER).exists()


# -- 2: every file of a table is read --------------------------------------------------------------


def test_all_files_of_a_table_are_read_and_unknown_names_are_refused(lake: Lakehouse, tmp_path: Path) -> None:
    folder = tmp_path / "landing"
    folder.mkdir()
    _jsonl(folder / "search_logs.part0.jsonl", [_impression(request_id=f"a{i}") for i in range(3)])
    _jsonl(folder / "search_logs.part1.jsonl", [_impression(request_id=f"b{i}") for i in range(2)])
    pq.write_table(pa.Table.from_pylist([_impression(request_id="c0")]), folder / "search_logs.parquet")
    # When the folder is ingested
    results = run_ingest(lake.session, lake, ds=DS, source="files", path=folder, run_quality_checks=False)
    # Then every row of every file landed and was accepted
    (logs,) = [result for result in results if result.table == "bronze.search_logs"]
    assert (logs.landed, logs.accepted) == (6, 6)
    assert lake.row_count("bronze.search_logs") == 6
    # And a file whose name matches no table is an error naming the expected names
    _jsonl(folder / "searchlogs.jsonl", [_impression()])
    with pytest.raises(SourceError, match=r"matches no table.*search_logs"):
        run_ingest(lake.session, lake, ds=DS, source="files", path=folder, run_quality_checks=False)


# -- 3: a day through two sources is not counted twice -----------------------------------------------


def test_a_key_already_written_by_another_source_is_refused(lake: Lakehouse, tmp_path: Path) -> None:
    # Given a day from the generator
    run_ingest(lake.session, lake, ds=DS, source="generator", size="tiny", run_quality_checks=False)
    generated = lake.read_arrow("bronze.search_logs").to_pylist()
    # When the same impressions arrive again through files, plus one new
    folder = tmp_path / "again"
    folder.mkdir()
    again = [{**row, "source": "file"} for row in generated[:3]] + [_impression(request_id="brand-new")]
    for row in again:
        row["request_ts"] = str(row["request_ts"]) if row["request_ts"] is not None else None
    _jsonl(folder / "search_logs.jsonl", again)
    run_ingest(
        lake.session, lake, ds=DS, source="files", path=folder, max_reject_fraction=1.0, run_quality_checks=False
    )
    # Then the three known keys were refused, naming the source that has them, and only the new one landed
    refused = [row for row in _rejects(lake) if row["target_table"] == "bronze.search_logs"]
    assert len(refused) == 3
    assert all("already in bronze.search_logs" in row["reason"] and "'generator'" in row["reason"] for row in refused)
    assert lake.row_count("bronze.search_logs") == len(generated) + 1


# -- 4, 5, 11: casts are exact, numbers finite, required text not empty -----------------------------


@pytest.mark.parametrize("file_format", ["parquet", "jsonl"])
def test_inexact_casts_non_finite_numbers_and_empty_keys_are_refused_in_every_format(
    lake: Lakehouse, tmp_path: Path, file_format: str
) -> None:
    rows = [
        _impression(request_id="ok", clicked=1.0, position=2.0),  # 0 exact: accepted
        _impression(request_id="c1", clicked=1.9),  # 1 would truncate to 1
        _impression(request_id="p1", position=5.7),  # 2 would truncate to 5
        _impression(request_id="d1", dwell_seconds=float("nan")),  # 3 NaN
        _impression(request_id="d2", dwell_seconds=float("inf")),  # 4 infinity
        _impression(request_id=""),  # 5 empty required key
    ]
    folder = tmp_path / "in"
    folder.mkdir()
    if file_format == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), folder / "search_logs.parquet")
    else:
        _jsonl(folder / "search_logs.jsonl", rows)
    run_ingest(
        lake.session, lake, ds=DS, source="files", path=folder, max_reject_fraction=1.0, run_quality_checks=False
    )
    reasons = {row["row_number"]: row["reason"] for row in _rejects(lake)}
    assert sorted(reasons) == [1, 2, 3, 4, 5]
    assert "'clicked'" in reasons[1] and "not a valid int" in reasons[1]
    assert "'position'" in reasons[2] and "not a valid int" in reasons[2]
    assert "NaN or infinite" in reasons[3] and "NaN or infinite" in reasons[4]
    assert "'request_id' is empty but required" in reasons[5]
    accepted = lake.read_arrow("bronze.search_logs").to_pylist()
    assert [(row["request_id"], row["clicked"], row["position"]) for row in accepted] == [("ok", 1, 2)]


def test_a_number_where_text_is_required_is_refused_from_json_and_parquet(lake: Lakehouse, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _jsonl(folder / "search_logs.part0.jsonl", [_impression(request_id="j1", query_text=5)])
    pq.write_table(
        pa.Table.from_pylist([_impression(request_id="p1", user_id=42)]), folder / "search_logs.part1.parquet"
    )
    run_ingest(
        lake.session, lake, ds=DS, source="files", path=folder, max_reject_fraction=1.0, run_quality_checks=False
    )
    reasons = [row["reason"] for row in _rejects(lake)]
    assert len(reasons) == 2
    assert any("'query_text'" in reason and "not a valid string" in reason for reason in reasons)
    assert any("'user_id'" in reason and "not a valid string" in reason for reason in reasons)


def test_a_nan_inside_a_visual_embedding_is_refused(lake: Lakehouse, tmp_path: Path) -> None:
    item = {"ds": DS, "item_id": "i1", "modality": "image", "title": "t", "body": "b", "source": "file"}
    rows = [{**item, "visual_embedding": [0.5, float("nan")]}, {**item, "item_id": "i2", "visual_embedding": [0.5, 1]}]
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), folder / "items.parquet")
    run_ingest(
        lake.session, lake, ds=DS, source="files", path=folder, max_reject_fraction=1.0, run_quality_checks=False
    )
    (refused,) = _rejects(lake)
    assert refused["row_number"] == 0 and "'visual_embedding': NaN or infinite" in refused["reason"]


def test_a_line_that_does_not_parse_has_one_reason(lake: Lakehouse, tmp_path: Path) -> None:
    path = tmp_path / "search_logs.jsonl"
    path.write_bytes(json.dumps(_impression()).encode() + b'\n{"ds": "2026-11-01", "request_id": "cut\n')
    run_ingest(
        lake.session,
        lake,
        ds=DS,
        source="files",
        path=path,
        table="bronze.search_logs",
        max_reject_fraction=1.0,
        run_quality_checks=False,
    )
    (refused,) = _rejects(lake)
    assert refused["reason"].startswith("malformed JSON") and ";" not in refused["reason"]


# -- 9: a byte order mark is not data ---------------------------------------------------------------


def test_jsonl_with_a_byte_order_mark_keeps_its_first_row(lake: Lakehouse, tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "search_logs.jsonl", [_impression(request_id=f"r{i}") for i in range(3)], prefix=b"\xef\xbb\xbf"
    )
    run_ingest(
        lake.session, lake, ds=DS, source="files", path=path, table="bronze.search_logs", run_quality_checks=False
    )
    assert lake.row_count("bronze.search_logs") == 3 and _rejects(lake) == []


# -- 12: days and run ids are checked at the edge -----------------------------------------------------


def test_bad_days_and_run_ids_are_refused_in_one_line_before_anything_is_written(tmp_path: Path) -> None:
    for arguments in (
        ["ingest", "--ds", "../../x", "--size", "tiny"],
        ["ingest", "--ds", "2026-13-01", "--size", "tiny"],
        ["generate", "--ds", "yesterday", "--out", "raw"],
        ["score", "--ds", "2026-11-1"],
        ["replay", "--candidate", "production", "--ds-start", DS, "--run-id", "../escape"],
    ):
        completed = _smar(tmp_path, *arguments, timeout=120)
        assert completed.returncode == 2, (arguments, completed.stderr)
        lines = completed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (arguments, completed.stderr)
        assert "Traceback" not in completed.stderr
    assert not (tmp_path / "warehouse").exists() and not (tmp_path.parent / "x").exists()


# -- 13: concurrent runs ---------------------------------------------------------------------------------


def test_concurrent_ingests_of_two_days_both_succeed_and_of_one_day_never_duplicate(tmp_path: Path) -> None:
    days = ("2026-11-01", "2026-11-02")
    # When two days are ingested at once (Great Expectations on: its context is shared too)
    runs = [
        subprocess.Popen(
            [*SMAR, "ingest", "--ds", day, "--size", "tiny"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=_env(tmp_path),
        )  # fmt: skip
        for day in days
    ]
    outcomes = [(run.wait(timeout=900), run.stderr.read() if run.stderr else "") for run in runs]
    # Then both succeed
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    lake = Lakehouse(None, SmarSettings(warehouse=tmp_path / "warehouse"))
    for day in days:
        assert completed_ingest(lake, day)
        assert lake.read_arrow("bronze.search_logs", filters=[("ds", "=", day)]).num_rows == 900
    # When the same day is ingested twice at once
    runs = [
        subprocess.Popen(
            [*SMAR, "ingest", "--ds", days[0], "--size", "tiny", "--skip-quality"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=_env(tmp_path),
        )  # fmt: skip
        for _ in range(2)
    ]
    codes = [run.wait(timeout=900) for run in runs]
    # Then each either succeeds or says it lost the race (75), and the day holds one copy of its rows
    assert set(codes) <= {0, 75} and 0 in codes, codes
    assert lake.read_arrow("bronze.search_logs", filters=[("ds", "=", days[0])]).num_rows == 900


# -- 15: leftovers expire ----------------------------------------------------------------------------


def test_leftovers_of_killed_runs_expire_after_the_retention(tmp_path: Path) -> None:
    settings = SmarSettings(warehouse=tmp_path / "warehouse", leftover_retention_hours=24)
    old = tmp_path / "warehouse" / LANDING_FOLDER / DS / "generator" / "run-old"
    young = tmp_path / "warehouse" / LANDING_FOLDER / DS / "generator" / "run-young"
    staged = tmp_path / "warehouse" / STAGING_FOLDER / "bronze.items" / "run-old"
    for folder in (old, young, staged):
        folder.mkdir(parents=True)
        (folder / "part-0000.parquet").write_bytes(b"raw rows")
    two_days_ago = time.time() - 48 * 3600
    for folder in (old, staged):
        os.utime(folder, (two_days_ago, two_days_ago))
    removed = Lakehouse(None, settings).expire_leftovers()
    assert sorted(local_path(uri) for uri in removed) == sorted([old, staged])
    assert young.is_dir() and not old.exists() and not staged.exists()


# -- 16: checkpoints are loaded without running code --------------------------------------------------


def test_resume_refuses_a_checkpoint_that_carries_pickled_code(tmp_path: Path) -> None:
    import torch

    from smar.reranker.training import TrainingConfig, train_reranker
    from tests.reranker_helpers import synthetic_store

    train, _ = synthetic_store(6, seed=1, text_dim=4)
    validation, _ = synthetic_store(4, seed=2, text_dim=4)
    config = TrainingConfig(
        epochs=1, model_dim=8, attention_heads=2, attention_layers=1, feedforward_dim=8, device="cpu"
    )
    # A checkpoint that would run code when unpickled (np.random.Generator is not a plain type)
    torch.save({"epoch": 1, "config": config.to_dict(), "sneaky": np.random.default_rng(0)}, tmp_path / "checkpoint.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        train_reranker(train, validation, config, checkpoint_dir=tmp_path, resume=True, progress=False)
