"""`spark-submit --master spark://127.0.0.1:PORT` on a local standalone cluster whose second
worker cannot see the driver's disk, with the warehouse on the S3-compatible server: classic
Spark 4.2 + delta-spark + hadoop-aws, pandas UDFs on the executors, history read by delta-rs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration import spark_cluster
from tests.integration.conftest import record

pytestmark = pytest.mark.cluster

JOB = Path(__file__).resolve().parent / "cluster_job.py"


def test_two_workers_registered_and_one_is_isolated(local_cluster, cluster_isolated_paths, tmp_path):
    state = local_cluster.state()
    assert state["aliveworkers"] == 2
    assert all(worker["state"] == "ALIVE" for worker in state["workers"])
    if local_cluster.isolated_worker is None:
        pytest.skip(f"no isolated worker: {local_cluster.isolation_skipped}")
    marker = tmp_path / "driver-only.txt"
    marker.write_text("driver")
    isolated = local_cluster.pids[local_cluster.isolated_worker]
    other = local_cluster.pids["worker1"]
    # /proc/<pid>/root resolves paths in that process's mount namespace.
    assert not Path(f"/proc/{isolated}/root{marker}").exists()
    assert Path(f"/proc/{other}/root{marker}").exists()
    assert os.readlink(f"/proc/{isolated}/ns/mnt") != os.readlink("/proc/self/ns/mnt")


def test_spark_submit_delta_on_s3_with_isolated_worker(
    local_cluster, s3_environ, storage_settings, s3_prefix, smar_py_files, tmp_path
):
    from deltalake import DeltaTable

    table = f"{s3_prefix}/cluster_events"
    driver_file = tmp_path / "driver-only.txt"
    driver_file.write_text("only the driver's disk has this")
    out = tmp_path / "result.json"
    confs = spark_cluster.application_confs(storage_settings.spark_hadoop_confs())
    cmd = spark_cluster.submit_command(
        local_cluster,
        JOB,
        ["--table", table, "--driver-file", str(driver_file), "--out", str(out)],
        confs=confs,
        py_files=[smar_py_files],
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # smar must come from --py-files
    log_path = tmp_path / "spark-submit.log"
    peak = {"cluster": 0.0, "driver": 0.0}
    started = time.monotonic()
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            while process.poll() is None and time.monotonic() - started < 900:
                peak["cluster"] = max(peak["cluster"], sum(local_cluster.rss_mib().values()))
                peak["driver"] = max(peak["driver"], sum(spark_cluster.tree_rss_mib(process.pid).values()))
                time.sleep(1)
        finally:
            if process.poll() is None:
                process.kill()
            returncode = process.wait()
    elapsed = time.monotonic() - started
    log = log_path.read_text(errors="replace")
    assert returncode == 0, log[-6000:]
    resolution = re.search(r"resolution report :: resolve (\d+)ms :: artifacts dl (\d+)ms", log)
    record(
        "cluster_job_spark_submit_s",
        seconds=round(elapsed, 1),
        ivy_resolve_ms=int(resolution.group(1)) if resolution else None,
        ivy_download_ms=int(resolution.group(2)) if resolution else None,
    )
    record("cluster_job_peak_rss_mib", cluster_with_executors=round(peak["cluster"]), driver=round(peak["driver"]))

    got = json.loads(out.read_text())
    assert got["spark_version"].startswith("4.2")
    assert [(r["id"], r["ds"], r["value"]) for r in got["rows"]] == [
        (1, "2026-11-01", "merged"),
        (3, "2026-11-01", "v3"),
        (5, "2026-11-01", "v5"),
        (7, "2026-11-01", "v7"),
        (200, "2026-11-01", "inserted"),
        (100, "2026-11-02", "new"),
        (101, "2026-11-02", "new"),
    ]

    dt = DeltaTable(table, storage_options=storage_settings.delta_rs_storage_options())
    history = dt.history()  # newest first
    operations = [entry["operation"] for entry in history]
    assert operations == ["MERGE", "WRITE", "WRITE"], operations
    assert "2026-11-02" in str(history[1]["operationParameters"].get("predicate")), history[1]
    assert dt.metadata().partition_columns == ["ds"]

    executors = got["executors"]
    assert all(e["python"] == str(spark_cluster.project_python()) for e in executors), executors
    assert all(".zip" in e["smar"] or "/work/" not in e["smar"] for e in executors), executors
    namespaces = {e["mnt_ns"] for e in executors}
    if local_cluster.isolated_worker is None:
        pytest.skip(f"ran, but with no isolated worker: {local_cluster.isolation_skipped}")
    assert len(namespaces) == 2, f"UDF tasks ran on one executor only: {executors}"
    isolated = [e for e in executors if e["mnt_ns"] != got["driver_mnt_ns"]]
    assert isolated and not any(e["sees_driver_file"] for e in isolated)
    assert all(e["sees_driver_file"] for e in executors if e["mnt_ns"] == got["driver_mnt_ns"])


def test_a_demo_day_runs_on_the_cluster_with_a_1g_driver(
    local_cluster, s3_environ, storage_settings, s3_prefix, smar_py_files, tmp_path
):
    """Issue 14's driver-memory check: one demo-size day (38k impressions) through ingest,
    single-modal training (query sample capped at 60 per split), scoring, task building and a
    streamed export, each a spark-submit with `spark.driver.memory=1g`: a job that collected
    the day into the driver JVM beyond that would fail here."""
    from smar.config import SmarSettings
    from smar.ingest.generator import generate_day
    from smar.lake import read_delta
    from smar.storage import files

    ds = "2026-11-01"
    locations = {
        "SMAR_WAREHOUSE": f"{s3_prefix}/warehouse",
        "SMAR_ARTIFACTS": f"{s3_prefix}/artifacts",
        "SMAR_REPORTS": f"{s3_prefix}/reports",
        "SMAR_MAX_TRAINING_QUERIES": "60",
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | locations
    confs = spark_cluster.application_confs(
        storage_settings.spark_hadoop_confs(),
        **{"spark.driver.memory": "1g", "spark.sql.execution.arrow.pyspark.enabled": "true"},
    )
    jobs = spark_cluster.REPO_ROOT / "jobs"
    steps = [
        ("ingest", ["--ds", ds, "--source", "generator", "--size", "demo"]),
        ("train_single_modal", ["--ds", ds, "--epochs", "1"]),
        ("score_single_modal", ["--ds", ds]),
        ("build_annotation_tasks", ["--ds", ds, "--strategy", "top", "--budget", "0.2"]),
        ("export_annotation_tasks", ["--ds", ds, "--max-tasks", "50"]),
    ]
    peaks, seconds = {}, {}
    for job, args in steps:
        cmd = spark_cluster.submit_command(
            local_cluster, jobs / f"{job}.py", [*args, "--engine", "cluster"], confs=confs, py_files=[smar_py_files]
        )
        log_path = tmp_path / f"{job}.log"
        started = time.monotonic()
        returncode, peak = spark_cluster.run_measured(cmd, env=env, cwd=tmp_path, log=log_path, timeout=900)
        peaks[job], seconds[job] = round(peak), round(time.monotonic() - started, 1)
        assert returncode == 0, f"{job}: {log_path.read_text(errors='replace')[-6000:]}"
    record("demo_day_1g_driver", seconds=seconds, peak_driver_tree_rss_mib=peaks)

    settings = SmarSettings(warehouse=locations["SMAR_WAREHOUSE"])
    impressions = generate_day(ds, size="demo").search_logs.num_rows
    assert read_delta("bronze.search_logs", settings=settings).num_rows == impressions
    assert read_delta("silver.single_modal_scores", settings=settings).num_rows == impressions
    tasks = read_delta("silver.annotation_tasks", settings=settings).to_pylist()
    assert sum(task["status"] == "exported" for task in tasks) == 50 < len(tasks)
    rankers = f"{locations['SMAR_ARTIFACTS']}/single_modal"
    version = files.read_text(f"{rankers}/CURRENT").strip()
    sample = json.loads(files.read_text(f"{rankers}/{version}/web/metadata.json"))["query_split"]["sample"]
    assert sample["queries"]["single_modal_train"] == 60 and "single_modal_train" in sample["capped"]
