"""The annotation round trip against a real Label Studio server (marker `label_studio`, kept out
of the default run; `.ci/run`'s Label Studio lane and `make test-label-studio` run it): push ->
simulated annotators through the API -> pull into silver.page_labels through the existing import;
a second push and pull change nothing (no Delta version); an edit supersedes; predictions reach
annotators only under the project's model_version; the `smar annotation` commands and the
page_labels DAG in server mode; and the labeling page renders our items for a person in headless
Chromium.

    make test-label-studio      # installs the SDK extra and the server's venv, then runs this

The server comes from `scripts/label_studio_venv.sh` (or $LABEL_STUDIO_BIN) and is started and
stopped by PID by `tests/integration/label_studio_server.py`. LABEL_STUDIO_SCREENSHOT=path also
saves the labeling page screenshot there (docs/label_studio_task.png was made that way).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from smar.annotation import jobs
from smar.annotation import label_studio_annotations as annotations
from smar.annotation import label_studio_api as api
from smar.annotation import label_studio_jobs as server_jobs
from smar.annotation.export import label_studio_task
from smar.annotation.label_studio import parse_export
from smar.annotation.simulate import simulate_grades
from smar.storage.uris import join, local_path
from tests.fixtures_scores import STANDIN_MODEL_VERSION, write_standin_scores
from tests.integration.chromium import HeadlessChromium, chromium_executable
from tests.integration.label_studio_server import (
    LabelStudioServer,
    label_studio_executable,
    running_server,
    server_environment,
    start_command,
)
from tests.integration.label_studio_ui import choose_grades, login, open_task, submit

pytestmark = pytest.mark.label_studio

DS = "2026-11-01"
NOISE, DISAGREEMENT, SEED, N_ANNOTATORS = 0.3, 0.3, 7, 2
VERSIONED = ("silver.page_labels", "silver.annotation_tasks", "bronze.rejects")
REPOSITORY = Path(__file__).resolve().parents[2]


def test_start_command_survives_a_password_that_starts_with_a_dash(tmp_path: Path) -> None:
    """A CI run failed once because a random password began with "-" and Label Studio's argparse
    took it for an option. Parse our command line with the server's own parser."""
    executable = label_studio_executable()
    values = {"username": "smar-admin@example.org", "password": "-dash_first-", "token": "-tok"}
    command = start_command(executable, port=8123, data_dir=tmp_path / "data", **values)
    parse = (
        "import json, sys\n"
        "from label_studio.core.argparser import parse_input_args\n"
        "a = parse_input_args(sys.argv[1:])\n"
        "print(json.dumps([a.command, a.username, a.password, a.user_token, a.port, a.data_dir]))\n"
    )
    python = executable.parent / "python"
    done = subprocess.run(
        [str(python), "-c", parse, *command[1:]],
        capture_output=True, text=True, check=True, env=server_environment(tmp_path / "data"),
    )  # fmt: skip
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed == ["start", *values.values(), 8123, str(tmp_path / "data")]


@pytest.fixture(scope="module")
def server() -> Iterator[LabelStudioServer]:
    with running_server() as started:
        print(f"label-studio answered after {started.startup_s:.1f} s")
        yield started


@pytest.fixture(scope="module")
def tiny_day(tmp_path_factory, spark) -> Path:
    """The tiny generator day with stand-in scores (built once; each test works on a copy)."""
    from smar.config import SmarSettings
    from smar.ingest.jobs import run_ingest
    from smar.lake import Lakehouse

    root = tmp_path_factory.mktemp("label_studio_day")
    lake = Lakehouse(spark, SmarSettings(warehouse=root / "warehouse", artifacts=root / "a", reports=root / "r"))
    run_ingest(spark, lake, ds=DS, source="generator", size="tiny", seed=5, run_quality_checks=False)
    write_standin_scores(spark, lake, DS)
    return root / "warehouse"


