"""Capture real Label Studio exports into tests/data/label_studio/ (the parser's fixtures).

    PYTHONPATH=lib .venv/bin/python tests/integration/capture_label_studio_exports.py tests/data/label_studio

Starts a throw-away server (tests/integration/label_studio_server.py), builds one project with
our labeling config and two tasks (`build_task`), and produces every kind of annotation the
import must cope with:

* task A (4 items): one annotation made in the labeling UI by the admin with real mouse clicks in
  headless Chromium (grades 3, 0, 2, 4), and one made through the API by simulated-annotator-1
  (2, 1, 2, 3) and then edited through the API (item 2 becomes 3);
* task B (3 items): simulated-annotator-2 through the API (1, 4, 0); simulated-annotator-1
  skipped it (a cancelled annotation); the admin left a draft (never submitted);
* predictions with model_version "sm-capture-v1" on both tasks.

Writes: tasks.json (what was pushed), export_snapshot.json (`label_studio_api.export_annotations`:
completed_by as objects, whole predictions), export_quick.json, export_quick_min.json and
export_quick.csv (`GET /api/projects/<id>/export?exportType=JSON|JSON_MIN|CSV`, the UI's Export
button), users.json (user id -> email) and capture.json (versions, ids, what was done).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path

import httpx

from smar.annotation import label_studio_annotations as annotations
from smar.annotation import label_studio_api as api
from smar.annotation.label_studio import build_task
from tests.integration.chromium import HeadlessChromium
from tests.integration.label_studio_server import running_server
from tests.integration.label_studio_ui import choose_grades, login, open_task, submit

TASK_A = build_task("p-cap-a/top/b0.2/r0", "p-cap-a", "q-cap-a", "cheap flights to paris", [
    {"item_id": "w-cap-1", "modality": "web", "title": "Cheap flights to Paris from 29 EUR", "body": "Compare fares of 300 airlines."},
    {"item_id": "i-cap-1", "modality": "image", "title": "Eiffel tower at night"},
    {"item_id": "v-cap-1", "modality": "video", "title": "Paris travel guide"},
    {"item_id": "a-cap-1", "modality": "answer", "title": "Book 6-8 weeks ahead", "body": "Fares are lowest on Tuesdays."},
])  # fmt: skip
TASK_B = build_task("p-cap-b/top/b0.2/r0", "p-cap-b", "q-cap-b", "sourdough starter", [
    {"item_id": "w-cap-2", "modality": "web", "title": "How to feed a sourdough starter", "snippet": "Feed it twice a day."},
    {"item_id": "v-cap-2", "modality": "video", "title": "Starter in 7 days"},
    {"item_id": "a-cap-2", "modality": "answer", "title": "Flour and water, 1:1 by weight"},
])  # fmt: skip
UI_GRADES_A = [3, 0, 2, 4]
API_GRADES_A = [2, 1, 2, 3]
EDITED_GRADES_A = [2, 1, 3, 3]
API_GRADES_B = [1, 4, 0]
MODEL_VERSION = "sm-capture-v1"
ANNOTATOR_1, ANNOTATOR_2 = "simulated-annotator-1@example.org", "simulated-annotator-2@example.org"


def _grades(task: dict, grades: list[int]) -> dict[str, int]:
    return {item["item_id"]: grade for item, grade in zip(task["data"]["items"], grades)}


def capture(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    with running_server() as server:
        client = api.connect(server.url, server.token)
        project = api.ensure_project(client, "smar capture")
        pushed = api.push_tasks(client, project.id, [TASK_A, TASK_B])
        id_a, id_b = (pushed.task_ids[task["data"]["task_id"]] for task in (TASK_A, TASK_B))
        users = api.ensure_users(client, [ANNOTATOR_1, ANNOTATOR_2])
        annotations.push_predictions(client, project.id, [TASK_A, TASK_B],
                             {TASK_A["data"]["task_id"]: _grades(TASK_A, [2, 2, 2, 2]),
                              TASK_B["data"]["task_id"]: _grades(TASK_B, [2, 2, 2])},
                             model_version=MODEL_VERSION, task_ids=pushed.task_ids)  # fmt: skip

        with HeadlessChromium(width=1400, height=1400) as browser:
            login(browser, server.url, server.username, server.password)
            open_task(browser, server.url, project.id, id_a, len(TASK_A["data"]["items"]))
            choose_grades(browser, UI_GRADES_A)
            submit(browser)

        first = annotations.create_annotation(client, id_a, api.grade_results(TASK_A, _grades(TASK_A, API_GRADES_A)),
                                      completed_by=users[ANNOTATOR_1], lead_time_s=12.5)  # fmt: skip
        edited = annotations.update_annotation(
            client, int(first["id"]), api.grade_results(TASK_A, _grades(TASK_A, EDITED_GRADES_A))
        )
        annotations.create_annotation(client, id_b, api.grade_results(TASK_B, _grades(TASK_B, API_GRADES_B)),
                              completed_by=users[ANNOTATOR_2], lead_time_s=8.0)  # fmt: skip
        api.call("skip task", client.annotations.create, id=id_b, result=[], was_cancelled=True,
                  completed_by=users[ANNOTATOR_1])  # fmt: skip
        headers = {"Authorization": f"Token {server.token}"}
        draft = httpx.post(f"{server.url}/api/tasks/{id_b}/drafts", headers=headers, timeout=30,
                           json={"result": api.grade_results(TASK_B, {"w-cap-2": 4}), "lead_time": 3.0})  # fmt: skip
        draft.raise_for_status()

        (out_dir / "tasks.json").write_text(json.dumps([TASK_A, TASK_B], indent=1, ensure_ascii=False) + "\n", "utf-8")
        snapshot = api.export_annotations(client, project.id)
        (out_dir / "export_snapshot.json").write_text(
            json.dumps(json.loads(snapshot), indent=1, ensure_ascii=False) + "\n", "utf-8"
        )
        for export_type, name in (
            ("JSON", "export_quick.json"),
            ("JSON_MIN", "export_quick_min.json"),
            ("CSV", "export_quick.csv"),
        ):
            raw = b"".join(
                client.projects.exports.download_sync(project.id, export_type=export_type, download_all_tasks=True)
            )
            if export_type.startswith("JSON"):
                raw = (json.dumps(json.loads(raw), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
            (out_dir / name).write_bytes(raw)
        emails = api.user_emails(client)
        (out_dir / "users.json").write_text(
            json.dumps({str(key): value for key, value in sorted(emails.items())}, indent=1) + "\n", "utf-8"
        )
        record = {
            "label_studio": api.server_version(client),
            "label_studio_sdk": importlib.metadata.version("label-studio-sdk"),
            "project_id": project.id,
            "task_ids": pushed.task_ids,
            "admin": server.username,
            "ui_grades_a": UI_GRADES_A,
            "api_grades_a": API_GRADES_A,
            "edited_grades_a": EDITED_GRADES_A,
            "api_grades_b": API_GRADES_B,
            "edited_annotation": {
                "id": edited["id"],
                "created_at": first["created_at"],
                "updated_at": edited["updated_at"],
            },
            "model_version": MODEL_VERSION,
        }
        (out_dir / "capture.json").write_text(json.dumps(record, indent=1) + "\n", "utf-8")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    print(json.dumps(capture(args.out_dir), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
