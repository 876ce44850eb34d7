"""Job body `replay_evaluate`: replay two orderings of held-out logged pages, decide, report.

    summary = replay_evaluate(spark, lake, control="production", candidate="run:smar-abc",
                              ds_start="2026-11-01", ds_end="2026-11-03")

Writes, all idempotent per run_id (a rerun replaces its own rows and files):

* gold.replay_metrics: one row per (metric, segment, k, label source) with both values, the
  delta and its paired bootstrap interval, its minimum detectable effect, and for click rows
  whether every sanity gate passed (partition `run_id`, replaced with `replaceWhere`);
* gold.click_propensities: the examination curve the click estimators divided by, fitted on the
  randomised traffic of the propensity window (MERGE by curve_version; no row when the fit fails);
* gold.ab_decisions: one row, the decision, its reasons and guardrails (slice `run_id`);
* the report under `<settings.reports>/replay/<run_id>/` (index.html, report.md, PNG plots),
  rendered from the rows read back from gold.replay_metrics, so its numbers are the table's.

Without `run_id`, the id is derived from the inputs: the control and candidate names, the day
range, the configuration and, when a ranking is a DataFrame, a fingerprint of its scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import Field, ValidationError, model_validator
from pyspark.sql import DataFrame, SparkSession

from smar.config import FrozenConfig
from smar.errors import InputRefused
from smar.lake import Lakehouse
from smar.metrics.bootstrap import BootstrapConfig
from smar.propensities import ExaminationCurve, curve_version, fit_examination_curve
from smar.replay.click_inputs import WindowTraffic, doubly_robust_inputs, true_attractiveness, window_traffic
from smar.replay.clicks import ClickConfig, ClickReplay, replay_clicks
from smar.replay.decision import Decision, DecisionConfig, decide
from smar.replay.inputs import NamedRanking, RankingSource, ReplayInputs, build_replay_inputs, ranking_name
from smar.replay.measures import ALL_SEGMENT, NDCG, SUMMARY_COLUMNS, MetricConfig
from smar.replay.per_query import per_query_metrics, summarize
from smar.replay.power import minimum_detectable_effect
from smar.replay.report import CurveContext, ReportContext, write_report
from smar.reranker.registry import git_commit
from smar.storage.files import staged_folder
from smar.storage.uris import join
from smar.vocabulary import EXPLORATION_BY_ORDER, content_id

log = logging.getLogger(__name__)

JOB = "replay_evaluate"
METRICS_TABLE = "gold.replay_metrics"
DECISIONS_TABLE = "gold.ab_decisions"
PROPENSITIES_TABLE = "gold.click_propensities"
#: The columns of gold.replay_metrics that `decide` and the report read back.
STORED_COLUMNS: tuple[str, ...] = (*SUMMARY_COLUMNS, "reliable", "unreliable_reason", "mde")


class ReplayConfig(FrozenConfig):
    """Everything that shapes a replay's numbers: what is measured, the intervals, the decision."""

    metrics: MetricConfig = Field(default_factory=MetricConfig)
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    clicks: ClickConfig = Field(default_factory=ClickConfig)

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
    propensity_window_days: int | None = None,
) -> ReplayConfig:
    """The default `ReplayConfig` with the given (non-None) overrides: what the CLI and the job flags set."""
    metrics: dict[str, Any] = {"query_splits": tuple(query_splits)} if query_splits else {}
    bootstrap_settings = (("method", bootstrap_method), ("n_resamples", n_resamples), ("seed", seed))
    bootstrap: dict[str, Any] = {name: value for name, value in bootstrap_settings if value is not None}
    decision: dict[str, Any] = {name: value for name, value in (("min_queries", min_queries),
                ("max_modality_ndcg_drop", max_modality_ndcg_drop), ("max_exposure_shift", max_exposure_shift))
                if value is not None}  # fmt: skip
    clicks: dict[str, Any] = (
        {} if propensity_window_days is None else {"propensity_window_days": propensity_window_days}
    )
    try:
        return ReplayConfig(
            metrics=MetricConfig(**metrics), bootstrap=BootstrapConfig(**bootstrap), decision=DecisionConfig(**decision),
            clicks=ClickConfig(**clicks),
        )  # fmt: skip
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
            "reliable": bool(row["reliable"]),
            "unreliable_reason": None if pd.isna(row["unreliable_reason"]) else str(row["unreliable_reason"]),
            "mde": number(row["mde"]),
            "click_propensities_version": (
                None if pd.isna(row["click_propensities_version"]) else str(row["click_propensities_version"])
            ),
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


