"""The Airflow DAGs of dags/: they parse without heavy imports, wire the expected tasks, build the
expected spark-submit commands, and really run end to end on tiny data through `dag.test()`
(spark-submit of the jobs, `local[*]`, embedded engine), with safe reruns and clean failures.

Airflow's home is a temporary folder per module; `airflow db migrate` runs once (SQLite).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from smar.storage.uris import local_path

REPOSITORY = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPOSITORY / "dags"
DS = "2026-11-01"
LOCAL_SPARK_CONNECTION = json.dumps(
    {"conn_type": "spark", "host": "local[*]", "extra": {"spark-binary": "spark-submit"}}
)
HEAVY_MODULES = (
    "pyspark", "pysail", "torch", "pandas", "numpy", "pyarrow", "deltalake", "great_expectations",
    "sentence_transformers", "lightgbm", "sklearn", "scipy", "smar",
)  # fmt: skip
# Audit timestamps: when a row was (re)written, not what it says. A rerun may move them.
# When a row was written, and which Delta versions a run left (every rewrite moves them).
VOLATILE_COLUMNS = {"created_at", "rejected_at", "ingested_at", "completed_at", "table_versions"}

EXPECTED_GRAPH = {
    "daily_scoring": {
        "ingest_search_logs": {"score_single_modal"},
        "score_single_modal": {"build_annotation_tasks"},
        "build_annotation_tasks": {"export_annotation_tasks"},
        "export_annotation_tasks": {"label_studio_enabled"},
        "label_studio_enabled": {"push_annotation_tasks"},
        "push_annotation_tasks": set(),
    },
    "page_labels": {
        "choose_label_source": {"wait_for_label_exports", "wait_for_annotations"},
        "wait_for_label_exports": {"ingest_page_labels"},
        "ingest_page_labels": {"annotation_cost"},
        "wait_for_annotations": {"pull_annotations"},
        "pull_annotations": {"annotation_cost"},
        "annotation_cost": set(),
    },
    "train_and_replay": {
        "label_window": {"train_page_reranker"},
        "train_page_reranker": {"trained_run"},
        "trained_run": {"replay_evaluate"},
        "replay_evaluate": {"record_decision"},
        "record_decision": set(),
    },
    "single_modal_training": {"training_days": {"train_single_modal"}, "train_single_modal": set()},
}
SPARK_TASKS = {
    ("daily_scoring", "ingest_search_logs"): "ingest",
    ("daily_scoring", "score_single_modal"): "score_single_modal",
    ("daily_scoring", "build_annotation_tasks"): "build_annotation_tasks",
    ("daily_scoring", "export_annotation_tasks"): "export_annotation_tasks",
    ("daily_scoring", "push_annotation_tasks"): "push_annotation_tasks",
    ("page_labels", "ingest_page_labels"): "ingest_page_labels",
    ("page_labels", "pull_annotations"): "pull_annotations",
    ("page_labels", "annotation_cost"): "annotation_cost",
    ("train_and_replay", "train_page_reranker"): "train_page_reranker",
    ("train_and_replay", "replay_evaluate"): "replay_evaluate",
    ("single_modal_training", "train_single_modal"): "train_single_modal",
}


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private Airflow home (SQLite, migrated once), the local spark_default connection from the
    environment, and .venv/bin (pyspark's spark-submit) first on PATH."""
    if "airflow" in sys.modules:
        pytest.skip("airflow was imported before this module could point it at a private home")
    home = tmp_path_factory.mktemp("airflow_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW_HOME", str(home))
    patch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    patch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    patch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", LOCAL_SPARK_CONNECTION)
    patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    patch.setenv("SMAR_ENGINE", "embedded")
    # Earlier tests' in-process Spark Connect session marks this process as Connect mode; the
    # spark-submit children Airflow starts must not inherit that (a scheduler never has it).
    for variable in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE"):
        patch.delenv(variable, raising=False)
    migrated = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    yield home
    patch.undo()


