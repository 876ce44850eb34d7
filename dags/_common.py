"""Shared wiring of the SMAR DAGs: task defaults, the assets (one per Delta table a DAG publishes),
where spark-submit runs (read from the environment), and `spark_job`, the one factory of the
SparkSubmitOperator that launches a script of `jobs/`.

Light on purpose: the DAG processor imports this module on every parse, so it imports no pyspark,
torch, pandas or smar (tests/test_dags.py checks `sys.modules`). Job logic lives in `lib/smar`;
what a task needs at run time it imports inside the task.

Deployment settings (environment of the DAG processor and workers; defaults run locally):

| variable | meaning | default |
|---|---|---|
| `SMAR_JOBS_DIR` | folder holding the `jobs/*.py` entry points as spark-submit sees them | `<repo>/jobs` |
| `SMAR_SPARK_PYTHON` | `spark.pyspark.python` (driver and executors) | this interpreter |
| `SMAR_SPARK_PY_FILES` | `--py-files`: the smar wheel (`scripts/package.sh`) | none (smar is installed) |
| `SMAR_SPARK_ARCHIVES` | `--archives`: the packed environment, `...tar.gz#environment` | none |
| `SMAR_SPARK_PACKAGES` | `--packages`, e.g. `io.delta:delta-spark_2.13:4.4.1` | none |
| `SMAR_SPARK_CONF` | JSON object of extra confs for every job (Delta, env of the driver) | `{}` |
| `SMAR_SPARK_TRACKING` | `none`, `yarn` (RM REST API) or `kubernetes` (driver pod API) | `none` |
| `SMAR_SCORING_GPUS` | GPUs per executor for the scoring job only; 0 = CPU | `0` |
| `SMAR_SCORING_TASKS_PER_GPU` | concurrent scoring tasks sharing one GPU | `4` |
| `SMAR_GPU_DISCOVERY_SCRIPT` | `spark.executor.resource.gpu.discoveryScript` | Spark's example script |
| `SMAR_GPU_VENDOR` | `spark.executor.resource.gpu.vendor` (Kubernetes: `nvidia.com`) | none |
| `SMAR_LABELS_FROM` | where page labels come from by default: `files` (exports dropped under `$SMAR_REPORTS/annotation/<ds>/`) or `label_studio` (daily_scoring pushes the tasks, page_labels pulls them) | `files` |

The `label_studio` mode reads the server from the Airflow connection `label_studio_default`: its
host is the server's base URL, its password the API token, e.g.
`AIRFLOW_CONN_LABEL_STUDIO_DEFAULT='{"conn_type": "http", "host": "https://ls.example.org", "password": "<token>"}'`.
The push and pull jobs get them as `LABEL_STUDIO_URL` / `LABEL_STUDIO_API_KEY` (`env_vars`; the
token is a connection password, so Airflow masks it in logs), and their environment needs the extra
`smar[label-studio]`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SPARK_CONNECTION_ID = "spark_default"
# Data starts here; `catchup` is off, so earlier intervals run only through `airflow backfill create`.
START_DATE = datetime(2026, 10, 1, tzinfo=UTC)
ASSET_GROUP = "smar-delta-table"
SPARK_GPU_EXAMPLE_DISCOVERY_SCRIPT = "/opt/spark/examples/src/main/scripts/getGpusResources.sh"

# Every task of every DAG: a failed try is retried after a growing pause (transient cluster or
# storage errors); jobs are idempotent by slice overwrite, so a retry cannot duplicate rows.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "smar",
    "depends_on_past": False,
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}


def table_asset(table: str) -> Asset:
    """The Airflow asset of the Delta table `layer.name` (a logical URI: the same wherever the warehouse lives)."""
    layer, _, name = table.partition(".")
    if not layer or not name:
        raise ValueError(f"table name must look like 'layer.name', got {table!r}")
    return Asset(name=table, uri=f"x-smar://warehouse/{layer}/{name}", group=ASSET_GROUP)


BRONZE_SEARCH_LOGS = table_asset("bronze.search_logs")
SINGLE_MODAL_SCORES = table_asset("silver.single_modal_scores")
ANNOTATION_TASKS = table_asset("silver.annotation_tasks")
PAGE_LABELS = table_asset("silver.page_labels")
ANNOTATION_COST = table_asset("gold.annotation_cost")
RERANKER_RUNS = table_asset("gold.reranker_runs")
REPLAY_METRICS = table_asset("gold.replay_metrics")
AB_DECISIONS = table_asset("gold.ab_decisions")
# Not a table: the registered single-modal rankers (artifacts), which daily scoring reads.
SINGLE_MODAL_RANKERS = Asset(name="single_modal_rankers", uri="x-smar://artifacts/single_modal", group="smar-model")


@dataclass(frozen=True)
class SparkDeployment:
    """Where spark-submit runs the jobs and what it ships; see the module docstring for the variables."""

    jobs_dir: str
    python: str
    py_files: str | None = None
    archives: str | None = None
    packages: str | None = None
    conf: Mapping[str, str] = field(default_factory=dict)
    tracking: str = "none"
    scoring_gpus: int = 0
    scoring_tasks_per_gpu: int = 4
    gpu_discovery_script: str = SPARK_GPU_EXAMPLE_DISCOVERY_SCRIPT
    gpu_vendor: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SparkDeployment:
        """Read the `SMAR_*` deployment variables (unset or empty: the local default)."""
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            return env.get(name, "").strip() or None

        conf = json.loads(text("SMAR_SPARK_CONF") or "{}")
        if not isinstance(conf, dict):
            raise ValueError(f"SMAR_SPARK_CONF must be a JSON object of Spark confs, got {conf!r}")
        tracking = text("SMAR_SPARK_TRACKING") or "none"
        if tracking not in ("none", "yarn", "kubernetes"):
            raise ValueError(f"SMAR_SPARK_TRACKING must be none, yarn or kubernetes, got {tracking!r}")
        return cls(
            jobs_dir=text("SMAR_JOBS_DIR") or str(REPOSITORY_ROOT / "jobs"),
            python=text("SMAR_SPARK_PYTHON") or sys.executable,
            py_files=text("SMAR_SPARK_PY_FILES"),
            archives=text("SMAR_SPARK_ARCHIVES"),
            packages=text("SMAR_SPARK_PACKAGES"),
            conf={str(key): str(value) for key, value in conf.items()},
            tracking=tracking,
            scoring_gpus=int(text("SMAR_SCORING_GPUS") or 0),
            scoring_tasks_per_gpu=int(text("SMAR_SCORING_TASKS_PER_GPU") or 4),
            gpu_discovery_script=text("SMAR_GPU_DISCOVERY_SCRIPT") or SPARK_GPU_EXAMPLE_DISCOVERY_SCRIPT,
            gpu_vendor=text("SMAR_GPU_VENDOR"),
        )

    def job_conf(self, *, gpu: bool) -> dict[str, str]:
        """The `--conf`s of one job: the interpreter, the deployment's extras, and GPU resources
        when `gpu` and the deployment has GPUs (task amount = 1 / tasks per GPU)."""
        conf = {"spark.pyspark.python": self.python, **self.conf}
        if gpu and self.scoring_gpus > 0:
            conf.update(gpu_resource_conf(self.scoring_gpus, self.scoring_tasks_per_gpu,
                                          self.gpu_discovery_script, self.gpu_vendor))  # fmt: skip
        return conf


def gpu_resource_conf(
    gpus_per_executor: int, tasks_per_gpu: int, discovery_script: str, vendor: str | None = None
) -> dict[str, str]:
    """Spark resource-scheduling confs: each executor gets `gpus_per_executor` GPUs found by the
    discovery script, and each task asks for 1/`tasks_per_gpu` of one, so that many tasks share it."""
    if gpus_per_executor < 1 or tasks_per_gpu < 1:
        raise ValueError("gpus_per_executor and tasks_per_gpu must be >= 1")
    conf = {
        "spark.executor.resource.gpu.amount": str(gpus_per_executor),
        "spark.executor.resource.gpu.discoveryScript": discovery_script,
        "spark.task.resource.gpu.amount": f"{1 / tasks_per_gpu:g}",
    }
    if vendor:
        conf["spark.executor.resource.gpu.vendor"] = vendor
    return conf


DEPLOYMENT = SparkDeployment.from_environment()


def spark_job_arguments(
    job: str,
    *,
    task_id: str | None = None,
    outlets: Sequence[Asset] = (),
    execution_timeout: timedelta = timedelta(hours=2),
    retries: int = 2,
    gpu: bool = False,
    deployment: SparkDeployment | None = None,
    **operator_arguments: Any,
) -> dict[str, Any]:
    """Keyword arguments of a SparkSubmitOperator (connection `spark_default`) running `jobs/<job>.py`,
    all but `application_args`; for `SparkSubmitOperator(...)` and `SparkSubmitOperator.partial(...)`.

    Always sets `retries`, `execution_timeout` and `durable=True`. `durable` persists the submitted
    driver's id (YARN application, Kubernetes pod, standalone driver) so that a retry after a worker
    crash reconnects to it instead of submitting the job twice; in client or local mode spark-submit
    is the job itself, so a retry reruns it, which the jobs' slice overwrites make safe. Tasks with
    outlets tag their asset events with the day they wrote (`extra["ds"]`)."""
    deployment = deployment or DEPLOYMENT
    return {
        "task_id": task_id or job,
        "conn_id": SPARK_CONNECTION_ID,
        "application": f"{deployment.jobs_dir}/{job}.py",
        "name": f"smar-{job}",
        "conf": deployment.job_conf(gpu=gpu),
        "py_files": deployment.py_files,
        "archives": deployment.archives,
        "packages": deployment.packages,
        # YARN cluster mode with durable=True needs the ResourceManager API to find the app again.
        "yarn_track_via_rm_api": deployment.tracking == "yarn",
        "track_driver_via_k8s_api": deployment.tracking == "kubernetes",
        "retries": retries,
        "execution_timeout": execution_timeout,
        "durable": True,
        "outlets": list(outlets),
        "post_execute": stamp_outlet_events if outlets else None,
        **operator_arguments,
    }


def spark_job(job: str, application_args: Sequence[str] | Any, **arguments: Any) -> SparkSubmitOperator:
    """A SparkSubmitOperator running `jobs/<job>.py` with `application_args` (templated strings, or an
    XComArg resolved at run time); see `spark_job_arguments` for the rest."""
    if isinstance(application_args, (list, tuple)):
        application_args = list(application_args)
    return SparkSubmitOperator(application_args=application_args, **spark_job_arguments(job, **arguments))


def stamp_outlet_events(context: Any, result: Any = None) -> None:
    """post_execute hook: put the run's `ds` (the slice the job wrote) into each outlet's asset event extra."""
    outlet_events = context["outlet_events"]
    for asset in context["task"].outlets:
        outlet_events[asset].extra["ds"] = context.get("ds")
        outlet_events[asset].extra["source_run_id"] = context.get("run_id")


# -- light glue (pure functions the DAGs wrap in @task) ---------------------------------------------
def days_ending(last_day: str, count: int) -> list[str]:
    """The `count` days ending with `last_day` (included), oldest first, as YYYY-MM-DD."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    last = date.fromisoformat(last_day)
    return [(last - timedelta(days=offset)).isoformat() for offset in range(count - 1, -1, -1)]


