"""Readers at the edge: raw input -> landing Arrow tables for `validation.validate_rows`.

Every landing table carries `_row_number` (position in the source) and may carry
`_raw_payload` (the line as received), `_parse_error` (why the reader could not use a row at all)
and `_missing_columns`. Readers never drop a row: a line that cannot be parsed becomes a row with a
`_parse_error`, so it reaches `bronze.rejects` with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from smar.contracts import load_contract
from smar.errors import SourceError
from smar.ingest.generator import GeneratedDay
from smar.ingest.validation import MISSING_COLUMNS, PARSE_ERROR, RAW_PAYLOAD, ROW_NUMBER, TYPE_ERRORS

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
    """JSON lines (one object per line) for `table`; every contract column lands as a string.

    A UTF-8 byte order mark at the start of the file is dropped (editors on Windows write one). A
    JSON number, boolean, array or object where the contract wants text is a type error of that
    row: the validator refuses it, as it refuses the same value from a Parquet file."""
    contract = load_contract(table)
    required = [column.name for column in contract.columns if column.required]
    text_columns = [column.name for column in contract.columns if column.type.strip().lower() == "string"]
    rows: list[dict[str, Any]] = []
    content = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    if not content.strip():
        raise SourceError(f"{path}: file is empty")
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
    return string_table(rows, contract.column_names)


def land_parquet(path: Path) -> pa.Table:
    """A Parquet file or folder as is (the validator casts and reports absent columns)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise SourceError(f"{path}: not a readable Parquet file or folder ({error})") from error
    return with_row_numbers(table)


def land_file(path: Path, table: str) -> pa.Table:
    """Pick the reader from the file name: `.jsonl`/`.json`/`.ndjson` or `.parquet`."""
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return land_json_lines(path, table)
    if suffix == ".parquet" or path.is_dir():
        return land_parquet(path)
    raise SourceError(f"{path}: unknown input format {suffix!r}; use .jsonl, .json, .ndjson or .parquet")


FILE_TABLES = {
    "search_logs": "bronze.search_logs",
    "items": "bronze.items",
    "users": "bronze.users",
    "relevance": "truth.relevance",
}


def land_files(path: Path, table: str | None) -> dict[str, list[pa.Table]]:
    """A single file for `table`, or a folder of files named after tables: `<name>.<format>` or
    `<name>.<part>.<format>` (`search_logs.part0.jsonl`, `search_logs.part1.parquet`, ...).

    Every file of a table is read, in name order, and their rows are numbered one after the other
    (the duplicate-key rule keeps the first occurrence in that order). A file whose name matches
    no table is an error naming the expected names; hidden files and `_`-prefixed markers
    (`_SUCCESS`) are skipped. With `table`, only that table's files are read.
    """
    if path.is_file():
        if table is None:
            raise SourceError(f"{path}: name the table it holds with --table (e.g. bronze.search_logs)")
        return {table: [land_file(path, table)]}
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder")
    by_table: dict[str, list[Path]] = {}
    for candidate in sorted(path.iterdir()):
        if candidate.name.startswith((".", "_")):
            continue
        name = candidate.name.split(".")[0]
        if name not in FILE_TABLES:
            raise SourceError(
                f"{candidate}: the file name matches no table; name files after a table, "
                f"one of {sorted(FILE_TABLES)} (e.g. search_logs.jsonl or search_logs.part1.parquet)"
            )
        if table is None or FILE_TABLES[name] == table:
            by_table.setdefault(FILE_TABLES[name], []).append(candidate)
    if not by_table:
        raise SourceError(
            f"{path}: no input files found; expected files named {sorted(FILE_TABLES)} "
            "with .parquet, .jsonl, .json or .ndjson"
        )
    landed: dict[str, list[pa.Table]] = {}
    for name, files in by_table.items():
        offset = 0
        parts = []
        for file in files:
            part = land_file(file, name)
            numbers = pc.add(part.column(ROW_NUMBER), offset)
            part = part.set_column(part.schema.get_field_index(ROW_NUMBER), ROW_NUMBER, numbers)
            if len(files) > 1 and PARSE_ERROR in part.column_names:
                # Line numbers in a reason are per file: say which file.
                errors = pc.binary_join_element_wise(pa.scalar(f"{file.name}: "), part.column(PARSE_ERROR), "")
                part = part.set_column(part.schema.get_field_index(PARSE_ERROR), PARSE_ERROR, errors)
            offset += part.num_rows
            parts.append(part)
        landed[name] = parts
    return landed
