"""Offline replay: score a control and a candidate ordering of the same logged pages, per query.

The scope is the held-out queries (split `test` by default, `smar.splits`) of a `ds` range in
bronze.search_logs. Each page (one request) is re-ordered by the control and by the candidate;
both orders are then measured on the same pages:

* against page labels (label source `page_labels`): the consensus grade of (query, item), i.e.
  the mean grade over annotators and rounds in silver.page_labels;
* against the generator's hidden grades (label source `oracle`): truth.relevance, which exists on
  synthetic data only. Never a training signal; reported so demo runs can be checked;
* counterfactual click estimates (`clicks_ips`, `clicks_snips`): IPS and self-normalised IPS of
  clicks@k under each order, from the logged clicks (see `click_estimates_by_query`);
* label-free page shape (`none`): modality exposure share in the top k and modality share at
  each position.

Label metrics use condensed lists: items without a grade are removed before ranking, so an
unjudged item is neither rewarded nor punished (Sakai 2007). Ties in score are broken by item id
descending (trec_eval), NDCG uses `MetricConfig.gain`, and a page whose judged items all have
grade 0 has no NDCG (left out, like trec_eval without -c). A query's value is the mean over its
pages; queries are the unit of the bootstrap (`smar.replay.bootstrap`).

Where the work runs: joins and label/exposure metrics are Spark (grouped by page with the
Spark-native `smar.metrics.spark_metrics`), so they scale with the logs; the click model is the
NumPy EM of `smar.replay.ope`, fitted on the driver over the scope's impressions (a few columns).

A ranking source is `"production"` (the logged order: score = -position), `"run:<run_id>"` (a
registered reranker run, scored by `smar.reranker.inference.score_logged_pages`), a Spark
DataFrame with `RANKING_COLUMNS`, or a `NamedRanking` (a DataFrame with a name for the tables).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import reduce
from typing import Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from smar.lake import Lakehouse
from smar.metrics.conventions import Gain
from smar.metrics.spark_metrics import ranking_metrics_by_query
from smar.replay.bootstrap import BootstrapConfig, paired_delta
from smar.replay.ope import fit_position_based_model, ips, snips
from smar.splits import SPLITS, query_split_column

log = logging.getLogger(__name__)

#: Columns every ranking source provides: one score per logged impression, higher = earlier.
RANKING_COLUMNS: tuple[str, ...] = ("ds", "request_id", "query_id", "item_id", "modality", "position", "score")
PRODUCTION = "production"
RUN_PREFIX = "run:"
ARMS: tuple[str, str] = ("control", "candidate")
ALL_SEGMENT = "all"

# label_source values in gold.replay_metrics
PAGE_LABELS = "page_labels"
ORACLE = "oracle"
CLICKS_IPS = "clicks_ips"
CLICKS_SNIPS = "clicks_snips"
NO_LABELS = "none"
#: Label sources measured against grades, and the replay frame column holding each one's grade.
GRADE_COLUMNS: dict[str, str] = {PAGE_LABELS: "page_label_grade", ORACLE: "oracle_grade"}

# metric values in gold.replay_metrics
NDCG = "ndcg"
CROSS_MODAL_PNR = "cross_modal_pnr"
CROSS_MODAL_PAIR_ACCURACY = "cross_modal_pair_accuracy"
EXPOSURE_SHARE = "exposure_share"
POSITION_SHARE = "position_share"
CLICKS = "clicks"

#: Columns of the per-query long table (`per_query_metrics`), before the bootstrap.
PER_QUERY_COLUMNS: tuple[str, ...] = (
    "metric", "segment", "k", "label_source", "query_id",
    "control_numerator", "control_denominator", "candidate_numerator", "candidate_denominator",
)  # fmt: skip
#: Columns of the summary rows (one per metric, segment, k, label source): gold.replay_metrics' values.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "metric", "segment", "k", "label_source",
    "control_value", "candidate_value", "delta", "ci_low", "ci_high", "n_queries",
)  # fmt: skip

_SEPARATOR = "\u001f"  # joins key parts into one grouping key; never occurs in ids
_COLUMN_SEPARATOR = "__"  # in generated column names (arm__metric__segment__k); modalities have no "__"


class MetricConfig(BaseModel):
    """What the replay measures. Defaults are the team's standard replay."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    query_splits: tuple[str, ...] = Field(
        default=("test",), description="query splits replayed (smar.splits); held-out `test` by default"
    )
    cutoffs: tuple[int, ...] = Field(default=(1, 3, 5, 10), description="k of page-level NDCG@k")
    gain: Gain = Field(
        default="exponential",
        description="NDCG gain: exponential 2^grade - 1 (web-search convention, LightGBM's default), or linear",
    )
    per_modality_k: int = Field(
        default=10, ge=1, description="k of per-modality NDCG@k (positions inside the modality)"
    )
    exposure_k: int = Field(default=10, ge=1, description="top-k window of modality exposure share and position shares")
    click_cutoffs: tuple[int, ...] = Field(default=(5, 10), description="k of the clicks@k estimates")
    min_position_variation: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="the position-based click model is fitted only when at least this fraction of "
        "(query, item) pairs was logged at two or more positions; below it position bias is not "
        "identifiable from the logs and the click estimates are skipped, with the reason reported",
    )
    max_importance_weight: float = Field(
        default=20.0,
        gt=0.0,
        description="click-estimate weights gamma_t / gamma_p are clipped at this value (clipped IPS, "
        "Bottou et al. 2013): deep positions with almost no clicks get tiny gamma, whose inverse "
        "would let a few impressions dominate IPS and SNIPS",
    )
    max_unscored_page_fraction: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="pages where a ranking leaves an impression unscored are dropped (and counted); "
        "above this fraction of the scope the replay fails instead",
    )

    @model_validator(mode="after")
    def _check(self) -> MetricConfig:
        unknown = set(self.query_splits) - set(SPLITS)
        if unknown or not self.query_splits:
            raise ValueError(f"query_splits must be a non-empty subset of {SPLITS}, got {self.query_splits}")
        for name in ("cutoffs", "click_cutoffs"):
            values = getattr(self, name)
            if not values or any(k < 1 for k in values):
                raise ValueError(f"{name} must be positive integers, got {values}")
        return self


