"""The parser against exports captured from a real Label Studio server (label-studio 1.23.2):
tests/data/label_studio/, made by tests/integration/capture_label_studio_exports.py. Fast, no
server: the server lane itself is tests/integration (marker label_studio)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from smar.annotation.label_studio import annotations_export, parse_export
from smar.annotation.label_studio_api import grade_results

CAPTURED = Path(__file__).resolve().parent / "data" / "label_studio"
ADMIN, ANNOTATOR_1, ANNOTATOR_2 = (
    "smar-admin@example.org",
    "simulated-annotator-1@example.org",
    "simulated-annotator-2@example.org",
)


@pytest.fixture(scope="module")
def capture() -> dict:
    return json.loads((CAPTURED / "capture.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def tasks() -> list[dict]:
    return json.loads((CAPTURED / "tasks.json").read_text("utf-8"))


def _expected(capture: dict, tasks: list[dict]) -> set[tuple[str, str, int, str]]:
    task_a, task_b = tasks
    rows = set()
    for annotator, grades, task in (
        (ADMIN, capture["ui_grades_a"], task_a),
        (ANNOTATOR_1, capture["edited_grades_a"], task_a),  # the edit, not the first version
        (ANNOTATOR_2, capture["api_grades_b"], task_b),
    ):
        for item, grade in zip(task["data"]["items"], grades):
            rows.add((task["data"]["task_id"], item["item_id"], grade, annotator))
    return rows


def test_the_snapshot_export_yields_every_submitted_grade_named_by_email(capture, tasks):
    # Given the export snapshot that label_studio_api.export_annotations asks for
    rows, rejected = parse_export((CAPTURED / "export_snapshot.json").read_bytes())
    # Then the UI annotation, the edited API annotation and the second annotator's all arrive, by email
    assert {(row.task_id, row.item_id, row.grade, row.annotator) for row in rows} == _expected(capture, tasks)
    # And the edited annotation carries its edit time, later than its creation
    edit = capture["edited_annotation"]
    edited_rows = [row for row in rows if row.annotator == ANNOTATOR_1]
    assert {row.annotated_at for row in edited_rows} == {edit["updated_at"]} and edit["updated_at"] > edit["created_at"]
    # And the skipped task is refused as cancelled; the draft and the predictions are not labels
    assert [(reject.reason, reject.annotator) for reject in rejected] == [
        ("annotation was cancelled (skipped by the annotator)", ANNOTATOR_1)
    ]


def test_the_quick_export_names_annotators_by_id_unless_given_the_users(capture, tasks):
    # Given the quick export (the UI's Export button): completed_by is a bare user id
    payload = (CAPTURED / "export_quick.json").read_bytes()
    export = json.loads(payload)
    assert {type(annotation["completed_by"]) for task in export for annotation in task["annotations"]} == {int}
    assert all(isinstance(prediction, int) for task in export for prediction in task["predictions"])
    users = {int(key): value for key, value in json.loads((CAPTURED / "users.json").read_text()).items()}
    # When parsed without the users, annotators are the ids; with them, the emails
    by_id, _ = parse_export(payload)
    by_email, rejected = parse_export(payload, annotators=users)
    assert {row.annotator for row in by_id} == {str(user_id) for user_id, email in users.items()}
    assert {(row.task_id, row.item_id, row.grade, row.annotator) for row in by_email} == _expected(capture, tasks)
    assert len(rejected) == 1 and rejected[0].annotator == ANNOTATOR_1


def test_the_ui_writes_the_results_our_config_promises(capture):
    # Given the annotation made with mouse clicks in the labeling UI (it started from the prediction)
    export = json.loads((CAPTURED / "export_snapshot.json").read_text("utf-8"))
    ui = next(a for a in export[0]["annotations"] if a["completed_by"]["email"] == ADMIN)
    # Then one choices result per item: grade_<i> -> item_<i>, the Choice alias (bare grade) as value
    assert [(r["from_name"], r["to_name"], r["type"], r["value"]) for r in ui["result"]] == [
        (f"grade_{i}", f"item_{i}", "choices", {"choices": [str(grade)]})
        for i, grade in enumerate(capture["ui_grades_a"])
    ]
    # And the item the annotator left as pre-filled keeps the prediction's grade, marked as such
    # (the anchoring a pre-annotation brings: grade_2 was predicted 2 and stayed 2)
    assert [r["origin"] for r in ui["result"]] == [
        "prediction-changed",
        "prediction-changed",
        "prediction",
        "prediction-changed",
    ]
    assert ui["lead_time"] > 0


def test_quick_min_and_csv_exports_keep_one_column_per_grade(capture):
    # Users report rating/ranking results missing from JSON_MIN and CSV exports (Label Studio 1.8 and
    # Repeater names before the converter learnt them); with 1.23.2 every grade_<i> is there
    minimal = json.loads((CAPTURED / "export_quick_min.json").read_text("utf-8"))
    ui_row = next(row for row in minimal if row["annotation_id"] == 1)
    assert [ui_row[f"grade_{i}"] for i in range(4)] == [str(grade) for grade in capture["ui_grades_a"]]
    table = list(csv.DictReader(io.StringIO((CAPTURED / "export_quick.csv").read_text("utf-8"))))
    edited = next(row for row in table if row["annotation_id"] == str(capture["edited_annotation"]["id"]))
    assert [edited[f"grade_{i}"] for i in range(4)] == [str(grade) for grade in capture["edited_grades_a"]]


def _shape(value):
    """A JSON value's type tree: dict keys with their shapes, a list's first element's shape."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _is_subshape(simulated, real) -> bool:
    if isinstance(simulated, dict):
        return isinstance(real, dict) and all(
            key in real and _is_subshape(item, real[key]) for key, item in simulated.items()
        )
    if isinstance(simulated, list):
        return isinstance(real, list) and (not simulated or not real or _is_subshape(simulated[0], real[0]))
    return simulated == real or {simulated, real} <= {"int", "float"}


def test_the_simulated_export_is_a_subset_of_the_real_one(tasks):
    # Given the simulator's export of the captured tasks (what the file round trip imports)
    grades = {(tasks[0]["data"]["task_id"], item["item_id"], ANNOTATOR_1): 2 for item in tasks[0]["data"]["items"]}
    simulated = annotations_export(tasks, grades)
    real = json.loads((CAPTURED / "export_snapshot.json").read_text("utf-8"))
    # Then every field it writes exists in the real export, with the same JSON type
    # (predictions aside: the simulator writes an empty list, the snapshot whole objects)
    simulated_task, real_task = _shape(simulated[0]), _shape(real[0])
    assert _is_subshape(simulated_task, real_task), (simulated_task, real_task)
    # And the results it writes are the ones the API client sends
    assert (
        simulated[0]["annotations"][0]["result"][0]["value"]
        == grade_results(tasks[0], {tasks[0]["data"]["items"][0]["item_id"]: 2})[0]["value"]
    )
