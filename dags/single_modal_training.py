"""
# single_modal_training

Once a week, retrains the four single-modal rankers (web, image, video, LLM answer) from the
click logs of the past days in `bronze.search_logs` (docs/architecture.md, step 1) and registers them as
the `CURRENT` version under `$SMAR_ARTIFACTS/single_modal/`, which `daily_scoring` then uses.

1. **training_days**: the `training_days` days ending with the last day of the weekly data
   interval (or with `last_day` when given).
2. **train_single_modal** (spark-submit): reads those days at pinned Delta versions (through
   delta-rs, so the driver needs no executors), trains, evaluates on held-out `test` queries and
   registers the artifacts.

A fresh warehouse has no rankers yet: ingest a few days first (for example with
`airflow tasks test daily_scoring ingest_search_logs <day>`), then run this DAG once.
"""

from __future__ import annotations

from datetime import timedelta

from _common import DEFAULT_ARGS, SINGLE_MODAL_RANKERS, START_DATE, spark_job
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, chain, task

with DAG(
    dag_id="single_modal_training",
    description="weekly retraining of the single-modal rankers from click logs",
    doc_md=__doc__,
    # Mondays 03:00 UTC, after the Sunday's daily_scoring run has ingested the week's last day.
    schedule=CronDataIntervalTimetable("0 3 * * 1", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["smar", "training", "weekly"],
    params={
        "training_days": Param(7, type="integer", minimum=1, maximum=92, description="days of logs trained on"),
        "last_day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="last training day (default: the last full day of the data interval)",
        ),
        "epochs": Param(
            20,
            type="integer",
            minimum=1,
            description="maximum training epochs per ranker (the best validation epoch is kept)",
        ),
    },
) as dag:

    @task
    def training_days(data_interval_end=None, params: dict | None = None) -> list[str]:
        """`application_args` of the training job: `--ds` for each training day, then `--epochs`."""
        from datetime import timedelta as days

        from _common import days_ending, repeated_option

        params = params or {}
        last_day = params.get("last_day") or (data_interval_end - days(days=1)).date().isoformat()
        return [*repeated_option("--ds", days_ending(last_day, int(params["training_days"]))),
                "--epochs", str(params["epochs"])]  # fmt: skip

    days_to_train = training_days()
    train_single_modal = spark_job(
        "train_single_modal",
        application_args=days_to_train,  # an XComArg: resolved at run time, and an upstream dependency
        outlets=[SINGLE_MODAL_RANKERS],
        execution_timeout=timedelta(hours=6),
    )
    chain(days_to_train, train_single_modal)
