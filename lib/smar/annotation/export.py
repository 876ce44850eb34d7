"""What annotators receive: the files of one exported task selection, built from task rows.

A selection is (ds, strategy?, budget?, round?), an unset part meaning "all". Its files:
Label Studio task JSON (one task per page, items in display order), the labeling config XML,
and a plain CSV (one line per shown item, with empty `grade` and `annotator` to fill in).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO

from smar.annotation.label_studio import build_task, labeling_config
from smar.storage import files
from smar.storage.uris import join

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


class ExportCounts(NamedTuple):
    """What one export holds (tasks, items)."""

    tasks: int
    items: int


def shown_items(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A task row's items in the order annotators see them (`display_position`)."""
    return sorted((dict(item) for item in row["items"]), key=lambda item: item["display_position"])


def label_studio_task(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Label Studio task of one silver.annotation_tasks row (`label_studio.build_task`)."""
    return build_task(row["task_id"], row["page_id"], row["query_id"], row["query_text"], shown_items(row))


def write_export(task_rows: Iterable[Mapping[str, Any]], tasks_json: TextIO, tasks_csv: TextIO) -> ExportCounts:
    """Stream `task_rows` (silver.annotation_tasks rows, in order) as Label Studio tasks JSON (one
    array, a task per element) and the CSV: one row in memory at a time, whatever the day's size."""
    writer = csv.writer(tasks_csv, lineterminator="\n")
    writer.writerow(EXPORT_CSV_COLUMNS)
    n_tasks = n_items = 0
    tasks_json.write("[")
    for row in task_rows:
        tasks_json.write(",\n" if n_tasks else "\n")
        tasks_json.write(json.dumps(label_studio_task(row), ensure_ascii=False))
        n_tasks += 1
        for item in shown_items(row):
            n_items += 1
            writer.writerow(
                (
                    row["task_id"], row["page_id"], row["query_id"], row["query_text"],
                    item["display_position"], item["item_id"], item["modality"],
                    item["title"] or "", item["body"] or "", "", "",
                )
            )  # fmt: skip
    tasks_json.write("\n]\n")
    return ExportCounts(tasks=n_tasks, items=n_items)


@dataclass(frozen=True)
class ExportFiles:
    """Where one export's three files were published, and what they hold."""

    tasks_json: str
    tasks_csv: str
    labeling_config: str
    counts: ExportCounts


def write_export_files(task_rows: Iterable[Mapping[str, Any]], folder: str) -> ExportFiles:
    """`write_export` into `folder` (a URI) through the filesystem layer, plus the labeling config.
    Each file is published whole when its rows are written (`files.open_output`)."""
    tasks_path, csv_path = join(folder, TASKS_JSON), join(folder, TASKS_CSV)
    with files.open_text_output(tasks_path) as tasks_json, files.open_text_output(csv_path) as tasks_csv:
        counts = write_export(task_rows, tasks_json, tasks_csv)
    config_path = files.write_text(join(folder, LABELING_CONFIG), labeling_config())
    return ExportFiles(tasks_path, csv_path, config_path, counts)
