"""
# train_and_replay

Runs whenever new page labels land (the `silver.page_labels` asset, updated by `page_labels`):
trains the whole-page reranker on the labelled days, replays it against production on held-out
logged pages, and records the ship / no-ship decision for the A/B test (docs/architecture.md, steps 3-4).

1. **label_window**: the days to use: `window_days` days ending with the latest day whose labels
   triggered the run (`extra["ds"]` of the asset events), or with `ds` for a manual run or
   `airflow dags test train_and_replay <date>`; `last_day` overrides both.
2. **train_page_reranker** (spark-submit): trains on the `page_train` queries' labels, stops early
   on `page_valid`, evaluates on `test`; saves the artifact under
   `$SMAR_ARTIFACTS/rerankers/<run_id>/` and MERGEs its row into `gold.reranker_runs`. The run id
   is a hash of the run's definition and input table versions: the same labels give the same id.
3. **trained_run**: reads the run id of that training back from `gold.reranker_runs`.
4. **replay_evaluate** (spark-submit): replays `run:<run_id>` against the logged production order
   on the held-out `test` queries of the same days -> `gold.replay_metrics`, `gold.ab_decisions`,
   `gold.click_propensities` and the report `$SMAR_REPORTS/replay/<replay run id>/index.html`
   (replaced per run id). The default 7-day window is long enough for the click guardrail: on
   demo traffic a true +0.3 clicks@5 per page is detected from 3 days on, not on one
   (docs/replay.md, "Power"); below 3 days the click rows are still written, with their MDE.
5. **record_decision**: reads the decision row back and records it in Airflow: its asset event on
   `gold.ab_decisions` carries the decision, reasons and report path in `extra`, for a downstream
   A/B launch DAG to schedule on.

A failed step fails its task, skips the rest and emits no asset event.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from _common import (
    AB_DECISIONS,
    DEFAULT_ARGS,
    PAGE_LABELS,
    REPLAY_METRICS,
    RERANKER_RUNS,
    START_DATE,
    spark_job,
)
from airflow.sdk import DAG, Param, chain, task

WINDOW = "{{ ti.xcom_pull(task_ids='label_window')"

with DAG(
    dag_id="train_and_replay",
    description="train the page reranker on new labels, replay it against production, record the decision",
    doc_md=__doc__,
    schedule=[PAGE_LABELS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["smar", "training", "replay"],
    params={
        "method": Param(
            "smar_merge",
            enum=["smar_merge", "smar_pairwise", "smar_listwise", "page_loss_only", "sft", "lightgbm", "gbdt_smar"],
            description="reranker method (smar_merge: calibrated merge of the single-modal orders; "
            "smar_pairwise / smar_listwise: page loss + intra-modal consistency)",
        ),
        "window_days": Param(
            7,
            type="integer",
            minimum=1,
            maximum=92,
            description="labelled days trained and replayed on, ending with the latest one (the click "
            "guardrail needs >= 3 days to detect +0.3 clicks@5 on demo traffic: docs/replay.md)",
        ),
        "last_day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="last day of the window (default: the triggering labels' day, else ds)",
        ),
        "epochs": Param(40, type="integer", minimum=1, description="maximum training epochs (early stopping)"),
        "n_resamples": Param(2000, type="integer", minimum=100, description="bootstrap resamples of the replay"),
    },
) as dag:

    @task
    def label_window(ds: str | None = None, params: dict | None = None, triggering_asset_events=None) -> dict[str, str]:
        """{"ds_start", "ds_end"}: the days this run trains and replays on."""
        from _common import label_window as window_of

        event_days = [event.extra.get("ds") for events in (triggering_asset_events or {}).values() for event in events]
        params = params or {}
        return window_of(event_days, ds, int(params["window_days"]), params.get("last_day"))

    train_page_reranker = spark_job(
        "train_page_reranker",
        application_args=[
            "--ds-start",
            WINDOW + "['ds_start'] }}",
            "--ds-end",
            WINDOW + "['ds_end'] }}",
            "--method",
            "{{ params.method }}",
            "--epochs",
            "{{ params.epochs }}",
        ],
        outlets=[RERANKER_RUNS],
        execution_timeout=timedelta(hours=6),
    )

    @task
    def trained_run(params: dict | None = None, ti=None) -> str:
        """The run id `train_page_reranker` registered for this window and method (the latest, if the
        labels changed and the same window was trained again)."""
        from _common import latest_run_id

        from smar.config import read_settings
        from smar.lake import read_delta

        window = ti.xcom_pull(task_ids="label_window")
        # read_settings(), not the cached get_settings(): a long-lived worker must read today's SMAR_*.
        columns = ["run_id", "method", "budget", "train_ds", "created_at"]
        rows = read_delta("gold.reranker_runs", settings=read_settings(), columns=columns).to_pylist()
        return latest_run_id(
            rows, method=(params or {})["method"], ds_start=window["ds_start"], ds_end=window["ds_end"]
        )

    replay_evaluate = spark_job(
        "replay_evaluate",
        application_args=[
            "--candidate",
            "run:{{ ti.xcom_pull(task_ids='trained_run') }}",
            "--control",
            "production",
            "--ds-start",
            WINDOW + "['ds_start'] }}",
            "--ds-end",
            WINDOW + "['ds_end'] }}",
            "--n-resamples",
            "{{ params.n_resamples }}",
        ],
        outlets=[REPLAY_METRICS],
        execution_timeout=timedelta(hours=2),
    )

    @task(outlets=[AB_DECISIONS])
    def record_decision(ti=None, outlet_events=None) -> dict:
        """Read the replay's decision row and publish it as the `gold.ab_decisions` asset event's extra."""
        from _common import decision_record

        from smar.config import read_settings
        from smar.lake import read_delta

        window = ti.xcom_pull(task_ids="label_window")
        candidate = "run:" + ti.xcom_pull(task_ids="trained_run")
        rows = read_delta("gold.ab_decisions", settings=read_settings()).to_pylist()
        record = decision_record(rows, candidate=candidate, control="production", **window)
        outlet_events[AB_DECISIONS].extra.update(record)
        log = logging.getLogger("smar.dags.train_and_replay")
        log.info("decision for %s on %s..%s: %s", candidate, window["ds_start"], window["ds_end"], record["decision"])
        for reason in record["reasons"]:
            log.info("  %s", reason)
        return record

    chain(label_window(), train_page_reranker, trained_run(), replay_evaluate, record_decision())
