"""Shared fixtures: one embedded engine per test session, a fresh warehouse per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("RUST_LOG", "error")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SAMPLE_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The real public samples vendored under tests/data (see its README for sources and licences)."""
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def spark() -> Iterator:
    """The embedded engine (pysail Spark Connect), started once for the whole session."""
    from smar.engine import start_engine

    engine = start_engine("embedded", app_name="smar-tests")
    yield engine.spark
    engine.stop()


@pytest.fixture(scope="session")
def classic_spark() -> Iterator:
    """Classic local Spark (JVM, no Delta jars): for engine-parity tests of pure transforms."""
    from smar.engine import classic_local_session

    session = classic_local_session()
    yield session
    session.stop()


@pytest.fixture()
def settings(tmp_path: Path):
    """Settings pointing at a fresh warehouse, artifacts and reports folder."""
    from smar.config import SmarSettings

    return SmarSettings(
        warehouse=tmp_path / "warehouse",
        artifacts=tmp_path / "artifacts",
        reports=tmp_path / "reports",
    )


@pytest.fixture()
def lake(spark, settings):
    from smar.lake import Lakehouse

    return Lakehouse(spark, settings)
