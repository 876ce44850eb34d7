"""The Qilin multimodal search dataset (RED-Search/Qilin, Xiaohongshu) -> landing tables.

`search_result_details_with_idx` becomes one impression per shown note (position, click,
page_time as dwell); `note_type` maps to modality (1 image-text -> image, 2 video -> video);
`note_embedding` is kept as the item's visual embedding and `user_feat` as user features.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from smar.contracts import load_contract
from smar.errors import SourceError
from smar.ingest.sources import string_table
from smar.ingest.validation import PARSE_ERROR, RAW_PAYLOAD, ROW_NUMBER
from smar.storage import files
from smar.storage.uris import display, join, normalize_location

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


def _read_csv(uri: str) -> list[dict[str, str]]:
    if not files.is_file(uri):
        raise SourceError(f"{display(uri)}: Qilin file not found")
    csv.field_size_limit(1 << 30)
    text = files.read_bytes(uri).decode("utf-8", errors="replace")
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


def land_qilin(folder: str | Path, ds: str) -> dict[str, pa.Table]:
    """Qilin's search, notes and user files into landing tables for the bronze contracts.

    `search_result_details_with_idx` becomes one impression per shown note (position, click,
    page_time as dwell); `note_type` maps to modality (1 image-text -> image, 2 video -> video);
    `note_embedding` is kept as the item's visual embedding and `user_feat` as user features.
    An impression whose note is absent from notes.csv is refused: its modality is unknown.
    The files are read on the driver through the filesystem layer (a local folder or a URI):
    an impression's modality comes from notes.csv, a join of three files that the vendored sample
    keeps small; the landed rows then reach Spark through the warehouse's landing area.
    """
    folder = normalize_location(folder, what="--path")
    notes = _read_csv(join(folder, "notes.csv"))
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
        path = join(folder, file_name)
        if not files.exists(path):
            continue
        for search in _read_csv(path):
            query = search.get("query", "")
            query_id = "qilin-q" + str(abs(hash_text(query)))
            error = _undecodable(search)
            try:
                details = parse_qilin_details(search.get("search_result_details_with_idx", ""))
            except (ValueError, SyntaxError) as parse_error:
                search_rows.append(
                    {
                        ROW_NUMBER: number,
                        PARSE_ERROR: f"{file_name}: unparseable search_result_details_with_idx ({parse_error})",
                        RAW_PAYLOAD: json.dumps(search)[:10_000],
                    }
                )
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
                        else datetime.fromtimestamp(timestamp, tz=UTC).isoformat(),
                        "item_id": f"qilin-n{note_idx}",
                        "modality": modality,
                        "position": None if detail.get("position") is None else str(int(detail["position"])),
                        "production_score": None,
                        "clicked": None if detail.get("click") is None else str(int(detail["click"])),
                        "dwell_seconds": None
                        if _float_or_none(detail.get("page_time")) is None
                        else str(detail["page_time"]),
                        "source": "qilin",
                    }
                )
                number += 1

    user_rows: list[dict[str, Any]] = []
    for number, user in enumerate(_read_csv(join(folder, "user_feat.csv"))):
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
        "bronze.search_logs": string_table(search_rows, load_contract("bronze.search_logs").column_names),
        "bronze.items": string_table(item_rows, load_contract("bronze.items").column_names),
        "bronze.users": string_table(user_rows, load_contract("bronze.users").column_names),
    }


def hash_text(text: str) -> int:
    """A stable 60-bit hash of a text (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "little") >> 4
