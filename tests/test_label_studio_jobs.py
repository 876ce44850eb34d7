"""The server round trip's job bodies (`smar annotation push / simulate / pull`) on the tiny day,
against the in-memory stand-in for the SDK client (tests/test_label_studio_api.py): ids recorded
in silver.annotation_tasks, the existing import path, and "pushing or pulling twice adds no Delta
version" for silver.page_labels, silver.annotation_tasks and bronze.rejects. The real server:
tests/integration (marker label_studio)."""

from __future__ import annotations

import json
import shutil

import pytest

from smar.annotation import jobs
from smar.annotation import label_studio_jobs as server_jobs
from smar.annotation.label_studio_api import grade_results
from smar.annotation.simulate import simulate_grades
from smar.errors import InputRefused
from smar.storage.uris import local_path, normalize_location
from tests.fixtures_scores import STANDIN_MODEL_VERSION, write_standin_scores
from tests.test_label_studio_api import FakeLabelStudio

DS = "2026-11-01"
VERSIONED = ("silver.page_labels", "silver.annotation_tasks", "bronze.rejects")


@pytest.fixture(scope="module")
def tiny_day(tmp_path_factory, spark):
    from smar.config import SmarSettings
    from smar.ingest.jobs import run_ingest
    from smar.lake import Lakehouse

    root = tmp_path_factory.mktemp("ls_tiny_day")
    lake = Lakehouse(spark, SmarSettings(warehouse=root / "warehouse", artifacts=root / "a", reports=root / "r"))
    run_ingest(spark, lake, ds=DS, source="generator", size="tiny", seed=5, run_quality_checks=False)
    write_standin_scores(spark, lake, DS)
    jobs.build_annotation_tasks(spark, lake, ds=DS, strategy="top", budget=0.3, seed=4)
    return root / "warehouse"


@pytest.fixture()
def day_lake(tiny_day, lake):
    shutil.copytree(tiny_day, local_path(lake.settings.warehouse))
    return lake


def _versions(lake) -> dict[str, int]:
    return {table: lake.version(table) for table in VERSIONED}


def _labels(lake) -> dict[tuple[str, str, str], int]:
    return {
        (row["task_id"], row["item_id"], row["annotator"]): row["grade"]
        for row in lake.read_arrow("silver.page_labels").to_pylist()
    }