@dataclass(frozen=True)
class NamedRanking:
    """A ranking DataFrame (`RANKING_COLUMNS`) with the name written to the tables' control/candidate."""

    name: str
    frame: DataFrame


RankingSource = Union[str, DataFrame, NamedRanking]


def ranking_name(source: RankingSource) -> str:
    """The name of a ranking source as written to the tables: production, run:<id>, or the given name."""
    if isinstance(source, NamedRanking):
        return source.name
    if isinstance(source, DataFrame):
        return "dataframe"
    if source == PRODUCTION or (source.startswith(RUN_PREFIX) and len(source) > len(RUN_PREFIX)):
        return source
    raise ValueError(f"unknown ranking source {source!r}: use 'production', 'run:<run_id>' or a DataFrame")


def scoped_logs(lake: Lakehouse, *, ds_start: str, ds_end: str, query_splits: tuple[str, ...]) -> DataFrame:
    """bronze.search_logs impressions of days ds_start..ds_end (inclusive) and queries of `query_splits`."""
    if ds_start > ds_end:
        raise ValueError(f"ds_start {ds_start} is after ds_end {ds_end}")
    return (
        lake.read("bronze.search_logs")
        .where(F.col("ds").between(F.lit(ds_start), F.lit(ds_end)))
        .where(query_split_column(F.col("query_id")).isin(list(query_splits)))
    )


def load_ranking(
    spark: SparkSession,
    lake: Lakehouse,
    source: RankingSource,
    *,
    ds_start: str,
    ds_end: str,
    query_splits: tuple[str, ...],
) -> DataFrame:
    """The scores of one ranking source over the scope, as `RANKING_COLUMNS`."""
    if isinstance(source, NamedRanking):
        source = source.frame
    if isinstance(source, DataFrame):
        missing = set(RANKING_COLUMNS) - set(source.columns)
        if missing:
            raise ValueError(f"a ranking DataFrame needs columns {RANKING_COLUMNS}; missing {sorted(missing)}")
        frame = source
    elif source == PRODUCTION:
        # The logged order itself: earlier positions score higher.
        frame = scoped_logs(lake, ds_start=ds_start, ds_end=ds_end, query_splits=query_splits).withColumn(
            "score", -F.col("position").cast("double")
        )
    elif source.startswith(RUN_PREFIX):
        # Imported here: the reranker pulls in torch, which a production-only replay does not need.
        from smar.reranker.inference import score_logged_pages

        frame = score_logged_pages(
            spark, lake, source[len(RUN_PREFIX) :], ds_start, ds_end, query_splits=query_splits
        )
    else:
        ranking_name(source)  # raises with the list of accepted sources
        raise AssertionError("unreachable")
    return (
        frame.where(F.col("ds").between(F.lit(ds_start), F.lit(ds_end)))
        .where(query_split_column(F.col("query_id")).isin(list(query_splits)))
        .select(*[F.col(name) for name in RANKING_COLUMNS])
        .withColumn("score", F.col("score").cast("double"))
    )