@pytest.fixture(scope="module")
def dagbag(airflow_home: Path):
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(str(DAGS_FOLDER), bundle_path=DAGS_FOLDER, bundle_name="dags-folder")


@pytest.fixture(scope="module")
def common(dagbag):
    """dags/_common.py, as the DAGs imported it (the bundle folder is on sys.path)."""
    import _common

    return _common


@pytest.fixture()
def smar_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Warehouse, artifacts and reports of one scenario, exported to the jobs through SMAR_*."""
    paths = {name: tmp_path / name for name in ("warehouse", "artifacts", "reports")}
    for name, path in paths.items():
        monkeypatch.setenv(f"SMAR_{name.upper()}", str(path))
    return paths


# -- helpers --------------------------------------------------------------------------------------
def logical_date(ds: str) -> datetime:
    return datetime.fromisoformat(ds).replace(tzinfo=UTC)


def task_states(dag_run) -> dict[str, str]:
    """task_id (with [map_index] for mapped tasks) -> final state."""
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
        for ti in dag_run.get_task_instances()
    }


def asset_events(dag_run) -> list[tuple[str, dict]]:
    """(asset name, extra) of every asset event the run emitted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.name, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == dag_run.dag_id, AssetEvent.source_run_id == dag_run.run_id)
        ).all()
    return sorted((name, dict(extra)) for name, extra in rows)


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((key, _hashable(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(item) for item in value)
    return value


TableRows = dict[str, list[tuple[tuple, tuple]]]


def table_rows(warehouse: Path) -> TableRows:
    """Every Delta table under `warehouse` -> its rows, sorted, each split into (the non-float
    values, the float values); volatile columns left out."""
    from deltalake import DeltaTable

    tables: TableRows = {}
    for log_folder in sorted(warehouse.glob("*/*/_delta_log")):
        table = log_folder.parent
        rows = []
        for row in DeltaTable(str(table)).to_pyarrow_table().to_pylist():
            kept = sorted((key, value) for key, value in row.items() if key not in VOLATILE_COLUMNS)
            exact = tuple((key, _hashable(value)) for key, value in kept if not isinstance(value, float))
            floats = tuple((key, value) for key, value in kept if isinstance(value, float))
            rows.append((exact, floats))
        tables[f"{table.parent.name}.{table.name}"] = sorted(rows, key=repr)
    return tables


def assert_same_rows(after: TableRows, before: TableRows) -> None:
    """Same tables, same rows: equal non-float values, floats equal up to float32 noise (model
    scores computed in differently sized Arrow batches may differ in the last bit)."""
    assert sorted(after) == sorted(before)
    for table, rows in before.items():
        assert len(after[table]) == len(rows), f"{table}: {len(rows)} rows became {len(after[table])}"
        after_by_key = sorted(after[table], key=lambda row: repr(row[0]))
        for (exact, floats), (exact_after, floats_after) in zip(
            sorted(rows, key=lambda row: repr(row[0])), after_by_key
        ):
            assert exact_after == exact, f"{table}: row changed: {exact} -> {exact_after}"
            assert [key for key, _ in floats_after] == [key for key, _ in floats]
            for (key, value), (_, value_after) in zip(floats, floats_after):
                assert value_after == pytest.approx(value, rel=1e-6, abs=1e-7, nan_ok=True), f"{table}.{key}"


def row_count(tables: TableRows, table: str) -> int:
    return len(tables.get(table, []))


def rendered_command(task, context: dict[str, Any]) -> list[str]:
    """The spark-submit command the provider's hook builds for `task` once its templates are rendered."""
    task = copy.deepcopy(task)
    task.render_template_fields(context)
    return task._get_hook()._build_spark_submit_command(task.application)


#: What `{{ conn.<id>.<field> }}` reads when templates are rendered by hand.
CONNECTIONS = {"label_studio_default": {"host": "http://ls.example:8080", "password": "t0ken"}}


class FakeTaskInstance:
    """Just enough of a task instance for templates that pull XComs."""

    def __init__(self, xcoms: dict[str, Any]) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str | None = None, **_: Any) -> Any:
        return self.xcoms[task_ids]


def conf_of(command: list[str]) -> dict[str, str]:
    """The --conf key=value pairs of a spark-submit command."""
    pairs = [command[index + 1] for index, part in enumerate(command) if part == "--conf"]
    return dict(pair.split("=", 1) for pair in pairs)


def application_args(command: list[str]) -> list[str]:
    """What follows the application (.py) in a spark-submit command."""
    index = next(i for i, part in enumerate(command) if part.endswith(".py"))
    return command[index + 1 :]


# -- parsing and wiring ---------------------------------------------------------------------------
def test_dagbag_imports_every_dag_with_the_expected_task_graph(dagbag) -> None:
    # Given the dags/ folder, When Airflow parses it
    # Then nothing fails to import and each DAG has exactly the expected tasks and edges
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == set(EXPECTED_GRAPH)
    for dag_id, expected in EXPECTED_GRAPH.items():
        dag = dagbag.dags[dag_id]
        assert {task.task_id: set(task.downstream_task_ids) for task in dag.tasks} == expected, dag_id
        assert dag.doc_md and dag.doc_md.strip().startswith(f"# {dag_id}"), f"{dag_id} lacks its Markdown docstring"


def test_schedules_and_assets_tie_the_dags_together(dagbag, common) -> None:
    # Given the parsed DAGs
    dags = dagbag.dags
    # Then daily and weekly runs use data-interval timetables, and train_and_replay waits on the
    # asset that page_labels' ingest task emits
    assert type(dags["daily_scoring"].timetable).__name__ == "CronDataIntervalTimetable"
    assert type(dags["page_labels"].timetable).__name__ == "CronDataIntervalTimetable"
    assert type(dags["single_modal_training"].timetable).__name__ == "CronDataIntervalTimetable"
    assert dags["single_modal_training"].timetable.expression == "0 3 * * 1"
    assert dags["train_and_replay"].timetable.asset_condition.objects == (common.PAGE_LABELS,)
    assert common.PAGE_LABELS in dags["page_labels"].get_task("ingest_page_labels").partial_kwargs["outlets"]
    outlets = {task.task_id: {asset.name for asset in task.outlets} for task in dags["daily_scoring"].tasks}
    assert outlets["score_single_modal"] == {"silver.single_modal_scores"}
    assert outlets["export_annotation_tasks"] == {"silver.annotation_tasks"}
    assert {asset.name for asset in dags["train_and_replay"].get_task("record_decision").outlets} == {
        "gold.ab_decisions"
    }


def test_every_spark_task_sets_retries_timeout_and_durable(dagbag) -> None:
    # Given every SparkSubmitOperator of every DAG (mapped ones through their partial arguments)
    for (dag_id, task_id), job in SPARK_TASKS.items():
        task = dagbag.dags[dag_id].get_task(task_id)
        arguments = task.partial_kwargs if hasattr(task, "partial_kwargs") else vars(task)
        retries = arguments.get("retries", getattr(task, "retries", None))
        timeout = arguments.get("execution_timeout", getattr(task, "execution_timeout", None))
        durable = arguments.get("durable", getattr(task, "durable", None))
        # Then it runs jobs/<job>.py on spark_default, with retries, a timeout and durable on
        assert arguments.get("application", getattr(task, "application", "")).endswith(f"/jobs/{job}.py")
        assert (REPOSITORY / "jobs" / f"{job}.py").is_file(), job
        assert arguments.get("conn_id", getattr(task, "_conn_id", None)) == "spark_default"
        assert retries and retries >= 1, (dag_id, task_id)
        assert isinstance(timeout, timedelta) and timeout > timedelta(0), (dag_id, task_id)
        assert durable is True, (dag_id, task_id)


def test_dag_files_import_nothing_heavy_at_parse_time(airflow_home: Path) -> None:
    # Given a fresh interpreter with a GPU deployment in its environment
    probe = f"""
import json, sys
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag({str(DAGS_FOLDER)!r}, bundle_path={str(DAGS_FOLDER)!r}, bundle_name="dags-folder")
confs = {{f"{{dag.dag_id}}.{{task.task_id}}": (getattr(task, "conf", None) or task.partial_kwargs.get("conf", {{}}))
          for dag in bag.dags.values() for task in dag.tasks if "SparkSubmit" in type(task).__name__
          or "SparkSubmit" in getattr(task, "operator_class", type(None)).__name__}}
print("RESULT " + json.dumps({{"errors": list(bag.import_errors), "loaded": sorted(m for m in {list(HEAVY_MODULES)!r}
      if m in sys.modules), "confs": confs}}))
"""
    environment = {**os.environ, "SMAR_SCORING_GPUS": "1", "SMAR_SPARK_CONF": '{"spark.sql.shuffle.partitions": "8"}'}
    # When it parses the DAG folder
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=environment)
    result_line = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and result_line, completed.stderr[-3000:]
    result = json.loads(result_line[-1].removeprefix("RESULT "))
    # Then no DAG failed, none of the heavy libraries was imported,
    assert result["errors"] == []
    assert result["loaded"] == []
    # and only the scoring task asks Spark for GPUs, while every task gets the deployment's confs
    confs = result["confs"]
    assert len(confs) == len(SPARK_TASKS)
    with_gpus = sorted(name for name, conf in confs.items() if "spark.executor.resource.gpu.amount" in conf)
    assert with_gpus == ["daily_scoring.score_single_modal"]
    assert confs["daily_scoring.score_single_modal"]["spark.task.resource.gpu.amount"] == "0.25"
    assert all(conf["spark.sql.shuffle.partitions"] == "8" for conf in confs.values())