@pytest.fixture()
def day_lake(tiny_day, lake, spark):
    """A copy of the tiny day with its `top` tasks at budget 0.3 built (no evaluation set)."""
    shutil.copytree(tiny_day, local_path(lake.settings.warehouse))
    jobs.build_annotation_tasks(spark, lake, ds=DS, strategy="top", budget=0.3, seed=4, eval_splits=())
    return lake


def _task_rows(lake) -> list[dict]:
    return sorted(lake.read_arrow("silver.annotation_tasks").to_pylist(), key=lambda row: row["task_id"])


def _labels(lake, version: int | None = None) -> dict[tuple[str, str, str], dict]:
    return {
        (row["task_id"], row["item_id"], row["annotator"]): row
        for row in lake.read_arrow("silver.page_labels", version=version).to_pylist()
    }


def _versions(lake) -> dict[str, int]:
    return {table: lake.version(table) for table in VERSIONED}


def test_push_annotate_pull_through_a_real_server(server, day_lake, spark):
    lake = day_lake
    client = api.connect(server.url, server.token)
    assert api.server_version(client) == "1.23.2"
    # Given the day's tasks pushed into a project created with our labeling config
    pushed = server_jobs.push_annotation_tasks(
        spark, lake, ds=DS, client=client, server=server.url, maximum_annotations=N_ANNOTATORS
    )
    (project,) = pushed.projects
    rows = _task_rows(lake)
    tasks = [label_studio_task(row) for row in rows]
    assert project.created and project.title == f"smar {DS} top-b0.3-r0" and project.tasks_created == len(rows)
    settings = api.project_settings(client, project.project_id)
    assert settings["label_config"].strip() == api.labeling_config().strip()
    assert settings["maximum_annotations"] == N_ANNOTATORS
    # Then silver.annotation_tasks holds each task's project and Label Studio id
    on_server = {task.task_id: task for task in api.list_tasks(client, project.project_id)}
    assert {row["task_id"]: row["label_studio_task_id"] for row in rows} == {
        task_id: task.id for task_id, task in on_server.items()
    }
    assert {row["label_studio_project_id"] for row in rows} == {project.project_id}

    # When the simulated team annotates every task through the API, one annotator skips one, and it is pulled
    simulated = server_jobs.simulate_server_annotators(
        spark, lake, ds=DS, client=client, noise=NOISE, disagreement=DISAGREEMENT, seed=SEED
    )
    skipper = api.ensure_users(client, ["skipping-annotator@example.org"])["skipping-annotator@example.org"]
    api.call("skip", client.annotations.create, id=rows[0]["label_studio_task_id"], result=[], was_cancelled=True,
             completed_by=skipper)  # fmt: skip
    first = server_jobs.pull_annotations(spark, lake, ds=DS, client=client, server=server.url)
    expected = simulate_grades(
        tasks, jobs.day_truth(lake, DS), n_annotators=N_ANNOTATORS, noise=NOISE, disagreement=DISAGREEMENT, seed=SEED
    )
    assert simulated.annotations_created == N_ANNOTATORS * len(tasks) and simulated.noisy_items > 0

    # Then every graded item arrives in silver.page_labels with its grade, annotator and time
    (pulled,) = first.projects
    assert pulled.export_file == join(
        lake.settings.reports,
        "annotation",
        DS,
        "all-ball-rall",
        f"annotations_label_studio_project_{project.project_id}.json",
    )
    assert first.accepted == len(expected.grades) == pulled.imported.inserted and first.rejected == 1
    assert pulled.imported.reject_reasons == {"annotation was": 1}
    labels = _labels(lake)
    assert set(labels) == set(expected.grades)
    annotator_of = {user_id: name for name, user_id in api.ensure_users(client, list(expected.annotators)).items()}
    server_annotations = {
        (row["task_id"], annotator_of[annotation["completed_by"]]): annotation
        for row in rows
        for annotation in api.task_annotations(client, row["label_studio_task_id"])
        if annotation["completed_by"] in annotator_of
    }
    for key, grade in expected.grades.items():
        label = labels[key]
        assert label["grade"] == grade and label["annotator"].startswith("simulated-annotator-")
        assert label["annotated_at"] == datetime.fromisoformat(server_annotations[(key[0], key[2])]["updated_at"])
    assert {row["status"] for row in _task_rows(lake)} == {"labelled"}

    # When the same tasks are pushed and annotated again, and pulled again
    before = _versions(lake)
    again = server_jobs.push_annotation_tasks(spark, lake, ds=DS, client=client, server=server.url)
    resimulated = server_jobs.simulate_server_annotators(
        spark, lake, ds=DS, client=client, noise=NOISE, disagreement=DISAGREEMENT, seed=SEED
    )
    second = server_jobs.pull_annotations(spark, lake, ds=DS, client=client, server=server.url)
    # Then nothing changes: no task, no annotation, no label row, no Delta version of any table
    (again_project,) = again.projects
    assert (again_project.tasks_created, again_project.tasks_updated, again_project.conflicts) == (0, 0, ())
    assert (again.ids_recorded, again.tasks_marked_exported) == (0, 0)
    assert len(api.list_tasks(client, project.project_id)) == len(tasks)
    assert (resimulated.annotations_created, resimulated.annotations_updated) == (0, 0)
    imported = second.projects[0].imported
    assert (imported.inserted, imported.updated, imported.unchanged, imported.rejected) == (
        0,
        0,
        len(expected.grades),
        1,
    )
    assert _versions(lake) == before

    # When a rebuilt task with other data is pushed after it was annotated
    rebuilt = json.loads(json.dumps(tasks[1]))
    rebuilt["data"]["query"] = "a rebuilt page"
    conflicting = api.push_tasks(client, project.project_id, [rebuilt])
    # Then it is reported and left alone: its annotations point at the items as they were shown
    assert conflicting.conflicts == (rebuilt["data"]["task_id"],) and conflicting.updated == ()
    held = {task.task_id: task for task in api.list_tasks(client, project.project_id)}[rebuilt["data"]["task_id"]]
    assert held.data == tasks[1]["data"] and held.total_annotations == N_ANNOTATORS

    # When one annotator edits one grade of one task in Label Studio, and it is pulled
    task_id = tasks[0]["data"]["task_id"]
    annotator = expected.annotators[0]
    annotation = server_annotations[(task_id, annotator)]
    edited_item = tasks[0]["data"]["items"][0]["item_id"]
    old_grade = expected.grades[(task_id, edited_item, annotator)]
    grades = {
        item["item_id"]: expected.grades[(task_id, item["item_id"], annotator)] for item in tasks[0]["data"]["items"]
    }
    grades[edited_item] = (old_grade + 2) % 5
    edited = annotations.update_annotation(client, int(annotation["id"]), api.grade_results(tasks[0], grades))
    assert edited["id"] == annotation["id"] and edited["updated_at"] > annotation["updated_at"]
    third = server_jobs.pull_annotations(spark, lake, ds=DS, client=client, server=server.url)
    # Then the edit supersedes the old grade (same row, newer time); the old value stays in history
    assert (third.projects[0].imported.inserted, third.projects[0].imported.updated) == (0, 1)
    row = _labels(lake)[(task_id, edited_item, annotator)]
    assert row["grade"] == grades[edited_item] and row["annotated_at"] == datetime.fromisoformat(edited["updated_at"])
    assert _labels(lake, version=before["silver.page_labels"])[(task_id, edited_item, annotator)]["grade"] == old_grade
    assert lake.version("silver.page_labels") == before["silver.page_labels"] + 1
    assert lake.version("bronze.rejects") == before["bronze.rejects"]