def page_label_consensus(lake: Lakehouse) -> DataFrame | None:
    """(query_id, item_id, grade): mean page-label grade over annotators, pages and rounds; None if no table."""
    if not lake.exists("silver.page_labels"):
        return None
    return (
        lake.read("silver.page_labels")
        .groupBy("query_id", "item_id")
        .agg(F.avg(F.col("grade").cast("double")).alias("page_label_grade"))
    )


def oracle_grades(lake: Lakehouse, *, ds_start: str, ds_end: str) -> DataFrame | None:
    """(ds, query_id, item_id, oracle_grade) from truth.relevance in the range; None if no table (real data)."""
    if not lake.exists("truth.relevance"):
        return None
    return (
        lake.read("truth.relevance")
        .where(F.col("ds").between(F.lit(ds_start), F.lit(ds_end)))
        .groupBy("ds", "query_id", "item_id")
        .agg(F.max(F.col("grade").cast("double")).alias("oracle_grade"))
    )


@dataclass
class ReplayInputs:
    """The scope, joined: one row per impression with both orders and every available grade."""

    frame: DataFrame  # Spark: ds, request_id, query_id, item_id, modality, position, clicked,
    # logging_propensity, control_score, candidate_score, control_rank, candidate_rank, <grade columns>
    impressions: pd.DataFrame  # the same rows collected (for the click model and the fingerprint)
    label_sources: tuple[str, ...]  # grade label sources with at least one graded impression
    modalities: tuple[str, ...]
    n_pages: int
    n_queries: int
    dropped_pages: int  # pages left out because a ranking did not score every impression
    fingerprint: str = field(default="")  # sha256 of the scoped scores of both orders


def _scores_of(ranking: DataFrame, arm: str) -> DataFrame:
    return ranking.select("ds", "request_id", "item_id", F.col("score").alias(f"{arm}_score"))


def _refuse_duplicates(ranking: DataFrame, name: str) -> None:
    duplicated = ranking.groupBy("ds", "request_id", "item_id").count().where(F.col("count") > 1)
    first = duplicated.limit(1).collect()
    if first:
        row = first[0]
        raise ValueError(
            f"ranking {name!r} scores (ds={row['ds']}, request_id={row['request_id']}, item_id={row['item_id']}) "
            f"{row['count']} times; a ranking must give one score per impression"
        )