def test_spark_submit_commands_built_by_the_provider_hook(dagbag) -> None:
    # Given each Spark task rendered for ds=2026-11-01 with its DAG's default params
    def context_for(dag_id: str) -> dict[str, Any]:
        xcoms = {"label_window": {"ds_start": "2026-10-26", "ds_end": DS}, "trained_run": "smar_pairwise-bna-s1-abc"}
        return {
            "ds": DS,
            "params": dict(dagbag.dags[dag_id].params),
            "ti": FakeTaskInstance(xcoms),
            "conn": CONNECTIONS,
        }

    commands = {
        task_id: rendered_command(dagbag.dags[dag_id].get_task(task_id), context_for(dag_id))
        for (dag_id, task_id) in SPARK_TASKS
        if task_id not in ("ingest_page_labels", "train_single_modal")  # their args are XComs; below
    }
    # Then each is a local[*] spark-submit of its job with the project's interpreter and the day's args
    for task_id, command in commands.items():
        assert command[:3] == ["spark-submit", "--master", "local[*]"], task_id
        assert conf_of(command)["spark.pyspark.python"] == sys.executable
        assert "--py-files" not in command  # locally smar is installed; clusters set SMAR_SPARK_PY_FILES
    assert application_args(commands["ingest_search_logs"]) == [
        "--ds", DS, "--source", "generator", "--size", "demo", "--path", f"landing/{DS}"]  # fmt: skip
    assert application_args(commands["score_single_modal"]) == ["--ds", DS, "--gpu-batch-size", "1024"]
    assert application_args(commands["build_annotation_tasks"]) == ["--ds", DS, "--strategy", "top", "--budget", "0.2"]
    assert application_args(commands["export_annotation_tasks"]) == ["--ds", DS]
    assert application_args(commands["annotation_cost"]) == ["--ds", DS]
    # And the push and pull get the server and token of connection label_studio_default (env_vars)
    for dag_id, task_id in (("daily_scoring", "push_annotation_tasks"), ("page_labels", "pull_annotations")):
        assert application_args(commands[task_id]) == ["--ds", DS]
        task = copy.deepcopy(dagbag.dags[dag_id].get_task(task_id))
        task.render_template_fields(context_for(dag_id))
        assert task.env_vars == {"LABEL_STUDIO_URL": "http://ls.example:8080", "LABEL_STUDIO_API_KEY": "t0ken"}
    assert application_args(commands["train_page_reranker"]) == [
        "--ds-start", "2026-10-26", "--ds-end", DS, "--method", "smar_merge", "--epochs", "40"]  # fmt: skip
    assert application_args(commands["replay_evaluate"]) == [
        "--candidate", "run:smar_pairwise-bna-s1-abc", "--control", "production",
        "--ds-start", "2026-10-26", "--ds-end", DS, "--n-resamples", "2000"]  # fmt: skip


