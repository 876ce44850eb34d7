"""Paired bootstrap confidence intervals for per-query deltas between two rankings.

Both rankings are scored on the same held-out queries, so the comparison is paired: a resample
draws queries with replacement and keeps each query's control and candidate values together
(`scipy.stats.bootstrap(..., paired=True)`). The query, not the page or the impression, is the
resampling unit, because pages of one query are strongly correlated (same candidates, often the
same order).

Every statistic is a ratio of sums over queries, value = sum(numerator) / sum(denominator):

* for per-query means (NDCG, exposure share, click estimates) the denominator is 1 per query,
  so the value is the mean over queries and the delta the mean per-query difference;
* for pooled ratios (cross-modal PNR) numerator and denominator are per-query pair counts, so
  the value is the pooled ratio and queries weigh by their number of pairs.

Interval methods (`BootstrapConfig.method`):

* "percentile" (the default): the alpha/2 and 1 - alpha/2 quantiles of the resampled deltas.
  Robust with few queries and with many exactly-zero deltas (e.g. NDCG@1 when both rankings
  agree on most tops), where BCa's acceleration estimate is unstable.
* "BCa": bias-corrected and accelerated (Efron 1987), better coverage for skewed statistics with
  enough queries; scipy computes its acceleration by the jackknife.
* "basic": the reverse-percentile interval.

A seed fixes the resampling, so a rerun gives the same interval. When every query has the same
values under both rankings (an A/A replay) the delta is exactly 0 in every resample, and the
interval is [0, 0] without calling scipy (BCa is undefined on a degenerate distribution).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import Field
from scipy import stats

from smar.config import FrozenConfig

log = logging.getLogger(__name__)

BootstrapMethod = Literal["percentile", "BCa", "basic"]


class BootstrapConfig(FrozenConfig):
    """How intervals are computed; the defaults are what `replay_evaluate` uses."""

    n_resamples: int = Field(default=2000, ge=100, description="bootstrap resamples of the queries")
    confidence_level: float = Field(default=0.95, gt=0.0, lt=1.0, description="two-sided coverage")
    method: BootstrapMethod = Field(default="percentile", description="percentile, BCa or basic")
    seed: int = Field(default=20251016, description="seed of the resampling (numpy default_rng)")


@dataclass(frozen=True)
class PairedDelta:
    """One metric compared on paired queries: both values, the delta and its interval."""

    control_value: float
    candidate_value: float
    delta: float
    ci_low: float
    ci_high: float
    n_queries: int

    def contains_zero(self) -> bool:
        """True when the interval includes 0 (or is undefined: NaN counts as containing it)."""
        if math.isnan(self.ci_low) or math.isnan(self.ci_high):
            return True
        return self.ci_low <= 0.0 <= self.ci_high


def _vector(values: ArrayLike | None, length: int, name: str) -> NDArray[np.float64]:
    if values is None:
        return np.ones(length, dtype=np.float64)
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (length,):
        raise ValueError(f"{name} must hold one value per query ({length}), got shape {array.shape}")
    return array


def _ratio(numerator: NDArray[np.float64], denominator: NDArray[np.float64], axis: int = -1) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio: NDArray[np.float64] = np.sum(numerator, axis=axis) / np.sum(denominator, axis=axis)
    return ratio


def paired_delta(
    control: ArrayLike,
    candidate: ArrayLike,
    *,
    control_denominator: ArrayLike | None = None,
    candidate_denominator: ArrayLike | None = None,
    config: BootstrapConfig | None = None,
) -> PairedDelta:
    """Delta = value(candidate) - value(control), value = sum(numerator) / sum(denominator) over queries.

    `control` and `candidate` are per-query numerators ([n_queries], same query order); the
    denominators default to 1 per query (plain means). Queries are resampled with replacement,
    pairs kept together; the interval is `config.method` at `config.confidence_level`. With
    fewer than 2 queries the interval is NaN. Values must be finite (drop undefined queries first).
    """
    config = config or BootstrapConfig()
    control_numerator = np.asarray(control, dtype=np.float64)
    if control_numerator.ndim != 1:
        raise ValueError(f"control must be 1-dimensional ([n_queries]), got shape {control_numerator.shape}")
    n_queries = len(control_numerator)
    candidate_numerator = _vector(candidate, n_queries, "candidate")
    control_weight = _vector(control_denominator, n_queries, "control_denominator")
    candidate_weight = _vector(candidate_denominator, n_queries, "candidate_denominator")
    arrays = (control_numerator, control_weight, candidate_numerator, candidate_weight)
    if not all(np.isfinite(array).all() for array in arrays):
        raise ValueError("paired_delta needs finite per-query values; drop queries where the metric is undefined")
    if n_queries == 0:
        nan = float("nan")
        return PairedDelta(nan, nan, nan, nan, nan, 0)

    control_value = float(_ratio(control_numerator, control_weight))
    candidate_value = float(_ratio(candidate_numerator, candidate_weight))
    delta = candidate_value - control_value
    if np.array_equal(control_numerator, candidate_numerator) and np.array_equal(control_weight, candidate_weight):
        # A/A: every resample gives exactly 0 (even where the value is inf, e.g. a PNR without
        # mis-ordered pairs); BCa would be undefined on this point mass.
        return PairedDelta(control_value, candidate_value, 0.0, 0.0, 0.0, n_queries)
    if n_queries < 2:
        return PairedDelta(control_value, candidate_value, delta, float("nan"), float("nan"), n_queries)

    def statistic(
        control_num: NDArray[np.float64],
        control_den: NDArray[np.float64],
        candidate_num: NDArray[np.float64],
        candidate_den: NDArray[np.float64],
        axis: int = -1,
    ) -> NDArray[np.float64]:
        return _ratio(candidate_num, candidate_den, axis) - _ratio(control_num, control_den, axis)

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # scipy warns (and returns NaN) when the resampled deltas are degenerate; we report NaN.
        # A pooled ratio with a zero denominator (PNR without mis-ordered pairs) is inf, not an error.
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        result = stats.bootstrap(
            arrays,
            statistic,
            paired=True,
            vectorized=True,
            n_resamples=config.n_resamples,
            confidence_level=config.confidence_level,
            method=config.method,
            rng=np.random.default_rng(config.seed),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):
        log.warning("bootstrap %s interval undefined for %d queries (degenerate resamples)", config.method, n_queries)
    return PairedDelta(control_value, candidate_value, delta, low, high, n_queries)