def build_replay_inputs(
    spark: SparkSession,
    lake: Lakehouse,
    *,
    control: RankingSource,
    candidate: RankingSource,
    ds_start: str,
    ds_end: str,
    config: MetricConfig,
) -> ReplayInputs:
    """Join the scope's impressions with both rankings' scores, ranks and the available grades."""
    splits = tuple(config.query_splits)
    logs = scoped_logs(lake, ds_start=ds_start, ds_end=ds_end, query_splits=splits).select(
        "ds", "request_id", "query_id", "item_id", "modality", "position", "clicked", "logging_propensity"
    )
    joined = logs
    for arm, source in zip(ARMS, (control, candidate)):
        ranking = load_ranking(spark, lake, source, ds_start=ds_start, ds_end=ds_end, query_splits=splits)
        _refuse_duplicates(ranking, ranking_name(source))
        joined = joined.join(_scores_of(ranking, arm), on=["ds", "request_id", "item_id"], how="left")

    labels = page_label_consensus(lake)
    joined = (
        joined.join(labels, on=["query_id", "item_id"], how="left")
        if labels is not None
        else joined.withColumn("page_label_grade", F.lit(None).cast("double"))
    )
    truth = oracle_grades(lake, ds_start=ds_start, ds_end=ds_end)
    joined = (
        joined.join(truth, on=["ds", "query_id", "item_id"], how="left")
        if truth is not None
        else joined.withColumn("oracle_grade", F.lit(None).cast("double"))
    )

    page = Window.partitionBy("ds", "request_id")
    unscored = F.max(
        (F.col("control_score").isNull() | F.col("candidate_score").isNull()).cast("int")
    ).over(page)
    joined = joined.withColumn("page_unscored", unscored)
    for arm in ARMS:
        # Spark orders NaN above every number; a NaN score is as unusable as a missing one.
        joined = joined.withColumn(
            f"{arm}_score", F.nanvl(F.col(f"{arm}_score"), F.lit(None).cast("double"))
        )
    counts = (
        joined.groupBy("ds", "request_id")
        .agg(F.max("page_unscored").alias("unscored"))
        .agg(F.count(F.lit(1)).alias("pages"), F.sum("unscored").alias("unscored"))
        .collect()[0]
    )
    total_pages, unscored_pages = int(counts["pages"] or 0), int(counts["unscored"] or 0)
    if total_pages == 0:
        raise ValueError(
            f"no logged pages of splits {list(splits)} between {ds_start} and {ds_end} in bronze.search_logs"
        )
    if unscored_pages:
        fraction = unscored_pages / total_pages
        message = (
            f"{unscored_pages} of {total_pages} pages ({fraction:.2%}) have impressions that a ranking did not "
            "score (missing or NaN)"
        )
        if fraction > config.max_unscored_page_fraction:
            raise ValueError(f"{message}; above max_unscored_page_fraction={config.max_unscored_page_fraction}")
        log.warning("%s; those pages are left out of the replay", message)

    frame = joined.where(F.col("page_unscored") == 0).drop("page_unscored")
    for arm in ARMS:
        by_score = Window.partitionBy("ds", "request_id").orderBy(F.col(f"{arm}_score").desc(), F.col("item_id").desc())
        frame = frame.withColumn(f"{arm}_rank", F.row_number().over(by_score))

    impressions = frame.toPandas()
    label_sources = tuple(
        source for source, column in GRADE_COLUMNS.items() if impressions[column].notna().any()
    )
    return ReplayInputs(
        frame=frame,
        impressions=impressions,
        label_sources=label_sources,
        modalities=tuple(sorted(impressions["modality"].unique().tolist())),
        n_pages=int(impressions.groupby(["ds", "request_id"]).ngroups),
        n_queries=int(impressions["query_id"].nunique()),
        dropped_pages=unscored_pages,
        fingerprint=scores_fingerprint(impressions),
    )


