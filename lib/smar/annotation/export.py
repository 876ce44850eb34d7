"""What annotators receive: the files of one exported task selection, built from task rows.

A selection is (ds, strategy?, budget?, round?), an unset part meaning "all". Its files:
Label Studio task JSON (one task per page, items in display order), the labeling config XML,
and a plain CSV (one line per shown item, with empty `grade` and `annotator` to fill in).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from smar.annotation.label_studio import build_task

TASKS_JSON = "tasks.json"
TASKS_CSV = "tasks.csv"
LABELING_CONFIG = "labeling_config.xml"
EXPORT_CSV_COLUMNS = (
    "task_id", "page_id", "query_id", "query_text", "display_position",
    "item_id", "modality", "title", "body", "grade", "annotator",
)  # fmt: skip


def selection_name(strategy: str | None, budget: float | None, round_number: int | None) -> str:
    """`<strategy>-b<budget>-r<round>`, "all" for an unset part: the export's folder name."""
    return "-".join(
        (
            strategy or "all",
            "ball" if budget is None else f"b{budget:g}",
            "rall" if round_number is None else f"r{round_number}",
        )
    )


def selection(ds: str, strategy: str | None, budget: float | None, round_number: int | None) -> dict[str, Any]:
    """The task slice columns a selection fixes (the unset parts left out)."""
    values: dict[str, Any] = {"ds": ds}
    if strategy is not None:
        values["strategy"] = strategy
    if budget is not None:
        values["budget"] = float(budget)
    if round_number is not None:
        values["round"] = int(round_number)
    return values


@dataclass(frozen=True)
class ExportDocuments:
    """The texts of one export, and what they hold."""

    tasks_json: str
    tasks_csv: str
    tasks: int
    items: int


def shown_items(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A task row's items in the order annotators see them (`display_position`)."""
    return sorted((dict(item) for item in row["items"]), key=lambda item: item["display_position"])


def label_studio_task(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Label Studio task of one silver.annotation_tasks row (`label_studio.build_task`)."""
    return build_task(row["task_id"], row["page_id"], row["query_id"], row["query_text"], shown_items(row))


def export_documents(task_rows: Iterable[Mapping[str, Any]]) -> ExportDocuments:
    """Label Studio tasks JSON and the CSV of `task_rows` (silver.annotation_tasks rows, in order)."""
    tasks_json: list[dict[str, Any]] = []
    csv_buffer = io.StringIO()
    writer = csv.writer(csv_buffer, lineterminator="\n")
    writer.writerow(EXPORT_CSV_COLUMNS)
    n_tasks = n_items = 0
    for row in task_rows:
        n_tasks += 1
        tasks_json.append(label_studio_task(row))
        for item in shown_items(row):
            n_items += 1
            writer.writerow(
                (
                    row["task_id"], row["page_id"], row["query_id"], row["query_text"],
                    item["display_position"], item["item_id"], item["modality"],
                    item["title"] or "", item["body"] or "", "", "",
                )
            )  # fmt: skip
    return ExportDocuments(
        tasks_json=json.dumps(tasks_json, indent=1, ensure_ascii=False) + "\n",
        tasks_csv=csv_buffer.getvalue(),
        tasks=n_tasks,
        items=n_items,
    )
