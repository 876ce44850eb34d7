"""One job code, two places it runs (docs/architecture.md, "Engines").

* embedded: the pysail Spark Connect server started in this process, reached through the Spark
  Connect client. No JVM; reads and writes Delta natively; runs pandas UDFs.
* cluster: a classic SparkSession (as created under spark-submit) with the Delta extension and
  catalog configured.

Jobs only use the Connect-compatible DataFrame API (no `.rdd`, no `sparkContext`) and SQL
`MERGE INTO`, so the same code runs on both.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from smar.config import EngineName
from smar.storage.settings import storage_settings_from_env

log = logging.getLogger(__name__)

ENGINE_ENV_VAR = "SMAR_ENGINE"

# Configs that make a classic session read and write Delta. On a cluster delta-spark's jars are
# provided by the platform (or --packages); we only name the extension and the catalog.
DELTA_CONFIGS: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def launched_by_spark_submit() -> bool:
    """True when this Python driver was started by spark-submit (PythonRunner sets the gateway)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def resolve_engine(requested: EngineName | None = None) -> str:
    """Pick the engine: explicit flag, then `SMAR_ENGINE`, then auto-detection."""
    choice = requested or os.environ.get(ENGINE_ENV_VAR, "auto")
    if choice not in ("auto", "embedded", "cluster"):
        raise ValueError(
            f"unknown engine {choice!r} (from flag or ${ENGINE_ENV_VAR}); use one of: auto, embedded, cluster"
        )
    if choice == "auto":
        return "cluster" if launched_by_spark_submit() else "embedded"
    return choice


def _use_project_python() -> None:
    # Executors (classic) and pysail's UDF workers must run this interpreter, which has torch,
    # the encoder and smar installed. Respect an explicit setting from the cluster admin.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@dataclass
class Engine:
    """A running engine: the session plus what must be torn down with it."""

    name: str
    spark: SparkSession
    _server: Any = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop the session and, for the embedded engine, its in-process server."""
        try:
            self.spark.stop()
        finally:
            if self._server is not None:
                self._server.stop()
                self._server = None


def start_engine(
    requested: EngineName | None = None,
    *,
    app_name: str = "smar",
    extra_configs: dict[str, str] | None = None,
) -> Engine:
    """Start the engine chosen by `resolve_engine`. Callers should prefer `spark_session()`."""
    name = resolve_engine(requested)
    _use_project_python()
    configs = {"spark.sql.session.timeZone": "UTC", **(extra_configs or {})}
    # One object-store configuration for every engine (smar.storage.settings), from AWS_* & co.
    storage = storage_settings_from_env()
    if name == "embedded":
        # pysail reads the process environment, not Spark confs, when a session first touches a
        # bucket: the derived variables (region default, AWS_ALLOW_HTTP) go there before it starts.
        os.environ.update(storage.embedded_env())
        from pysail.spark import SparkConnectServer

        # spark-submit exports MASTER (e.g. local[*]) to the Python driver; PySpark refuses a classic
        # master next to a Spark Connect remote, and the in-process engine has no use for it.
        os.environ.pop("MASTER", None)

        server = SparkConnectServer(ip="127.0.0.1", port=0)
        server.start(background=True)
        host, port = server.listening_address
        builder = SparkSession.builder.remote(f"sc://{host}:{port}").appName(app_name)
        # create(), not getOrCreate(): each engine owns its session. getOrCreate would hand back
        # another engine's active session, and stopping this engine would then stop that one.
        spark = builder.create()
        for key, value in configs.items():
            try:
                spark.conf.set(key, value)
            except Exception as error:  # the embedded engine refuses some static configs
                log.debug("embedded engine ignored config %s: %s", key, error)
        log.info("embedded engine (pysail Spark Connect) on %s:%s", host, port)
        return Engine(name=name, spark=spark, _server=server)

    builder = SparkSession.builder.appName(app_name)
    # spark.hadoop.fs.s3a.* (and the s3:// -> S3A mapping) derived from the same variables that
    # delta-rs and the filesystem layer read, so the engines cannot disagree on endpoint or keys.
    for key, value in {**DELTA_CONFIGS, **storage.spark_hadoop_confs(), **configs}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    log.info("cluster engine (classic Spark %s, master %s)", spark.version, spark.conf.get("spark.master", "?"))
    return Engine(name=name, spark=spark)


@contextmanager
def spark_session(
    requested: EngineName | None = None,
    *,
    app_name: str = "smar",
    extra_configs: dict[str, str] | None = None,
) -> Iterator[SparkSession]:
    """A Spark session for one job; the embedded server is stopped on exit, error or not."""
    engine = start_engine(requested, app_name=app_name, extra_configs=extra_configs)
    try:
        yield engine.spark
    finally:
        engine.stop()


def classic_local_session(app_name: str = "smar-local") -> SparkSession:
    """A classic local[2] session without Delta: used by engine-parity tests of pure transforms."""
    _use_project_python()
    return (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
