"""How a single-modal ranker is judged: NDCG@10 within modality on held-out `test` queries,
next to the logged production order and item popularity, with paired-bootstrap intervals of the
differences (queries resampled). A difference counts as a win only when its interval is above 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smar.metrics import ndcg_at
from smar.metrics.bootstrap import BootstrapConfig, paired_delta


@dataclass(frozen=True)
class RankerEvaluation:
    """NDCG@10 within modality on held-out queries, for the ranker and the two baselines, with
    95% paired-bootstrap intervals (queries resampled) of ranker minus each baseline."""

    modality: str
    queries: int
    ranker_ndcg_at_10: float
    production_ndcg_at_10: float
    popularity_ndcg_at_10: float
    label_source: str
    versus_production_ci: tuple[float, float] = (math.nan, math.nan)
    versus_popularity_ci: tuple[float, float] = (math.nan, math.nan)

    def beats(self, baseline: str) -> bool:
        """True when the interval of ranker minus `baseline` ("production" or "popularity")
        lies above 0: a win the test queries can tell apart from noise."""
        intervals = {"production": self.versus_production_ci, "popularity": self.versus_popularity_ci}
        if baseline not in intervals:
            raise ValueError(f"baseline must be one of {sorted(intervals)}, got {baseline!r}")
        low = intervals[baseline][0]
        return not math.isnan(low) and low > 0.0


def _per_query_ndcg(frame: pd.DataFrame, score_column: str, grade_column: str) -> pd.Series:
    """NDCG@10 of each (query, modality) list of distinct (query, item) rows; lists without a
    relevant item (ideal DCG 0) are left out."""
    values = {}
    for key, group in frame.groupby(["query_id", "modality"], sort=True):
        value = ndcg_at(
            group[grade_column].to_numpy(),
            group[score_column].to_numpy(),
            k=10,
            doc_ids=group["item_id"].to_numpy(),
            empty=None,
        )
        if not math.isnan(value):
            values[key] = value
    return pd.Series(values, dtype=float)


def evaluate_against_baselines(frame: pd.DataFrame, modality: str, label_source: str, *, seed: int) -> RankerEvaluation:
    """NDCG@10 of the `ranker`, `production` and `popularity` columns of `frame` against its
    `grade` column, with paired-bootstrap intervals of ranker minus each baseline."""
    ranker = _per_query_ndcg(frame, "ranker", "grade")
    production = _per_query_ndcg(frame, "production", "grade")
    popularity = _per_query_ndcg(frame, "popularity", "grade")
    config = BootstrapConfig(seed=seed)
    versus_production = paired_delta(production.to_numpy(), ranker.to_numpy(), config=config)
    versus_popularity = paired_delta(popularity.to_numpy(), ranker.to_numpy(), config=config)
    return RankerEvaluation(
        modality=modality,
        queries=len(ranker),
        ranker_ndcg_at_10=float(ranker.mean()) if len(ranker) else math.nan,
        production_ndcg_at_10=float(production.mean()) if len(production) else math.nan,
        popularity_ndcg_at_10=float(popularity.mean()) if len(popularity) else math.nan,
        label_source=label_source,
        versus_production_ci=(versus_production.ci_low, versus_production.ci_high),
        versus_popularity_ci=(versus_popularity.ci_low, versus_popularity.ci_high),
    )


def first_request_per_query(rows: pd.DataFrame) -> pd.DataFrame:
    """One logged page per query (its first request): the list a ranker is evaluated on."""
    first = rows.groupby("query_id")["request_id"].transform("min")
    return rows[rows["request_id"] == first].reset_index(drop=True)


def grades_of(rows: pd.DataFrame, truth: pd.DataFrame | None) -> np.ndarray:
    """Hidden grades for demo data; clicks (0/1, max over requests) on real logs."""
    if truth is not None:
        merged = rows[["query_id", "item_id"]].merge(truth, on=["query_id", "item_id"], how="left")
        return merged["grade"].fillna(0).to_numpy(dtype=float)
    return rows["clicked"].fillna(0).to_numpy(dtype=float)