def scores_fingerprint(impressions: pd.DataFrame) -> str:
    """sha256 over the sorted (ds, request_id, item_id, control_score, candidate_score) rows."""
    keyed = impressions[["ds", "request_id", "item_id", "control_score", "candidate_score"]].sort_values(
        ["ds", "request_id", "item_id"], kind="stable"
    )
    hashed = pd.util.hash_pandas_object(keyed, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def _union_all(frames: list[DataFrame]) -> DataFrame:
    return reduce(lambda left, right: left.unionByName(right), frames)


def _split_key(column: str, names: tuple[str, ...]) -> list[Column]:
    parts = F.split(F.col(column), _SEPARATOR)
    return [parts.getItem(index).alias(name) for index, name in enumerate(names)]


def ndcg_by_query(inputs: ReplayInputs, config: MetricConfig) -> pd.DataFrame:
    """Per query, label source and arm: mean over pages of NDCG@k (segment all) and per-modality NDCG.

    Per-modality NDCG@k ranks a modality's judged items by the arm's scores and compares them
    with their own ideal order (`smar.metrics.per_modality_ndcg`), so it measures whether the
    merge kept each modality's internal order. Returns `PER_QUERY_COLUMNS` rows.
    """
    if not inputs.label_sources:
        return pd.DataFrame(columns=list(PER_QUERY_COLUMNS))
    cutoffs = tuple(sorted(set(config.cutoffs) | {config.per_modality_k}))
    runs = []
    for label_source in inputs.label_sources:
        judged = inputs.frame.where(F.col(GRADE_COLUMNS[label_source]).isNotNull())
        for arm in ARMS:
            for segment in (F.lit(ALL_SEGMENT), F.col("modality")):
                key = F.concat_ws(
                    _SEPARATOR, F.lit(label_source), F.lit(arm), segment,
                    F.col("query_id"), F.col("ds"), F.col("request_id"),
                )  # fmt: skip
                runs.append(
                    judged.select(
                        key.alias("query_id"),
                        F.col("item_id").alias("doc_id"),
                        F.col(f"{arm}_score").alias("score"),
                        F.col(GRADE_COLUMNS[label_source]).alias("relevance"),
                    )
                )
    per_page = ranking_metrics_by_query(_union_all(runs), cutoffs=cutoffs, gain=config.gain, empty=None)
    names = ("label_source", "arm", "segment", "query_id")
    per_query = (
        per_page.select(*_split_key("query_id", names), *[F.col(f"ndcg_cut_{k}") for k in cutoffs])
        .groupBy(*names)
        .agg(*[F.avg(f"ndcg_cut_{k}").alias(str(k)) for k in cutoffs])
        .toPandas()
    )
    long = per_query.melt(id_vars=list(names), var_name="k", value_name="value")
    long["k"] = long["k"].astype(int)
    keep = ((long["segment"] == ALL_SEGMENT) & long["k"].isin(config.cutoffs)) | (
        (long["segment"] != ALL_SEGMENT) & (long["k"] == config.per_modality_k)
    )
    long = long[keep].assign(metric=NDCG)
    return _pair_arms(long, ["metric", "segment", "k", "label_source", "query_id"])


def _pair_arms(long: pd.DataFrame, keys: list[str], denominator: str | None = None) -> pd.DataFrame:
    """Rows per arm (value [, denominator]) -> one row per key with control and candidate numerators."""
    values = ["value"] + ([denominator] if denominator else [])
    wide = long.set_index([*keys, "arm"])[values].unstack("arm")
    result = pd.DataFrame(index=wide.index)
    for arm in ARMS:
        result[f"{arm}_numerator"] = wide[("value", arm)] if ("value", arm) in wide else np.nan
        result[f"{arm}_denominator"] = wide[(denominator, arm)] if denominator else 1.0
    result = result.reset_index()
    # A query where an arm's value is undefined (no relevant judged item) is left out of that metric.
    defined = result[[f"{arm}_{part}" for arm in ARMS for part in ("numerator", "denominator")]].notna().all(axis=1)
    return result.loc[defined, list(PER_QUERY_COLUMNS)].reset_index(drop=True)


def cross_modal_pairs_by_query(inputs: ReplayInputs) -> pd.DataFrame:
    """Per query and label source: cross-modal pair counts of each arm, for PNR and pair accuracy.

    Pairs are items of one page from different modalities with different grades
    (`smar.metrics.cross_modal_pair_counts`): concordant C, discordant D, tied T per page,
    averaged over the query's pages that have pairs. PNR = (C + T/2) / (D + T/2) and pair
    accuracy = (C + T/2) / (C + D + T), pooled over queries as a ratio of sums (so a query
    weighs by its pairs). Accuracy is PNR / (1 + PNR), finite where PNR is inf (no mis-ordered pair).
    """
    if not inputs.label_sources:
        return pd.DataFrame(columns=list(PER_QUERY_COLUMNS))
    frames = []
    for label_source in inputs.label_sources:
        grade = GRADE_COLUMNS[label_source]
        judged = inputs.frame.where(F.col(grade).isNotNull()).select(
            "ds", "request_id", "query_id", "modality", F.col(grade).alias("grade"), "control_score", "candidate_score"
        )
        left = judged.select(*[F.col(name).alias(f"left_{name}") for name in judged.columns])
        right = judged.select(*[F.col(name).alias(f"right_{name}") for name in judged.columns])
        pairs = left.join(
            right,
            on=(F.col("left_ds") == F.col("right_ds"))
            & (F.col("left_request_id") == F.col("right_request_id"))
            & (F.col("left_modality") != F.col("right_modality"))
            & (F.col("left_grade") > F.col("right_grade")),
            how="inner",
        )
        counts = []
        for arm in ARMS:
            difference = F.col(f"left_{arm}_score") - F.col(f"right_{arm}_score")
            counts += [
                F.sum((difference > 0).cast("double")).alias(f"{arm}_concordant"),
                F.sum((difference < 0).cast("double")).alias(f"{arm}_discordant"),
                F.sum((difference == 0).cast("double")).alias(f"{arm}_tied"),
            ]
        per_page = pairs.groupBy("left_ds", "left_request_id", "left_query_id").agg(*counts)
        count_names = [f"{arm}_{kind}" for arm in ARMS for kind in ("concordant", "discordant", "tied")]
        per_query = (
            per_page.groupBy(F.col("left_query_id").alias("query_id"))
            .agg(*[F.avg(name).alias(name) for name in count_names])
            .toPandas()
        )
        for metric in (CROSS_MODAL_PNR, CROSS_MODAL_PAIR_ACCURACY):
            rows = pd.DataFrame({"metric": metric, "segment": ALL_SEGMENT, "k": pd.NA, "label_source": label_source,
                                 "query_id": per_query["query_id"]})
            for arm in ARMS:
                correct = per_query[f"{arm}_concordant"] + 0.5 * per_query[f"{arm}_tied"]
                wrong = per_query[f"{arm}_discordant"] + 0.5 * per_query[f"{arm}_tied"]
                rows[f"{arm}_numerator"] = correct
                rows[f"{arm}_denominator"] = wrong if metric == CROSS_MODAL_PNR else correct + wrong
            frames.append(rows)
    return pd.concat(frames, ignore_index=True)[list(PER_QUERY_COLUMNS)]


def exposure_by_query(inputs: ReplayInputs, config: MetricConfig) -> pd.DataFrame:
    """Per query: modality exposure share in the top k, and each modality's share at positions 1..k.

    Exposure share of m = (items of m in the top min(k, n)) / min(k, n) per page
    (`smar.metrics.modality_exposure_share`; 0 for a modality absent from the page), averaged
    over the query's pages. Position share of m at r = fraction of the query's pages (with at
    least r items) whose rank-r item is of modality m. Label-free: label_source `none`.
    """
    k = config.exposure_k
    aggregates = []
    for arm in ARMS:
        rank = F.col(f"{arm}_rank")
        slots = F.least(F.lit(k), F.count(F.lit(1)))
        for modality in inputs.modalities:
            is_modality = F.col("modality") == F.lit(modality)
            aggregates.append(
                (F.sum((is_modality & (rank <= k)).cast("double")) / slots).alias(
                    _COLUMN_SEPARATOR.join((arm, EXPOSURE_SHARE, modality, str(k)))
                )
            )
            for position in range(1, k + 1):
                aggregates.append(
                    F.when(
                        F.count(F.lit(1)) >= position, F.max((is_modality & (rank == position)).cast("double"))
                    ).alias(
                        _COLUMN_SEPARATOR.join((arm, POSITION_SHARE, modality, str(position)))
                    )
                )
    per_page = inputs.frame.groupBy("ds", "request_id", "query_id").agg(*aggregates)
    value_columns = [name for name in per_page.columns if _COLUMN_SEPARATOR in name]
    per_query = (
        per_page.groupBy("query_id")
        .agg(*[F.avg(name).alias(name) for name in value_columns])
        .toPandas()
    )
    long = per_query.melt(id_vars=["query_id"], var_name="key", value_name="value")
    parts = long["key"].str.split(_COLUMN_SEPARATOR, expand=True)
    long = long.assign(arm=parts[0], metric=parts[1], segment=parts[2], k=parts[3].astype(int), label_source=NO_LABELS)
    return _pair_arms(long.drop(columns="key"), ["metric", "segment", "k", "label_source", "query_id"])


@dataclass(frozen=True)
class ClickModelSummary:
    """Where the click propensities came from, for the report; `skipped_reason` when not estimated."""

    propensity_source: str  # "position_based_model" or "logged"
    examination: tuple[float, ...]  # gamma_r for r = 1..max position (PBM), empty otherwise
    iterations: int
    converged: bool
    position_variation: float  # fraction of (query, item) pairs logged at >= 2 positions
    skipped_reason: str | None = None


def position_variation(query_ids: pd.Series, item_ids: pd.Series, positions: pd.Series) -> float:
    """Fraction of (query, item) pairs logged at two or more distinct positions.

    A position-based model separates examination from attractiveness only through items that
    moved: if every pair sits at one position, gamma_r * alpha_qi fits every click rate with any
    gamma, so the EM's examination curve is arbitrary (not identifiable).
    """
    frame = pd.DataFrame(
        {"query_id": query_ids.to_numpy(), "item_id": item_ids.to_numpy(), "position": positions.to_numpy()}
    )
    if frame.empty:
        return 0.0
    return float((frame.groupby(["query_id", "item_id"])["position"].nunique() > 1).mean())


def click_propensity_source(impressions: pd.DataFrame) -> str:
    """"logged" when every impression carries logging_propensity, "position_based_model" when none does."""
    present = impressions["logging_propensity"].notna()
    if present.all() and len(present):
        return "logged"
    if not present.any():
        return "position_based_model"
    raise ValueError(
        f"{int(present.sum())} of {len(present)} impressions carry logging_propensity and the rest do not; "
        "the replay will not mix logged and modelled propensities (filter the scope or fill them)"
    )


def click_estimates_by_query(impressions: pd.DataFrame, config: MetricConfig) -> tuple[pd.DataFrame, ClickModelSummary]:
    """Per query: IPS and SNIPS estimates of clicks@k per page under each arm's order.

    Position-based model (the default, Chuklin et al. 2015): fit P(click) = gamma_r * alpha_qi
    by EM on the scope's logged clicks (`fit_position_based_model`). An item logged at p and
    placed at t by the arm gets reward c * [t <= k] and weight gamma_t / gamma_p, so
    E[c * w] = alpha * gamma_t * [t <= k], its expected clicks in the top k. Weights are clipped
    at `max_importance_weight` (a little bias for much less variance). Per query,
    IPS = sum(c * [t <= k] * w) / pages, computed as `ope.ips(...) * rows / pages`, and
    SNIPS = `ope.snips(...) * rows / pages` (normalised by the mean weight). When an arm keeps the
    logged order every weight is 1 and both equal the observed clicks in the top k per page.

    Logged propensities (every impression carries `logging_propensity`, the probability that
    the logging policy showed the item at its position): the item-position model of Li et al.
    (2018): reward c * [p <= k], logging = logged propensity, target = 1 if the arm puts the
    item at its logged position p, else 0.
    """
    source = click_propensity_source(impressions)
    variation = position_variation(impressions["query_id"], impressions["item_id"], impressions["position"])
    if source == "position_based_model" and variation < config.min_position_variation:
        reason = (
            f"click estimates skipped: only {variation:.1%} of (query, item) pairs were logged at more than "
            f"one position (min_position_variation={config.min_position_variation:.1%}), so a position-based "
            "click model cannot separate position bias from relevance. Log propensities, or randomise a "
            "slice of traffic (e.g. pairwise swaps), to estimate clicks counterfactually."
        )
        log.warning("%s", reason)
        return pd.DataFrame(columns=list(PER_QUERY_COLUMNS)), ClickModelSummary(source, (), 0, False, variation, reason)
    if source == "position_based_model":
        model = fit_position_based_model(
            impressions["query_id"].to_numpy(), impressions["item_id"].to_numpy(),
            impressions["position"].to_numpy(), impressions["clicked"].to_numpy(),
        )  # fmt: skip
        examination = model.examination
        needed = set(impressions["position"].astype(int)) | {
            int(rank) for arm in ARMS for rank in impressions[f"{arm}_rank"]
        }
        unusable = sorted(rank for rank in needed if rank > len(examination) or not examination[rank - 1] > 0)
        if unusable:
            # An item logged where the model says nobody looks cannot be reweighted (w = gamma_t / 0),
            # nor can an item be moved to a rank the log never showed (gamma unknown).
            reason = (
                f"click estimates skipped: the position-based model has no positive examination estimate for "
                f"positions {unusable[:10]} (never shown, or never clicked), so those impressions cannot be reweighted"
            )
            log.warning("%s", reason)
            curve = tuple(float(value) for value in examination)
            return pd.DataFrame(columns=list(PER_QUERY_COLUMNS)), ClickModelSummary(
                source, curve, model.iterations, model.converged, variation, reason
            )
        summary = ClickModelSummary(
            source, tuple(float(value) for value in examination), model.iterations, model.converged, variation
        )
        logging_propensity = examination[impressions["position"].to_numpy(dtype=np.int64) - 1]
    else:
        summary = ClickModelSummary(source, (), 0, True, variation)
        logging_propensity = impressions["logging_propensity"].to_numpy(dtype=np.float64)

    columns: dict[str, np.ndarray] = {"logging": logging_propensity}
    clicked = impressions["clicked"].to_numpy(dtype=np.float64)
    position = impressions["position"].to_numpy(dtype=np.int64)
    for arm in ARMS:
        rank = impressions[f"{arm}_rank"].to_numpy(dtype=np.int64)
        for k in config.click_cutoffs:
            if source == "position_based_model":
                # Clipping the target propensity at max_weight * logging clips the weight itself.
                columns[f"{arm}_target"] = np.minimum(
                    examination[rank - 1], config.max_importance_weight * logging_propensity
                )
                columns[f"{arm}_reward_{k}"] = clicked * (rank <= k)
            else:
                columns[f"{arm}_target"] = (rank == position).astype(np.float64)
                columns[f"{arm}_reward_{k}"] = clicked * (position <= k)
    weights = pd.DataFrame(columns)
    weights["query_id"] = impressions["query_id"].to_numpy()
    weights["page"] = (impressions["ds"].astype(str) + _SEPARATOR + impressions["request_id"].astype(str)).to_numpy()

    rows = []
    for query_id, group in weights.groupby("query_id", sort=True):
        rows_per_page = len(group) / group["page"].nunique()
        for k in config.click_cutoffs:
            for label_source, estimator in ((CLICKS_IPS, ips), (CLICKS_SNIPS, snips)):
                values = {}
                for arm in ARMS:
                    target = group[f"{arm}_target"]
                    if estimator is snips and not (target > 0).any():
                        # SNIPS is undefined when the arm puts no weight on this query's logged rows.
                        values[arm] = np.nan
                        continue
                    values[arm] = estimator(group[f"{arm}_reward_{k}"], group["logging"], target) * rows_per_page
                rows.append(
                    (CLICKS, ALL_SEGMENT, k, label_source, query_id, values["control"], 1.0, values["candidate"], 1.0)
                )
    per_query = pd.DataFrame(rows, columns=list(PER_QUERY_COLUMNS))
    defined = per_query[["control_numerator", "candidate_numerator"]].notna().all(axis=1)
    return per_query[defined].reset_index(drop=True), summary


def per_query_metrics(inputs: ReplayInputs, config: MetricConfig) -> tuple[pd.DataFrame, ClickModelSummary]:
    """Every per-query metric of the replay, long format (`PER_QUERY_COLUMNS`)."""
    clicks, click_model = click_estimates_by_query(inputs.impressions, config)
    parts = [
        ndcg_by_query(inputs, config),
        cross_modal_pairs_by_query(inputs),
        exposure_by_query(inputs, config),
        clicks,
    ]
    combined = pd.concat([part for part in parts if len(part)], ignore_index=True)
    combined["k"] = combined["k"].astype("Int64")
    return combined, click_model


def summarize(per_query: pd.DataFrame, bootstrap: BootstrapConfig) -> pd.DataFrame:
    """One row per (metric, segment, k, label_source): both values, delta and its paired bootstrap CI."""
    rows = []
    keys = ["metric", "segment", "k", "label_source"]
    for key, group in per_query.groupby(keys, sort=True, dropna=False):
        group = group.sort_values("query_id")

        def column(name: str) -> np.ndarray:
            # Rounded to 1e-12: the engine sums pages in no fixed order, and last-bit noise must not
            # turn identical rankings (an A/A replay) into a tiny nonzero difference.
            return np.round(group[name].to_numpy(float), 12)

        estimate = paired_delta(
            column("control_numerator"),
            column("candidate_numerator"),
            control_denominator=column("control_denominator"),
            candidate_denominator=column("candidate_denominator"),
            config=bootstrap,
        )
        rows.append((*key, estimate.control_value, estimate.candidate_value, estimate.delta,
                     estimate.ci_low, estimate.ci_high, estimate.n_queries))  # fmt: skip
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary["k"] = summary["k"].astype("Int64")
    summary["n_queries"] = summary["n_queries"].astype("int64")
    return summary
