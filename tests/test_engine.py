"""Engine choice and clean shutdown."""

from __future__ import annotations

import socket
import threading

import pytest

from smar.engine import ENGINE_ENV_VAR, resolve_engine, spark_session


def test_flag_beats_env_var_beats_auto(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.delenv(ENGINE_ENV_VAR, raising=False)
    assert resolve_engine(None) == "embedded"
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "12345")  # what spark-submit's PythonRunner sets
    assert resolve_engine(None) == "cluster"
    monkeypatch.setenv(ENGINE_ENV_VAR, "embedded")
    assert resolve_engine(None) == "embedded"
    assert resolve_engine("cluster") == "cluster"


def test_unknown_engine_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(ENGINE_ENV_VAR, "duckdb")
    with pytest.raises(ValueError, match="unknown engine 'duckdb'"):
        resolve_engine(None)


def test_embedded_engine_writes_delta_and_shuts_down_cleanly(tmp_path):
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    from smar.engine import start_engine

    threads_before = {thread.ident for thread in threading.enumerate()}
    engine = start_engine("embedded")
    host, port = engine._server.listening_address
    assert isinstance(engine.spark, ConnectSession)
    path = str(tmp_path / "t")
    engine.spark.range(3).write.format("delta").save(path)
    assert engine.spark.read.format("delta").load(path).count() == 3
    engine.stop()
    # No stray server: the port no longer accepts connections and no new threads are left.
    with socket.socket() as probe:
        probe.settimeout(1)
        assert probe.connect_ex((host, int(port))) != 0
    leftover = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    assert leftover == [], leftover


def test_spark_session_stops_the_server_even_when_the_job_fails():
    with pytest.raises(RuntimeError, match="job failed"):
        with spark_session("embedded") as spark:
            spark.range(1).count()
            raise RuntimeError("job failed")
    assert [t for t in threading.enumerate() if "sail" in t.name.lower()] == []


def test_a_second_engine_does_not_stop_the_first(spark):
    # Given the session-wide engine, When another engine starts and stops (as a job would),
    # Then the first session still answers: each engine owns its own session.
    from smar.engine import start_engine

    other = start_engine("embedded")
    assert other.spark is not spark
    other.stop()
    assert spark.range(2).count() == 2
