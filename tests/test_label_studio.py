"""Label Studio interop: labeling config, task building, export parsing, CSV parsing."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from smar.annotation.label_studio import (
    LabelImportError,
    LabelRow,
    annotations_export,
    build_task,
    labeling_config,
    parse_csv,
    parse_export,
)

SHOWN = [
    {"item_id": "w1", "modality": "web", "title": "Bike repair", "snippet": "Fix a flat tyre"},
    {"item_id": "i7", "modality": "image", "title": "Tyre lever"},
    {"item_id": "v3", "modality": "video", "title": "How to patch a tube", "body": "3 min"},
]


def _tasks() -> list[dict]:
    return [
        build_task("t1", "p1", "q1", "fix bike tyre", SHOWN),
        build_task("t2", "p2", "q2", "tyre pressure", SHOWN[:2]),
    ]


# ---- labeling config -----------------------------------------------------------------------


def test_labeling_config_is_well_formed_and_grades_each_repeated_item():
    # Given the shipped config / When parsed as XML
    root = ET.fromstring(labeling_config())
    repeater = root.find(".//Repeater")
    # Then a Repeater over $items holds one Text and one Choices per item, named by index
    assert repeater is not None and repeater.get("on") == "$items"
    text = repeater.find(".//Text")
    choices = repeater.find(".//Choices")
    assert text.get("name") == "item_{{idx}}" and text.get("value") == "$items[{{idx}}].text"
    assert choices.get("name") == "grade_{{idx}}" and choices.get("toName") == "item_{{idx}}"
    # And the five choices carry the bare grades 0..4 as aliases, with the rubric as labels
    options = choices.findall("Choice")
    assert [option.get("alias") for option in options] == ["0", "1", "2", "3", "4"]
    rubric_words = ["fails", "barely", "partially", "largely", "fully"]
    assert all(word in option.get("value") for word, option in zip(rubric_words, options))
    # And the query is shown from $query
    assert any(tag.get("value") == "$query" for tag in root.iter("Text"))


def test_config_variables_exist_in_built_task_data():
    # Given the config's $variables / Then build_task's data provides each of them
    data = _tasks()[0]["data"]
    variables = set(re.findall(r"\$([a-z_]+)", labeling_config()))
    assert variables <= set(data)
    assert all("text" in item for item in data["items"])


# ---- build_task ----------------------------------------------------------------------------


def test_build_task_keeps_shown_order_and_ids():
    task = build_task("t1", "p1", "q1", "fix bike tyre", SHOWN)
    data = task["data"]
    assert (data["task_id"], data["page_id"], data["query_id"]) == ("t1", "p1", "q1")
    assert data["query"] == "fix bike tyre"
    assert [item["item_id"] for item in data["items"]] == ["w1", "i7", "v3"]
    assert [item["index"] for item in data["items"]] == [0, 1, 2]
    assert task["meta"]["item_ids"] == ["w1", "i7", "v3"]
    assert task["meta"]["modalities"] == ["web", "image", "video"]
    # And the snippet is used as the body, and is shown
    assert data["items"][0]["body"] == "Fix a flat tyre"
    assert "Fix a flat tyre" in data["items"][0]["text"]
    # And the task is plain JSON
    assert json.loads(json.dumps(task)) == task


def test_build_task_gives_visual_items_a_placeholder_with_the_item_id():
    items = build_task("t1", "p1", "q1", "q", SHOWN)["data"]["items"]
    assert "placeholder" not in items[0]["text"]
    assert "image placeholder" in items[1]["text"] and "i7" in items[1]["text"]
    assert "video placeholder" in items[2]["text"] and "v3" in items[2]["text"]


def test_build_task_refuses_duplicates_and_missing_ids():
    with pytest.raises(ValueError, match="twice"):
        build_task("t1", "p1", "q1", "q", [SHOWN[0], SHOWN[0]])
    with pytest.raises(ValueError, match="item_id"):
        build_task("t1", "p1", "q1", "q", [{"modality": "web"}])


# ---- round trip ------------------------------------------------------------------------------


def test_round_trip_build_export_parse_reproduces_grades_exactly():
    # Given two tasks and grades from two annotators (one item left ungraded)
    grades = {
        ("t1", "w1", "ann-a"): 4,
        ("t1", "i7", "ann-a"): 0,
        ("t1", "v3", "ann-a"): 2,
        ("t1", "w1", "ann-b"): 3,
        ("t2", "i7", "ann-b"): 1,
    }
    # When exported as Label Studio would (numpy grades, as a simulator makes them), serialised,
    # and parsed back
    numpy_grades = {key: np.int64(grade) for key, grade in grades.items()}
    export = annotations_export(_tasks(), numpy_grades, annotated_at="2026-11-01T10:00:00Z")
    rows, rejected = parse_export(json.dumps(export).encode("utf-8"))
    # Then every grade comes back, nothing is refused, with the annotation time
    assert rejected == []
    assert {(r.task_id, r.item_id, r.annotator): r.grade for r in rows} == grades
    assert len(rows) == len(grades)
    assert {row.annotated_at for row in rows} == {"2026-11-01T10:00:00Z"}


def test_export_has_label_studio_shape():
    export = annotations_export(_tasks(), {("t1", "i7", "ann-a"): 3})
    annotation = export[0]["annotations"][0]
    (result,) = annotation["result"]
    assert result == {
        "id": result["id"],
        "from_name": "grade_1",
        "to_name": "item_1",
        "type": "choices",
        "origin": "manual",
        "value": {"choices": ["3"]},
    }
    assert annotation["completed_by"]["email"] == "ann-a"
    assert export[1]["annotations"] == []


def test_export_refuses_grades_for_unknown_items_or_bad_values():
    with pytest.raises(ValueError, match="not shown"):
        annotations_export(_tasks(), {("t2", "v3", "a"): 1})
    with pytest.raises(ValueError, match="unknown task"):
        annotations_export(_tasks(), {("t9", "w1", "a"): 1})
    with pytest.raises(ValueError, match="grade"):
        annotations_export(_tasks(), {("t1", "w1", "a"): 5})


# ---- parse_export: accepted variants and rejects --------------------------------------------


def _one_annotation_export(results, **annotation_fields) -> list[dict]:
    annotation = {"completed_by": 7, "updated_at": "2026-11-01T10:00:00Z", "result": results}
    annotation.update(annotation_fields)
    task = copy.deepcopy(_tasks()[0])
    return [{"id": 1, "data": task["data"], "annotations": [annotation]}]


def _choice(index, value) -> dict:
    return {
        "from_name": f"grade_{index}",
        "to_name": f"item_{index}",
        "type": "choices",
        "value": {"choices": [value]},
    }


def test_integer_user_id_and_rubric_labels_are_accepted():
    # Given an export where completed_by is Label Studio's numeric user id, and one grade is a
    # rubric label (config without aliases)
    export = _one_annotation_export([_choice(0, "2"), _choice(1, "4 fully meets the need")])
    rows, rejected = parse_export(json.dumps(export))
    assert rejected == []
    assert rows == [
        LabelRow("t1", "w1", 2, "7", "2026-11-01T10:00:00Z"),
        LabelRow("t1", "i7", 4, "7", "2026-11-01T10:00:00Z"),
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("5", "out of range"),
        ("-1", "out of range"),
        ("2.5", "not an integer"),
        ("good", "not an integer"),
        (True, "not an integer"),
    ],
)
def test_bad_grades_are_refused_and_others_kept(value, reason):
    # Given one good and one bad grade in the same annotation
    export = _one_annotation_export([_choice(0, "3"), _choice(1, value)])
    rows, rejected = parse_export(json.dumps(export))
    # Then the good one is kept and the bad one refused, naming the item
    assert [(row.item_id, row.grade) for row in rows] == [("w1", 3)]
    assert len(rejected) == 1
    assert reason in rejected[0].reason
    assert rejected[0].item_id == "i7" and rejected[0].task_id == "t1"
    assert rejected[0].row_number == 0
    assert json.loads(rejected[0].raw_payload)["from_name"] == "grade_1"


def test_unknown_item_index_is_refused():
    export = _one_annotation_export([_choice(3, "2")])  # task t1 shows 3 items: 0..2
    rows, rejected = parse_export(json.dumps(export))
    assert rows == []
    assert "unknown item index 3 for task t1" in rejected[0].reason


def test_missing_fields_are_refused():
    # Given an annotation without completed_by, one without updated_at, a result without choices,
    # a result from another control, and a task without task_id
    export = _one_annotation_export([_choice(0, "1")])
    export[0]["annotations"].append({"updated_at": "x", "result": [_choice(1, "1")]})
    export[0]["annotations"].append({"completed_by": 8, "result": [_choice(1, "1")]})
    export[0]["annotations"].append(
        {
            "completed_by": 9,
            "updated_at": "x",
            "result": [
                {"from_name": "grade_2", "to_name": "item_2", "type": "choices", "value": {}},
                {"from_name": "comment", "value": {"text": ["hi"]}},
            ],
        }
    )
    export.append({"id": 2, "data": {"items": []}, "annotations": []})
    # When parsed
    rows, rejected = parse_export(json.dumps(export))
    # Then only the first grade is kept and each problem is refused with its own reason
    assert [(row.item_id, row.annotator) for row in rows] == [("w1", "7")]
    reasons = [item.reason for item in rejected]
    assert len(reasons) == 5
    assert "missing field annotation.completed_by" in reasons[0]
    assert "missing field annotation.updated_at" in reasons[1]
    assert "value.choices" in reasons[2]
    assert "unexpected control 'comment'" in reasons[3]
    assert "missing field data.task_id" in reasons[4] and rejected[4].row_number == 1


def test_cancelled_annotations_and_duplicates_are_refused():
    export = _one_annotation_export([_choice(0, "1"), _choice(0, "2")])
    export[0]["annotations"].append({"completed_by": 8, "updated_at": "x", "was_cancelled": True, "result": []})
    rows, rejected = parse_export(json.dumps(export))
    assert [(row.item_id, row.grade) for row in rows] == [("w1", 1)]
    assert "duplicate grade for item w1" in rejected[0].reason
    assert "cancelled" in rejected[1].reason


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('[{"id": 1, "data": {}', "line 1, column"),
        ('[\n  {"id": 1,,}\n]', "line 2, column"),
        ("", "not valid JSON"),
        ('{"tasks": []}', "JSON list of tasks"),
        (b"\xff\xfe[", "not UTF-8"),
    ],
)
def test_malformed_export_raises_with_position(payload, message):
    with pytest.raises(LabelImportError, match=message):
        parse_export(payload)


# ---- parse_csv --------------------------------------------------------------------------------


def test_csv_accepts_good_rows_and_refuses_each_bad_class():
    # Given a CSV with reordered columns, good rows and one bad row per class
    text = "\n".join(
        [
            "annotator,task_id,item_id,grade",
            "ann-a,t1,w1,4",
            "ann-a,t1,i7,0",
            "ann-a,t1,v3,7",  # out of range
            "ann-a,t1,v3,x",  # not an integer
            "ann-a,t1,,2",  # missing item_id
            "ann-a,t2,v3,1",  # t2 does not show v3
            "ann-a,t1,w1,3",  # the same item graded again: kept, the import keeps the later one
            "ann-a,t1,w1",  # too few fields
        ]
    )
    # When parsed against the tasks
    rows, rejected = parse_csv(text, tasks=_tasks())
    # Then the good rows are kept in file order (no timestamp in CSV), the repeated grade too: one
    # rule for every format, the import keeps the latest (`labels.latest_per_key`)
    assert rows == [
        LabelRow("t1", "w1", 4, "ann-a", None),
        LabelRow("t1", "i7", 0, "ann-a", None),
        LabelRow("t1", "w1", 3, "ann-a", None),
    ]
    reasons = [item.reason for item in rejected]
    assert "out of range" in reasons[0]
    assert "not an integer" in reasons[1]
    assert "missing field item_id" in reasons[2]
    assert "unknown item v3 for task t2" in reasons[3]
    assert "expected 4 fields" in reasons[4]
    assert [item.row_number for item in rejected] == [2, 3, 4, 5, 7]


def test_csv_without_required_header_raises():
    with pytest.raises(LabelImportError, match="lacks column"):
        parse_csv("task_id,item_id,score,annotator\nt1,w1,2,a\n")
    with pytest.raises(LabelImportError, match="empty"):
        parse_csv("")