@dataclass(frozen=True)
class ClickEstimates:
    """The click part of a replay: its rows and gates, the curve they rest on, and why not when none."""

    replay: ClickReplay
    curve: ExaminationCurve | None
    version: str | None  # gold.click_propensities curve_version; None when the fit failed
    traffic: WindowTraffic | None
    error: str | None  # why there is no curve
    notes: tuple[str, ...]

    def report_curve(self) -> CurveContext | None:
        """What the report draws of the curve: the fit, its band and the counts."""
        if self.curve is None or self.traffic is None:
            return None
        return CurveContext(
            version=str(self.version), ds_start=self.traffic.ds_start, ds_end=self.traffic.ds_end,
            method=self.curve.method, exploration_pages=self.traffic.exploration_pages,
            decided_pages=self.traffic.decided_pages, exponent=self.curve.exponent,
            exponent_ci=self.curve.exponent_ci, gof_p_value=self.curve.gof_p_value,
            confidence_level=self.curve.confidence_level, examination=tuple(self.curve.examination.tolist()),
            ci_low=tuple(self.curve.ci_low.tolist()), ci_high=tuple(self.curve.ci_high.tolist()),
            impressions=tuple(self.curve.counts.impressions.tolist()), clicks=tuple(self.curve.counts.clicks.tolist()),
        )  # fmt: skip


def propensity_window(ds_start: str, ds_end: str, window_days: int) -> tuple[str, str]:
    """The days pooled for the curve: `window_days` days ending at ds_end, and at least the replay's own."""
    first = (datetime.fromisoformat(ds_end) - timedelta(days=window_days - 1)).date().isoformat()
    return min(first, ds_start), ds_end


def fit_click_propensities(
    lake: Lakehouse, *, ds_start: str, ds_end: str, config: ClickConfig, bootstrap: BootstrapConfig
) -> tuple[ExaminationCurve, WindowTraffic, str]:
    """Fit the examination curve on the randomised pages of ds_start..ds_end (every split) and MERGE
    its rows into gold.click_propensities; returns (curve, traffic, curve_version).

    Raises `InputRefused` (`PropensityFitError` for a thin or degenerate fit) when the window's
    traffic cannot identify a curve; nothing is written then.
    """
    traffic = window_traffic(lake, ds_start, ds_end)
    curve = fit_examination_curve(
        traffic.counts, method=config.propensity_method, n_bootstrap=config.propensity_bootstrap,
        confidence_level=bootstrap.confidence_level, seed=bootstrap.seed,
    )  # fmt: skip
    version = curve_version(
        ds_start=traffic.ds_start, ds_end=traffic.ds_end, method=curve.method, identification=EXPLORATION_BY_ORDER,
        n_bootstrap=config.propensity_bootstrap, seed=bootstrap.seed, inputs=traffic.counts.fingerprint(),
    )  # fmt: skip
    low, high = curve.exponent_ci or (None, None)
    rows = curve.as_rows().assign(
        curve_version=version, ds_start=traffic.ds_start, ds_end=traffic.ds_end, query_splits="all",
        method=curve.method, identification=EXPLORATION_BY_ORDER, confidence_level=curve.confidence_level,
        exploration_pages=traffic.exploration_pages, total_pages=traffic.decided_pages, exponent=curve.exponent,
        exponent_ci_low=low, exponent_ci_high=high, gof_statistic=curve.gof_statistic, gof_dof=curve.gof_dof,
        gof_p_value=curve.gof_p_value, n_bootstrap=config.propensity_bootstrap, seed=bootstrap.seed,
        git_commit=git_commit(), created_at=datetime.now(UTC),
    )  # fmt: skip
    # Unchanged rows are not rewritten: a rerun on the same logs leaves the table as it was.
    lake.merge(rows, PROPENSITIES_TABLE, update_when_changed=["examination", "ci_low", "ci_high", "git_commit"])
    return curve, traffic, version