def test_push_simulate_pull_records_ids_and_pulling_twice_commits_nothing(spark, day_lake):
    client = FakeLabelStudio()
    truth = jobs.day_truth(day_lake, DS)
    # Given the day's tasks (top at 0.3 and the full evaluation set) pushed with single-modal predictions
    pushed = server_jobs.push_annotation_tasks(spark, day_lake, ds=DS, client=client, predictions="single_modal")
    rows = day_lake.read_arrow("silver.annotation_tasks").to_pylist()
    # Then one project per slice, every task recorded with its project and Label Studio task id
    assert [project.title for project in pushed.projects] == [f"smar {DS} full-b1-r0", f"smar {DS} top-b0.3-r0"]
    assert pushed.ids_recorded == len(rows) == pushed.tasks == len(client.tasks_)
    for row in rows:
        server_task = client.tasks_[row["label_studio_task_id"]]
        assert server_task["project"] == row["label_studio_project_id"]
        assert server_task["data"]["task_id"] == row["task_id"]
    assert {row["status"] for row in rows} == {"exported"}
    # And predictions only on the budgeted slice, tagged with the scores' model version
    full, top = pushed.projects
    assert full.predictions_version is None and top.predictions_version == STANDIN_MODEL_VERSION
    assert top.predictions_created == top.tasks
    assert client.projects_[top.project_id]["model_version"] == STANDIN_MODEL_VERSION
    tasks_version = day_lake.version("silver.annotation_tasks")

    # When the same tasks are pushed again
    again = server_jobs.push_annotation_tasks(spark, day_lake, ds=DS, client=client, predictions="single_modal")
    # Then nothing is created on the server and no Delta version is added
    assert sum(project.tasks_created for project in again.projects) == 0 and len(client.tasks_) == len(rows)
    assert (again.ids_recorded, again.tasks_marked_exported) == (0, 0)
    assert day_lake.version("silver.annotation_tasks") == tasks_version

    # When the simulated team annotates through the server, one annotator skips a task, and it is pulled
    simulated = server_jobs.simulate_server_annotators(
        spark, day_lake, ds=DS, client=client, noise=0.3, disagreement=0.3, seed=7
    )
    skipped_task = rows[0]["label_studio_task_id"]
    client.annotations.create(id=skipped_task, result=[], was_cancelled=True)
    first = server_jobs.pull_annotations(spark, day_lake, ds=DS, client=client)
    # Then every graded item arrives with its grade and annotator, the skip is a reject with its reason
    tasks = [json.loads(json.dumps(task)) for task in _server_tasks(client)]
    expected = simulate_grades(tasks, truth, n_annotators=2, noise=0.3, disagreement=0.3, seed=7).grades
    assert simulated.annotations_created == 2 * len(rows) and _labels(day_lake) == expected
    assert first.accepted == len(expected) and first.rejected == 1
    assert {row["status"] for row in day_lake.read_arrow("silver.annotation_tasks").to_pylist()} == {"labelled"}
    files = sorted(local_path(project.export_file).name for project in first.projects)
    assert files == [f"annotations_label_studio_project_{project.project_id}.json" for project in pushed.projects]
    assert all(local_path(project.export_file).parent.name == "all-ball-rall" for project in first.projects)
    before = _versions(day_lake)

    # When the team is simulated and the annotations pulled once more
    resimulated = server_jobs.simulate_server_annotators(
        spark, day_lake, ds=DS, client=client, noise=0.3, disagreement=0.3, seed=7
    )
    second = server_jobs.pull_annotations(spark, day_lake, ds=DS, client=client)
    # Then nothing changes: no annotation, no grade, and no Delta version of any table it writes
    assert (resimulated.annotations_created, resimulated.annotations_updated) == (0, 0)
    assert sum(project.imported.unchanged for project in second.projects) == len(expected)
    assert _versions(day_lake) == before

    # When an annotator edits one grade in Label Studio, and it is pulled
    task = tasks[0]
    annotator = "simulated-annotator-1@example.org"
    annotation_id = simulated_annotation(client, task, annotator)
    grades = {
        item["item_id"]: expected[(task["data"]["task_id"], item["item_id"], annotator)]
        for item in task["data"]["items"]
    }
    edited_item = task["data"]["items"][0]["item_id"]
    grades[edited_item] = (grades[edited_item] + 2) % 5
    client.annotations.update(id=annotation_id, result=grade_results(task, grades))
    third = server_jobs.pull_annotations(spark, day_lake, ds=DS, client=client)
    # Then the edit supersedes the old grade, in one new version of silver.page_labels
    assert sum(project.imported.updated for project in third.projects) == 1
    assert _labels(day_lake)[(task["data"]["task_id"], edited_item, annotator)] == grades[edited_item]
    assert day_lake.version("silver.page_labels") == before["silver.page_labels"] + 1
    assert day_lake.version("bronze.rejects") == before["bronze.rejects"]


def _server_tasks(client: FakeLabelStudio) -> list[dict]:
    return [{"data": task["data"], "meta": task["meta"]} for task in client.tasks_.values()]


def simulated_annotation(client: FakeLabelStudio, task: dict, annotator: str) -> int:
    user = next(user_id for user_id, user in client.users_.items() if user["email"] == annotator)
    ls_task = next(task_id for task_id, held in client.tasks_.items() if held["data"] == task["data"])
    return next(a["id"] for a in client.annotations_.values() if a["task"] == ls_task and a["completed_by"] == user)


def test_pull_before_push_is_refused_and_the_round_trip_through_a_server_matches_the_files(spark, day_lake, tmp_path):
    # Given tasks that were never pushed, Then pulling them is refused input (exit 2)
    with pytest.raises(InputRefused, match="annotation push first"):
        server_jobs.pull_annotations(spark, day_lake, ds=DS, client=FakeLabelStudio())
    # When the round trip runs through a server on one copy of the day and through files on another
    files_lake = type(day_lake)(
        spark, day_lake.settings.model_copy(update={"warehouse": normalize_location(tmp_path / "files")})
    )
    shutil.copytree(local_path(day_lake.settings.warehouse), local_path(files_lake.settings.warehouse))
    arguments = dict(ds=DS, strategy="top", budget=0.3, seed=4, n_annotators=2, noise=0.2, disagreement=0.2)
    client = FakeLabelStudio()
    through_server = jobs.run_annotation_round_trip(
        spark, day_lake, labeller=server_jobs.server_labeller(client, server="fake"), **arguments
    )
    through_files = jobs.run_annotation_round_trip(spark, files_lake, **arguments)
    # Then the same grades arrive, through the same import path, and the same cost table
    assert through_server.labels_accepted == through_files.labels_accepted > 0
    assert _labels(day_lake) == _labels(files_lake)
    assert [row.items_labelled for row in through_server.cost] == [row.items_labelled for row in through_files.cost]
    assert all(project["maximum_annotations"] == 2 for project in client.projects_.values())
    assert [summary.destination.startswith("Label Studio fake project") for summary in through_server.exports] == [
        True,
        True,
    ]
