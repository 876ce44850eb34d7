"""Engine parity: the pure transforms give equal results on the embedded engine and on classic
local Spark (Java 17). Classic Spark has no Delta jars here, so these stop before table I/O.

The classic half runs in a child process: once a Spark Connect session exists in a process,
PySpark routes `functions` to the Connect implementation, so the two cannot share one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smar.contracts import load_contract
from smar.frames import conform
from smar.ingest.sources import land_json_lines
from smar.ingest.validation import validate_rows

pytestmark = pytest.mark.classic


@pytest.fixture(scope="module")
def landing_file(tmp_path_factory):
    rows = []
    for index in range(6):
        rows.append(
            {
                "ds": "2026-11-01",
                "request_id": f"r{index % 4}",
                "query_id": "q",
                "query_text": "tea",
                "item_id": f"i{index}",
                "modality": ["web", "image", "audio", "video", "web", "answer"][index],
                "position": 1,
                "clicked": [0, 1, 1, 2, 0, 1][index],
                "dwell_seconds": [None, 3.0, 4.0, 1.0, -1.0, 9.5][index],
                "source": "file",
            }
        )
    lines = [json.dumps(row).encode() for row in rows] + [b"{not json", b'{"ds": "2026-11-01"}']
    source = tmp_path_factory.mktemp("parity") / "search_logs.jsonl"
    source.write_bytes(b"\n".join(lines))
    landed = land_json_lines(source, "bronze.search_logs")
    target = source.with_suffix(".parquet")
    pq.write_table(landed, target)
    return str(target)


def _outcome(session, path: str):
    rows = validate_rows(session.read.parquet(path), "bronze.search_logs", ds="2026-11-01", job="ingest", source="p")
    accepted = sorted(tuple(row) for row in conform(rows.accepted, load_contract("bronze.search_logs")).collect())
    rejected = sorted((row.row_number, row.reason) for row in rows.rejected.collect())
    return accepted, rejected


def _run_classic(body: str) -> object:
    """Run `body` (which sets `result`) against classic local Spark in a child process."""
    script = (
        textwrap.dedent("""
        import json, sys
        from smar.engine import classic_local_session
        spark = classic_local_session()
        spark.sparkContext.setLogLevel("ERROR")
    """)
        + textwrap.dedent(body)
        + "\nprint('RESULT' + json.dumps(result, default=str))\nspark.stop()\n"
    )
    # The parent's Connect session marks the environment as Connect mode; the child must not inherit it.
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")
    }
    repository = str(Path(__file__).resolve().parents[1])
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [repository, environment.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=environment
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = [text for text in completed.stdout.splitlines() if text.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


def _normalise(outcome):
    return json.loads(json.dumps(outcome, default=str))


@pytest.fixture(scope="module")
def classic_results(landing_file):
    """Both transforms on classic Spark, in one child process (one JVM start)."""
    return _run_classic(f"""
        from tests.test_engine_parity import _outcome, _conformed_items
        result = {{"validation": _outcome(spark, {landing_file!r}), "conform": _conformed_items(spark)}}
    """)


def test_validation_gives_the_same_rows_and_reasons_on_both_engines(spark, landing_file, classic_results):
    embedded = _normalise(_outcome(spark, landing_file))
    assert embedded == classic_results["validation"]
    accepted, rejected = embedded
    assert len(accepted) + len(rejected) == 8
    assert {row_number for row_number, _ in rejected} >= {2, 3, 4, 6, 7}


def _conformed_items(session):
    contract = load_contract("bronze.items")
    data = pa.table(
        {
            "ds": ["d"],
            "item_id": ["i"],
            "modality": ["image"],
            "visual_embedding": [[0.5, 1.5]],
            "impression_count": [3],
            "source": ["g"],
        }
    ).to_pandas()
    frame = conform(session.createDataFrame(data), contract)
    return {"schema": frame.schema.simpleString(), "rows": [list(row) for row in frame.collect()]}


def test_conform_gives_the_same_schema_on_both_engines(spark, classic_results):
    embedded = _normalise(_conformed_items(spark))
    assert embedded == classic_results["conform"]
    assert embedded["schema"] == load_contract("bronze.items").spark_schema().simpleString()
