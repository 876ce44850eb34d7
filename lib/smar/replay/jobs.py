"""Job body `replay_evaluate`: replay two orderings of held-out logged pages, decide, report.

    summary = replay_evaluate(spark, lake, control="production", candidate="run:smar-abc",
                              ds_start="2026-11-01", ds_end="2026-11-03")

Writes, all idempotent per run_id (a rerun replaces its own rows and files):

* gold.replay_metrics: one row per (metric, segment, k, label source) with both values, the
  delta and its paired bootstrap interval (partition `run_id`, replaced with `replaceWhere`);
* gold.ab_decisions: one row, the decision, its reasons and guardrails (slice `run_id`);
* the report under `<settings.reports>/replay/<run_id>/` (index.html, report.md, PNG plots),
  rendered from the rows read back from gold.replay_metrics, so its numbers are the table's.

Without `run_id`, the id is derived from the inputs: the control and candidate names, the day
range, the configuration and, when a ranking is a DataFrame, a fingerprint of its scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from pydantic import Field, ValidationError, model_validator
from pyspark.sql import DataFrame, SparkSession

from smar.config import FrozenConfig
from smar.errors import InputRefused
from smar.lake import Lakehouse
from smar.metrics.bootstrap import BootstrapConfig
from smar.replay.decision import Decision, DecisionConfig, decide
from smar.replay.inputs import NamedRanking, RankingSource, build_replay_inputs, ranking_name
from smar.replay.measures import ALL_SEGMENT, NDCG, SUMMARY_COLUMNS, MetricConfig
from smar.replay.per_query import per_query_metrics, summarize
from smar.replay.report import ReportContext, write_report
from smar.storage.files import staged_folder
from smar.storage.uris import join
from smar.vocabulary import content_id

log = logging.getLogger(__name__)

JOB = "replay_evaluate"
METRICS_TABLE = "gold.replay_metrics"
DECISIONS_TABLE = "gold.ab_decisions"


class ReplayConfig(FrozenConfig):
    """Everything that shapes a replay's numbers: what is measured, the intervals, the decision."""

    metrics: MetricConfig = Field(default_factory=MetricConfig)
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    decision: DecisionConfig = Field(default_factory=DecisionConfig)

    @model_validator(mode="after")
    def _primary_is_measured(self) -> ReplayConfig:
        decision, metrics = self.decision, self.metrics
        if decision.primary_metric == NDCG and decision.primary_segment == ALL_SEGMENT:
            if decision.primary_k not in metrics.cutoffs:
                raise ValueError(f"primary NDCG@{decision.primary_k} is not measured; cutoffs are {metrics.cutoffs}")
        return self


def replay_config(
    *,
    query_splits: tuple[str, ...] | None = None,
    min_queries: int | None = None,
    max_modality_ndcg_drop: float | None = None,
    max_exposure_shift: float | None = None,
    bootstrap_method: str | None = None,
    n_resamples: int | None = None,
    seed: int | None = None,
) -> ReplayConfig:
    """The default `ReplayConfig` with the given (non-None) overrides: what the CLI and the job flags set."""
    metrics: dict[str, Any] = {"query_splits": tuple(query_splits)} if query_splits else {}
    bootstrap_settings = (("method", bootstrap_method), ("n_resamples", n_resamples), ("seed", seed))
    bootstrap: dict[str, Any] = {name: value for name, value in bootstrap_settings if value is not None}
    decision: dict[str, Any] = {name: value for name, value in (("min_queries", min_queries),
                ("max_modality_ndcg_drop", max_modality_ndcg_drop), ("max_exposure_shift", max_exposure_shift))
                if value is not None}  # fmt: skip
    try:
        return ReplayConfig(
            metrics=MetricConfig(**metrics), bootstrap=BootstrapConfig(**bootstrap), decision=DecisionConfig(**decision)
        )
    except ValidationError as error:
        # These values come from the command line: a bad one is refused input, not a bug.
        raise InputRefused(f"replay settings refused: {error}") from error


