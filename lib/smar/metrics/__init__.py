"""Ranking metrics with explicit conventions (gain, tie rule, empty-query value).

One NumPy reference implementation per metric family, checked against trec_eval's golden
outputs; `smar.metrics.spark_metrics` computes the same per query on Spark DataFrames (import it
directly: it pulls in pyspark). Conventions are documented in `smar.metrics.conventions`.
"""

from smar.metrics.average_precision import average_precision
from smar.metrics.conventions import (
    Gain,
    Ties,
    gain_values,
    mean_over_queries,
    position_discounts,
    ranking_order,
)
from smar.metrics.err import expected_reciprocal_rank
from smar.metrics.evaluation import DEFAULT_MEASURES, Evaluation, Measure, evaluate_run, parse_measures
from smar.metrics.ndcg import dcg_at, ideal_dcg_at, ndcg_at
from smar.metrics.precision_recall import precision_at, recall_at
from smar.metrics.reciprocal_rank import reciprocal_rank
from smar.metrics.whole_page import (
    PairCounts,
    cross_modal_pair_counts,
    cross_modal_pnr,
    modality_exposure_share,
    per_modality_ndcg,
)

__all__ = [
    "DEFAULT_MEASURES",
    "Evaluation",
    "Gain",
    "Measure",
    "PairCounts",
    "Ties",
    "average_precision",
    "cross_modal_pair_counts",
    "cross_modal_pnr",
    "dcg_at",
    "evaluate_run",
    "expected_reciprocal_rank",
    "gain_values",
    "ideal_dcg_at",
    "mean_over_queries",
    "modality_exposure_share",
    "ndcg_at",
    "parse_measures",
    "per_modality_ndcg",
    "position_discounts",
    "precision_at",
    "ranking_order",
    "recall_at",
    "reciprocal_rank",
]
