"""Label Studio interop: build page-grading tasks, read annotation exports back. Pure functions.

One task is one candidate page. Its `data` carries our ids (Label Studio assigns its own numeric
task `id`, so ours must travel inside `data` to survive the round trip):

    {"data": {"task_id", "page_id", "query_id", "query",
              "items": [{"index", "item_id", "modality", "title", "body", "text"}, ...]},
     "meta": {"task_id", "page_id", "query_id", "item_ids", "modalities"}}

`labeling_config.xml` (next to this file) repeats one `Text` + `Choices` pair per entry of
`items`; the export then holds, per annotation, `choices` results with from_name `grade_<index>`,
to_name `item_<index>` and value `{"choices": ["<grade>"]}` (the Choice alias is the bare grade).

Export format read here (Label Studio's JSON export: a list of tasks):

    [{"id": 1, "data": {...}, "annotations": [{"completed_by": 7 | {"id": 7, "email": ...},
      "updated_at": "...", "was_cancelled": false, "result": [{"from_name": "grade_0",
      "to_name": "item_0", "type": "choices", "value": {"choices": ["3"]}}, ...]}, ...]}, ...]

The annotator is `completed_by`'s email when it is an object with one, else its id, as a string.
What a real server (label-studio 1.23.2) writes, checked against captured exports in
`tests/data/label_studio/`: the export snapshot that `label_studio_api.export_annotations` asks
for holds the object `{"id", "email", "first_name", "last_name"}`; the quick export (the UI's
Export button) holds the bare user id, which `parse_export(..., annotators={id: email})` turns
into the email. Both hold many more keys (drafts, predictions, lead_time, ...), ignored here:
drafts and predictions are never labels.
"""

from __future__ import annotations

import csv
import io
import json
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from smar.errors import LabelImportError
from smar.vocabulary import GRADE_RUBRIC as RUBRIC
from smar.vocabulary import MAX_GRADE, MIN_GRADE, VISUAL_MODALITIES

GRADE_CONTROL = re.compile(r"^grade_(\d+)$")
CSV_COLUMNS = ("task_id", "item_id", "grade", "annotator")
# Simulated exports carry a fixed timestamp unless told otherwise, so reruns are byte-identical.
DEFAULT_ANNOTATED_AT = "1970-01-01T00:00:00.000000Z"


@dataclass(frozen=True)
class LabelRow:
    """One accepted page-level grade."""

    task_id: str
    item_id: str
    grade: int
    annotator: str
    annotated_at: str | None


@dataclass(frozen=True)
class RejectedLabel:
    """One refused row: `row_number` is the task's 0-based index in the export (or the CSV data
    line's), `raw_payload` the offending fragment as JSON (or the raw CSV line)."""

    row_number: int
    reason: str
    raw_payload: str
    task_id: str | None = None
    item_id: str | None = None
    annotator: str | None = None


def labeling_config() -> str:
    """The Label Studio labeling config (XML) matching `build_task`'s data."""
    return resources.files("smar.annotation").joinpath("labeling_config.xml").read_text("utf-8")


def _display_text(modality: str, item_id: str, title: str, body: str) -> str:
    """What the annotator reads for one item: modality tag, title, snippet; a placeholder line
    naming the item for images and videos, whose media are not shipped with the task."""
    lines = [f"[{modality}] {title}".rstrip()]
    if modality in VISUAL_MODALITIES:
        lines.append(f"({modality} placeholder: item {item_id})")
    if body:
        lines.append(body)
    return "\n".join(lines)


