"""The `smar` command line, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SMAR = [sys.executable, "-m", "smar.cli"]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(SMAR + args, capture_output=True, text=True, cwd=tmp_path, timeout=600)


def test_ingest_tables_and_a_failing_input(tmp_path: Path):
    # Given a tiny generated day, When ingested through the CLI, Then the tables list shows it.
    ok = _run(["ingest", "--ds", "2026-11-01", "--size", "tiny", "--warehouse", "wh"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "bronze.search_logs" in ok.stdout and "900" in ok.stdout
    listed = _run(["tables", "--warehouse", "wh"], tmp_path)
    assert listed.returncode == 0 and "truth.relevance" in listed.stdout
    assert (tmp_path / "wh" / "bronze" / "search_logs" / "_delta_log").is_dir()
    assert list((tmp_path / "reports" / "gx").rglob("index.html")), "GX Data Docs were not built"

    # Given a malformed file, When ingested, Then the command exits non-zero naming the reason.
    bad = tmp_path / "search_logs.jsonl"
    bad.write_text("{broken\n" + json.dumps({"ds": "2026-11-01"}) + "\n")
    failed = _run(["ingest", "--ds", "2026-11-01", "--source", "files", "--path", str(bad),
                   "--table", "bronze.search_logs", "--warehouse", "wh"], tmp_path)
    assert failed.returncode == 2
    assert "reject fraction above" in failed.stdout and "malformed JSON" in failed.stdout


def test_expected_errors_exit_2_with_one_line_and_others_keep_their_traceback():
    import pytest
    import typer

    from smar.cli import exit_code_2_on

    with pytest.raises(typer.Exit) as refused:
        with exit_code_2_on(ValueError, FileNotFoundError):
            raise FileNotFoundError("no tasks file at x.json")
    assert refused.value.exit_code == 2
    assert isinstance(refused.value.__cause__, FileNotFoundError)
    with pytest.raises(KeyError):
        with exit_code_2_on(ValueError):
            raise KeyError("not an expected error")