@dataclass(frozen=True)
class ReplaySummary:
    """What `replay_evaluate` wrote, for the CLI, the DAG and tests."""

    run_id: str
    control: str
    candidate: str
    ds_start: str
    ds_end: str
    decision: str
    reasons: list[str]
    primary_metric: str | None
    primary_delta: float | None
    primary_ci_low: float | None
    primary_ci_high: float | None
    n_pages: int
    n_queries: int
    dropped_pages: int
    label_sources: tuple[str, ...]
    metric_rows: int
    report_html: str  # URIs under <reports>/replay/<run_id>/
    report_markdown: str


def replay_run_id(
    *,
    control: str,
    candidate: str,
    ds_start: str,
    ds_end: str,
    config: ReplayConfig,
    scores_fingerprint: str | None = None,
) -> str:
    """`replay-<16 hex>`: sha256 of the inputs (names, days, config JSON, optional scores fingerprint)."""
    definition = {
        "control": control,
        "candidate": candidate,
        "ds_start": ds_start,
        "ds_end": ds_end,
        "config": config.model_dump(mode="json"),
        "scores": scores_fingerprint,
    }
    return content_id("replay", definition, length=16)


def _is_frame(source: RankingSource) -> bool:
    return isinstance(source, (DataFrame, NamedRanking))


def _metric_rows(
    summary: pd.DataFrame, *, run_id: str, control: str, candidate: str, ds_start: str, ds_end: str,
    created_at: datetime,
) -> list[dict[str, object]]:  # fmt: skip
    """The gold.replay_metrics rows of one replay: the summary rows with the run's identity."""

    def number(value: object) -> float | None:
        return None if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]

    return [
        {
            "run_id": run_id,
            "control": control,
            "candidate": candidate,
            "metric": row["metric"],
            "segment": row["segment"],
            "k": None if pd.isna(row["k"]) else int(row["k"]),
            "label_source": row["label_source"],
            "control_value": number(row["control_value"]),
            "candidate_value": number(row["candidate_value"]),
            "delta": number(row["delta"]),
            "ci_low": number(row["ci_low"]),
            "ci_high": number(row["ci_high"]),
            "n_queries": int(row["n_queries"]),
            "ds_start": ds_start,
            "ds_end": ds_end,
            "created_at": created_at,
        }  # fmt: skip
        for _, row in summary.iterrows()
    ]


def read_replay_metrics(lake: Lakehouse, run_id: str) -> pd.DataFrame:
    """The rows of one replay run from gold.replay_metrics (delta-rs, no Spark), as pandas."""
    table = lake.read_arrow(METRICS_TABLE, filters=[("run_id", "=", run_id)]).to_pandas()
    table["k"] = table["k"].astype("Int64")
    return table


def _decision_row(
    decision: Decision, *, run_id: str, control: str, candidate: str, ds_start: str, ds_end: str,
    report_path: str, created_at: datetime,
) -> dict[str, object]:  # fmt: skip
    """The gold.ab_decisions row of one replay."""
    return {
        "run_id": run_id, "control": control, "candidate": candidate, "decision": decision.decision,
        "reasons": list(decision.reasons), "primary_metric": decision.primary_metric,
        "primary_delta": decision.primary_delta, "primary_ci_low": decision.primary_ci_low,
        "primary_ci_high": decision.primary_ci_high, "guardrails": decision.guardrails_json(),
        "report_path": report_path, "ds_start": ds_start, "ds_end": ds_end, "created_at": created_at,
    }  # fmt: skip


