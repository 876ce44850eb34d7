"""label_studio_api's and label_studio_annotations' decisions (what to create, leave, update or
refuse) against an in-memory stand-in for the SDK client. The real server is exercised by
tests/integration (marker label_studio); this file runs in the default suite and needs neither a
server nor the SDK (the optional extra `smar[label-studio]`)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from smar.annotation import label_studio_annotations as annotations
from smar.annotation import label_studio_api as api
from smar.annotation.label_studio import build_task, labeling_config, parse_export
from smar.annotation.simulate import simulate_grades
from smar.errors import InputRefused, MissingDependency, ServiceError


class _Model(SimpleNamespace):
    def model_dump(self, **_: Any) -> dict:
        return {key: value for key, value in vars(self).items()}


class FakeLabelStudio:
    """The part of `label_studio_sdk.LabelStudio` the client uses, over dicts."""

    def __init__(self) -> None:
        ids = itertools.count(1)
        self.clock = itertools.count(1)
        self.projects_: dict[int, dict] = {}
        self.tasks_: dict[int, dict] = {}
        self.annotations_: dict[int, dict] = {}
        self.predictions_: dict[int, dict] = {}
        self.users_: dict[int, dict] = {1: {"id": 1, "email": "admin@example.org"}}
        self.calls: list[str] = []
        self._next = lambda: next(ids) + 100

        fake = self

        class Exports:
            def create(self, project_id, **_):
                fake.calls.append("exports.create")
                return _Model(id=7, status="completed")

            def get(self, project_id, export_pk):
                return _Model(id=export_pk, status="completed")

            def download(self, project_id, export_pk, export_type="JSON"):
                yield json.dumps(fake.snapshot(project_id)).encode()

            def delete(self, project_id, export_pk):
                fake.calls.append("exports.delete")

        class Projects:
            exports = Exports()

            def list(self, title=None, page_size=None):
                return [_Model(**p) for p in fake.projects_.values() if title is None or title in p["title"]]

            def create(self, **fields):
                project_id = fake._next()
                fake.projects_[project_id] = {
                    "id": project_id,
                    "model_version": "",
                    "show_collab_predictions": True,
                    **fields,
                }
                fake.calls.append("projects.create")
                return _Model(**fake.projects_[project_id])

            def update(self, project_id, **fields):
                fake.projects_[project_id].update(fields)
                fake.calls.append(f"projects.update {sorted(fields)}")

            def get(self, id):
                return _Model(**fake.projects_[id])

            def import_tasks(self, id, request, return_task_ids=False):
                ids = []
                for task in request:
                    task_id = fake._next()
                    fake.tasks_[task_id] = {
                        "id": task_id,
                        "project": id,
                        "data": task["data"],
                        "meta": task.get("meta", {}),
                    }
                    ids.append(task_id)
                fake.calls.append(f"import {len(request)}")
                return _Model(task_count=len(request), task_ids=ids)

        class Tasks:
            def list(self, project, page_size=None):
                for task in fake.tasks_.values():
                    if task["project"] == project:
                        total = sum(1 for a in fake.annotations_.values() if a["task"] == task["id"])
                        yield _Model(id=task["id"], data=task["data"], meta=task["meta"], total_annotations=total)

            def update(self, id, data, meta):
                fake.tasks_[int(id)].update(data=data, meta=meta)
                fake.calls.append(f"tasks.update {id}")

        class Annotations:
            def list(self, id):
                return [_Model(**a) for a in fake.annotations_.values() if a["task"] == id]

            def create(self, id, result, completed_by=1, **extra):
                annotation_id = fake._next()
                now = fake.now()
                fake.annotations_[annotation_id] = {"id": annotation_id, "task": id, "completed_by": completed_by, "result": result,
                                                    "was_cancelled": extra.get("was_cancelled", False), "created_at": now, "updated_at": now}  # fmt: skip
                fake.calls.append("annotations.create")
                return _Model(**fake.annotations_[annotation_id])

            def update(self, id, result):
                fake.annotations_[id].update(result=result, updated_at=fake.now())
                fake.calls.append("annotations.update")
                return _Model(**fake.annotations_[id])

        class Users:
            def list(self):
                return [_Model(**u) for u in fake.users_.values()]

            def create(self, email, username):
                user_id = fake._next()
                fake.users_[user_id] = {"id": user_id, "email": email}
                return _Model(**fake.users_[user_id])

        class Predictions:
            def list(self, project):
                return [_Model(**p) for p in fake.predictions_.values() if fake.tasks_[p["task"]]["project"] == project]

            def create(self, task, result, model_version, **extra):
                prediction_id = fake._next()
                fake.predictions_[prediction_id] = {
                    "id": prediction_id,
                    "task": task,
                    "result": result,
                    "model_version": model_version,
                    **extra,
                }
                fake.calls.append("predictions.create")

            def update(self, id, result, model_version, **extra):
                fake.predictions_[id].update(result=result, model_version=model_version, **extra)
                fake.calls.append("predictions.update")

        self.projects, self.tasks, self.annotations = Projects(), Tasks(), Annotations()
        self.users, self.predictions = Users(), Predictions()
        self.versions = SimpleNamespace(get=lambda: _Model(release="1.23.2"))

    def now(self) -> str:
        """A new, later time on every call, as the server writes it."""
        moment = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(seconds=next(self.clock))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def snapshot(self, project_id: int) -> list[dict]:
        return [
            {"id": task["id"], "data": task["data"], "meta": task["meta"], "drafts": [],
             "predictions": [p for p in self.predictions_.values() if p["task"] == task["id"]],
             "annotations": [{**a, "completed_by": {"id": a["completed_by"], "email": self.users_[a["completed_by"]]["email"]}}
                             for a in self.annotations_.values() if a["task"] == task["id"]]}
            for task in self.tasks_.values() if task["project"] == project_id
        ]  # fmt: skip


def _tasks(n: int = 3) -> list[dict]:
    return [
        build_task(f"p{i}/top/b0.2/r0", f"p{i}", f"q{i}", f"query {i}", [
            {"item_id": f"w{i}", "modality": "web", "title": f"Web {i}"},
            {"item_id": f"v{i}", "modality": "video", "title": f"Video {i}"},
        ])
        for i in range(n)
    ]  # fmt: skip


def test_connect_refuses_a_missing_server(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(api.LabelStudioConfigError, match="LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"):
        api.connect()


def test_ensure_project_creates_once_and_rewrites_only_a_changed_config():
    client = FakeLabelStudio()
    first = api.ensure_project(client, "smar day")
    again = api.ensure_project(client, "smar day")
    assert first.created and not again.created and again.id == first.id and not again.config_updated
    assert client.projects_[first.id]["label_config"] == labeling_config()
    changed = api.ensure_project(client, "smar day", label_config="<View/>", maximum_annotations=3)
    assert changed.config_updated and changed.settings_updated == ("maximum_annotations",)
    # A title that is a substring of another is not that project; two equal titles are refused
    assert api.ensure_project(client, "smar").created
    client.projects.create(title="smar day", label_config="<View/>")
    with pytest.raises(api.LabelStudioConfigError, match="2 Label Studio projects"):
        api.ensure_project(client, "smar day")


def test_push_is_idempotent_updates_unannotated_changes_and_keeps_annotated_ones():
    client = FakeLabelStudio()
    project = api.ensure_project(client, "p")
    tasks = _tasks()
    first = api.push_tasks(client, project.id, tasks)
    second = api.push_tasks(client, project.id, tasks)
    assert len(first.created) == 3 and second.created == () and len(second.unchanged) == 3
    assert first.task_ids == second.task_ids and len(client.tasks_) == 3
    # A rebuilt task with other data: updated in place while unannotated, a conflict once annotated
    changed = [json.loads(json.dumps(task)) for task in tasks]
    for task in changed[:2]:
        task["data"]["query"] = "changed"
    annotated = first.task_ids[tasks[1]["data"]["task_id"]]
    client.annotations.create(id=annotated, result=[])
    third = api.push_tasks(client, project.id, changed)
    assert third.updated == (tasks[0]["data"]["task_id"],) and third.conflicts == (tasks[1]["data"]["task_id"],)
    assert client.tasks_[annotated]["data"]["query"] == "query 1"
    with pytest.raises(ValueError, match="pushed twice"):
        api.push_tasks(client, project.id, [tasks[0], tasks[0]])


def test_simulated_annotations_go_through_the_api_once_and_parse_back(monkeypatch):
    client = FakeLabelStudio()
    project = api.ensure_project(client, "p")
    tasks = _tasks()
    pushed = api.push_tasks(client, project.id, tasks)
    truth = {(t["data"]["query_id"], item["item_id"]): 3 for t in tasks for item in t["data"]["items"]}
    summary = annotations.simulate_annotations(client, project.id, tasks, truth, noise=0.5, disagreement=0.5, seed=2)
    again = annotations.simulate_annotations(client, project.id, tasks, truth, noise=0.5, disagreement=0.5, seed=2)
    other_seed = annotations.simulate_annotations(client, project.id, tasks, truth, noise=0.5, disagreement=0.5, seed=3)
    assert (summary.created, again.created, again.unchanged) == (6, 0, 6)
    assert other_seed.created == 0 and other_seed.updated > 0
    rows, rejected = parse_export(api.export_annotations(client, project.id))
    expected = simulate_grades(tasks, truth, noise=0.5, disagreement=0.5, seed=3).grades
    assert not rejected and {(r.task_id, r.item_id, r.annotator): r.grade for r in rows} == expected
    assert client.calls.count("exports.delete") == 1 and pushed.project_id == project.id


def test_predictions_set_the_project_version_so_they_are_shown():
    client = FakeLabelStudio()
    project = api.ensure_project(client, "p")
    tasks = _tasks(2)
    api.push_tasks(client, project.id, tasks)
    grades = {t["data"]["task_id"]: {t["data"]["items"][0]["item_id"]: 1} for t in tasks}
    first = annotations.push_predictions(client, project.id, tasks, grades, model_version="sm-1")
    again = annotations.push_predictions(client, project.id, tasks, grades, model_version="sm-1")
    grades[tasks[0]["data"]["task_id"]] = {tasks[0]["data"]["items"][0]["item_id"]: 4}
    changed = annotations.push_predictions(client, project.id, tasks, grades, model_version="sm-1")
    assert (first.created, again.unchanged, changed.updated, changed.unchanged) == (2, 2, 1, 1)
    assert client.projects_[project.id]["model_version"] == "sm-1"
    assert client.calls.count("projects.update ['model_version', 'show_collab_predictions']") == 1
    with pytest.raises(ValueError, match="model_version"):
        annotations.push_predictions(client, project.id, tasks, grades, model_version="")


def test_grade_results_follow_the_display_order_and_refuse_unknown_items():
    task = _tasks(1)[0]
    results = api.grade_results(task, {"v0": 4, "w0": 0})
    assert [(r["from_name"], r["to_name"], r["value"]) for r in results] == [
        ("grade_0", "item_0", {"choices": ["0"]}),
        ("grade_1", "item_1", {"choices": ["4"]}),
    ]
    with pytest.raises(ValueError, match="not shown"):
        api.grade_results(task, {"x": 1})
    with pytest.raises(ValueError, match="grade must be"):
        api.grade_results(task, {"w0": 5})


class _ApiError(Exception):
    """Shaped like the SDK's ApiError (status_code, body)."""

    def __init__(self, status_code: int, body: Any) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code, self.body = status_code, body


