"""Readers at the edge: raw input -> landing Arrow tables for `validation.validate_rows`.

Every landing table carries `_row_number` (position in the source) and may carry
`_raw_payload` (the line as received), `_parse_error` (why the reader could not use a row at all)
and `_missing_columns`. Readers never drop a row: a line that cannot be parsed becomes a row with a
`_parse_error`, so it reaches `bronze.rejects` with its reason.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from smar.contracts import load_contract
from smar.generator import GeneratedDay
from smar.validation import MISSING_COLUMNS, PARSE_ERROR, RAW_PAYLOAD, ROW_NUMBER

GENERATED_TABLES = ("bronze.search_logs", "bronze.items", "bronze.users", "truth.relevance")


class SourceError(ValueError):
    """The input as a whole is unusable (no such file, unknown format); nothing is written."""


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


def _string_table(rows: list[dict[str, Any]], columns: Iterable[str]) -> pa.Table:
    names = list(columns)
    data = {name: pa.array([row.get(name) for row in rows], type=pa.string()) for name in names}
    data[ROW_NUMBER] = pa.array([row[ROW_NUMBER] for row in rows], type=pa.int64())
    for bookkeeping in (RAW_PAYLOAD, PARSE_ERROR, MISSING_COLUMNS):
        data[bookkeeping] = pa.array([row.get(bookkeeping) for row in rows], type=pa.string())
    return pa.table(data)


def land_json_lines(path: Path, table: str) -> pa.Table:
    """JSON lines (one object per line) for `table`; every contract column lands as a string."""
    contract = load_contract(table)
    required = [column.name for column in contract.columns if column.required]
    rows: list[dict[str, Any]] = []
    content = path.read_bytes()
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
        missing = [name for name in required if name not in parsed]
        if missing:
            row[MISSING_COLUMNS] = ",".join(missing)
        rows.append(row)
    return _string_table(rows, contract.column_names)


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


# -- Qilin (RED-Search/Qilin, Xiaohongshu) ------------------------------------------------------

QILIN_NOTE_TYPE_TO_MODALITY = {1: "image", 2: "video"}
_DETAIL_PATTERN = re.compile(r"\{[^{}]*\}")
_NAN_PATTERN = re.compile(r"\bnan\b")


def parse_numpy_vector(text: str | None) -> list[float] | None:
    """A vector printed by NumPy (`[ 4.9e-01 -3.2e-01 ...]`) as a list of floats."""
    if text is None or not text.strip():
        return None
    values = np.array(text.strip().strip("[]").split(), dtype=np.float64)
    return values.astype(np.float32).tolist()


def parse_qilin_details(text: str) -> list[dict[str, Any]]:
    """`search_result_details_with_idx`: a NumPy-printed array of dicts, NaN spelled `nan`."""
    return [ast.literal_eval(_NAN_PATTERN.sub("None", match)) for match in _DETAIL_PATTERN.findall(text)]


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise SourceError(f"{path}: Qilin file not found")
    csv.field_size_limit(1 << 30)
    text = path.read_bytes().decode("utf-8", errors="replace")
    return list(csv.DictReader(io.StringIO(text)))


def _undecodable(row: dict[str, Any]) -> str | None:
    for key, value in row.items():
        if isinstance(value, str) and "\ufffd" in value:
            return f"undecodable text in column '{key}' (invalid UTF-8 replaced)"
    return None


def _float_or_none(value: Any) -> float | None:
    if value is None or value == "":
        return None
    number = float(value)
    return None if np.isnan(number) else number


def land_qilin(folder: Path, ds: str) -> dict[str, pa.Table]:
    """Qilin's search, notes and user files into landing tables for the bronze contracts.

    `search_result_details_with_idx` becomes one impression per shown note (position, click,
    page_time as dwell); `note_type` maps to modality (1 image-text -> image, 2 video -> video);
    `note_embedding` is kept as the item's visual embedding and `user_feat` as user features.
    An impression whose note is absent from notes.csv is refused: its modality is unknown.
    """
    notes = _read_csv(folder / "notes.csv")
    modality_by_note: dict[str, str] = {}
    item_rows: list[dict[str, Any]] = []
    for number, note in enumerate(notes):
        note_idx = note.get("note_idx", "")
        note_type = int(float(note["note_type"])) if note.get("note_type") else None
        modality = QILIN_NOTE_TYPE_TO_MODALITY.get(note_type) if note_type is not None else None
        if modality:
            modality_by_note[note_idx] = modality
        item_rows.append(
            {
                ROW_NUMBER: number,
                PARSE_ERROR: _undecodable(note),
                "ds": ds,
                "item_id": f"qilin-n{note_idx}",
                "modality": modality if modality else (f"note_type={note_type}" if note_type is not None else None),
                "title": note.get("note_title", ""),
                "body": note.get("note_content", ""),
                "visual_embedding": json.dumps(parse_numpy_vector(note.get("note_embedding"))),
                "impression_count": note.get("imp_num") and str(int(float(note["imp_num"]))),
                "click_count": note.get("click_num") and str(int(float(note["click_num"]))),
                "like_count": note.get("like_num") and str(int(float(note["like_num"]))),
                "share_count": note.get("share_num") and str(int(float(note["share_num"]))),
                "source": "qilin",
            }
        )

    search_rows: list[dict[str, Any]] = []
    number = 0
    for file_name in ("search_train.csv", "search_test.csv"):
        path = folder / file_name
        if not path.exists():
            continue
        for search in _read_csv(path):
            query = search.get("query", "")
            query_id = "qilin-q" + str(abs(hash_text(query)))
            error = _undecodable(search)
            try:
                details = parse_qilin_details(search.get("search_result_details_with_idx", ""))
            except (ValueError, SyntaxError) as parse_error:
                search_rows.append({ROW_NUMBER: number, PARSE_ERROR: f"{file_name}: unparseable search_result_details_with_idx ({parse_error})", RAW_PAYLOAD: json.dumps(search)[:10_000]})
                number += 1
                continue
            for detail in details:
                note_idx = str(detail.get("note_idx"))
                modality = modality_by_note.get(note_idx)
                timestamp = _float_or_none(detail.get("search_timestamp"))
                search_rows.append(
                    {
                        ROW_NUMBER: number,
                        PARSE_ERROR: error
                        or (None if modality else f"note_idx {note_idx} not in notes.csv: modality unknown"),
                        RAW_PAYLOAD: json.dumps({"file": file_name, "search_idx": search.get("search_idx"), **detail}),
                        "ds": ds,
                        "request_id": f"qilin-s{search.get('search_idx')}",
                        "query_id": query_id,
                        "query_text": query,
                        "user_id": f"qilin-u{search.get('user_idx')}",
                        "request_ts": None
                        if timestamp is None
                        else datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(),
                        "item_id": f"qilin-n{note_idx}",
                        "modality": modality,
                        "position": None if detail.get("position") is None else str(int(detail["position"])),
                        "production_score": None,
                        "clicked": None if detail.get("click") is None else str(int(detail["click"])),
                        "dwell_seconds": None if _float_or_none(detail.get("page_time")) is None else str(detail["page_time"]),
                        "source": "qilin",
                    }
                )
                number += 1

    user_rows: list[dict[str, Any]] = []
    for number, user in enumerate(_read_csv(folder / "user_feat.csv")):
        dense_names = ["fans_num", "follows_num"] + [f"dense_feat{k}" for k in range(1, 41)]
        dense = [_float_or_none(user.get(name)) for name in dense_names]
        user_rows.append(
            {
                ROW_NUMBER: number,
                PARSE_ERROR: _undecodable(user),
                "ds": ds,
                "user_id": f"qilin-u{user.get('user_idx')}",
                "gender": user.get("gender") or None,
                "age_bucket": user.get("age") or None,
                "platform": user.get("platform") or None,
                "dense_features": json.dumps([0.0 if value is None else value for value in dense]),
                "source": "qilin",
            }
        )
    return {
        "bronze.search_logs": _string_table(search_rows, load_contract("bronze.search_logs").column_names),
        "bronze.items": _string_table(item_rows, load_contract("bronze.items").column_names),
        "bronze.users": _string_table(user_rows, load_contract("bronze.users").column_names),
    }


def hash_text(text: str) -> int:
    """A stable 60-bit hash of a text (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "little") >> 4
