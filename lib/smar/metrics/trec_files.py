"""Readers for relevance judgements (qrels) and runs, in TREC or CSV form, auto-detected.

* TREC qrels: `qid iter docid rel` (whitespace separated; `iter` ignored).
* TREC run: `qid Q0 docid rank score tag` (the rank column is ignored, as by trec_eval: order
  comes from the score).
* CSV, with a header: `qid,pid,rel` for qrels and `qid,pid,score` for runs (also accepted:
  query_id/query, doc_id/docid/docno, relevance/label/grade).

A file is CSV when its first non-blank line contains a comma. Bad input raises
`InputFileError` naming the file, the line and what is wrong; survivable oddities (extra
trailing fields) come back as warnings with a count. Nothing is dropped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from smar.errors import InputRefused

FileFormat = Literal["trec", "csv"]

_QUERY_COLUMNS = ("qid", "query_id", "query")
_DOC_COLUMNS = ("pid", "doc_id", "docid", "docno")
_RELEVANCE_COLUMNS = ("rel", "relevance", "label", "grade")
_SCORE_COLUMNS = ("score",)


class InputFileError(InputRefused):
    """A qrels or run file that cannot be used; the message names file, line and reason."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class LoadedTable:
    """A parsed file: `frame` (query_id, doc_id and relevance or score), its format, warnings."""

    frame: pd.DataFrame
    file_format: FileFormat
    warnings: tuple[str, ...] = ()


def detect_format(path: Path | str) -> FileFormat:
    """ "csv" when the first non-blank line has a comma, else "trec"; InputFileError if empty."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                return "csv" if "," in line else "trec"
    raise InputFileError(path, "file is empty (no data lines)")


def read_qrels(path: Path | str) -> LoadedTable:
    """Read qrels into columns (query_id: str, doc_id: str, relevance: float64)."""
    return _read(Path(path), value_column="relevance")


def read_run(path: Path | str) -> LoadedTable:
    """Read a run into columns (query_id: str, doc_id: str, score: float64); NaN scores refused."""
    return _read(Path(path), value_column="score")


def _read(path: Path, *, value_column: Literal["relevance", "score"]) -> LoadedTable:
    if not path.is_file():
        raise InputFileError(path, "no such file")
    file_format = detect_format(path)
    if file_format == "csv":
        frame, warnings = _read_csv(path, value_column)
    else:
        frame, warnings = _read_trec(path, value_column)
    if frame.empty:
        raise InputFileError(path, "file has a header but no data rows")
    _refuse_duplicates(path, frame)
    return LoadedTable(frame.drop(columns="line"), file_format, tuple(warnings))


def _parse_number(path: Path, text: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputFileError(path, f"{column} {text!r} is not a number", line) from None
    if math.isnan(value):
        raise InputFileError(path, f"{column} is NaN; every document needs a number to be ranked", line)
    return value


def _read_trec(path: Path, value_column: str) -> tuple[pd.DataFrame, list[str]]:
    # qrels: qid iter docid rel; run: qid Q0 docid rank score tag.
    expected, value_field, layout = (
        (4, 3, "qid iter docid rel") if value_column == "relevance" else (6, 4, "qid Q0 docid rank score tag")
    )
    query_ids: list[str] = []
    doc_ids: list[str] = []
    values: list[float] = []
    lines: list[int] = []
    extra_fields = 0
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            fields = text.split()
            if not fields:
                continue
            if len(fields) < expected:
                raise InputFileError(
                    path, f"expected {expected} fields '{layout}', got {len(fields)}: {text.strip()!r}", number
                )
            extra_fields += len(fields) > expected
            query_ids.append(fields[0])
            doc_ids.append(fields[2])
            values.append(_parse_number(path, fields[value_field], number, value_column))
            lines.append(number)
    warnings = []
    if extra_fields:
        warnings.append(f"{path}: {extra_fields} lines have more than {expected} fields; the extra ones are ignored")
    frame = pd.DataFrame({"query_id": query_ids, "doc_id": doc_ids, value_column: values, "line": lines})
    return frame.astype({value_column: "float64"}), warnings


def _pick_column(path: Path, header: list[str], candidates: tuple[str, ...], what: str) -> str:
    for candidate in candidates:
        if candidate in header:
            return candidate
    raise InputFileError(path, f"CSV header {header} has no {what} column (one of {', '.join(candidates)})", 1)


def _read_csv(path: Path, value_column: str) -> tuple[pd.DataFrame, list[str]]:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
    header = [str(column).strip().lower() for column in raw.columns]
    raw.columns = header
    query_column = _pick_column(path, header, _QUERY_COLUMNS, "query id")
    doc_column = _pick_column(path, header, _DOC_COLUMNS, "document id")
    candidates = _RELEVANCE_COLUMNS if value_column == "relevance" else _SCORE_COLUMNS
    number_column = _pick_column(path, header, candidates, value_column)
    # Data rows start on line 2; blank lines are skipped by pandas, so recover real numbers.
    data_lines = _non_blank_line_numbers(path)[1:]
    if len(data_lines) != len(raw):  # quoted fields spanning lines: fall back to row positions
        data_lines = list(range(2, len(raw) + 2))
    values = [
        _parse_number(path, text.strip(), line, value_column)
        for text, line in zip(raw[number_column].tolist(), data_lines, strict=True)
    ]
    frame = pd.DataFrame(
        {
            "query_id": raw[query_column].str.strip(),
            "doc_id": raw[doc_column].str.strip(),
            value_column: pd.Series(values, dtype="float64"),
            "line": data_lines,
        }
    )
    missing_id = (frame["query_id"] == "") | (frame["doc_id"] == "")
    if missing_id.any():
        first = int(frame.loc[missing_id, "line"].iloc[0])
        raise InputFileError(path, f"{int(missing_id.sum())} rows have an empty query or document id", first)
    ignored = [column for column in header if column not in (query_column, doc_column, number_column)]
    warnings = [f"{path}: CSV columns {ignored} are ignored"] if ignored else []
    return frame, warnings


def _non_blank_line_numbers(path: Path) -> list[int]:
    with open(path, encoding="utf-8") as handle:
        return [number for number, text in enumerate(handle, start=1) if text.strip()]


def _refuse_duplicates(path: Path, frame: pd.DataFrame) -> None:
    duplicated = frame.duplicated(["query_id", "doc_id"], keep=False)
    if not duplicated.any():
        return
    repeated = frame[duplicated]
    count = int(frame.duplicated(["query_id", "doc_id"], keep="first").sum())
    query_id, doc_id = repeated.iloc[0]["query_id"], repeated.iloc[0]["doc_id"]
    same = repeated[(repeated["query_id"] == query_id) & (repeated["doc_id"] == doc_id)]["line"].tolist()
    raise InputFileError(
        path,
        f"{count} duplicate (query, document) rows; first: query {query_id!r} document {doc_id!r} on lines {same}",
        int(same[1]),
    )
