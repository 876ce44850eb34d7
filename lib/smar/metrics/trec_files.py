"""Readers for relevance judgements (qrels) and runs, in TREC, CSV or TSV form, auto-detected.

* TREC qrels: `qid iter docid rel` (whitespace separated; `iter` ignored).
* TREC run: `qid Q0 docid rank score tag` (the rank column is ignored, as by trec_eval: order
  comes from the score).
* CSV or TSV with a header: `qid,pid,rel` for qrels and `qid,pid,score` for runs (also accepted:
  query_id/query, doc_id/docid/docno/item_id, relevance/label/grade).
* Qrels that list only the relevant pairs, as public click datasets ship them: a header with a
  query and a document column and nothing else (`qid,pid`), or two fields per line without a
  header (`qid docid`). Every listed pair is relevant with grade 1 (a warning says so).

Ambiguous input is refused with one line naming the file and what to do: a header with an
unknown third column (is `weight` or `clicks` the grade?), or three fields per line without a
header (`qid docid rel` or `qid iter docid`?). A file is CSV when its first non-blank line
contains a comma, TSV when it contains a tab and is a header; anything else is read as
whitespace-separated TREC. Bad input raises `InputFileError` naming the file, the line and what is
wrong; survivable oddities (extra trailing fields) come back as warnings with a count. Nothing is
dropped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from smar.errors import InputRefused

FileFormat = Literal["trec", "csv", "tsv"]

_QUERY_COLUMNS = ("qid", "query_id", "query")
_DOC_COLUMNS = ("pid", "doc_id", "docid", "docno", "item_id")
_RELEVANCE_COLUMNS = ("rel", "relevance", "label", "grade")
_SCORE_COLUMNS = ("score",)
#: The grade of a pair listed in qrels that carry no relevance column.
LISTED_PAIR_GRADE = 1.0


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


def _first_line(path: Path | str) -> str:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                return line
    raise InputFileError(path, "file is empty (no data lines)")


def _is_header(fields: list[str]) -> bool:
    """A header names a query column and a document column (recognised names, any case)."""
    names = {field.strip().lower() for field in fields}
    return bool(names & set(_QUERY_COLUMNS)) and bool(names & set(_DOC_COLUMNS))


def detect_format(path: Path | str) -> FileFormat:
    """ "csv" when the first non-blank line has a comma, "tsv" when it is a header separated by tabs
    (or spaces), else "trec" (whitespace separated, tabs included); InputFileError if empty."""
    line = _first_line(path)
    if "," in line:
        return "csv"
    if _is_header(line.split()):
        return "tsv"
    return "trec"


def _separator(path: Path, file_format: FileFormat) -> str:
    if file_format == "csv":
        return ","
    return "\t" if "\t" in _first_line(path) else r"\s+"


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
    if file_format == "trec":
        frame, warnings = _read_trec(path, value_column)
    else:
        frame, warnings = _read_delimited(path, value_column, _separator(path, file_format))
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


def _listed_pairs_warning(path: Path) -> str:
    return (
        f"{path}: no relevance column; every listed (query, document) pair counts as relevant "
        f"(grade {LISTED_PAIR_GRADE:g})"
    )


def _positional(
    path: Path, records: list[tuple[int, list[str]]], value_column: str, layout_name: str
) -> tuple[pd.DataFrame, list[str]]:
    """Rows of headerless fields, by position: TREC qrels (4 fields) or listed pairs (2 fields,
    grade 1) for qrels, TREC runs (6 fields) for runs. The first line fixes the layout."""
    if not records:
        raise InputFileError(path, "file is empty (no data lines)")
    first_count = len(records[0][1])
    if value_column == "relevance" and first_count == 2:
        expected, value_field, layout = 2, None, "qid docid"
    elif value_column == "relevance" and first_count == 3:
        raise InputFileError(
            path,
            f"3 {layout_name} fields per line without a header is ambiguous ('qid docid rel' or 'qid iter docid'?): "
            "use TREC qrels 'qid iter docid rel', two fields 'qid docid' (every pair relevant), or a header",
            records[0][0],
        )
    elif value_column == "relevance":
        expected, value_field, layout = 4, 3, "qid iter docid rel"
    else:
        expected, value_field, layout = 6, 4, "qid Q0 docid rank score tag"
    query_ids: list[str] = []
    doc_ids: list[str] = []
    values: list[float] = []
    lines: list[int] = []
    extra_fields = 0
    for number, fields in records:
        if len(fields) < expected or (expected == 2 and len(fields) != 2):
            raise InputFileError(
                path, f"expected {expected} fields '{layout}', got {len(fields)}: {' '.join(fields)!r}", number
            )
        extra_fields += len(fields) > expected
        query_ids.append(fields[0])
        doc_ids.append(fields[1] if expected == 2 else fields[2])
        values.append(
            LISTED_PAIR_GRADE if value_field is None else _parse_number(path, fields[value_field], number, value_column)
        )
        lines.append(number)
    warnings = [_listed_pairs_warning(path)] if value_field is None else []
    if extra_fields:
        warnings.append(f"{path}: {extra_fields} lines have more than {expected} fields; the extra ones are ignored")
    frame = pd.DataFrame({"query_id": query_ids, "doc_id": doc_ids, value_column: values, "line": lines})
    return frame.astype({value_column: "float64"}), warnings


def _read_trec(path: Path, value_column: str) -> tuple[pd.DataFrame, list[str]]:
    # qrels: qid iter docid rel (or qid docid); run: qid Q0 docid rank score tag.
    with open(path, encoding="utf-8") as handle:
        records = [(number, text.split()) for number, text in enumerate(handle, start=1) if text.strip()]
    return _positional(path, records, value_column, "whitespace-separated")


def _pick_column(path: Path, header: list[str], candidates: tuple[str, ...], what: str) -> str:
    for candidate in candidates:
        if candidate in header:
            return candidate
    raise InputFileError(path, f"CSV header {header} has no {what} column (one of {', '.join(candidates)})", 1)


def _read_delimited(path: Path, value_column: str, separator: str) -> tuple[pd.DataFrame, list[str]]:
    kind = "CSV" if separator == "," else "TSV"
    try:
        raw = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, skip_blank_lines=True, header=None)
    except pd.errors.ParserError as error:  # rows with more fields than the first
        raise InputFileError(path, f"not a consistent {kind} file: {str(error).strip()}") from None
    # Data rows start after the header; blank lines are skipped by pandas, so recover real numbers.
    data_lines = _non_blank_line_numbers(path)
    if len(data_lines) != len(raw):  # quoted fields spanning lines: fall back to row positions
        data_lines = list(range(1, len(raw) + 1))
    first = [str(value) for value in raw.iloc[0].tolist()]
    if not _is_header(first):
        # No header: the fields are read by position, as TREC lines are.
        records = [
            (line, [str(value).strip() for value in row if str(value).strip() != ""])
            for line, row in zip(data_lines, raw.itertuples(index=False, name=None))
        ]
        return _positional(path, records, value_column, kind)
    header = [value.strip().lower() for value in first]
    raw = raw.iloc[1:].reset_index(drop=True)
    raw.columns = header
    data_lines = data_lines[1:]
    query_column = _pick_column(path, header, _QUERY_COLUMNS, "query id")
    doc_column = _pick_column(path, header, _DOC_COLUMNS, "document id")
    candidates = _RELEVANCE_COLUMNS if value_column == "relevance" else _SCORE_COLUMNS
    others = [column for column in header if column not in (query_column, doc_column)]
    warnings: list[str] = []
    if value_column == "relevance" and not any(column in header for column in candidates):
        if others:
            raise InputFileError(
                path,
                f"{kind} header {header} has no relevance column (one of {', '.join(candidates)}) but other "
                f"column(s) {others}: which one is the grade? Rename it to rel, or drop it to count every listed "
                "pair as relevant",
                1,
            )
        number_column = None
        warnings.append(_listed_pairs_warning(path))
        values = [LISTED_PAIR_GRADE] * len(raw)
    else:
        number_column = _pick_column(path, header, candidates, value_column)
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
        first_line = int(frame.loc[missing_id, "line"].iloc[0])
        raise InputFileError(path, f"{int(missing_id.sum())} rows have an empty query or document id", first_line)
    ignored = [column for column in header if column not in (query_column, doc_column, number_column)]
    if ignored:
        warnings.append(f"{path}: {kind} columns {ignored} are ignored")
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