def repeated_option(option: str, values: Sequence[str]) -> list[str]:
    """`--ds a --ds b ...`: one option repeated for each value."""
    return [part for value in values for part in (option, value)]


LABEL_EXPORT_PATTERNS = ("annotations*.json", "labels*.csv")


def label_export_root(configured: str | None = None) -> str:
    """Where annotators' export files land, as a URI: `configured`, else `$SMAR_REPORTS/annotation`
    (the folder `export_annotation_tasks` writes the tasks to); a local path is made absolute, an
    object-store URI (`s3://bucket/reports/annotation`) is kept."""
    from smar.storage.uris import join, normalize_location

    if configured:
        return normalize_location(configured, what="label_root")
    return join(normalize_location(os.environ.get("SMAR_REPORTS") or "reports", what="SMAR_REPORTS"), "annotation")


#: The Airflow connection id the label sensor's object storage is attached under: its filesystem
#: is pyarrow's, configured from the same AWS_* variables as the jobs (smar.storage.settings), so
#: the sensor and the jobs cannot disagree on endpoint or credentials.
OBJECT_STORAGE_CONN_ID = "smar_storage"


def object_storage_path(uri: str) -> Any:
    """`airflow.sdk.ObjectStoragePath` of a location: `file://` as is, an object store through a
    pyarrow filesystem attached under `OBJECT_STORAGE_CONN_ID` (s3fs cannot be installed next to
    the project's python-dateutil 4, and is not needed)."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach

    from smar.storage.files import fsspec_filesystem
    from smar.storage.uris import is_local, scheme_of

    if is_local(uri):
        return ObjectStoragePath(uri)
    scheme = scheme_of(uri)
    attach(scheme, conn_id=OBJECT_STORAGE_CONN_ID, fs=fsspec_filesystem(uri))
    return ObjectStoragePath(f"{scheme}://{OBJECT_STORAGE_CONN_ID}@{uri.split('://', 1)[1]}")


def find_label_exports(root: str | Path, ds: str) -> list[str]:
    """Label files for day `ds`: `annotations*.json` (Label Studio exports) and `labels*.csv`
    anywhere under `<root>/<ds>/` (a local folder or an object-store URI), sorted: local files as
    paths, remote ones as URIs (what `ingest_page_labels --path` reads). The exported `tasks.*`
    files never match."""
    from smar.storage.uris import display, join, normalize_location, scheme_of

    folder_uri = join(normalize_location(root, what="label_root"), ds)
    folder = object_storage_path(folder_uri)
    if not folder.is_dir():
        return []
    found = {path for pattern in LABEL_EXPORT_PATTERNS for path in folder.rglob(pattern) if path.is_file()}
    scheme = scheme_of(folder_uri)
    # ObjectStoragePath spells a remote file scheme://conn_id@bucket/key; the jobs read scheme://bucket/key.
    return sorted(display(f"{scheme}://{path.path}" if scheme != "file" else path.as_uri()) for path in found)


# -- labels from a Label Studio server ----------------------------------------------------------------
LABELS_FROM = ("files", "label_studio")
DEFAULT_LABELS_FROM = os.environ.get("SMAR_LABELS_FROM", "").strip() or "files"
LABEL_STUDIO_CONNECTION_ID = "label_studio_default"
#: `env_vars` of the push and pull jobs: the server and token of the connection, rendered at run time.
LABEL_STUDIO_ENV_VARS = {
    "LABEL_STUDIO_URL": "{{ conn.label_studio_default.host }}",
    "LABEL_STUDIO_API_KEY": "{{ conn.label_studio_default.password }}",
}
if DEFAULT_LABELS_FROM not in LABELS_FROM:
    raise ValueError(f"SMAR_LABELS_FROM must be one of {LABELS_FROM}, got {DEFAULT_LABELS_FROM!r}")


def _label_studio_get(url: str, token: str, path: str) -> Any:
    """GET `path` of the Label Studio API with the standard library (the scheduler needs no SDK).
    A personal access token (a JWT) is exchanged for an access token first; a legacy one is sent
    as `Token <token>`. Never through a proxy: the server is the deployment's own."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    authorization = f"Token {token}"
    if token.count(".") == 2:  # a JWT refresh token: what Label Studio's personal access tokens are
        request = urllib.request.Request(
            f"{url}/api/token/refresh", data=json.dumps({"refresh": token}).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with opener.open(request, timeout=30) as response:
            authorization = f"Bearer {json.loads(response.read())['access']}"
    request = urllib.request.Request(f"{url}{path}", headers={"Authorization": authorization})
    with opener.open(request, timeout=30) as response:
        return json.loads(response.read())


def label_studio_day_projects(url: str, token: str, ds: str) -> list[dict[str, Any]]:
    """The projects `smar annotation push` made for day `ds` (default titles `smar <ds> <selection>`),
    with their task counts: `tasks` and `finished` (tasks that received every annotation asked for)."""
    from urllib.parse import quote

    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"connection {LABEL_STUDIO_CONNECTION_ID}: host must be the server's URL, got {url!r}")
    found = _label_studio_get(url, token, f"/api/projects/?title={quote(f'smar {ds} ')}&page_size=100")
    projects = found.get("results", found) if isinstance(found, dict) else found
    return [
        {"id": int(project["id"]), "title": project["title"], "tasks": int(project.get("task_number") or 0),
         "finished": int(project.get("finished_task_number") or 0)}
        for project in projects
        if str(project.get("title", "")).startswith(f"smar {ds} ")
    ]  # fmt: skip


