"""Delta tables and plain files at s3://bucket/... on an S3-compatible server on loopback:
the embedded engine (pysail), delta-rs and pyarrow.fs, with the settings of smar.storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request

import pyarrow as pa
import pytest

from tests.integration import servers
from tests.integration.conftest import python_subprocess_env, record

pytestmark = pytest.mark.object_store


def test_server_answers_and_stops_by_pid(tmp_path):
    server = servers.start_s3_server("other", log_dir=tmp_path)
    try:
        assert servers.http_status(f"{server.endpoint}/other") == 200
        assert server.env["AWS_ENDPOINT_URL"] == server.endpoint
        assert server.env["AWS_ALLOW_HTTP"] == "true"
        assert server.endpoint.startswith("http://127.0.0.1:")
    finally:
        server.stop()
    assert not os.path.exists(f"/proc/{server.pid}")
    assert servers.http_status(f"{server.endpoint}/other", timeout=1) is None


def test_embedded_engine_writes_replaces_merges_and_delta_rs_reads(embedded_s3, storage_settings, s3_prefix):
    from deltalake import DeltaTable

    spark = embedded_s3
    table = f"{s3_prefix}/events"
    schema = "id long, ds string, value string"
    rows = [(i, "2026-11-01" if i % 2 else "2026-11-02", f"v{i}") for i in range(6)]
    spark.createDataFrame(rows, schema).write.format("delta").partitionBy("ds").save(table)

    (
        spark.createDataFrame([(100, "2026-11-02", "new")], schema)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", "ds = '2026-11-02'")
        .save(table)
    )

    spark.createDataFrame(
        [(1, "2026-11-01", "merged"), (200, "2026-11-01", "inserted")], schema
    ).createOrReplaceTempView("updates")
    spark.sql(f"""MERGE INTO delta.`{table}` AS t USING updates AS s
                  ON t.id = s.id AND t.ds = s.ds
                  WHEN MATCHED THEN UPDATE SET value = s.value
                  WHEN NOT MATCHED THEN INSERT *""")

    got = sorted((r.id, r.ds, r.value) for r in spark.read.format("delta").load(table).collect())
    assert got == [
        (1, "2026-11-01", "merged"),
        (3, "2026-11-01", "v3"),
        (5, "2026-11-01", "v5"),
        (100, "2026-11-02", "new"),
        (200, "2026-11-01", "inserted"),
    ]

    dt = DeltaTable(table, storage_options=storage_settings.delta_rs_storage_options())
    assert dt.version() == 2
    assert sorted(dt.to_pyarrow_table().column("id").to_pylist()) == [1, 3, 5, 100, 200]
    operations = [entry["operation"] for entry in dt.history()]
    assert len(operations) == 3 and "MERGE" in operations[0].upper()
    assert dt.metadata().partition_columns == ["ds"]


def test_embedded_engine_reads_what_delta_rs_wrote(embedded_s3, storage_settings, s3_prefix):
    from deltalake import write_deltalake

    table = f"{s3_prefix}/from_delta_rs"
    options = storage_settings.delta_rs_storage_options()
    write_deltalake(
        table, pa.table({"id": [1, 2, 3], "ds": ["a", "a", "b"]}), partition_by=["ds"], storage_options=options
    )
    write_deltalake(
        table,
        pa.table({"id": [9], "ds": ["b"]}),
        mode="overwrite",
        predicate="ds = 'b'",
        partition_by=["ds"],
        storage_options=options,
    )
    got = sorted(r.id for r in embedded_s3.read.format("delta").load(table).collect())
    assert got == [1, 2, 9]


def test_delta_rs_concurrent_writers_lose_no_commit(storage_settings, s3_prefix, s3_server):
    """deltalake 1.x commits with conditional puts: concurrent appenders retry on conflict, no
    locking provider and no AWS_S3_ALLOW_UNSAFE_RENAME needed."""
    from deltalake import DeltaTable, write_deltalake

    table = f"{s3_prefix}/concurrent"
    options = storage_settings.delta_rs_storage_options()
    write_deltalake(table, pa.table({"writer": [-1], "i": [-1]}), storage_options=options)
    worker = textwrap.dedent("""
        import json, sys
        import pyarrow as pa
        from deltalake import write_deltalake
        options, table, writer, n = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        for i in range(n):
            write_deltalake(table, pa.table({"writer": [writer], "i": [i]}), mode="append",
                            storage_options=options)
    """)
    log_before = s3_server.log_path.read_text(errors="replace").count('" 412 -')
    writers, commits = 3, 8
    procs = [
        subprocess.Popen([sys.executable, "-c", worker, json.dumps(options), table, str(w), str(commits)])
        for w in range(writers)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0] * writers
    dt = DeltaTable(table, storage_options=options)
    assert dt.version() == writers * commits
    assert dt.to_pyarrow_table().num_rows == 1 + writers * commits
    conflicts = s3_server.log_path.read_text(errors="replace").count('" 412 -') - log_before
    record(
        "delta_rs_concurrent_appends", writers=writers, commits_each=commits, conditional_put_conflicts_412=conflicts
    )


def test_pyarrow_fs_writes_lists_reads_and_deletes_files(storage_settings, s3_server):
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(**storage_settings.pyarrow_s3_options())
    base = f"{s3_server.bucket}/artifacts/test-{time.time_ns()}"
    with fs.open_output_stream(f"{base}/model/state.bin") as out:
        out.write(b"\x00weights\xff")
    with fs.open_output_stream(f"{base}/CURRENT") as out:
        out.write(b"model")
    listing = sorted(
        info.path
        for info in fs.get_file_info(pafs.FileSelector(base, recursive=True))
        if info.type == pafs.FileType.File
    )
    assert listing == [f"{base}/CURRENT", f"{base}/model/state.bin"]
    with fs.open_input_stream(f"{base}/model/state.bin") as src:
        assert src.read() == b"\x00weights\xff"
    fs.delete_dir(base)
    assert fs.get_file_info(f"{base}/CURRENT").type == pafs.FileType.NotFound

    # The same server reached from the standard variables alone (what a URI-only caller does).
    resolved, path = pafs.FileSystem.from_uri(f"s3://{s3_server.bucket}/x/y.json")
    assert isinstance(resolved, pafs.S3FileSystem)
    with resolved.open_output_stream(path) as out:
        out.write(b"{}")
    with urllib.request.urlopen(f"{s3_server.endpoint}/{s3_server.bucket}/x/y.json") as response:
        assert response.read() == b"{}"


def test_analyst_snippet_exits_cleanly(storage_settings, s3_prefix, embedded_s3):
    """A bare script reading a table on S3 through delta-rs exits 0 (DESIGN.md §4: test the
    analysts' examples in subprocesses)."""
    table = f"{s3_prefix}/snippet"
    embedded_s3.range(5).write.format("delta").save(table)
    code = textwrap.dedent(f"""
        from deltalake import DeltaTable
        from smar.storage import storage_settings_from_env
        dt = DeltaTable({table!r}, storage_options=storage_settings_from_env().delta_rs_storage_options())
        print(dt.to_pyarrow_table().num_rows, len(dt.history()))
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=python_subprocess_env(), timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["5", "1"]


def test_airflow_object_storage_path_over_pyarrow_fs(storage_settings, s3_server):
    """Airflow's ObjectStoragePath on s3:// without s3fs/boto3 (which cannot be installed next
    to python-dateutil 4): attach a pyarrow-backed fsspec filesystem under a conn_id."""
    import pyarrow.fs as pafs
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.arrow import ArrowFSWrapper

    fs = pafs.S3FileSystem(**storage_settings.pyarrow_s3_options())
    day = f"{s3_server.bucket}/reports/annotation/test-{time.time_ns()}"
    attach("s3", conn_id="smar_object_store", fs=ArrowFSWrapper(fs))
    folder = ObjectStoragePath(f"s3://smar_object_store@{day}/")
    assert not (folder / "export.json").exists()
    with fs.open_output_stream(f"{day}/export.json") as out:
        out.write(b"[]")
    assert (folder / "export.json").exists()
    assert [path.name for path in folder.iterdir()] == ["export.json"]
    assert (folder / "export.json").read_text() == "[]"
