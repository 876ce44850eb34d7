"""Per-query ranking metrics on Spark DataFrames, for tables too big for the NumPy reference.

Only Spark Connect-compatible DataFrame API (window functions and aggregates; no `.rdd`, no
`sparkContext`, no Python UDFs), so the same code runs on the embedded engine and a cluster.
The conventions are trec_eval's and the values equal the NumPy reference in `smar.metrics`:

* ranking: score descending, ties broken by doc_id descending (string order);
* gain "linear" (grade) or "exponential" (2^grade - 1), negative or missing grades give 0;
* discount 1 / log2(rank + 1);
* relevant (binary measures) means grade >= `relevance_threshold`.

Input rows: (query_id, doc_id, score, relevance), one per (query, document). A row with a
null score is a judged document that was not retrieved: it counts in the ideal DCG and in
num_rel (trec_eval) but is not ranked. A null relevance is an unjudged retrieved document
(not relevant, gain 0), as is a NaN one. NaN scores must be refused upstream (the readers in
`smar.metrics.trec_files` do): Spark orders NaN above every number.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from smar.metrics.conventions import DEFAULT_RELEVANCE_THRESHOLD, Gain, check_conventions

#: Metric columns besides the cut ones, as `ranking_metrics_by_query` names them.
UNCUT_METRICS: tuple[str, ...] = ("ndcg", "map", "recip_rank")
COUNT_COLUMNS: tuple[str, ...] = ("num_ret", "num_rel", "num_rel_ret")


def _gain(grade: Column, gain: Gain) -> Column:
    clipped = F.greatest(grade, F.lit(0.0))
    return clipped if gain == "linear" else F.pow(F.lit(2.0), clipped) - F.lit(1.0)


def _discount(rank: Column) -> Column:
    return F.lit(1.0) / F.log2(rank.cast("double") + F.lit(1.0))


def _or_empty(value: Column, defined: Column, empty: float | None) -> Column:
    fallback = F.lit(None).cast("double") if empty is None else F.lit(float(empty))
    return F.when(defined, value).otherwise(fallback)


def ranking_metrics_by_query(
    judged_run: DataFrame,
    *,
    cutoffs: Sequence[int] = (5, 10),
    gain: Gain = "linear",
    relevance_threshold: float = DEFAULT_RELEVANCE_THRESHOLD,
    empty: float | None = None,
) -> DataFrame:
    """(query_id, doc_id, score, relevance) -> one row per query with its metrics.

    Output columns: query_id, num_ret, num_rel, num_rel_ret, ndcg, map, recip_rank, then for
    each k in `cutoffs`: ndcg_cut_k, P_k, recall_k, recip_rank_cut_k (MRR@k). Formulas as the
    NumPy functions `ndcg_at`, `average_precision`, `reciprocal_rank`, `precision_at` and
    `recall_at`. A query with no relevant judged document (ideal DCG 0 for the ndcg columns,
    num_rel 0 for the others) gets `empty`; None leaves the value null, which `F.avg` skips.
    """
    check_conventions(gain=gain)
    if not cutoffs or any(int(k) < 1 for k in cutoffs):
        raise ValueError(f"cutoffs must be positive integers, got {list(cutoffs)!r}")
    missing = {"query_id", "doc_id", "score", "relevance"} - set(judged_run.columns)
    if missing:
        raise ValueError(f"judged_run lacks columns {sorted(missing)}")
    cut_values = sorted({int(k) for k in cutoffs})

    rows = judged_run.select(
        F.col("query_id"),
        F.col("doc_id").cast("string").alias("doc_id"),
        F.col("score").cast("double").alias("score"),
        # NaN grades (pandas' missing values) are unjudged, like nulls.
        F.coalesce(F.nanvl(F.col("relevance").cast("double"), F.lit(None).cast("double")), F.lit(-1.0)).alias("grade"),
    ).withColumn("gain", _gain(F.col("grade"), gain))

    by_score = Window.partitionBy("query_id").orderBy(F.col("score").desc_nulls_last(), F.col("doc_id").desc())
    by_gain = Window.partitionBy("query_id").orderBy(F.col("gain").desc(), F.col("doc_id").desc())
    up_to_here = by_score.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    is_relevant = F.col("grade") >= F.lit(float(relevance_threshold))
    # Not-retrieved rows sort last, so their row numbers never disturb the retrieved ranks.
    ranked = (
        rows.withColumn("rank", F.when(F.col("score").isNotNull(), F.row_number().over(by_score)))
        .withColumn("ideal_rank", F.row_number().over(by_gain))
        .withColumn("relevant_retrieved", (is_relevant & F.col("rank").isNotNull()).cast("int"))
        .withColumn("relevant_so_far", F.sum("relevant_retrieved").over(up_to_here))
    )

    def within(k: int) -> Column:
        return F.col("rank") <= F.lit(k)

    discounted_gain = F.col("gain") * _discount(F.col("rank"))
    ideal_discounted_gain = F.col("gain") * _discount(F.col("ideal_rank"))
    aggregates: list[Column] = [
        F.count("rank").alias("num_ret"),
        F.sum(is_relevant.cast("int")).alias("num_rel"),
        F.sum("relevant_retrieved").alias("num_rel_ret"),
        F.sum(F.when(F.col("rank").isNotNull(), discounted_gain)).alias("dcg"),
        F.sum(ideal_discounted_gain).alias("ideal_dcg"),
        F.min(F.when(F.col("relevant_retrieved") == 1, F.col("rank"))).alias("first_relevant_rank"),
        F.sum(F.when(F.col("relevant_retrieved") == 1, F.col("relevant_so_far") / F.col("rank"))).alias(
            "precision_sum"
        ),
    ]
    for k in cut_values:
        aggregates += [
            F.sum(F.when(within(k), discounted_gain)).alias(f"dcg_{k}"),
            F.sum(F.when(F.col("ideal_rank") <= F.lit(k), ideal_discounted_gain)).alias(f"ideal_dcg_{k}"),
            F.sum(F.when(within(k), F.col("relevant_retrieved"))).alias(f"relevant_in_{k}"),
        ]
    per_query = ranked.groupBy("query_id").agg(*aggregates)

    has_relevant = F.col("num_rel") > 0
    reciprocal = F.coalesce(F.lit(1.0) / F.col("first_relevant_rank"), F.lit(0.0))
    outputs: list[Column] = [
        F.col("query_id"),
        F.col("num_ret").cast("long").alias("num_ret"),
        F.col("num_rel").cast("long").alias("num_rel"),
        F.col("num_rel_ret").cast("long").alias("num_rel_ret"),
        _or_empty(F.coalesce(F.col("dcg"), F.lit(0.0)) / F.col("ideal_dcg"), F.col("ideal_dcg") > 0, empty).alias(
            "ndcg"
        ),
        _or_empty(F.coalesce(F.col("precision_sum"), F.lit(0.0)) / F.col("num_rel"), has_relevant, empty).alias("map"),
        _or_empty(reciprocal, has_relevant, empty).alias("recip_rank"),
    ]
    for k in cut_values:
        found = F.coalesce(F.col(f"relevant_in_{k}"), F.lit(0)).cast("double")
        ideal_k = F.col(f"ideal_dcg_{k}")
        outputs += [
            _or_empty(F.coalesce(F.col(f"dcg_{k}"), F.lit(0.0)) / ideal_k, ideal_k > 0, empty).alias(f"ndcg_cut_{k}"),
            _or_empty(found / F.lit(float(k)), has_relevant, empty).alias(f"P_{k}"),
            _or_empty(found / F.col("num_rel"), has_relevant, empty).alias(f"recall_{k}"),
            _or_empty(
                F.when(F.col("first_relevant_rank") <= F.lit(k), reciprocal).otherwise(F.lit(0.0)),
                has_relevant,
                empty,
            ).alias(f"recip_rank_cut_{k}"),
        ]
    return per_query.select(*outputs)


def mean_metrics(per_query: DataFrame) -> DataFrame:
    """One row: the mean of every metric column over queries (nulls left out), counts summed."""
    metric_columns = [name for name in per_query.columns if name != "query_id" and name not in COUNT_COLUMNS]
    return per_query.agg(
        F.count("query_id").alias("num_q"),
        *[F.sum(name).alias(name) for name in COUNT_COLUMNS if name in per_query.columns],
        *[F.avg(name).alias(name) for name in metric_columns],
    )
