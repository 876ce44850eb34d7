"""Readers at the edge: raw input -> landing Arrow tables for `validation.validate_rows`.

Every landing table carries `_row_number` (position in the source) and may carry
`_raw_payload` (the line as received), `_parse_error` (why the reader could not use a row at all)
and `_missing_columns`. Readers never drop a row: a line that cannot be parsed becomes a row with a
`_parse_error`, so it reaches `bronze.rejects` with its reason.

The parsers take bytes, not paths: `smar.ingest.readers` runs them on the executors over the
files Spark read (`binaryFile`), so no input passes through the driver. `input_files` lists an
input location (a local path or an object-store URI) through the filesystem layer.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from smar.contracts import load_contract
from smar.errors import SourceError
from smar.ingest.generator import GeneratedDay
from smar.ingest.validation import MISSING_COLUMNS, PARSE_ERROR, RAW_PAYLOAD, ROW_NUMBER, TYPE_ERRORS
from smar.storage import files
from smar.storage.uris import display, normalize_location
from smar.storage.uris import name as name_of

GENERATED_TABLES = ("bronze.search_logs", "bronze.items", "bronze.users", "truth.relevance")


def with_row_numbers(table: pa.Table) -> pa.Table:
    return table.append_column(ROW_NUMBER, pa.array(np.arange(table.num_rows, dtype=np.int64)))


def land_generated(day: GeneratedDay) -> dict[str, pa.Table]:
    """The generator's typed tables, ready for validation."""
    return {
        "bronze.search_logs": with_row_numbers(day.search_logs),
        "bronze.items": with_row_numbers(day.items),
        "bronze.users": with_row_numbers(day.users),
        "truth.relevance": with_row_numbers(day.relevance),
    }