def test_predictions_reach_the_labeling_stream_and_never_count_as_labels(server, day_lake, spark):
    lake = day_lake
    client = api.connect(server.url, server.token)
    headers = {"Authorization": f"Token {server.token}"}
    # Given a prediction posted the plain way into a fresh project: its model_version is still "", so
    # the labeling stream hides it (what users report as pre-annotations that vanish)
    tasks = [label_studio_task(row) for row in _task_rows(lake)]
    project = api.ensure_project(client, "smar plain predictions")
    pushed = api.push_tasks(client, project.id, tasks[:1])
    client.predictions.create(task=pushed.task_ids[tasks[0]["data"]["task_id"]], model_version="sm-raw",
                              result=api.grade_results(tasks[0], {tasks[0]["data"]["items"][0]["item_id"]: 1}))  # fmt: skip
    shown = httpx.get(f"{server.url}/api/projects/{project.id}/next", headers=headers, timeout=30).json()
    assert shown["predictions"] == []
    # When the day is pushed with the single-modal ranks as predictions (twice)
    summary = server_jobs.push_annotation_tasks(
        spark, lake, ds=DS, client=client, project="smar predictions", predictions="single_modal"
    )
    again = server_jobs.push_annotation_tasks(
        spark, lake, ds=DS, client=client, project="smar predictions", predictions="single_modal"
    )
    (pushed_project,) = summary.projects
    # Then each task holds one prediction of the scores' model version, shown to annotators
    assert pushed_project.predictions_version == STANDIN_MODEL_VERSION
    assert (pushed_project.predictions_created, again.projects[0].predictions_created) == (len(tasks), 0)
    settings = api.project_settings(client, pushed_project.project_id)
    assert settings["model_version"] == STANDIN_MODEL_VERSION and settings["show_collab_predictions"]
    shown = httpx.get(f"{server.url}/api/projects/{pushed_project.project_id}/next", headers=headers, timeout=30).json()
    assert [prediction["model_version"] for prediction in shown["predictions"]] == [STANDIN_MODEL_VERSION]
    first_result = shown["predictions"][0]["result"]
    assert {entry["from_name"] for entry in first_result} == {f"grade_{i}" for i in range(len(shown["data"]["items"]))}
    # And the export carries them as whole objects, which the parser never takes for labels
    export = json.loads(api.export_annotations(client, pushed_project.project_id))
    assert {p["model_version"] for task in export for p in task["predictions"]} == {STANDIN_MODEL_VERSION}
    assert parse_export(json.dumps(export)) == ([], [])


