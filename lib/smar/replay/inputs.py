"""The replay's scope, joined: one row per logged impression with both orderings' scores and
ranks and every available grade.

A ranking source is `"production"` (the logged order: score = -position), `"run:<run_id>"` (a
registered reranker run, scored by `smar.reranker.inference.score_logged_pages`), a Spark
DataFrame with `RANKING_COLUMNS`, or a `NamedRanking` (a DataFrame with a name for the tables).
Joins run in Spark; only the scope's impressions (a few columns) are collected, for the click
model and the fingerprint.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Union

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from smar.annotation.labels import label_consensus
from smar.errors import InputRefused
from smar.lake import Lakehouse
from smar.replay.measures import ARMS, GRADE_COLUMNS, MetricConfig
from smar.sampling import sample_frame_queries
from smar.splits import query_split_column

log = logging.getLogger(__name__)

#: Columns every ranking source provides: one score per logged impression, higher = earlier.
RANKING_COLUMNS: tuple[str, ...] = ("ds", "request_id", "query_id", "item_id", "modality", "position", "score")
PRODUCTION = "production"
RUN_PREFIX = "run:"


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
    raise InputRefused(f"unknown ranking source {source!r}: use 'production', 'run:<run_id>' or a DataFrame")


def scoped_logs(lake: Lakehouse, *, ds_start: str, ds_end: str, query_splits: tuple[str, ...]) -> DataFrame:
    """bronze.search_logs impressions of days ds_start..ds_end (inclusive) and queries of `query_splits`."""
    if ds_start > ds_end:
        raise InputRefused(f"ds_start {ds_start} is after ds_end {ds_end}")
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
    query_ids: Sequence[str] | None = None,
) -> DataFrame:
    """The scores of one ranking source over the scope, as `RANKING_COLUMNS` (a `run:` candidate
    scores only the pages of `query_ids` when given)."""
    if isinstance(source, NamedRanking):
        source = source.frame
    if isinstance(source, DataFrame):
        missing = set(RANKING_COLUMNS) - set(source.columns)
        if missing:
            raise InputRefused(f"a ranking DataFrame needs columns {RANKING_COLUMNS}; missing {sorted(missing)}")
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
            spark, lake, source[len(RUN_PREFIX) :], ds_start, ds_end, query_splits=query_splits, query_ids=query_ids
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
    """(query_id, item_id, page_label_grade): the mean page-label grade over annotators, pages and
    rounds of the query; None if there is no label table."""
    if not lake.exists("silver.page_labels"):
        return None
    pooled = label_consensus(lake.read("silver.page_labels"), ("query_id", "item_id"))
    return pooled.select("query_id", "item_id", F.col("mean_grade").alias("page_label_grade"))


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
    # logging_propensity, user_id, production_score, control_score, candidate_score, control_rank,
    # candidate_rank, <grade columns>
    impressions: pd.DataFrame  # the same rows collected (for the click model and the fingerprint)
    label_sources: tuple[str, ...]  # grade label sources with at least one graded impression
    modalities: tuple[str, ...]
    n_pages: int
    n_queries: int
    dropped_pages: int  # pages left out because a ranking did not score every impression
    scope_queries: int = 0  # distinct queries in scope (before the sample)
    sampled_queries: int | None = None  # the hash sample's size (SMAR_MAX_REPLAY_QUERIES); None: all replayed
    fingerprint: str = field(default="")  # sha256 of the scoped scores of both orders


def _scores_of(ranking: DataFrame, arm: str) -> DataFrame:
    return ranking.select("ds", "request_id", "item_id", F.col("score").alias(f"{arm}_score"))


def _refuse_duplicates(ranking: DataFrame, name: str) -> None:
    duplicated = ranking.groupBy("ds", "request_id", "item_id").count().where(F.col("count") > 1)
    first = duplicated.limit(1).collect()
    if first:
        row = first[0]
        raise InputRefused(
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
    logs = scoped_logs(lake, ds_start=ds_start, ds_end=ds_end, query_splits=splits)
    # Bounded: at most max_replay_queries queries (a hash sample chosen in Spark) reach the driver,
    # their impressions and, for a run: candidate, the pages it scores.
    sampled, scope_queries = sample_frame_queries(logs, max_queries=lake.settings.max_replay_queries)
    if sampled is not None:
        log.warning("replaying a hash sample of %d of the %d queries in scope", len(sampled), scope_queries)
        kept = spark.createDataFrame([(query,) for query in sampled], "query_id string")
        logs = logs.join(F.broadcast(kept), on="query_id", how="left_semi")
    logs = logs.select(
        "ds", "request_id", "query_id", "item_id", "modality", "position", "clicked", "logging_propensity",
        "user_id", "production_score",  # for the click model and the oracle clicks (smar.replay.clicks)
    )  # fmt: skip
    joined = logs
    for arm, source in zip(ARMS, (control, candidate)):
        ranking = load_ranking(
            spark, lake, source, ds_start=ds_start, ds_end=ds_end, query_splits=splits, query_ids=sampled
        )
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
    unscored = F.max((F.col("control_score").isNull() | F.col("candidate_score").isNull()).cast("int")).over(page)
    joined = joined.withColumn("page_unscored", unscored)
    for arm in ARMS:
        # Spark orders NaN above every number; a NaN score is as unusable as a missing one.
        joined = joined.withColumn(f"{arm}_score", F.nanvl(F.col(f"{arm}_score"), F.lit(None).cast("double")))
    counts = (
        joined.groupBy("ds", "request_id")
        .agg(F.max("page_unscored").alias("unscored"))
        .agg(F.count(F.lit(1)).alias("pages"), F.sum("unscored").alias("unscored"))
        .collect()[0]
    )
    total_pages, unscored_pages = int(counts["pages"] or 0), int(counts["unscored"] or 0)
    if total_pages == 0:
        raise InputRefused(
            f"no logged pages of splits {list(splits)} between {ds_start} and {ds_end} in bronze.search_logs"
        )
    if unscored_pages:
        fraction = unscored_pages / total_pages
        message = (
            f"{unscored_pages} of {total_pages} pages ({fraction:.2%}) have impressions that a ranking did not "
            "score (missing or NaN)"
        )
        if fraction > config.max_unscored_page_fraction:
            raise InputRefused(f"{message}; above max_unscored_page_fraction={config.max_unscored_page_fraction}")
        log.warning("%s; those pages are left out of the replay", message)

    frame = joined.where(F.col("page_unscored") == 0).drop("page_unscored")
    for arm in ARMS:
        by_score = Window.partitionBy("ds", "request_id").orderBy(F.col(f"{arm}_score").desc(), F.col("item_id").desc())
        frame = frame.withColumn(f"{arm}_rank", F.row_number().over(by_score))

    impressions: pd.DataFrame = frame.toPandas()
    label_sources = tuple(source for source, column in GRADE_COLUMNS.items() if impressions[column].notna().any())
    return ReplayInputs(
        frame=frame,
        impressions=impressions,
        label_sources=label_sources,
        modalities=tuple(sorted(impressions["modality"].unique().tolist())),
        n_pages=int(impressions.groupby(["ds", "request_id"]).ngroups),
        n_queries=int(impressions["query_id"].nunique()),
        dropped_pages=unscored_pages,
        scope_queries=scope_queries,
        sampled_queries=None if sampled is None else len(sampled),
        fingerprint=scores_fingerprint(impressions),
    )


def scores_fingerprint(impressions: pd.DataFrame) -> str:
    """sha256 over the sorted (ds, request_id, item_id, control_score, candidate_score) rows."""
    keyed = impressions[["ds", "request_id", "item_id", "control_score", "candidate_score"]].sort_values(
        ["ds", "request_id", "item_id"], kind="stable"
    )
    hashed = pd.util.hash_pandas_object(keyed, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()