def test_server_errors_are_refused_input_or_a_service_problem(monkeypatch):
    # Given the SDK's error type (whatever is installed) recognised by call()
    monkeypatch.setattr(api, "_api_error_types", lambda: (_ApiError,))

    def failing(error: BaseException):
        def function(**_: Any) -> None:
            raise error

        return function

    # Then a refused request (wrong token, unknown project) is refused input: exit 2
    with pytest.raises(api.LabelStudioConfigError, match="HTTP 401.*LABEL_STUDIO_API_KEY") as refused:
        api.call("list projects", failing(_ApiError(401, {"detail": "Invalid token."})))
    assert isinstance(refused.value, InputRefused) and refused.value.exit_code == 2
    with pytest.raises(api.LabelStudioConfigError, match="HTTP 404"):
        api.call("get project 9", failing(_ApiError(404, "Not found")))
    # And a failing or unreachable server is a service problem: exit 69, retry later
    with pytest.raises(api.LabelStudioApiError, match="HTTP 503") as failed:
        api.call("import tasks", failing(_ApiError(503, "down")))
    assert isinstance(failed.value, ServiceError) and failed.value.exit_code == 69
    with pytest.raises(api.LabelStudioApiError, match="no answer: ConnectError"):
        api.call("version", failing(httpx.ConnectError("connection refused")))


def test_connect_without_the_sdk_names_the_install_command(monkeypatch):
    # Given the optional extra not installed
    monkeypatch.setitem(__import__("sys").modules, "label_studio_sdk", None)
    # Then connecting says which command installs it (exit 2, one line)
    with pytest.raises(MissingDependency, match="make label-studio-sdk") as missing:
        api.connect("http://127.0.0.1:1", "token")
    assert missing.value.exit_code == 2