def test_train_and_replay_offers_the_trainable_methods_with_the_default_first(dagbag) -> None:
    from smar.vocabulary import DEFAULT_RERANKER_METHOD, FUSION_METHODS, RERANKER_METHODS

    param = dagbag.dags["train_and_replay"].params.get_param("method")
    assert param.value == DEFAULT_RERANKER_METHOD
    assert param.schema["enum"] == [method for method in RERANKER_METHODS if method not in FUSION_METHODS]


def test_cluster_deployment_commands_carry_wheel_environment_and_gpus_for_scoring_only(airflow_home, common) -> None:
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    # Given a YARN-style deployment: the wheel, the packed environment, Delta, one GPU per executor
    deployment = common.SparkDeployment.from_environment({
        "SMAR_JOBS_DIR": "/opt/smar/jobs", "SMAR_SPARK_PY_FILES": "hdfs:///smar/smar-0.1.0-py3-none-any.whl",
        "SMAR_SPARK_ARCHIVES": "hdfs:///smar/smar-env.tar.gz#environment",
        "SMAR_SPARK_PYTHON": "./environment/bin/python", "SMAR_SPARK_PACKAGES": "io.delta:delta-spark_2.13:4.4.1",
        "SMAR_SPARK_CONF": json.dumps({"spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension"}),
        "SMAR_SCORING_GPUS": "1", "SMAR_SCORING_TASKS_PER_GPU": "2",
    })  # fmt: skip

    def command(job: str, gpu: bool) -> list[str]:
        arguments = common.spark_job_arguments(job, gpu=gpu, deployment=deployment)
        hook = SparkSubmitHook(
            conf=arguments["conf"],
            py_files=arguments["py_files"],
            archives=arguments["archives"],
            packages=arguments["packages"],
            name=arguments["name"],
            application_args=["--ds", DS],
        )
        return hook._build_spark_submit_command(arguments["application"])

    # When the scoring job and the ingest job are built
    scoring, ingest = command("score_single_modal", gpu=True), command("ingest", gpu=False)
    # Then both ship the wheel, the environment and Delta, and run the environment's interpreter
    for built in (scoring, ingest):
        assert built[built.index("--py-files") + 1] == "hdfs:///smar/smar-0.1.0-py3-none-any.whl"
        assert built[built.index("--archives") + 1] == "hdfs:///smar/smar-env.tar.gz#environment"
        assert built[built.index("--packages") + 1] == "io.delta:delta-spark_2.13:4.4.1"
        assert conf_of(built)["spark.pyspark.python"] == "./environment/bin/python"
        assert conf_of(built)["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
        assert application_args(built) == ["--ds", DS]
    # and only scoring asks for GPUs: 1 per executor, half a GPU per task
    assert conf_of(scoring)["spark.executor.resource.gpu.amount"] == "1"
    assert conf_of(scoring)["spark.task.resource.gpu.amount"] == "0.5"
    assert "spark.executor.resource.gpu.discoveryScript" in conf_of(scoring)
    assert not any(key.startswith("spark.executor.resource.gpu") for key in conf_of(ingest))


# -- light glue -----------------------------------------------------------------------------------
def test_label_window_prefers_last_day_then_latest_event_day_then_ds(common) -> None:
    # Given label events for two days and a run whose own ds is older
    events = ["2026-10-30", None, "2026-11-01"]
    # Then the window ends with the latest labelled day, spans window_days days, and falls back to ds
    assert common.label_window(events, "2026-10-01", 3) == {"ds_start": "2026-10-30", "ds_end": "2026-11-01"}
    assert common.label_window([], "2026-10-01", 1) == {"ds_start": "2026-10-01", "ds_end": "2026-10-01"}
    assert common.label_window(events, None, 2, last_day="2026-10-15") == {
        "ds_start": "2026-10-14",
        "ds_end": "2026-10-15",
    }
    with pytest.raises(ValueError):
        common.label_window([], None, 7)


def test_label_exports_found_for_the_day_only(tmp_path: Path, common) -> None:
    # Given a day folder with an export, a CSV of labels, the tasks files, and another day's export
    day = tmp_path / DS / "all-ball-rall"
    day.mkdir(parents=True)
    for name in ("annotations_simulated.json", "labels_vendor.csv", "tasks.json", "tasks.csv"):
        (day / name).write_text("x")
    (tmp_path / "2026-11-02").mkdir()
    (tmp_path / "2026-11-02" / "annotations.json").write_text("x")
    # When the sensor's helper looks for DS
    found = common.find_label_exports(tmp_path, DS)
    # Then it returns only that day's label files, and one ingest argument list per file
    assert found == [str(day / "annotations_simulated.json"), str(day / "labels_vendor.csv")]
    assert common.label_ingest_arguments(DS, found[:1]) == [["--ds", DS, "--path", found[0]]]
    assert common.find_label_exports(tmp_path, "2026-10-31") == []


def test_the_label_studio_sensor_reads_the_days_projects_with_either_kind_of_token(common) -> None:
    import http.server
    import threading

    # Given a stand-in Label Studio API: two projects of DS, one of another day, a JWT refresh endpoint
    projects = [
        {"id": 1, "title": f"smar {DS} top-b0.2-r0", "task_number": 10, "finished_task_number": 10},
        {"id": 2, "title": f"smar {DS} full-b1-r0", "task_number": 4, "finished_task_number": 2},
        {"id": 3, "title": "smar 2026-11-02 top-b0.2-r0", "task_number": 5, "finished_task_number": 0},
    ]
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def reply(self, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            assert self.path == "/api/token/refresh"
            self.rfile.read(int(self.headers["Content-Length"]))
            self.reply({"access": "short-lived"})

        def do_GET(self) -> None:
            seen.append(self.headers["Authorization"])
            from urllib.parse import parse_qs, urlparse

            title = parse_qs(urlparse(self.path).query)["title"][0]
            self.reply({"results": [project for project in projects if title in project["title"]]})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        # When the sensor's check asks for DS with a legacy token and with a personal access token (JWT)
        found = common.label_studio_day_projects(url, "legacy-token", DS)
        again = common.label_studio_day_projects(url + "/", "header.payload.signature", DS)
    finally:
        server.shutdown()
    # Then it sees exactly DS's projects, authenticating each token the way Label Studio expects
    assert [project["id"] for project in found] == [1, 2] and found == again
    assert seen == ["Token legacy-token", "Bearer short-lived"]
    # And the day is done only once the wanted share of its tasks is finished (12 of 14 here)
    assert not common.annotations_finished(found)
    assert common.annotations_finished(found, 0.85) and not common.annotations_finished([], 0.5)
    with pytest.raises(ValueError, match="server's URL"):
        common.label_studio_day_projects("ls.example:8080", "token", DS)


def test_latest_run_and_decision_are_picked_by_method_and_days(common) -> None:
    # Given registry rows of several methods, windows and budgets (e: a sweep's emulated budget)
    older, newer = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
    runs = [
        {"run_id": "a", "method": "smar_pairwise", "train_ds": "2026-10-31,2026-11-01", "created_at": older},
        {"run_id": "b", "method": "smar_pairwise", "train_ds": "2026-10-31,2026-11-01", "created_at": newer},
        {"run_id": "c", "method": "sft", "train_ds": "2026-10-31,2026-11-01", "created_at": newer},
        {"run_id": "d", "method": "smar_pairwise", "train_ds": "2026-11-01", "created_at": newer},
        {
            "run_id": "e",
            "method": "smar_pairwise",
            "train_ds": "2026-10-31,2026-11-01",
            "created_at": newer,
            "budget": 0.1,
        },
    ]
    # Then the newest run of the method on exactly that window, with the labels as annotated, is picked
    assert common.latest_run_id(runs, method="smar_pairwise", ds_start="2026-10-31", ds_end=DS) == "b"
    assert common.latest_run_id(runs, method="smar_pairwise", ds_start="2026-10-31", ds_end=DS, budget=0.1) == "e"
    with pytest.raises(LookupError):
        common.latest_run_id(runs, method="lightgbm", ds_start="2026-10-31", ds_end=DS)
    decisions = [{"run_id": "replay-1", "candidate": "run:b", "control": "production", "ds_start": DS, "ds_end": DS,
                  "decision": "SHIP", "reasons": ["ndcg up"], "primary_metric": "ndcg", "primary_delta": 0.01,
                  "report_path": "r/index.html", "created_at": older}]  # fmt: skip
    record = common.decision_record(decisions, candidate="run:b", control="production", ds_start=DS, ds_end=DS)
    assert (record["decision"], record["replay_run_id"], record["reasons"]) == ("SHIP", "replay-1", ["ndcg up"])
    json.dumps(record)  # an asset event's extra must be JSON


# -- real runs ------------------------------------------------------------------------------------
def bootstrap_rankers(paths: dict[str, Path]) -> None:
    """Three tiny days in bronze and single-modal rankers trained on them (what a fresh deployment
    does once before daily_scoring can score), through the job functions in this process."""
    from smar.config import SmarSettings
    from smar.engine import spark_session
    from smar.ingest.jobs import run_ingest
    from smar.lake import Lakehouse
    from smar.single_modal.jobs import train_single_modal

    settings = SmarSettings(warehouse=paths["warehouse"], artifacts=paths["artifacts"], reports=paths["reports"])
    days = [(date.fromisoformat(DS) - timedelta(days=offset)).isoformat() for offset in (2, 1, 0)]
    with spark_session("embedded", app_name="test-dags-bootstrap") as spark:
        lake = Lakehouse(spark, settings)
        for day in days:
            run_ingest(
                spark, lake, ds=day, source="generator", size="tiny", seed=settings.seed, run_quality_checks=False
            )
    train_single_modal(Lakehouse(None, settings), ds_list=days, epochs=1, seed=settings.seed)


def test_daily_scoring_then_labels_then_train_and_replay_end_to_end(dagbag, smar_paths) -> None:
    # Given rankers trained on three tiny days
    bootstrap_rankers(smar_paths)
    daily_scoring = dagbag.dags["daily_scoring"]

    # When daily_scoring runs for DS on tiny data
    first = daily_scoring.test(logical_date=logical_date(DS), run_conf={"size": "tiny"})
    # Then every task succeeded, the day's slices exist, and each asset event names the day
    assert str(first.state) == "success", task_states(first)
    tables = table_rows(smar_paths["warehouse"])
    for table in ("bronze.search_logs", "silver.single_modal_scores", "silver.annotation_tasks"):
        assert row_count(tables, table) > 0, table
    assert asset_events(first) == [
        ("bronze.search_logs", {"ds": DS, "source_run_id": first.run_id}),
        ("silver.annotation_tasks", {"ds": DS, "source_run_id": first.run_id}),
        ("silver.single_modal_scores", {"ds": DS, "source_run_id": first.run_id}),
    ]
    tasks_files = sorted((smar_paths["reports"] / "annotation" / DS).glob("*/tasks.json"))
    assert tasks_files, "export_annotation_tasks wrote no tasks file"

    # When the same interval runs again
    second = daily_scoring.test(logical_date=logical_date(DS), run_conf={"size": "tiny"})
    # Then every table holds exactly the same rows (no duplicates, no gaps)
    assert str(second.state) == "success", task_states(second)
    assert_same_rows(table_rows(smar_paths["warehouse"]), tables)

    # When the (simulated) annotators answer and page_labels picks their export up
    from smar.annotation.jobs import simulate_annotators
    from smar.config import SmarSettings
    from smar.engine import spark_session
    from smar.lake import Lakehouse

    with spark_session("embedded", app_name="test-dags-annotators") as spark:
        settings = SmarSettings()
        for tasks_file in tasks_files:
            simulate_annotators(spark, Lakehouse(spark, settings), ds=DS, tasks_file=tasks_file)
    labels = dagbag.dags["page_labels"].test(logical_date=logical_date(DS))
    assert str(labels.state) == "success", task_states(labels)
    assert ("silver.page_labels", {"ds": DS, "source_run_id": labels.run_id}) in asset_events(labels)
    labelled = table_rows(smar_paths["warehouse"])
    assert row_count(labelled, "silver.page_labels") > 0
    assert row_count(labelled, "gold.annotation_cost") > 0

    # When train_and_replay runs on that day with a short training and replay
    replay = dagbag.dags["train_and_replay"].test(
        logical_date=logical_date(DS), run_conf={"window_days": 1, "epochs": 2, "n_resamples": 200}
    )
    # Then a run is registered, replayed and its decision published with the asset event
    assert str(replay.state) == "success", task_states(replay)
    after = table_rows(smar_paths["warehouse"])
    assert row_count(after, "gold.reranker_runs") == 1
    assert row_count(after, "gold.ab_decisions") == 1
    events = dict(asset_events(replay))
    assert events["gold.ab_decisions"]["decision"] in ("SHIP", "NO_SHIP", "INCONCLUSIVE")
    assert events["gold.ab_decisions"]["candidate"].startswith("run:smar_merge-")
    assert local_path(events["gold.ab_decisions"]["report_path"]).is_file()


def test_failing_job_fails_its_task_skips_the_rest_and_emits_no_asset_event(dagbag, smar_paths, capfd) -> None:
    # Given daily_scoring pointed at a landing folder that does not exist, with no retries
    dag = dagbag.dags["daily_scoring"]
    retries = {task.task_id: task.retries for task in dag.tasks}
    missing = smar_paths["reports"] / "no-landing"
    try:
        for task in dag.tasks:
            task.retries = 0
        # When it runs
        run = dag.test(logical_date=logical_date(DS), run_conf={"source": "files", "landing_root": str(missing)})
    finally:
        for task in dag.tasks:
            task.retries = retries[task.task_id]
    # Then the ingest task failed with the job's own error in its log, the rest never ran,
    assert str(run.state) == "failed"
    assert task_states(run) == {
        "ingest_search_logs": "failed",
        "score_single_modal": "upstream_failed",
        "build_annotation_tasks": "upstream_failed",
        "export_annotation_tasks": "upstream_failed",
        "label_studio_enabled": "upstream_failed",
        "push_annotation_tasks": "upstream_failed",
    }
    output = capfd.readouterr()
    assert f"{missing}/{DS}: no such file or folder" in output.out + output.err
    # and no asset event was emitted, and no table was written
    assert asset_events(run) == []
    assert not (smar_paths["warehouse"] / "bronze" / "search_logs").exists()