def _as_raw_text(value: Any) -> str | None:
    """A JSON value as the string the validator casts: strings as is, others as JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, allow_nan=True)


def string_table(rows: list[dict[str, Any]], columns: Iterable[str]) -> pa.Table:
    names = list(columns)
    data = {name: pa.array([row.get(name) for row in rows], type=pa.string()) for name in names}
    data[ROW_NUMBER] = pa.array([row[ROW_NUMBER] for row in rows], type=pa.int64())
    for bookkeeping in (RAW_PAYLOAD, PARSE_ERROR, MISSING_COLUMNS, TYPE_ERRORS):
        data[bookkeeping] = pa.array([row.get(bookkeeping) for row in rows], type=pa.string())
    return pa.table(data)


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}.get(type(value), "value")


def land_json_lines(path: Path, table: str) -> pa.Table:
    """A local JSON lines file for `table` (`parse_json_lines`); an empty file is refused."""
    content = Path(path).read_bytes()
    if not is_nonblank(content):
        raise SourceError(f"{path}: file is empty")
    return parse_json_lines(content, table)


def is_nonblank(content: bytes) -> bool:
    """Whether a JSON lines file holds anything but a byte order mark and white space."""
    return bool(content.removeprefix(b"\xef\xbb\xbf").strip())


def parse_json_lines(content: bytes, table: str, *, label: str | None = None) -> pa.Table:
    """JSON lines (one object per line) for `table`; every contract column lands as a string.

    A UTF-8 byte order mark at the start of the file is dropped (editors on Windows write one). A
    JSON number, boolean, array or object where the contract wants text is a type error of that
    row: the validator refuses it, as it refuses the same value from a Parquet file. `label`
    (the file's name, when a table has several files) prefixes each parse error: line numbers are
    per file."""
    contract = load_contract(table)
    required = [column.name for column in contract.columns if column.required]
    text_columns = [column.name for column in contract.columns if column.type.strip().lower() == "string"]
    rows: list[dict[str, Any]] = []
    content = content.removeprefix(b"\xef\xbb\xbf")
    for line_number, raw_line in enumerate(content.splitlines()):
        if not raw_line.strip():
            continue
        row: dict[str, Any] = {ROW_NUMBER: line_number}
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError as error:
            row[RAW_PAYLOAD] = raw_line.decode("utf-8", errors="backslashreplace")
            row[PARSE_ERROR] = f"undecodable text: invalid UTF-8 at byte {error.start} of line {line_number + 1}"
            rows.append(row)
            continue
        row[RAW_PAYLOAD] = text
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            row[PARSE_ERROR] = f"malformed JSON on line {line_number + 1}: {error.msg} at column {error.colno}"
            rows.append(row)
            continue
        if not isinstance(parsed, dict):
            row[PARSE_ERROR] = f"line {line_number + 1} is a JSON {type(parsed).__name__}, not an object"
            rows.append(row)
            continue
        for name in contract.column_names:
            row[name] = _as_raw_text(parsed.get(name))
        wrong = [
            f"column '{name}': JSON {_json_type(parsed[name])} {json.dumps(parsed[name])[:80]} is not a valid string"
            for name in text_columns
            if parsed.get(name) is not None and not isinstance(parsed[name], str)
        ]
        if wrong:
            row[TYPE_ERRORS] = "; ".join(wrong)
        missing = [name for name in required if name not in parsed]
        if missing:
            row[MISSING_COLUMNS] = ",".join(missing)
        rows.append(row)
    landed = string_table(rows, contract.column_names)
    if label is not None and rows:
        errors = [None if error is None else f"{label}: {error}" for error in landed.column(PARSE_ERROR).to_pylist()]
        landed = landed.set_column(
            landed.schema.get_field_index(PARSE_ERROR), PARSE_ERROR, pa.array(errors, pa.string())
        )
    return landed


def parse_parquet(content: bytes) -> pa.Table:
    """A Parquet file's bytes as is, numbered (the validator casts and reports absent columns)."""
    return with_row_numbers(pq.read_table(io.BytesIO(content)))


JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")


@dataclass(frozen=True)
class InputFile:
    """One raw input file of a table: its URI, its format and where it came from."""

    uri: str
    file_format: str  # "json" or "parquet"
    size: int

    @property
    def label(self) -> str:
        return name_of(self.uri)


def _format_of(uri: str) -> str:
    lowered = name_of(uri).lower()
    if lowered.endswith(JSON_SUFFIXES):
        return "json"
    if lowered.endswith(".parquet"):
        return "parquet"
    suffix = "." + lowered.rpartition(".")[2] if "." in lowered else ""
    raise SourceError(f"{display(uri)}: unknown input format {suffix!r}; use .jsonl, .json, .ndjson or .parquet")


def _files_of(uri: str) -> list[InputFile]:
    """The file `uri`, or the Parquet files of a Parquet folder (a dataset Spark wrote)."""
    if files.is_file(uri):
        return [InputFile(uri, _format_of(uri), files.file_size(uri))]
    if files.is_dir(uri):
        parts = [
            entry
            for entry in files.list_files(uri)
            if not name_of(entry.uri).startswith((".", "_")) and name_of(entry.uri).lower().endswith(".parquet")
        ]
        if not parts:
            raise SourceError(f"{display(uri)}: not a readable Parquet file or folder (no .parquet files in it)")
        return [InputFile(entry.uri, "parquet", entry.size) for entry in parts]
    raise SourceError(f"{display(uri)}: no such file or folder")


FILE_TABLES = {
    "search_logs": "bronze.search_logs",
    "items": "bronze.items",
    "users": "bronze.users",
    "relevance": "truth.relevance",
}


def input_files(location: str | Path, table: str | None) -> dict[str, list[InputFile]]:
    """The files to read: a single file for `table`, or a folder of files named after tables:
    `<name>.<format>` or `<name>.<part>.<format>` (`search_logs.part0.jsonl`,
    `search_logs.part1.parquet`, ...). `location` is a local path or a URI (`s3://...`).

    Every file of a table is read, in name order, and their rows are numbered one after the other
    (the duplicate-key rule keeps the first occurrence in that order). A file whose name matches
    no table is an error naming the expected names; hidden files and `_`-prefixed markers
    (`_SUCCESS`) are skipped. With `table`, only that table's files are read. Only names and
    sizes are read here (on the driver); the rows are read by Spark.
    """
    uri = normalize_location(location, what="--path")
    if files.is_file(uri):
        if table is None:
            raise SourceError(f"{display(uri)}: name the table it holds with --table (e.g. bronze.search_logs)")
        return {table: _files_of(uri)}
    if not files.is_dir(uri):
        raise SourceError(f"{display(uri)}: no such file or folder")
    by_table: dict[str, list[InputFile]] = {}
    children = sorted({*[entry.uri for entry in files.list_files(uri, recursive=False)], *files.list_dirs(uri)})
    for candidate in children:
        file_name = name_of(candidate)
        if file_name.startswith((".", "_")):
            continue
        stem = file_name.split(".")[0]
        if stem not in FILE_TABLES:
            raise SourceError(
                f"{display(candidate)}: the file name matches no table; name files after a table, "
                f"one of {sorted(FILE_TABLES)} (e.g. search_logs.jsonl or search_logs.part1.parquet)"
            )
        if table is None or FILE_TABLES[stem] == table:
            by_table.setdefault(FILE_TABLES[stem], []).extend(_files_of(candidate))
    if not by_table:
        raise SourceError(
            f"{display(uri)}: no input files found; expected files named {sorted(FILE_TABLES)} "
            "with .parquet, .jsonl, .json or .ndjson"
        )
    return by_table
