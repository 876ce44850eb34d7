"""Per-query values of every replay metric for both arms, and their paired summary.

Label and exposure metrics are computed in Spark, grouped by page with the Spark-native
`smar.metrics.spark_metrics`, so they scale with the logs; only per-query rows are collected.
The summary pairs the arms per query and bootstraps the delta (`smar.metrics.bootstrap`).
Clicks are estimated apart (`smar.replay.clicks`): their intervals also carry the uncertainty of
the examination curve.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smar.metrics.bootstrap import BootstrapConfig, paired_delta
from smar.metrics.spark_metrics import ranking_metrics_by_query
from smar.replay.inputs import ReplayInputs
from smar.replay.measures import (
    ALL_SEGMENT,
    ARMS,
    CROSS_MODAL_PAIR_ACCURACY,
    CROSS_MODAL_PNR,
    EXPOSURE_SHARE,
    GRADE_COLUMNS,
    NDCG,
    PER_QUERY_COLUMNS,
    POSITION_SHARE,
    SUMMARY_COLUMNS,
    MetricConfig,
)
from smar.vocabulary import NO_LABELS

_SEPARATOR = "\u001f"  # joins key parts into one grouping key; never occurs in ids
_COLUMN_SEPARATOR = "__"  # in generated column names (arm__metric__segment__k); modalities have no "__"


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
    per_query: pd.DataFrame = (
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
        per_query: pd.DataFrame = (
            per_page.groupBy(F.col("left_query_id").alias("query_id"))
            .agg(*[F.avg(name).alias(name) for name in count_names])
            .toPandas()
        )
        for metric in (CROSS_MODAL_PNR, CROSS_MODAL_PAIR_ACCURACY):
            rows = pd.DataFrame(
                {
                    "metric": metric,
                    "segment": ALL_SEGMENT,
                    "k": pd.NA,
                    "label_source": label_source,
                    "query_id": per_query["query_id"],
                }
            )
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
                    ).alias(_COLUMN_SEPARATOR.join((arm, POSITION_SHARE, modality, str(position))))
                )
    per_page = inputs.frame.groupBy("ds", "request_id", "query_id").agg(*aggregates)
    value_columns = [name for name in per_page.columns if _COLUMN_SEPARATOR in name]
    per_query: pd.DataFrame = (
        per_page.groupBy("query_id").agg(*[F.avg(name).alias(name) for name in value_columns]).toPandas()
    )
    long = per_query.melt(id_vars=["query_id"], var_name="key", value_name="value")
    parts = long["key"].str.split(_COLUMN_SEPARATOR, expand=True)
    long = long.assign(arm=parts[0], metric=parts[1], segment=parts[2], k=parts[3].astype(int), label_source=NO_LABELS)
    return _pair_arms(long.drop(columns="key"), ["metric", "segment", "k", "label_source", "query_id"])


def per_query_metrics(inputs: ReplayInputs, config: MetricConfig) -> pd.DataFrame:
    """Every per-query label and exposure metric of the replay, long format (`PER_QUERY_COLUMNS`)."""
    parts = [ndcg_by_query(inputs, config), cross_modal_pairs_by_query(inputs), exposure_by_query(inputs, config)]
    combined = pd.concat([part for part in parts if len(part)], ignore_index=True)
    combined["k"] = combined["k"].astype("Int64")
    return combined


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
