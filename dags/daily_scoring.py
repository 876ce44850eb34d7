"""
# daily_scoring

One day of search logs, from raw input to the pages annotators will judge
(docs/architecture.md, steps 0-2). Each task is a spark-submit of a script in `jobs/`:

1. **ingest_search_logs**: validate the day's raw logs into `bronze.*` (refused rows to
   `bronze.rejects`; Great Expectations suites and Data Docs under `$SMAR_REPORTS/gx`).
2. **score_single_modal**: score every impression with its modality's ranker (the `CURRENT`
   version registered by `single_modal_training`) -> `silver.single_modal_scores`. The only task
   that asks Spark for GPUs (when the deployment has them: `SMAR_SCORING_GPUS`).
3. **build_annotation_tasks**: one budgeted candidate page per query -> `silver.annotation_tasks`.
4. **export_annotation_tasks**: Label Studio tasks, labeling config and CSV for annotators, under
   `$SMAR_REPORTS/annotation/<ds>/`; the tasks move to `exported`.
5. **label_studio_enabled** / **push_annotation_tasks**: when `labels_from` is `label_studio`
   (default `$SMAR_LABELS_FROM`), `smar annotation push` sends the day's tasks to the server of the
   connection `label_studio_default` (one project per task slice, ids recorded in
   `silver.annotation_tasks`); otherwise the push is skipped and the files are the hand-over.

The day processed is `ds`, the run's logical date: the start of the daily data interval for
scheduled runs and backfills, the given date for `airflow dags test daily_scoring <date>`.
Every job replaces its own slice of `ds`, so a rerun or a backfill of a day leaves the same rows.
A failed job fails its task (its error is in the task log), skips the tasks after it and emits no
asset event.
"""

from __future__ import annotations

from datetime import timedelta

from _common import (
    ANNOTATION_TASKS,
    BRONZE_SEARCH_LOGS,
    DEFAULT_ARGS,
    DEFAULT_LABELS_FROM,
    LABEL_STUDIO_ENV_VARS,
    LABELS_FROM,
    SINGLE_MODAL_SCORES,
    START_DATE,
    spark_job,
)
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, chain, task

with DAG(
    dag_id="daily_scoring",
    description="ingest and validate one day of logs, score it, build and export annotation tasks",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["smar", "daily"],
    params={
        "source": Param(
            "generator",
            enum=["generator", "files", "qilin"],
            description="generator: synthetic logs; files/qilin: read <landing_root>/<ds>",
        ),
        "landing_root": Param(
            "landing",
            type="string",
            minLength=1,
            description="files and qilin sources: the day's input is <landing_root>/<ds>",
        ),
        "size": Param("demo", enum=["tiny", "demo", "large"], description="generator source: day size"),
        "strategy": Param(
            "top",
            enum=["top", "slice", "random", "stratified", "full"],
            description="which candidates of each modality get a page-level label",
        ),
        "budget": Param(
            0.2,
            type="number",
            exclusiveMinimum=0,
            maximum=1,
            description="fraction of each modality's candidates to label",
        ),
        "gpu_batch_size": Param(
            1024, type="integer", minimum=1, description="rows per model forward pass in the scoring UDF"
        ),
        "labels_from": Param(
            DEFAULT_LABELS_FROM,
            enum=list(LABELS_FROM),
            description="label_studio: also push the tasks to the server of connection label_studio_default",
        ),
    },
) as dag:
    ingest_search_logs = spark_job(
        "ingest",
        task_id="ingest_search_logs",
        application_args=[
            "--ds",
            "{{ ds }}",
            "--source",
            "{{ params.source }}",
            "--size",
            "{{ params.size }}",
            "--path",
            "{{ params.landing_root }}/{{ ds }}",
        ],
        outlets=[BRONZE_SEARCH_LOGS],
        execution_timeout=timedelta(hours=1),
    )
    score_single_modal = spark_job(
        "score_single_modal",
        application_args=["--ds", "{{ ds }}", "--gpu-batch-size", "{{ params.gpu_batch_size }}"],
        outlets=[SINGLE_MODAL_SCORES],
        execution_timeout=timedelta(hours=3),
        gpu=True,
    )
    build_annotation_tasks = spark_job(
        "build_annotation_tasks",
        application_args=["--ds", "{{ ds }}", "--strategy", "{{ params.strategy }}", "--budget", "{{ params.budget }}"],
        execution_timeout=timedelta(hours=1),
    )
    export_annotation_tasks = spark_job(
        "export_annotation_tasks",
        application_args=["--ds", "{{ ds }}"],
        outlets=[ANNOTATION_TASKS],
        execution_timeout=timedelta(minutes=30),
    )

    @task.short_circuit
    def label_studio_enabled(params: dict | None = None) -> bool:
        """Whether this run hands the tasks to a Label Studio server (else the push is skipped)."""
        return (params or {}).get("labels_from") == "label_studio"

    push_annotation_tasks = spark_job(
        "push_annotation_tasks",
        application_args=["--ds", "{{ ds }}"],
        execution_timeout=timedelta(minutes=30),
        env_vars=LABEL_STUDIO_ENV_VARS,
    )
    chain(
        ingest_search_logs,
        score_single_modal,
        build_annotation_tasks,
        export_annotation_tasks,
        label_studio_enabled(),
        push_annotation_tasks,
    )