def replay_evaluate(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    control: RankingSource,
    candidate: RankingSource,
    ds_start: str,
    ds_end: str,
    run_id: str | None = None,
    config: ReplayConfig | None = None,
) -> ReplaySummary:
    """Replay `candidate` against `control` on the held-out pages of ds_start..ds_end; write metrics,
    the decision and the report; return a summary."""
    config = config or ReplayConfig()
    control_name, candidate_name = ranking_name(control), ranking_name(candidate)
    inputs = build_replay_inputs(
        spark, lake, control=control, candidate=candidate, ds_start=ds_start, ds_end=ds_end, config=config.metrics
    )
    if run_id is None:
        fingerprint = inputs.fingerprint if _is_frame(control) or _is_frame(candidate) else None
        run_id = replay_run_id(control=control_name, candidate=candidate_name, ds_start=ds_start, ds_end=ds_end,
                               config=config, scores_fingerprint=fingerprint)  # fmt: skip
    log.info("replay %s: %s vs %s, %d pages of %d queries", run_id, candidate_name, control_name,
             inputs.n_pages, inputs.n_queries)  # fmt: skip

    per_query, click_model = per_query_metrics(inputs, config.metrics)
    summary = summarize(per_query, config.bootstrap)
    created_at = datetime.now(UTC)
    lake.overwrite_slice(
        _metric_rows(summary, run_id=run_id, control=control_name, candidate=candidate_name,
                     ds_start=ds_start, ds_end=ds_end, created_at=created_at),
        METRICS_TABLE,
        {"run_id": run_id},
    )  # fmt: skip

    # Decide and report from the rows as stored, so neither can disagree with the table.
    stored = read_replay_metrics(lake, run_id)[list(SUMMARY_COLUMNS)]
    decision = decide(stored, config.decision, confidence_level=config.bootstrap.confidence_level)
    notes = []
    if click_model.skipped_reason:
        notes.append(click_model.skipped_reason)
    elif click_model.propensity_source == "position_based_model":
        curve = ", ".join(f"{value:.3f}" for value in click_model.examination[:10])
        notes.append(
            f"click propensities: position-based model fitted by EM on the scope's clicks "
            f"({click_model.iterations} iterations, converged={click_model.converged}, "
            f"{click_model.position_variation:.1%} of (query, item) pairs seen at several positions); "
            f"examination at positions 1-10: {curve}"
        )
    else:
        notes.append("click propensities: logged by the serving system (item-position model)")
    if inputs.dropped_pages:
        notes.append(f"{inputs.dropped_pages} pages left out: a ranking did not score all their impressions")
    missing = sorted({"page_labels", "oracle"} - set(inputs.label_sources))
    if missing:
        notes.append(f"no graded impressions in scope for: {', '.join(missing)}")
    context = ReportContext(
        run_id=run_id, control=control_name, candidate=candidate_name, ds_start=ds_start, ds_end=ds_end,
        n_pages=inputs.n_pages, n_queries=inputs.n_queries, dropped_pages=inputs.dropped_pages,
        query_splits=tuple(config.metrics.query_splits), confidence_level=config.bootstrap.confidence_level,
        bootstrap_method=config.bootstrap.method, n_resamples=config.bootstrap.n_resamples, notes=tuple(notes),
    )  # fmt: skip
    # Written in a local folder, published to its URI (storage anywhere); the table records the URI.
    report_uri = join(lake.settings.reports, "replay", run_id)
    report_directory, publish_report = staged_folder(report_uri)
    files = write_report(stored, decision, context, report_directory)
    publish_report()
    report_html, report_markdown = join(report_uri, files.html.name), join(report_uri, files.markdown.name)
    lake.overwrite_slice(
        [_decision_row(decision, run_id=run_id, control=control_name, candidate=candidate_name,
                       ds_start=ds_start, ds_end=ds_end, report_path=report_html, created_at=created_at)],
        DECISIONS_TABLE,
        {"run_id": run_id},
    )  # fmt: skip
    log.info("replay %s: %s (%s)", run_id, decision.decision, "; ".join(decision.reasons[:1]))
    return ReplaySummary(
        run_id=run_id, control=control_name, candidate=candidate_name, ds_start=ds_start, ds_end=ds_end,
        decision=decision.decision, reasons=list(decision.reasons), primary_metric=decision.primary_metric,
        primary_delta=decision.primary_delta, primary_ci_low=decision.primary_ci_low,
        primary_ci_high=decision.primary_ci_high, n_pages=inputs.n_pages, n_queries=inputs.n_queries,
        dropped_pages=inputs.dropped_pages, label_sources=inputs.label_sources, metric_rows=len(stored),
        report_html=report_html, report_markdown=report_markdown,
    )  # fmt: skip
