"""Features the single-modal jobs compute from the list an impression was shown in, or from
its query, next to the item's own features (`smar.single_modal.rankers.features`).

Training (pandas) and scoring (Spark columns, then pandas inside the UDF) both build them here,
so the two cannot drift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import Column, Window
from pyspark.sql import functions as F

from smar.single_modal.rankers.features import (
    ENGAGEMENT,
    build_feature_arrays,
    item_texts,
    query_term_coverage,
)


def item_text_column() -> Column:
    """Title and body joined by a newline, empty parts left out (as `rankers.features.item_texts`)."""
    parts = F.array(F.col("title"), F.col("body"))
    kept = F.filter(parts, lambda part: part.isNotNull() & (F.trim(part) != ""))
    return F.array_join(kept, "\n")


# -- the production score as a feature --------------------------------------------------------------
#
# The logged production score is each modality's incumbent ranker. Its raw scale differs per
# modality and per ranker release, so the rankers see its percentile inside (request, modality):
# (rank - 1) / (n - 1) with rank 1 = lowest score (Spark's percent_rank), 0.5 when the score is
# missing (e.g. Qilin logs carry none) or the list has one item. Stacking it with content and
# engagement features is what lets a click-trained ranker improve on the incumbent instead of
# relearning it.
PRODUCTION_PERCENTILE = "production_score_percentile"


def production_percentile(frame: pd.DataFrame) -> np.ndarray:
    """[N, 1] float32 percentile of `production_score` within (request_id, modality)."""
    scores = frame["production_score"].astype(float)
    groups = [frame["request_id"], frame["modality"]]
    rank = scores.groupby(groups).rank(method="min")
    size = scores.groupby(groups).transform("count")
    percentile = ((rank - 1) / (size - 1)).where(size > 1)
    return percentile.fillna(0.5).to_numpy(dtype=np.float32).reshape(-1, 1)


def production_percentile_column() -> Column:
    """The same percentile as a Spark window expression."""
    window = Window.partitionBy("request_id", "modality").orderBy(F.col("production_score").asc())
    known = F.col("production_score").isNotNull() & ~F.isnan(F.col("production_score"))
    size = F.count(F.when(known, F.lit(1))).over(Window.partitionBy("request_id", "modality"))
    # Nulls sort first in ascending order; rank among known scores only.
    rank_among_known = F.rank().over(window) - (
        F.count(F.lit(1)).over(Window.partitionBy("request_id", "modality")) - size
    )
    return F.when(known & (size > 1), (rank_among_known - 1) / (size - 1)).otherwise(F.lit(0.5))


#: What the jobs append to the rankers' `engagement` array, in this order. Both depend on the
#: (query, item) pair or the list, not on the item alone.
EXTRA_STATISTICS = ("production_score_percentile", "query_term_coverage")


def with_extra_statistics(
    features: dict[str, np.ndarray], percentile: np.ndarray, coverage: np.ndarray
) -> dict[str, np.ndarray]:
    """Append the production percentile and the query term coverage (each [N, 1]) as the last
    engagement columns (`EXTRA_STATISTICS`)."""
    extended = dict(features)
    extended[ENGAGEMENT] = np.concatenate([features[ENGAGEMENT], percentile, coverage], axis=1).astype(np.float32)
    return extended


def ranker_features(rows: pd.DataFrame, modality: str, *, encoder_batch_size: int) -> dict[str, np.ndarray]:
    """The full feature dict of one modality's impressions joined with their items (training
    and evaluation; scoring assembles the same arrays from Spark columns in `score_batch`)."""
    return with_extra_statistics(
        build_feature_arrays(rows, modality, batch_size=encoder_batch_size),
        production_percentile(rows),
        query_term_coverage(rows["query_text"].tolist(), item_texts(rows)),
    )
