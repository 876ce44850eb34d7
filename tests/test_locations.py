"""Locations are URIs (issue 13): normalising, refusing mangled values, joining with URI rules,
the filesystem layer on local disk, and settings that refuse a location pathlib would mangle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smar.config import SmarSettings, read_settings
from smar.errors import InputRefused
from smar.storage import files
from smar.storage.uris import (
    display,
    engine_location,
    is_local,
    join,
    local_path,
    name,
    normalize_location,
    parent,
    relative_to,
)

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("s3://lake/warehouse", "s3://lake/warehouse"),
        ("s3://lake/warehouse/", "s3://lake/warehouse"),
        ("S3A://lake//warehouse///x", "s3a://lake/warehouse/x"),
        ("s3://lake", "s3://lake"),
        ("gs://bucket/prefix", "gs://bucket/prefix"),
        ("abfss://lake@account.dfs.core.windows.net/w", "abfss://lake@account.dfs.core.windows.net/w"),
        ("file:///data/lake/", "file:///data/lake"),
        ("file:///data/my%20lake", "file:///data/my%20lake"),
        ("file://localhost/data/lake", "file:///data/lake"),
    ],
)
def test_uris_are_normalised(given, expected):
    assert normalize_location(given) == expected


def test_local_paths_become_absolute_file_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalize_location("./warehouse") == (tmp_path / "warehouse").as_uri()
    assert normalize_location(Path("w") / ".." / "x") == (tmp_path / "x").as_uri()
    assert normalize_location(tmp_path / "with space") == (tmp_path / "with space").as_uri()
    assert local_path(normalize_location(tmp_path / "with space")) == tmp_path / "with space"
    assert normalize_location("~/lake") == (Path.home() / "lake").as_uri()


@pytest.mark.parametrize(
    "mangled",
    [
        "s3a:/lake/warehouse",  # one slash: pathlib would make ./s3a:/lake/warehouse
        "s3:lake/warehouse",
        "s3:///warehouse",  # no bucket
        "s3://",
        "hdfs://namenode/warehouse",  # no filesystem for it here
        "http://example.com/lake",
        "s3://lake/../other",
        "s3://lake/w?versionId=1",
        "file://host/share/lake",
        "relative/with:/colon",
        "",
        "   ",
    ],
)
def test_mangled_locations_are_refused(mangled):
    with pytest.raises(InputRefused):
        normalize_location(mangled, what="SMAR_WAREHOUSE")


def test_join_appends_segments_with_uri_rules():
    assert join("s3://lake/w", "bronze", "search_logs") == "s3://lake/w/bronze/search_logs"
    assert join("s3://lake/w/", "bronze/search_logs") == "s3://lake/w/bronze/search_logs"
    assert join("file:///data", "a b", "c") == "file:///data/a%20b/c"
    assert local_path(join("file:///data", "a b")) == Path("/data/a b")
    for bad in ("", "..", "a/../b", "./a", "a//b"):
        with pytest.raises(ValueError):
            join("s3://lake/w", bad)


def test_helpers_read_uris_without_pathlib():
    assert parent("s3://lake/w/x.json") == "s3://lake/w"
    assert name("s3://lake/w/x.json") == "x.json"
    assert name("file:///data/a%20b.json") == "a b.json"
    assert relative_to("s3://lake/w/a/b.json", "s3://lake/w") == "a/b.json"
    assert is_local("file:///x") and not is_local("s3://lake/x")
    assert engine_location("file:///data/lake") == "/data/lake"  # what engines got before URIs
    assert engine_location("s3://lake/w") == "s3://lake/w"
    assert display("file:///data/lake") == "/data/lake"
    with pytest.raises(ValueError):
        local_path("s3://lake/w")
    with pytest.raises(ValueError):
        parent("s3://lake")


def test_settings_hold_uris_and_refuse_mangled_locations(tmp_path):
    settings = SmarSettings(warehouse=tmp_path / "w", artifacts="s3://lake/artifacts/", reports="gs://r/reports")
    assert settings.warehouse == (tmp_path / "w").as_uri()
    assert settings.artifacts == "s3://lake/artifacts"
    assert settings.table_uri("gold.ab_decisions") == (tmp_path / "w" / "gold" / "ab_decisions").as_uri()
    assert SmarSettings(warehouse="s3a://lake/w").table_uri("bronze.search_logs") == "s3a://lake/w/bronze/search_logs"
    os.environ["SMAR_WAREHOUSE"] = "s3a:/lake/warehouse"
    try:
        with pytest.raises(InputRefused, match="SMAR_WAREHOUSE.*neither a local path nor a valid URI"):
            read_settings()
    finally:
        del os.environ["SMAR_WAREHOUSE"]


def test_a_mangled_warehouse_exits_2_and_creates_no_folder(tmp_path):
    # Given the README's old, mangled spelling of an object-store warehouse
    env = {**os.environ, "SMAR_WAREHOUSE": "s3a:/lake/warehouse", "PYTHONPATH": str(REPOSITORY / "lib")}
    # When a command runs with it
    done = subprocess.run(
        [sys.executable, "-m", "smar.cli", "tables"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    # Then it is refused in one line, with exit code 2, and no local "s3a:" folder appears
    assert done.returncode == 2, done.stderr
    assert "SMAR_WAREHOUSE" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_filesystem_layer_on_local_disk(tmp_path):
    base = normalize_location(tmp_path / "store")
    target = join(base, "a", "b.bin")
    assert not files.exists(target)
    files.write_bytes(target, b"\x00one")
    files.write_bytes(target, b"\x00two")  # replaced whole
    assert files.read_bytes(target) == b"\x00two" and files.file_size(target) == 4
    files.write_text(join(base, "c.txt"), "text")
    assert [entry.uri for entry in files.list_files(base)] == [target, join(base, "c.txt")]
    assert files.list_dirs(base) == [join(base, "a")]
    assert files.is_dir(join(base, "a")) and files.is_file(target)
    assert not [path for path in (tmp_path / "store" / "a").iterdir() if path.name.startswith(".")]
    with pytest.raises(FileNotFoundError, match="no such file"):
        files.read_bytes(join(base, "missing"))
    copied = files.download_tree(base, tmp_path / "copy")
    assert sorted(path.name for path in copied) == ["b.bin", "c.txt"]
    files.remove_tree(join(base, "a"))
    assert not files.exists(target)
    folder, publish = files.staged_folder(join(base, "staged"))
    assert folder == tmp_path / "store" / "staged"  # local: written in place
    publish()