def build_task(
    task_id: str,
    page_id: str,
    query_id: str,
    query_text: str,
    shown_items: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """One Label Studio task for one page; `shown_items` (dicts with item_id, modality and optional
    title, body or snippet) keep their order, which is the order annotators see."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, shown in enumerate(shown_items):
        missing = [key for key in ("item_id", "modality") if not shown.get(key)]
        if missing:
            raise ValueError(f"task {task_id}: shown item {index} lacks {', '.join(missing)}")
        item_id, modality = str(shown["item_id"]), str(shown["modality"])
        if item_id in seen:
            raise ValueError(f"task {task_id}: item {item_id} is shown twice")
        seen.add(item_id)
        title = str(shown.get("title") or "")
        body = str(shown.get("body") or shown.get("snippet") or "")
        items.append(
            {
                "index": index,
                "item_id": item_id,
                "modality": modality,
                "title": title,
                "body": body,
                "text": _display_text(modality, item_id, title, body),
            }
        )
    return {
        "data": {
            "task_id": str(task_id),
            "page_id": str(page_id),
            "query_id": str(query_id),
            "query": query_text,
            "items": items,
        },
        "meta": {
            "task_id": str(task_id),
            "page_id": str(page_id),
            "query_id": str(query_id),
            "item_ids": [item["item_id"] for item in items],
            "modalities": [item["modality"] for item in items],
        },
    }


def _check_grade(grade: Any) -> int:
    if isinstance(grade, bool) or not isinstance(grade, numbers.Integral) or not MIN_GRADE <= int(grade) <= MAX_GRADE:
        raise ValueError(f"grade must be an integer in {MIN_GRADE}..{MAX_GRADE}, got {grade!r}")
    return int(grade)  # numpy integers are not JSON-serialisable


def annotations_export(
    tasks: Sequence[Mapping[str, Any]],
    grades: Mapping[tuple[str, str, str], int],
    *,
    annotated_at: str = DEFAULT_ANNOTATED_AT,
) -> list[dict[str, Any]]:
    """A Label Studio JSON export, as the tool would emit it, for `tasks` (from `build_task`) graded
    with `grades[(task_id, item_id, annotator)]`: one annotation per annotator and task, one
    `choices` result per graded item. Unknown task or item ids in `grades` raise ValueError."""
    item_index: dict[str, dict[str, int]] = {}
    for task in tasks:
        data = task["data"]
        item_index[data["task_id"]] = {item["item_id"]: item["index"] for item in data["items"]}
    by_task: dict[str, dict[str, dict[int, int]]] = {}
    for (task_id, item_id, annotator), grade in grades.items():
        if task_id not in item_index:
            raise ValueError(f"grade for unknown task {task_id!r}")
        if item_id not in item_index[task_id]:
            raise ValueError(f"grade for item {item_id!r} not shown in task {task_id!r}")
        by_task.setdefault(task_id, {}).setdefault(annotator, {})[item_index[task_id][item_id]] = _check_grade(grade)

    # Label Studio numbers users, annotations and tasks itself; stable numbers keep diffs small.
    annotator_numbers = {
        name: number for number, name in enumerate(sorted({annotator for _, _, annotator in grades}), start=1)
    }
    export: list[dict[str, Any]] = []
    annotation_number = 0
    for task_number, task in enumerate(tasks, start=1):
        data = task["data"]
        annotations = []
        for annotator, graded in sorted(by_task.get(data["task_id"], {}).items()):
            annotation_number += 1
            annotations.append(
                {
                    "id": annotation_number,
                    "completed_by": {"id": annotator_numbers[annotator], "email": annotator},
                    "result": [
                        {
                            "id": f"t{task_number}_grade_{index}",
                            "from_name": f"grade_{index}",
                            "to_name": f"item_{index}",
                            "type": "choices",
                            "origin": "manual",
                            "value": {"choices": [str(grade)]},
                        }
                        for index, grade in sorted(graded.items())
                    ],
                    "was_cancelled": False,
                    "ground_truth": False,
                    "created_at": annotated_at,
                    "updated_at": annotated_at,
                    "lead_time": 0.0,
                    "task": task_number,
                }
            )
        export.append(
            {
                "id": task_number,
                "data": dict(data),
                "meta": dict(task.get("meta", {})),
                "annotations": annotations,
                "predictions": [],
                "created_at": annotated_at,
                "updated_at": annotated_at,
                "project": 1,
            }
        )
    return export


def _parse_grade(raw: Any) -> tuple[int | None, str | None]:
    """(grade, None) or (None, reason). Accepts an integer, an integer string, or a rubric label
    (what the export holds if a config without the Choice aliases was used)."""
    if isinstance(raw, bool):
        return None, f"grade is not an integer: {raw!r}"
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
        value = int(raw)
    elif isinstance(raw, str) and raw.strip() in RUBRIC.values():
        value = next(grade for grade, label in RUBRIC.items() if label == raw.strip())
    else:
        return None, f"grade is not an integer: {raw!r}"
    if not MIN_GRADE <= value <= MAX_GRADE:
        return None, f"grade out of range {MIN_GRADE}..{MAX_GRADE}: {value}"
    return value, None


def _annotator_name(completed_by: Any, annotators: Mapping[int, str] | None = None) -> str | None:
    if isinstance(completed_by, Mapping):
        if completed_by.get("email"):
            return str(completed_by["email"])
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool) or completed_by is None or completed_by == "":
        return None
    if annotators and isinstance(completed_by, int) and completed_by in annotators:
        return str(annotators[completed_by])
    if isinstance(completed_by, (int, str)):
        return str(completed_by)
    return None


def _compact(fragment: Any) -> str:
    return json.dumps(fragment, sort_keys=True, ensure_ascii=False, default=str)


def parse_export(
    payload: str | bytes, *, annotators: Mapping[int, str] | None = None
) -> tuple[list[LabelRow], list[RejectedLabel]]:
    """Accepted grades and refused rows from a Label Studio JSON export (see module docstring).
    `annotators` (Label Studio user id -> email) names the annotators of a quick export, whose
    `completed_by` is a bare id; ids it does not know stay ids.

    Refused, with a reason: a task without data.task_id or data.items; an annotation without
    completed_by, updated_at or result, or one that was cancelled; a result without from_name or
    value.choices, with a control other than grade_<index>, an index the task does not show, a grade
    that is not an integer or not in 0..4, or a second grade for the same item by the same
    annotator in the same task. An unreadable file raises LabelImportError and returns nothing.
    """
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as error:
            raise LabelImportError(f"Label Studio export is not UTF-8: byte {error.start}: {error.reason}") from error
    try:
        tasks = json.loads(payload)
    except json.JSONDecodeError as error:
        raise LabelImportError(
            f"Label Studio export is not valid JSON: {error.msg} at line {error.lineno}, "
            f"column {error.colno} (char {error.pos})"
        ) from error
    if not isinstance(tasks, list):
        raise LabelImportError(f"Label Studio export must be a JSON list of tasks, got {type(tasks).__name__}")

    rows: list[LabelRow] = []
    rejected: list[RejectedLabel] = []
    for row_number, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            rejected.append(RejectedLabel(row_number, "task is not a JSON object", _compact(task)))
            continue
        data = task.get("data")
        task_id = data.get("task_id") if isinstance(data, Mapping) else None
        items = data.get("items") if isinstance(data, Mapping) else None
        if task_id in (None, "") or not isinstance(items, list):
            missing_field = "data.task_id" if task_id in (None, "") else "data.items"
            rejected.append(RejectedLabel(row_number, f"missing field {missing_field}", _compact(task)))
            continue
        task_id = str(task_id)
        # The Repeater's {{idx}} is the item's position in data.items, so that is the key.
        item_ids: dict[int, str] = {
            position: str(item["item_id"])
            for position, item in enumerate(items)
            if isinstance(item, Mapping) and item.get("item_id") not in (None, "")
        }

        for annotation in task.get("annotations") or []:
            fragment = _compact(annotation)
            annotator = (
                _annotator_name(annotation.get("completed_by"), annotators) if isinstance(annotation, Mapping) else None
            )

            def refuse(reason: str, raw: str = fragment, item_id: str | None = None) -> None:
                rejected.append(RejectedLabel(row_number, reason, raw, task_id, item_id, annotator))

            if not isinstance(annotation, Mapping):
                refuse("annotation is not a JSON object")
                continue
            if annotation.get("was_cancelled"):
                refuse("annotation was cancelled (skipped by the annotator)")
                continue
            missing = [
                name
                for name, present in (
                    ("completed_by", annotator is not None),
                    ("updated_at", bool(annotation.get("updated_at"))),
                    ("result", isinstance(annotation.get("result"), list)),
                )
                if not present
            ]
            if missing:
                refuse(f"missing field {', '.join(f'annotation.{name}' for name in missing)}")
                continue
            assert annotator is not None
            annotated_at = str(annotation["updated_at"])
            graded: set[str] = set()
            for result in annotation["result"]:
                raw = _compact(result)
                if not isinstance(result, Mapping):
                    refuse("result is not a JSON object", raw)
                    continue
                from_name = result.get("from_name")
                value = result.get("value")
                choices = value.get("choices") if isinstance(value, Mapping) else None
                if not from_name:
                    refuse("missing field result.from_name", raw)
                    continue
                control = GRADE_CONTROL.match(str(from_name))
                if control is None:
                    refuse(f"unexpected control {from_name!r}; expected grade_<index>", raw)
                    continue
                index = int(control.group(1))
                if index not in item_ids:
                    refuse(
                        f"unknown item index {index} for task {task_id} ({len(item_ids)} items shown)",
                        raw,
                    )
                    continue
                item_id = item_ids[index]
                if not isinstance(choices, list) or len(choices) != 1:
                    refuse("missing field result.value.choices (exactly one choice)", raw, item_id)
                    continue
                grade, problem = _parse_grade(choices[0])
                if problem is not None or grade is None:
                    refuse(problem or "bad grade", raw, item_id)
                    continue
                if item_id in graded:
                    refuse(f"duplicate grade for item {item_id} by {annotator}", raw, item_id)
                    continue
                graded.add(item_id)
                rows.append(LabelRow(task_id, item_id, grade, annotator, annotated_at))
    return rows, rejected


def parse_csv(
    text: str, *, tasks: Sequence[Mapping[str, Any]] | None = None
) -> tuple[list[LabelRow], list[RejectedLabel]]:
    """Accepted grades and refused rows from a CSV with header `task_id,item_id,grade,annotator`
    (any column order, extra columns ignored). With `tasks` (from `build_task`), an item that the
    task does not show is refused too. `annotated_at` is None: the CSV carries no time.
    A missing header column raises LabelImportError."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration as error:
        raise LabelImportError("label CSV is empty: expected a header row") from error
    except csv.Error as error:
        raise LabelImportError(f"label CSV header is unreadable: {error}") from error
    header = [name.strip() for name in header]
    absent = [name for name in CSV_COLUMNS if name not in header]
    if absent:
        raise LabelImportError(f"label CSV header lacks column(s) {', '.join(absent)}; got {', '.join(header)}")
    column = {name: header.index(name) for name in CSV_COLUMNS}
    shown: dict[str, set[str]] | None = None
    if tasks is not None:
        shown = {
            str(task["data"]["task_id"]): {str(item["item_id"]) for item in task["data"]["items"]} for task in tasks
        }

    rows: list[LabelRow] = []
    rejected: list[RejectedLabel] = []
    row_number = -1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise LabelImportError(f"label CSV line {reader.line_num}: {error}") from error
        row_number += 1
        if not fields:
            continue
        raw = ",".join(fields)
        if len(fields) != len(header):
            rejected.append(RejectedLabel(row_number, f"expected {len(header)} fields, got {len(fields)}", raw))
            continue
        task_id, item_id, grade_text, annotator = (fields[column[name]].strip() for name in CSV_COLUMNS)
        empty = [name for name, value in zip(CSV_COLUMNS, (task_id, item_id, grade_text, annotator)) if not value]
        if empty:
            rejected.append(
                RejectedLabel(
                    row_number,
                    f"missing field {', '.join(empty)}",
                    raw,
                    task_id or None,
                    item_id or None,
                    annotator or None,
                )
            )
            continue
        grade, problem = _parse_grade(grade_text)
        if problem is None and shown is not None:
            if task_id not in shown:
                problem = f"unknown task {task_id}"
            elif item_id not in shown[task_id]:
                problem = f"unknown item {item_id} for task {task_id}"
        if problem is not None or grade is None:
            rejected.append(RejectedLabel(row_number, problem or "bad grade", raw, task_id, item_id, annotator))
            continue
        rows.append(LabelRow(task_id, item_id, grade, annotator, None))
    return rows, rejected
