"""
# page_labels

Picks up the annotators' label files for one day and merges them into `silver.page_labels`.

1. **wait_for_label_exports** (sensor): waits until label files exist for `ds`:
   `annotations*.json` (Label Studio exports) or `labels*.csv` anywhere under
   `<label_root>/<ds>/` (default `$SMAR_REPORTS/annotation/<ds>/`, where `daily_scoring`
   exported that day's tasks). It pokes every 15 minutes in `reschedule` mode (no worker slot held
   between pokes) for up to two days, then gives up as **skipped**, not failed: a day nobody
   annotated is normal.
2. **ingest_page_labels** (one spark-submit per file, dynamically mapped): MERGE into
   `silver.page_labels` by (page_id, item_id, annotator); refused rows go to `bronze.rejects`.
   Its asset event (with `extra["ds"]`) schedules `train_and_replay`.
3. **annotation_cost** (spark-submit): the day's judgements per strategy and budget, against full
   annotation -> `gold.annotation_cost` (slice `ds`).

**Why a sensor on a daily schedule**, rather than an asset or a bare schedule: the files are
written by people and by Label Studio, outside Airflow, so no Airflow task can be the producer of
an asset event for them (and `AssetWatcher`'s file trigger deletes the file it sees). A bare
schedule would ingest whatever happens to be there and fail or do nothing when the files are late.
The sensor makes the wait explicit and bounded, and the daily data interval ties each run to one
day's exports, so reruns and `airflow backfill create` re-ingest exactly that day. Re-importing a
file is harmless: the MERGE changes only grades that changed.
"""

from __future__ import annotations

from datetime import timedelta

from _common import ANNOTATION_COST, DEFAULT_ARGS, PAGE_LABELS, START_DATE, spark_job, spark_job_arguments
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, PokeReturnValue, chain, task

with DAG(
    dag_id="page_labels",
    description="wait for the day's annotation exports, then merge them into silver.page_labels",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=3,
    default_args=DEFAULT_ARGS,
    tags=["smar", "annotation"],
    params={
        "label_root": Param(
            None,
            type=["null", "string"],
            description="folder holding <ds>/ label files (default: $SMAR_REPORTS/annotation)",
        ),
    },
) as dag:

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

    ingest_page_labels = SparkSubmitOperator.partial(
        **spark_job_arguments("ingest_page_labels", outlets=[PAGE_LABELS], execution_timeout=timedelta(minutes=30))
    ).expand(application_args=wait_for_label_exports())
    annotation_cost = spark_job(
        "annotation_cost",
        application_args=["--ds", "{{ ds }}"],
        outlets=[ANNOTATION_COST],
        execution_timeout=timedelta(minutes=30),
    )
    chain(ingest_page_labels, annotation_cost)