def estimate_clicks(lake: Lakehouse, inputs: ReplayInputs, *, ds_start: str, ds_end: str,
                    config: ReplayConfig) -> ClickEstimates:  # fmt: skip
    """Every click row of a replay: the curve from the propensity window, the estimators and their
    gates, the doubly robust estimator where its inputs can be built, the truth on synthetic data."""
    clicks = config.clicks
    # A fixed row order: the engine collects rows in no fixed order, and sums taken in another order
    # differ in the last bit, which would make a rerun's intervals differ from the stored ones.
    impressions = inputs.impressions.sort_values(["ds", "request_id", "position"], kind="stable", ignore_index=True)
    window_start, window_end = propensity_window(ds_start, ds_end, clicks.propensity_window_days)
    curve = traffic = version = error = None
    try:
        curve, traffic, version = fit_click_propensities(
            lake, ds_start=window_start, ds_end=window_end, config=clicks, bootstrap=config.bootstrap
        )
    except InputRefused as refused:  # too little randomised traffic: the rows say why, never a number
        error = str(refused)
        log.warning("click propensities of %s..%s not estimated: %s", window_start, window_end, error)
    notes = []
    doubly_robust = None
    if curve is not None and traffic is not None:
        try:
            doubly_robust = doubly_robust_inputs(lake, impressions, curve, traffic, ds_start=ds_start,
                                                 ds_end=ds_end)  # fmt: skip
        except InputRefused as refused:
            notes.append(f"clicks_iidr skipped: {refused}")
    replay = replay_clicks(
        impressions, curve, cutoffs=tuple(config.metrics.click_cutoffs), bootstrap=config.bootstrap,
        config=clicks, curve_error=error,
        predicted_attractiveness=None if doubly_robust is None else doubly_robust.predicted_attractiveness,
        logging_propensity=None if doubly_robust is None else doubly_robust.logging_propensity,
        true_attractiveness=true_attractiveness(lake, impressions),
    )  # fmt: skip
    if curve is None:
        notes.insert(0, f"click estimates not computed: {error}")
    return ClickEstimates(replay, curve, version, traffic, error, tuple(notes))


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

    summary = summarize(per_query_metrics(inputs, config.metrics), config.bootstrap)
    # Label metrics have no gates: reliable by definition; every row gets its minimum detectable effect.
    summary = summary.assign(reliable=True, unreliable_reason=None, click_propensities_version=None)
    summary["mde"] = [
        minimum_detectable_effect(low, high, confidence_level=config.bootstrap.confidence_level,
                                  power=config.clicks.power)
        for low, high in zip(summary["ci_low"], summary["ci_high"])
    ]  # fmt: skip
    clicks = estimate_clicks(lake, inputs, ds_start=ds_start, ds_end=ds_end, config=config)
    click_rows = clicks.replay.rows.assign(click_propensities_version=clicks.version)
    rows = pd.concat([summary, click_rows], ignore_index=True) if len(click_rows) else summary
    created_at = datetime.now(UTC)
    lake.overwrite_slice(
        _metric_rows(rows, run_id=run_id, control=control_name, candidate=candidate_name,
                     ds_start=ds_start, ds_end=ds_end, created_at=created_at),
        METRICS_TABLE,
        {"run_id": run_id},
    )  # fmt: skip

    # Decide and report from the rows as stored, so neither can disagree with the table.
    stored = read_replay_metrics(lake, run_id)[list(STORED_COLUMNS)]
    decision = decide(stored, config.decision, confidence_level=config.bootstrap.confidence_level)
    notes = list(clicks.notes)
    if inputs.sampled_queries is not None:
        notes.append(
            f"a hash sample of {inputs.sampled_queries} of the {inputs.scope_queries} queries in scope "
            "was replayed (SMAR_MAX_REPLAY_QUERIES)"
        )
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
        curve=clicks.report_curve(), gates=tuple(clicks.replay.gates),
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
