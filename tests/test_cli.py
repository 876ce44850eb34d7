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
    failed = _run(
        [
            "ingest",
            "--ds",
            "2026-11-01",
            "--source",
            "files",
            "--path",
            str(bad),
            "--table",
            "bronze.search_logs",
            "--warehouse",
            "wh",
        ],
        tmp_path,
    )
    assert failed.returncode == 2
    assert "reject fraction above" in failed.stderr and "malformed JSON" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_expected_errors_exit_2_with_one_line_and_others_keep_their_traceback():
    import pytest
    import typer

    from smar.cli.common import exit_codes
    from smar.errors import ArtifactError, ConcurrentWriteError, MissingInput

    # Given refused input or a bad artifact, Then exit code 2 with the error chained
    for refused_error in (MissingInput("no tasks file at x.json"), ArtifactError("corrupt state_dict")):
        with pytest.raises(typer.Exit) as refused:
            with exit_codes():
                raise refused_error
        assert refused.value.exit_code == 2
        assert refused.value.__cause__ is refused_error
    # And a lost race for a table slice: exit code 75 (try again)
    with pytest.raises(typer.Exit) as raced:
        with exit_codes():
            raise ConcurrentWriteError("another run committed to bronze.items ds=2026-11-01 first")
    assert raced.value.exit_code == 75
    # And a bug, even a bare ValueError, keeps its traceback: it is not bad input
    for bug in (KeyError("not an expected error"), ValueError("a caller passed an impossible argument")):
        with pytest.raises(type(bug)):
            with exit_codes():
                raise bug


def test_an_error_message_is_printed_as_written_brackets_included(capsys):
    import pytest
    import typer

    from smar.cli.common import exit_codes
    from smar.errors import MissingDependency, ServiceError

    # Given errors whose text holds square brackets (an install command, a list of ids)
    with pytest.raises(typer.Exit) as missing:
        with exit_codes():
            raise MissingDependency("run pip install 'smar[label-studio]' -c constraints.txt")
    # Then the message keeps them (rich would read "[label-studio]" as markup), and a server
    # that cannot be reached exits 69
    assert missing.value.exit_code == 2
    assert "pip install 'smar[label-studio]' -c constraints.txt" in capsys.readouterr().err
    with pytest.raises(typer.Exit) as unavailable:
        with exit_codes():
            raise ServiceError("Label Studio import tasks: HTTP 503: ['down']")
    assert unavailable.value.exit_code == 69 and "HTTP 503: ['down']" in capsys.readouterr().err