def _smar(*arguments: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "smar.cli", *arguments], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_the_commands_and_the_page_labels_dag_pull_from_the_server(server, day_lake, tmp_path):
    # Given the commands' environment: the day's warehouse and reports, the server and its token
    settings = day_lake.settings
    env = {
        **os.environ, "SMAR_WAREHOUSE": str(settings.warehouse), "SMAR_REPORTS": str(settings.reports),
        "SMAR_ARTIFACTS": str(settings.artifacts), "SMAR_ENGINE": "embedded", "LABEL_STUDIO_URL": server.url,
        "LABEL_STUDIO_API_KEY": server.token, "PYTHONPATH": os.pathsep.join(sys.path),
    }  # fmt: skip
    for variable in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE"):
        env.pop(variable, None)
    # When the token is wrong, Then push is refused in one line (exit 2) and writes nothing
    refused = _smar("annotation", "push", "--ds", DS, "--token", "not-a-token", env=env)
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr and "Traceback" not in refused.stderr
    # When the tasks are pushed and annotated with the commands
    pushed = _smar("annotation", "push", "--ds", DS, env=env)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    simulated = _smar("annotation", "simulate", "--ds", DS, env=env)
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    rows = _task_rows(day_lake)
    # And page_labels runs in server mode (its sensor finds the day's projects by their default titles)
    home = tmp_path / "airflow_home"
    airflow_env = {
        **env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPOSITORY / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[*]", "extra": {"spark-binary": "spark-submit"}}),
        "AIRFLOW_CONN_LABEL_STUDIO_DEFAULT": json.dumps({"conn_type": "http", "host": server.url, "password": server.token}),
    }  # fmt: skip
    airflow = [sys.executable, "-m", "airflow"]
    migrated = subprocess.run([*airflow, "db", "migrate"], capture_output=True, text=True, env=airflow_env)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    run = subprocess.run(
        [*airflow, "dags", "test", "page_labels", DS, "-c", json.dumps({"labels_from": "label_studio"})],
        capture_output=True, text=True, env=airflow_env, timeout=900,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-5000:]
    # Then the labels arrived through the DAG's pull, with the cost table after it
    assert day_lake.exists("silver.page_labels"), output[-5000:]
    labels = day_lake.read_arrow("silver.page_labels").to_pylist()
    assert len(labels) == sum(len(row["items"]) for row in rows) * 2
    assert {label["source_file"] for label in labels} == {
        join(
            settings.reports,
            "annotation",
            DS,
            "all-ball-rall",
            f"annotations_label_studio_project_{rows[0]['label_studio_project_id']}.json",
        )
    }
    assert day_lake.exists("gold.annotation_cost") and day_lake.read_arrow("gold.annotation_cost").num_rows > 0
    # And pulling again with the command changes nothing
    before = _versions(day_lake)
    pulled = _smar("annotation", "pull", "--ds", DS, env=env)
    assert pulled.returncode == 0 and "new 0, changed 0" in pulled.stdout, pulled.stdout + pulled.stderr[-3000:]
    assert _versions(day_lake) == before


