"""Test helper: a stand-in for `silver.single_modal_scores` built from the production scores.

Until (and besides) the real single-modal rankers, tests that need `silver.single_modal_scores`
write this stand-in from `bronze.search_logs` of one day:

    score = production_score
    rank_in_modality = row_number over (request_id, modality) by score desc, item_id asc
    score_percentile_in_modality = (n - rank) / (n - 1), 1.0 when n = 1
    model_version = "production-standin"
"""

from __future__ import annotations

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from smar.lake import Lakehouse

STANDIN_MODEL_VERSION = "production-standin"


def write_standin_scores(spark: SparkSession, lake: Lakehouse, ds: str) -> None:
    """Write the stand-in scores of day `ds` (replacing that day's slice)."""
    logs = lake.read("bronze.search_logs").where(F.col("ds") == ds)
    by_score = Window.partitionBy("request_id", "modality").orderBy(
        F.col("production_score").desc(), F.col("item_id").asc()
    )
    whole_group = Window.partitionBy("request_id", "modality").rowsBetween(
        Window.unboundedPreceding, Window.unboundedFollowing
    )
    ranked = logs.withColumn("rank_in_modality", F.row_number().over(by_score)).withColumn(
        "n_in_modality", F.count(F.lit(1)).over(whole_group)
    )
    scores = ranked.select(
        F.col("ds"),
        F.col("request_id"),
        F.col("query_id"),
        F.col("item_id"),
        F.col("modality"),
        F.col("position"),
        F.col("production_score").cast("double").alias("score"),
        F.col("rank_in_modality").cast("int").alias("rank_in_modality"),
        F.when(F.col("n_in_modality") == 1, F.lit(1.0))
        .otherwise(
            (F.col("n_in_modality") - F.col("rank_in_modality")).cast("double")
            / (F.col("n_in_modality") - 1).cast("double")
        )
        .alias("score_percentile_in_modality"),
        F.lit(STANDIN_MODEL_VERSION).alias("model_version"),
    )
    lake.overwrite_slice(scores, "silver.single_modal_scores", {"ds": ds})
