"""Off-policy estimation on logged pages: IPS, SNIPS and a position-based click model.

Logged clicks depend on where production put each item. To judge a new ordering offline we
reweight them (IPS / SNIPS), with position propensities estimated by a position-based click
model (PBM) fitted by EM, as in Chuklin, Markov and de Rijke, "Click Models for Web Search"
(2015), chapter 4: P(click) = P(examined at rank r) * P(attractive | query, item) = gamma_r * alpha_qi.

The replay itself no longer uses the EM: fitted on logs whose production order never moves an
item, the curve is not identified (docs/replay.md). It estimates the curve from randomised traffic
instead (`smar.propensities`). `ips` and `snips` stay for sources with logged propensities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray


def _finite_vector(values: ArrayLike, name: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {array.shape}")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        first = int(np.argmax(~np.isfinite(array)))
        raise ValueError(f"{name} has {bad} non-finite values (NaN or inf), first at index {first}")
    return array


def importance_weights(logging_propensities: ArrayLike, target_propensities: ArrayLike) -> NDArray[np.float64]:
    """w = p_target / p_logging per logged row ([n_rows]); validates both (finite, p_logging > 0, p_target >= 0)."""
    logging = _finite_vector(logging_propensities, "logging_propensities")
    target = _finite_vector(target_propensities, "target_propensities")
    if logging.shape != target.shape:
        raise ValueError(
            f"logging_propensities and target_propensities differ in shape: {logging.shape} vs {target.shape}"
        )
    if logging.size == 0:
        raise ValueError("no logged rows: the propensities are empty")
    if (logging <= 0).any():
        index = int(np.argmax(logging <= 0))
        raise ValueError(
            f"logging propensities must be > 0 (a row the logging policy could not show cannot be "
            f"reweighted); {int((logging <= 0).sum())} are not, first at index {index}: {logging[index]}"
        )
    if (target < 0).any():
        index = int(np.argmax(target < 0))
        raise ValueError(f"target propensities must be >= 0; first negative at index {index}: {target[index]}")
    return target / logging


def _rewards_and_weights(
    rewards: ArrayLike, logging_propensities: ArrayLike, target_propensities: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    weights = importance_weights(logging_propensities, target_propensities)
    reward_array = _finite_vector(rewards, "rewards")
    if reward_array.shape != weights.shape:
        raise ValueError(f"rewards has shape {reward_array.shape}, propensities have {weights.shape}")
    return reward_array, weights


def ips(rewards: ArrayLike, logging_propensities: ArrayLike, target_propensities: ArrayLike) -> float:
    """Inverse propensity scoring: IPS = mean(r * p_target / p_logging) over logged rows.

    Unbiased for the target policy's mean reward per row when p_logging > 0 wherever
    p_target > 0; high variance when weights are large.
    """
    reward_array, weights = _rewards_and_weights(rewards, logging_propensities, target_propensities)
    return float(np.mean(reward_array * weights))


def snips(rewards: ArrayLike, logging_propensities: ArrayLike, target_propensities: ArrayLike) -> float:
    """Self-normalised IPS: SNIPS = sum(r * w) / sum(w), w = p_target / p_logging.

    Slightly biased, much lower variance than IPS; ValueError when every weight is 0.
    """
    reward_array, weights = _rewards_and_weights(rewards, logging_propensities, target_propensities)
    total_weight = weights.sum()
    if total_weight <= 0:
        raise ValueError("all importance weights are 0: the target policy puts no mass on the logged rows")
    return float(np.dot(reward_array, weights) / total_weight)


@dataclass(frozen=True)
class PositionBasedModel:
    """A fitted PBM: examination[r - 1] = P(rank r is examined); attractiveness per (query, item)."""

    examination: NDArray[np.float64]  # [max_position]; NaN for ranks never observed
    attractiveness: pd.DataFrame  # query_id, item_id, attractiveness, impressions
    iterations: int
    converged: bool
    log_likelihood: float


def fit_position_based_model(
    query_ids: Sequence[object] | ArrayLike,
    item_ids: Sequence[object] | ArrayLike,
    positions: ArrayLike,
    clicks: ArrayLike,
    *,
    max_iterations: int = 2000,
    tolerance: float = 1e-6,
    normalize_top: bool = True,
) -> PositionBasedModel:
    """Fit P(click) = gamma_r * alpha_qi by EM on impressions ([n_rows]: one row per shown item).

    EM updates (Chuklin et al. 2015, section 4.2), for rows s with click c at rank r:
      alpha_qi <- mean over rows of (q, i) of  c + (1 - c) * (1 - gamma_r) alpha_qi / (1 - gamma_r alpha_qi)
      gamma_r  <- mean over rows at rank r of  c + (1 - c) * (1 - alpha_qi) gamma_r / (1 - gamma_r alpha_qi)
    starting from 0.5, until no parameter moves more than `tolerance` (measured on gamma_r /
    gamma_top and alpha * gamma_top, top = the first observed rank). Positions are 1-based.
    The likelihood depends only on the products gamma * alpha, so the scale is not identified:
    with `normalize_top` the result is rescaled so that gamma_1 = 1 (rank 1 always examined),
    alpha shrinking by the same factor. Propensity ratios, which IPS uses, do not depend on it.
    """
    rank = np.asarray(positions)
    if rank.ndim != 1 or rank.size == 0:
        raise ValueError("positions must be a non-empty 1-dimensional array")
    if not np.issubdtype(rank.dtype, np.integer):
        if not np.all(np.isfinite(rank.astype(np.float64))) or not np.all(rank == np.round(rank)):
            raise ValueError("positions must be whole numbers (1 = top of the page)")
        rank = rank.astype(np.int64)
    if rank.min() < 1:
        raise ValueError(f"positions are 1-based; found {int(rank.min())}")
    click = np.asarray(clicks, dtype=np.float64)
    if click.shape != rank.shape or not np.isin(click, (0.0, 1.0)).all():
        raise ValueError("clicks must be 0/1 values, one per position")
    queries = np.asarray(query_ids, dtype=object)
    items = np.asarray(item_ids, dtype=object)
    if queries.shape != rank.shape or items.shape != rank.shape:
        raise ValueError(
            f"query_ids, item_ids, positions and clicks must have one value per row; shapes "
            f"{queries.shape}, {items.shape}, {rank.shape}, {click.shape}"
        )
    if max_iterations < 1 or tolerance <= 0:
        raise ValueError("max_iterations must be >= 1 and tolerance > 0")

    pair_index, pairs = pd.MultiIndex.from_arrays([queries, items]).factorize()
    rank_index = rank - 1
    n_ranks = int(rank.max())
    impressions_per_pair = np.bincount(pair_index).astype(np.float64)
    impressions_per_rank = np.bincount(rank_index, minlength=n_ranks).astype(np.float64)
    observed_rank = impressions_per_rank > 0
    reference_rank = int(np.argmax(observed_rank))

    attractiveness = np.full(len(pairs), 0.5)
    examination = np.full(n_ranks, 0.5)
    converged = False
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (the count is reported after the loop)
        alpha = attractiveness[pair_index]
        gamma = examination[rank_index]
        not_clicked = 1.0 - click
        # P(no click) = 1 - gamma * alpha > 0 whenever both are < 1; guard exact ones.
        no_click_probability = np.maximum(1.0 - gamma * alpha, 1e-12)
        attractive_posterior = click + not_clicked * (1.0 - gamma) * alpha / no_click_probability
        examined_posterior = click + not_clicked * (1.0 - alpha) * gamma / no_click_probability
        new_attractiveness = np.bincount(pair_index, weights=attractive_posterior) / impressions_per_pair
        new_examination = examination.copy()
        new_examination[observed_rank] = (
            np.bincount(rank_index, weights=examined_posterior, minlength=n_ranks)[observed_rank]
            / impressions_per_rank[observed_rank]
        )
        # Measure convergence on scale-free parameters: EM also drifts slowly along the
        # unidentified scale (gamma * c, alpha / c), which changes no click probability.
        reference, new_reference = examination[reference_rank], new_examination[reference_rank]
        change = max(
            np.abs(new_attractiveness * new_reference - attractiveness * reference).max(),
            np.abs(new_examination / new_reference - examination / reference).max(),
        )
        attractiveness, examination = new_attractiveness, new_examination
        if change < tolerance:
            converged = True
            break

    click_probability = np.clip(examination[rank_index] * attractiveness[pair_index], 1e-12, 1 - 1e-12)
    log_likelihood = float(np.sum(click * np.log(click_probability) + (1 - click) * np.log(1 - click_probability)))
    examination = np.where(observed_rank, examination, np.nan)
    if normalize_top:
        if not observed_rank[0] or examination[0] <= 0:
            raise ValueError("normalize_top needs impressions at position 1 with a positive examination")
        scale = examination[0]
        examination = examination / scale
        attractiveness = attractiveness * scale
    attractiveness_frame = pd.DataFrame(
        {
            "query_id": pairs.get_level_values(0),
            "item_id": pairs.get_level_values(1),
            "attractiveness": attractiveness,
            "impressions": impressions_per_pair.astype(np.int64),
        }
    )
    return PositionBasedModel(examination, attractiveness_frame, iterations, converged, log_likelihood)


def clicks_at_k_propensities(
    examination: ArrayLike,
    logged_positions: ArrayLike,
    target_positions: ArrayLike,
    *,
    k: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(logging, target) propensities per logged row for estimating clicks@k under a new ordering.

    Under the PBM an item shown at logged rank p is clicked with probability gamma_p * alpha, and
    contributes gamma_t * alpha to clicks@k when the target ordering puts it at rank t <= k. So
    logging = gamma_p and target = gamma_t * [t <= k]; pass them with the logged clicks to `ips`
    or `snips`. `ips` then estimates the mean per logged row: multiply by rows per page for
    clicks@k per page. `examination[r - 1]` is gamma_r (as `fit_position_based_model` returns).
    """
    gamma = _finite_or_nan_vector(examination)
    logged = np.asarray(logged_positions)
    target = np.asarray(target_positions)
    if logged.shape != target.shape or logged.ndim != 1:
        raise ValueError(
            f"logged_positions and target_positions must be 1-d of one shape: {logged.shape} vs {target.shape}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    for name, ranks in (("logged_positions", logged), ("target_positions", target)):
        if ranks.size and (ranks.min() < 1 or not np.all(ranks == np.round(ranks))):
            raise ValueError(f"{name} must be whole numbers >= 1")
    logged_index = logged.astype(np.int64) - 1
    target_index = target.astype(np.int64) - 1
    if logged.size and logged_index.max() >= len(gamma):
        raise ValueError(f"a logged position exceeds the {len(gamma)} positions of the examination model")
    in_top_k = target_index < k
    if in_top_k.any() and target_index[in_top_k].max() >= len(gamma):
        raise ValueError(f"k={k} reaches beyond the {len(gamma)} positions of the examination model")
    logging = gamma[logged_index]
    target_propensity = np.zeros(len(target_index))
    target_propensity[in_top_k] = gamma[target_index[in_top_k]]
    if np.isnan(logging).any() or np.isnan(target_propensity).any():
        raise ValueError("a needed position has no examination estimate (never observed in the log)")
    return logging, target_propensity


def _finite_or_nan_vector(values: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError("examination must be a non-empty 1-d array, index r - 1 for rank r")
    if np.isinf(array).any() or (array[~np.isnan(array)] < 0).any():
        raise ValueError("examination probabilities must be >= 0 and finite (NaN = unobserved rank)")
    return array
