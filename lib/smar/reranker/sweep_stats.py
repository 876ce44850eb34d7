"""Intervals of the budget sweep resampled over test queries AND seeds, paired across methods.

Input: per-query NDCG@10 of every run, arranged per (label source, method, budget) as a matrix
`[seeds, queries]` (the same seed order and the same test queries for every method; NaN where a
query has no relevant item, left out of every mean). A method that does not depend on the seed
(fusions, the merge ceiling) is one row broadcast over the seeds.

One bootstrap replicate draws S seeds with replacement (indices s_1..s_S) and Q test queries
with replacement (weights w_q = how often q was drawn), the same draw for every method, and
computes for each method

    value = (1 / S) * sum_{r=1..S} [ sum_q w_q * M[s_r, q] / sum_q w_q ]        (NaN-aware)

A difference A - B (or a ratio A / B) is computed per replicate from the two values of that
replicate, so the interval is paired: the query-sampling error and the seed noise that both
methods share cancel. Intervals are the 2.5% and 97.5% percentiles of B replicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Key = tuple[str, float]  # (method, budget)


@dataclass(frozen=True)
class BootstrapDraws:
    """The shared resampling: seed counts `[B, S]` and query weights `[B, Q]`."""

    seed_counts: NDArray[np.float64]
    query_weights: NDArray[np.float64]

    @classmethod
    def draw(cls, n_seeds: int, n_queries: int, *, replicates: int = 2000, seed: int = 0) -> BootstrapDraws:
        rng = np.random.default_rng(seed)
        seeds = rng.integers(0, n_seeds, size=(replicates, n_seeds))
        queries = rng.integers(0, n_queries, size=(replicates, n_queries))
        seed_counts = np.stack([np.bincount(row, minlength=n_seeds) for row in seeds]).astype(np.float64)
        query_weights = np.stack([np.bincount(row, minlength=n_queries) for row in queries]).astype(np.float64)
        return cls(seed_counts, query_weights)


def replicate_values(matrix: NDArray[np.floating], draws: BootstrapDraws) -> NDArray[np.float64]:
    """[B] the resampled mean of one method's `[seeds, queries]` (or `[1, queries]`) matrix."""
    values = np.asarray(matrix, dtype=np.float64)
    n_seeds = draws.seed_counts.shape[1]
    if values.shape[0] == 1:
        values = np.repeat(values, n_seeds, axis=0)
    if values.shape[0] != n_seeds:
        raise ValueError(f"matrix has {values.shape[0]} seed rows, the draws {n_seeds}")
    valid = ~np.isnan(values)
    filled = np.where(valid, values, 0.0)
    sums = filled @ draws.query_weights.T  # [S, B]
    counts = valid.astype(np.float64) @ draws.query_weights.T
    per_seed = sums / np.maximum(counts, 1e-12)
    return (draws.seed_counts.T * per_seed).sum(0) / n_seeds


def point_value(matrix: NDArray[np.floating]) -> float:
    """The unresampled value: mean over seeds of the mean over queries (NaN left out)."""
    return float(np.mean(np.nanmean(np.asarray(matrix, dtype=np.float64), axis=1)))


def interval(values: NDArray[np.float64], confidence: float = 0.95) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))


def summarise(matrices: Mapping[Key, NDArray[np.floating]], draws: BootstrapDraws) -> dict[Key, dict[str, float]]:
    """Per (method, budget): the point value and the 95% bootstrap interval."""
    out = {}
    for key, matrix in matrices.items():
        low, high = interval(replicate_values(matrix, draws))
        out[key] = {"ndcg_at_10": point_value(matrix), "ci_low": low, "ci_high": high}
    return out


def compare(a: NDArray[np.floating], b: NDArray[np.floating], draws: BootstrapDraws) -> dict[str, float]:
    """A - B and A / B with paired 95% intervals, and the share of replicates with A > B."""
    values_a, values_b = replicate_values(a, draws), replicate_values(b, draws)
    difference, ratio = values_a - values_b, values_a / values_b
    point_a, point_b = point_value(a), point_value(b)
    d_low, d_high = interval(difference)
    r_low, r_high = interval(ratio)
    return {
        "difference": point_a - point_b,
        "difference_ci_low": d_low,
        "difference_ci_high": d_high,
        "ratio": point_a / point_b,
        "ratio_ci_low": r_low,
        "ratio_ci_high": r_high,
        "share_a_better": float(np.mean(difference > 0)),
    }