def annotations_finished(projects: Sequence[Mapping[str, Any]], min_finished_fraction: float = 1.0) -> bool:
    """Whether the day's projects hold tasks and at least `min_finished_fraction` of them are finished."""
    tasks = sum(int(project["tasks"]) for project in projects)
    finished = sum(int(project["finished"]) for project in projects)
    return tasks > 0 and finished >= min_finished_fraction * tasks


def label_ingest_arguments(ds: str, files: Sequence[str]) -> list[list[str]]:
    """`application_args` of one `ingest_page_labels` job per label file."""
    return [["--ds", ds, "--path", path] for path in files]


def label_window(
    event_days: Sequence[str | None], run_day: str | None, window_days: int, last_day: str | None = None
) -> dict[str, str]:
    """The days a reranker trains and replays on: `window_days` days ending with `last_day` if given,
    else with the latest day whose labels triggered the run, else with the run's own `ds`."""
    days = sorted(day for day in event_days if day)
    end = last_day or (days[-1] if days else run_day)
    if not end:
        raise ValueError("no day to train on: no triggering label event with a ds, no logical date, no last_day")
    window = days_ending(end, window_days)
    return {"ds_start": window[0], "ds_end": window[-1]}


def latest_run_id(
    rows: Sequence[Mapping[str, Any]], *, method: str, ds_start: str, ds_end: str, budget: float | None = None
) -> str:
    """The newest `gold.reranker_runs` row of `method` and `budget` (None: the labels as annotated, not
    a budget emulated by a sweep) trained on exactly ds_start..ds_end (`train_ds` lists every day)."""
    days = ",".join(days_ending(ds_end, (date.fromisoformat(ds_end) - date.fromisoformat(ds_start)).days + 1))
    matching = [row for row in rows
                if row["method"] == method and row["train_ds"] == days and row.get("budget") == budget]  # fmt: skip
    if not matching:
        raise LookupError(f"gold.reranker_runs has no {method} run trained on {ds_start}..{ds_end}")
    newest = max(matching, key=lambda row: (row["created_at"] is not None, row["created_at"] or 0, row["run_id"]))
    return str(newest["run_id"])


def decision_record(
    rows: Sequence[Mapping[str, Any]], *, candidate: str, control: str, ds_start: str, ds_end: str
) -> dict[str, Any]:
    """The `gold.ab_decisions` row of this replay (candidate, control and days), as JSON-safe values."""
    matching = [row for row in rows if row["candidate"] == candidate and row["control"] == control
                and row["ds_start"] == ds_start and row["ds_end"] == ds_end]  # fmt: skip
    if not matching:
        raise LookupError(f"gold.ab_decisions has no decision for {candidate} vs {control} on {ds_start}..{ds_end}")
    row = max(matching, key=lambda row: (row["created_at"] is not None, row["created_at"] or 0, row["run_id"]))
    return {
        "replay_run_id": row["run_id"], "candidate": candidate, "control": control, "decision": row["decision"],
        "reasons": list(row["reasons"] or []), "primary_metric": row["primary_metric"],
        "primary_delta": row["primary_delta"], "report_path": row["report_path"],
        "ds_start": ds_start, "ds_end": ds_end,
    }  # fmt: skip
