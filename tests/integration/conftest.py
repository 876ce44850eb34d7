"""Fixtures for the integration lanes (markers `object_store` and `cluster`, not in the default
run): an S3-compatible server on loopback, the embedded engine pointed at it, and a local Spark
standalone cluster with one worker that cannot see the driver's disk.

    pytest -m object_store tests/integration     # moto + pysail + delta-rs + pyarrow.fs
    pytest -m cluster tests/integration          # + Spark standalone, delta-spark, hadoop-aws

Prerequisites, each idempotent and cached per machine: `bash scripts/moto_env.sh` (moto's own
virtualenv) and, for `cluster`, `bash scripts/spark_jars.sh` (the fixture runs it if needed).
A missing prerequisite fails the lane with the command to run; it is never a silent skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import servers, spark_cluster

MEASUREMENTS: list[dict] = []


def record(name: str, **values) -> None:
    """Keep a measured value for the end-of-run summary (`MEASURED {...}` lines)."""
    MEASUREMENTS.append({"name": name, **values})


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("integration measurements")
        for item in MEASUREMENTS:
            terminalreporter.write_line("MEASURED " + json.dumps(item, sort_keys=True))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[servers.S3Server]:
    """One moto server for the session (the embedded engine keeps a bucket's endpoint for its
    session's life, so the endpoint must not change under it)."""
    try:
        servers.moto_server_bin()
    except FileNotFoundError as error:
        pytest.fail(str(error), pytrace=False)
    with servers.s3_server("lake", log_dir=tmp_path_factory.mktemp("moto")) as server:
        record("moto_start_s", seconds=round(server.started_in_s, 3))
        yield server


@pytest.fixture(scope="session")
def s3_environ(s3_server) -> Iterator[dict[str, str]]:
    """The standard AWS_* variables of the session's server, set in os.environ for the session."""
    with servers.environ(s3_server.env):
        yield dict(s3_server.env)


@pytest.fixture(scope="session")
def storage_settings(s3_environ):
    from smar.storage import storage_settings_from_env

    return storage_settings_from_env()


@pytest.fixture(scope="session")
def embedded_s3(s3_environ) -> Iterator:
    """An embedded engine started after the AWS_* variables are set (pysail reads them)."""
    from smar.engine import start_engine

    engine = start_engine("embedded", app_name="smar-object-store-tests")
    yield engine.spark
    engine.stop()


@pytest.fixture()
def s3_prefix(s3_server, request) -> str:
    """A fresh `s3://lake/<test name>-<time>` prefix per test."""
    return s3_server.uri("tests", f"{request.node.name}-{time.time_ns()}")


# ---- the cluster lane ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def spark_jars() -> dict[str, str]:
    """scripts/spark_jars.sh, run once (fast when the machine's cache is warm)."""
    python = spark_cluster.project_python()
    env = {**os.environ, "SPARK_SUBMIT": str(python.parent / "spark-submit")}
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(spark_cluster.REPO_ROOT / "scripts" / "spark_jars.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/spark_jars.sh failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    record(
        "spark_jars_script_s",
        seconds=round(time.monotonic() - started, 2),
        output=result.stdout.strip().splitlines()[-1],
    )
    return spark_cluster.jar_settings()


def _editable_smar_root(python: Path) -> str | None:
    """Where the venv's own `smar` lives (an editable install points into a checkout's lib/)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(python), "-c", "import os, smar; print(os.path.dirname(os.path.dirname(smar.__file__)))"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


@pytest.fixture(scope="session")
def cluster_isolated_paths(tmp_path_factory) -> list[str]:
    """Folders the isolated worker must not see: this session's temp root (every tmp_path, so
    the driver's local warehouse, artifacts and reports in tests) and the checkouts' lib/
    (so `smar` can only reach executors through --py-files)."""
    paths = {str(tmp_path_factory.getbasetemp()), str(spark_cluster.REPO_ROOT / "lib")}
    editable = _editable_smar_root(spark_cluster.project_python())
    if editable and Path(editable).is_dir():
        paths.add(editable)
    return sorted(paths)


@pytest.fixture(scope="session")
def local_cluster(spark_jars, cluster_isolated_paths) -> Iterator[spark_cluster.SparkCluster]:
    # Not under pytest's temp root: that one is hidden from the isolated worker, whose own
    # work dir would then land on its small tmpfs.
    log_dir = Path(tempfile.mkdtemp(prefix="smar-cluster-"))
    with spark_cluster.spark_cluster(
        workers=2,
        cores_per_worker=1,
        memory_per_worker="2g",
        isolate=cluster_isolated_paths,
        log_dir=log_dir,
    ) as cluster:
        record(
            "cluster_start_s",
            seconds=round(cluster.started_in_s, 2),
            workers=2,
            isolated_worker=cluster.isolated_worker,
            isolation_skipped=cluster.isolation_skipped,
        )
        record("cluster_idle_rss_mib", **{k: round(v) for k, v in cluster.rss_mib().items()})
        yield cluster


@pytest.fixture(scope="session")
def smar_py_files(tmp_path_factory) -> Path:
    """This checkout's `smar` package as a zip for --py-files (what the wheel does in production),
    the table contracts inside it as `smar/_contracts`, where the wheel puts them."""
    import zipfile

    lib = spark_cluster.REPO_ROOT / "lib"
    schemas = spark_cluster.REPO_ROOT / "schemas"
    target = tmp_path_factory.mktemp("pyfiles") / "smar.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((lib / "smar").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(lib))
        for path in sorted(schemas.rglob("*")):
            if path.is_file():
                archive.write(path, Path("smar") / "_contracts" / path.relative_to(schemas))
    return target


def python_subprocess_env() -> dict[str, str]:
    """Environment for subprocesses that must import this checkout's `smar`."""
    env = dict(os.environ)
    lib = str(spark_cluster.REPO_ROOT / "lib")
    env["PYTHONPATH"] = lib + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