@pytest.mark.skipif(chromium_executable() is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_the_labeling_page_shows_our_items_and_a_person_can_grade_them(server, day_lake, tmp_path):
    client = api.connect(server.url, server.token)
    project = api.ensure_project(client, "smar labeling page")
    task = max((label_studio_task(row) for row in _task_rows(day_lake)), key=lambda task: len(task["data"]["items"]))
    pushed = api.push_tasks(client, project.id, [task])
    ls_task_id = pushed.task_ids[task["data"]["task_id"]]
    items = task["data"]["items"]
    grades = [(3 + position) % 5 for position in range(len(items))]
    screenshot = tmp_path / "label_studio_task.png"
    with HeadlessChromium(width=1400, height=1400) as browser:
        # Given an annotator logged in through the login form, on the task's labeling page
        login(browser, server.url, server.username, server.password)
        titles = [item["text"].split("\n")[0] for item in items]
        open_task(
            browser, server.url, project.id, ls_task_id, len(items),
            expect_text=[task["data"]["query"], "4 fully meets the need", *titles],
        )  # fmt: skip
        # Then the page shows the query, the rubric and every item's title, in the order shown
        text = browser.text()
        assert task["data"]["query"] in text and "4 fully meets the need" in text
        positions = [text.find(title) for title in titles]
        assert all(position >= 0 for position in positions) and positions == sorted(positions), positions
        # When the annotator picks a grade per item with the mouse and submits
        choose_grades(browser, grades)
        browser.screenshot(screenshot)
        submit(browser)
    # Then the screenshot is a real rendering (not blank), and the UI's annotation is what the
    # parser reads: one grade per item, by this user, with the grades clicked
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size == (1400, 1400)
        gray = np.asarray(image.convert("L"))
    assert len(np.unique(gray)) > 50 and (gray < 200).mean() > 0.02
    if os.environ.get("LABEL_STUDIO_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["LABEL_STUDIO_SCREENSHOT"])
    (annotation,) = api.task_annotations(client, ls_task_id)
    assert annotation["lead_time"] > 0
    assert [(entry["from_name"], entry["to_name"], entry["type"]) for entry in annotation["result"]] == [
        (f"grade_{position}", f"item_{position}", "choices") for position in range(len(items))
    ]
    rows, rejected = parse_export(api.export_annotations(client, project.id))
    assert rejected == []
    assert [(row.item_id, row.grade, row.annotator) for row in rows] == [
        (item["item_id"], grade, server.username) for item, grade in zip(items, grades)
    ]
