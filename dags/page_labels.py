"""
# page_labels

Brings the annotators' grades for one day into `silver.page_labels`, from files (the default) or
from a Label Studio server (`labels_from`, default `$SMAR_LABELS_FROM` or `files`).

1. **choose_label_source**: follows `labels_from` to one of the two branches.
2. Files (`labels_from = files`):
   - **wait_for_label_exports** (sensor): waits until label files exist for `ds`:
     `annotations*.json` (Label Studio exports) or `labels*.csv` anywhere under
     `<label_root>/<ds>/` (default `$SMAR_REPORTS/annotation/<ds>/`, where `daily_scoring`
     exported that day's tasks).
   - **ingest_page_labels** (one spark-submit per file, dynamically mapped): MERGE into
     `silver.page_labels` by (page_id, item_id, annotator); refused rows go to `bronze.rejects`.
3. A server (`labels_from = label_studio`; `daily_scoring` pushed the tasks):
   - **wait_for_annotations** (sensor): asks the server (connection `label_studio_default`) for the
     day's projects (`smar <ds> ...`, the titles `smar annotation push` gives) until at least
     `min_finished_fraction` of their tasks have every annotation they ask for.
   - **pull_annotations** (spark-submit of `jobs/pull_annotations.py`, `smar annotation pull`):
     exports the day's projects through the API and imports them the same way; pulling an
     unchanged server again commits nothing.
4. **annotation_cost** (spark-submit): the day's judgements per strategy and budget, against full
   annotation -> `gold.annotation_cost` (slice `ds`).

Both sensors poke every 15 minutes in `reschedule` mode (no worker slot held between pokes) for up
to two days, then give up as **skipped**, not failed: a day nobody annotated is normal. The ingest
and the pull emit the `silver.page_labels` asset event (with `extra["ds"]`) that schedules
`train_and_replay`.

**Why a sensor on a daily schedule**, rather than an asset or a bare schedule: the files are
written by people and by Label Studio, outside Airflow, so no Airflow task can be the producer of
an asset event for them (and `AssetWatcher`'s file trigger deletes the file it sees). A bare
schedule would ingest whatever happens to be there and fail or do nothing when the files are late.
The sensor makes the wait explicit and bounded, and the daily data interval ties each run to one
day's exports, so reruns and `airflow backfill create` re-ingest exactly that day. Re-importing a
file, or pulling again, is harmless: the MERGE changes only grades that changed (a rerun of a
server-mode day picks up annotations made since).
"""

from __future__ import annotations

from datetime import timedelta

from _common import (
    ANNOTATION_COST,
    DEFAULT_ARGS,
    DEFAULT_LABELS_FROM,
    LABEL_STUDIO_ENV_VARS,
    LABELS_FROM,
    PAGE_LABELS,
    START_DATE,
    spark_job,
    spark_job_arguments,
)
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, PokeReturnValue, chain, task

with DAG(
    dag_id="page_labels",
    description="wait for the day's annotations (files or a Label Studio server), then merge them into silver.page_labels",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=3,
    default_args=DEFAULT_ARGS,
    tags=["smar", "annotation"],
    params={
        "labels_from": Param(
            DEFAULT_LABELS_FROM, enum=list(LABELS_FROM), description="files: exports on disk; label_studio: a server"
        ),
        "label_root": Param(
            None,
            type=["null", "string"],
            description="files: folder holding <ds>/ label files (default: $SMAR_REPORTS/annotation)",
        ),
        "min_finished_fraction": Param(
            1.0,
            type="number",
            exclusiveMinimum=0,
            maximum=1,
            description="label_studio: pull once this fraction of the day's tasks is fully annotated",
        ),
    },
) as dag:

    @task.branch
    def choose_label_source(params: dict | None = None) -> str:
        """The first task of the branch that `labels_from` names."""
        if (params or {}).get("labels_from") == "label_studio":
            return "wait_for_annotations"
        return "wait_for_label_exports"

    @task.sensor(
        poke_interval=timedelta(minutes=15).total_seconds(),
        timeout=timedelta(days=2).total_seconds(),
        mode="reschedule",
        soft_fail=True,
        retries=0,
    )
    def wait_for_label_exports(ds: str | None = None, params: dict | None = None) -> PokeReturnValue:
        """Done when `<label_root>/<ds>/` holds label files; returns one ingest argument list per file."""
        from _common import find_label_exports, label_export_root, label_ingest_arguments

        files = find_label_exports(label_export_root((params or {}).get("label_root")), ds or "")
        return PokeReturnValue(is_done=bool(files), xcom_value=label_ingest_arguments(ds or "", files))

    @task.sensor(
        poke_interval=timedelta(minutes=15).total_seconds(),
        timeout=timedelta(days=2).total_seconds(),
        mode="reschedule",
        soft_fail=True,
        retries=0,
    )
    def wait_for_annotations(ds: str | None = None, params: dict | None = None) -> PokeReturnValue:
        """Done when the day's Label Studio projects are annotated; returns their task counts."""
        from _common import LABEL_STUDIO_CONNECTION_ID, annotations_finished, label_studio_day_projects
        from airflow.sdk import BaseHook

        connection = BaseHook.get_connection(LABEL_STUDIO_CONNECTION_ID)
        try:
            projects = label_studio_day_projects(str(connection.host), str(connection.password), ds or "")
        except OSError as error:  # an unreachable server is a late one: poke again (a refused token raises)
            if getattr(error, "code", None) in (401, 403):
                raise
            print(f"Label Studio not reachable: {error}; poking again later")
            return PokeReturnValue(is_done=False)
        fraction = float((params or {}).get("min_finished_fraction", 1.0))
        return PokeReturnValue(is_done=annotations_finished(projects, fraction), xcom_value=projects)

    source = choose_label_source()
    files_found = wait_for_label_exports()
    ingest_page_labels = SparkSubmitOperator.partial(
        **spark_job_arguments("ingest_page_labels", outlets=[PAGE_LABELS], execution_timeout=timedelta(minutes=30))
    ).expand(application_args=files_found)
    annotated = wait_for_annotations()
    pull_annotations = spark_job(
        "pull_annotations",
        application_args=["--ds", "{{ ds }}"],
        outlets=[PAGE_LABELS],
        execution_timeout=timedelta(minutes=30),
        env_vars=LABEL_STUDIO_ENV_VARS,
    )
    annotation_cost = spark_job(
        "annotation_cost",
        application_args=["--ds", "{{ ds }}"],
        outlets=[ANNOTATION_COST],
        execution_timeout=timedelta(minutes=30),
        trigger_rule="none_failed_min_one_success",  # after whichever branch ran
    )
    chain(source, [files_found, annotated])
    chain(annotated, pull_annotations)
    chain([ingest_page_labels, pull_annotations], annotation_cost)
