"""Counterfactual clicks@k of a new ordering of logged pages, under a position-based click model.

Notation, per logged impression j (one item shown on one logged page n of query q):
c_j the logged click, p_j the logged position, t_j the rank the evaluated arm gives the item on
that page, gamma_r the examination probability of rank r (gamma_1 = 1; from randomised traffic,
`smar.propensities`), alpha_j the item's attractiveness for that request. The PBM says
E[c_j] = gamma_{p_j} alpha_j, and the arm's expected clicks@k on page n is

    V_n = sum_{j in n} [t_j <= k] gamma_{t_j} alpha_j.

Every estimator returns per-row terms whose sum over a page estimates V_n; `per_query_means`
turns them into one value per query (mean over the query's pages), the bootstrap unit. Each
accepts `examination` as one curve [R] or as bootstrap curves [B, R] (then the terms are [B, rows]),
so the propensity curve's own uncertainty can enter the interval (`paired_bootstrap_with_curves`).

* `pbm_ips_terms`, item-level PBM IPS (Wang et al. 2016; Joachims et al. 2017):
      term_j = c_j * [t_j <= k] * gamma_{t_j} / gamma_{p_j}.
  Unbiased for V_n given the true gamma (E[c_j] gamma_t / gamma_p = gamma_t alpha_j).
  Optional clipping of the weight at `max_weight` trades bias for variance (off by default: with
  gamma_r = r^-0.8 on a 32-item page the largest weight is 32^0.8 = 16).
* `pbm_ratio_terms`, self-normalised PBM IPS, normalised by the expected weight (per query and
  item): alpha_hat_qi = sum_j c_j / sum_j gamma_{p_j} over the rows j of (q, i) in the scope
  (clicks over expected examinations), term_j = [t_j <= k] gamma_{t_j} alpha_hat_qi. It is the
  SNIPS form sum_j c_j w_j u_j / sum_j u_j with w_j = gamma_t / gamma_{p_j} and normalising weights
  u_j = gamma_{p_j}, whose normaliser is the item's expected examinations, known exactly given the
  positions; so E[alpha_hat_qi] = alpha_qi exactly (not only asymptotically), and impressions
  shown high, which carry more information, weigh more than in IPS's mean of c_j / gamma_{p_j}.
  Assumes alpha does not covary with the logged position across the item's impressions (true
  when the logged order is not personalised; exploration is independent of the user).
  Why not the old SNIPS: sum_j c_j w_j / sum_j w_j normalises by the weights gamma_t / gamma_p,
  which do not average to 1 (their expectation is not 1 under a deterministic logging order), so
  it estimates V_n times (rows / sum w), not V_n.
* `item_position_snips`, for logged stochastic propensities pi_b(item at p) (Li et al. 2018 item-
  position model; Open Bandit Pipeline's SelfNormalizedSlateIndependentIPS, normalised per
  position): V = sum_{p <= k} sum_n c_{n,p} w_{n,p} / sum_n w_{n,p}, w = [t = p] / pi_b. Here the
  weights do average to 1 per position under the logging policy, so the normaliser is a real
  control variate (and `gates.self_normalisation_gate` checks it).
* `independent_item_dr_terms`, the slate estimator: doubly robust under the independent-item
  (item-position) reward model of slate OPE (Li et al. 2018's IIPS with a direct method, the
  item-position form of Kiyohara et al. 2022's Cascade-DR), over the real, stochastic logging
  policy: production order with probability 1 - eps, a uniformly random order with probability
  eps. Per row,
      term_j = [t_j <= k] gamma_{t_j} ahat_j                                  (direct method)
             + [p_j <= k] [t_j = p_j] (c_j - gamma_{p_j} ahat_j) / pi_b(j at p_j)   (correction)
  with pi_b(i at p) = (1 - eps) [p = production position of (q, i)] + eps / n
  (`mixture_logging_propensity`) and ahat from an attractiveness model fitted outside the replay
  scope (`smar.replay.click_model`, other queries' impressions). Unbiased whenever pi_b is right
  and clicks at a slot depend only on the item there, whatever ahat; it does not need the PBM
  to hold for the correction, only for the direct method's shape. Its variance comes from the
  rare randomised rows where the arm happens to put the logged item at its logged slot
  (weight n / eps = 640 on a 32-item page at eps = 5%).
  Why not the item-level PBM doubly robust estimator: with a deterministic logged order its
  per-row form [t<=k] (gamma_t ahat + (gamma_t / gamma_p)(c - gamma_p ahat)) equals the IPS term
  c [t<=k] gamma_t / gamma_p identically, for any ahat (the direct term cancels against the
  weighted prediction), so it is IPS under another name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import sparse

from smar.metrics.bootstrap import PairedDelta


def _curves(examination: ArrayLike) -> NDArray[np.float64]:
    curves = np.asarray(examination, dtype=np.float64)
    if curves.ndim == 1:
        curves = curves[None, :]
    if curves.ndim != 2 or curves.shape[1] == 0:
        raise ValueError("examination must be [R] or [B, R], index r - 1 for rank r")
    if not np.isfinite(curves).all() or (curves <= 0).any():
        raise ValueError("examination probabilities must be finite and > 0 at every position used")
    return curves


def _ranks(values: ArrayLike, n_positions: int, name: str) -> NDArray[np.int64]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional")
    if array.size and (array.min() < 1 or not np.all(array == np.round(array))):
        raise ValueError(f"{name} must be whole numbers >= 1")
    ranks = array.astype(np.int64)
    if ranks.size and ranks.max() > n_positions:
        raise ValueError(f"{name} reach rank {int(ranks.max())}; the examination curve has {n_positions} positions")
    return ranks


def _squeeze(values: NDArray[np.float64], examination: ArrayLike) -> NDArray[np.float64]:
    return values[0] if np.asarray(examination).ndim == 1 else values


def pbm_ips_terms(
    clicked: ArrayLike,
    logged_position: ArrayLike,
    target_rank: ArrayLike,
    examination: ArrayLike,
    *,
    k: int,
    max_weight: float | None = None,
) -> NDArray[np.float64]:
    """term_j = c_j [t_j <= k] min(gamma_{t_j} / gamma_{p_j}, max_weight): item-level PBM IPS."""
    curves = _curves(examination)
    click = np.asarray(clicked, dtype=np.float64)
    logged = _ranks(logged_position, curves.shape[1], "logged_position")
    target = _ranks(target_rank, curves.shape[1], "target_rank")
    if not (click.shape == logged.shape == target.shape):
        raise ValueError("clicked, logged_position and target_rank need one value per impression")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    weight = curves[:, target - 1] / curves[:, logged - 1]
    if max_weight is not None:
        weight = np.minimum(weight, max_weight)
    return _squeeze(click * (target <= k) * weight, examination)


def pbm_ratio_terms(
    query_ids: ArrayLike,
    item_ids: ArrayLike,
    clicked: ArrayLike,
    logged_position: ArrayLike,
    target_rank: ArrayLike,
    examination: ArrayLike,
    *,
    k: int,
    pairs: tuple[NDArray[np.int64], int] | None = None,
) -> NDArray[np.float64]:
    """term_j = [t_j <= k] gamma_{t_j} alpha_hat_qi, alpha_hat_qi = sum c / sum gamma_p over (q, i)'s rows.

    `pairs`: `pair_codes(query_ids, item_ids)` computed once, for callers that evaluate many curves.
    """
    curves = _curves(examination)
    click = np.asarray(clicked, dtype=np.float64)
    logged = _ranks(logged_position, curves.shape[1], "logged_position")
    target = _ranks(target_rank, curves.shape[1], "target_rank")
    pair, n_pairs = pairs if pairs is not None else pair_codes(query_ids, item_ids)
    if not (click.shape == logged.shape == target.shape == pair.shape):
        raise ValueError("query_ids, item_ids, clicked, logged_position and target_rank need one value per impression")
    membership = sparse.csr_matrix((np.ones(len(pair)), (np.arange(len(pair)), pair)), shape=(len(pair), n_pairs))
    clicks_per_pair = membership.T @ click  # [pairs]
    expected_examinations = (membership.T @ curves[:, logged - 1].T).T  # [B, pairs]
    alpha = clicks_per_pair[None, :] / expected_examinations
    return _squeeze((target <= k) * curves[:, target - 1] * alpha[:, pair], examination)


def mixture_logging_propensity(
    production_position: ArrayLike, logged_position: ArrayLike, *, exploration_rate: float, page_length: ArrayLike
) -> NDArray[np.float64]:
    """pi_b(item at its logged position) = (1 - eps) [p = production position] + eps / n, per row.

    `production_position`: where the production order puts the (query, item) (NaN when the window
    has no production page of the query: then only the eps / n term is kept, exact unless the
    random order put the item at its production slot). `page_length`: n, the page's items.
    """
    production = np.asarray(production_position, dtype=np.float64)
    logged = np.asarray(logged_position, dtype=np.float64)
    length = np.asarray(page_length, dtype=np.float64)
    if not 0 < exploration_rate < 1:
        raise ValueError(f"exploration_rate must be in (0, 1), got {exploration_rate}")
    if production.shape != logged.shape or np.broadcast(logged, length).shape != logged.shape:
        raise ValueError("production_position, logged_position and page_length need one value per row")
    same = np.where(np.isnan(production), False, production == logged)
    return (1.0 - exploration_rate) * same + exploration_rate / length


def independent_item_dr_terms(
    clicked: ArrayLike,
    logged_position: ArrayLike,
    target_rank: ArrayLike,
    examination: ArrayLike,
    predicted_attractiveness: ArrayLike,
    logging_propensity: ArrayLike,
    *,
    k: int,
) -> NDArray[np.float64]:
    """term_j = [t_j<=k] gamma_{t_j} ahat_j + [p_j<=k][t_j=p_j] (c_j - gamma_{p_j} ahat_j) / pi_b,j."""
    curves = _curves(examination)
    click = np.asarray(clicked, dtype=np.float64)
    logged = _ranks(logged_position, curves.shape[1], "logged_position")
    target = _ranks(target_rank, curves.shape[1], "target_rank")
    ahat = np.asarray(predicted_attractiveness, dtype=np.float64)
    propensity = np.asarray(logging_propensity, dtype=np.float64)
    if not (click.shape == logged.shape == target.shape == ahat.shape == propensity.shape):
        raise ValueError("clicked, positions, ranks, predicted_attractiveness and logging_propensity must align")
    if not np.isfinite(ahat).all() or (ahat < 0).any() or (ahat > 1).any():
        raise ValueError("predicted_attractiveness must be probabilities in [0, 1]")
    if not np.isfinite(propensity).all() or (propensity <= 0).any():
        raise ValueError("logging propensities must be finite and > 0")
    direct = (target <= k) * curves[:, target - 1] * ahat
    match = (logged <= k) & (target == logged)
    correction = match * (click - curves[:, logged - 1] * ahat) / propensity
    return _squeeze(direct + correction, examination)


def direct_method_terms(
    target_rank: ArrayLike, examination: ArrayLike, predicted_attractiveness: ArrayLike, *, k: int
) -> NDArray[np.float64]:
    """term_j = [t_j <= k] gamma_{t_j} ahat_j: the click model's own prediction (biased when ahat is)."""
    curves = _curves(examination)
    target = _ranks(target_rank, curves.shape[1], "target_rank")
    ahat = np.asarray(predicted_attractiveness, dtype=np.float64)
    if ahat.shape != target.shape:
        raise ValueError("target_rank and predicted_attractiveness must align")
    return _squeeze((target <= k) * curves[:, target - 1] * ahat, examination)


def item_position_snips(
    clicked: ArrayLike,
    logged_position: ArrayLike,
    target_rank: ArrayLike,
    logging_propensity: ArrayLike,
    *,
    k: int,
) -> tuple[float, NDArray[np.float64]]:
    """Per-position self-normalised IPS with logged propensities: (clicks@k per page, normaliser per position).

    One row per logged impression (page n, position p). w = [t = p] / pi_b(item at p);
    V = sum_{p <= k} (sum_n c w) / (sum_n w); normaliser_p = mean_n w at position p (expected 1
    under the logging policy). A position whose weights are all 0 contributes nothing and has
    normaliser 0 (the gate fails it).
    """
    click = np.asarray(clicked, dtype=np.float64)
    logged = np.asarray(logged_position, dtype=np.int64)
    target = np.asarray(target_rank, dtype=np.int64)
    propensity = np.asarray(logging_propensity, dtype=np.float64)
    if not (click.shape == logged.shape == target.shape == propensity.shape):
        raise ValueError("clicked, logged_position, target_rank and logging_propensity need one value per impression")
    if (propensity <= 0).any() or not np.isfinite(propensity).all():
        raise ValueError("logging propensities must be finite and > 0")
    weight = (target == logged) / propensity
    value, normalisers = 0.0, np.zeros(k)
    for position in range(1, k + 1):
        rows = logged == position
        if not rows.any():
            continue
        total = weight[rows].sum()
        normalisers[position - 1] = weight[rows].mean()
        if total > 0:
            value += float(np.dot(click[rows], weight[rows]) / total)
    return value, normalisers


def legacy_snips_normaliser(logged_position: ArrayLike, target_rank: ArrayLike, examination: ArrayLike) -> float:
    """mean_j gamma_{t_j} / gamma_{p_j}: the denominator the old replay SNIPS divided by, assuming it is 1."""
    curves = _curves(examination)
    logged = _ranks(logged_position, curves.shape[1], "logged_position")
    target = _ranks(target_rank, curves.shape[1], "target_rank")
    return float(np.mean(curves[0, target - 1] / curves[0, logged - 1]))


def pair_codes(query_ids: ArrayLike, item_ids: ArrayLike) -> tuple[NDArray[np.int64], int]:
    """(code of each row's (query, item) pair, number of pairs)."""
    index = pd.MultiIndex.from_arrays([np.asarray(query_ids, dtype=object), np.asarray(item_ids, dtype=object)])
    codes, uniques = index.factorize()
    return codes.astype(np.int64), len(uniques)


@dataclass(frozen=True)
class QueryAggregation:
    """How rows map to queries: `matrix` [rows, queries] with 1 / pages(q) entries; `query_ids` sorted."""

    matrix: sparse.csr_matrix
    query_ids: NDArray[np.object_]


def query_aggregation(query_ids: ArrayLike, pages: ArrayLike) -> QueryAggregation:
    """The linear map from per-row terms to per-query means over pages: value_q = sum_{j in q} term_j / pages(q)."""
    queries = pd.Series(np.asarray(query_ids, dtype=object))
    page_keys = pd.Series(np.asarray(pages, dtype=object))
    codes, uniques = pd.factorize(queries, sort=True)
    pages_per_query = page_keys.groupby(codes).nunique().to_numpy(dtype=np.float64)
    matrix = sparse.csr_matrix(
        (1.0 / pages_per_query[codes], (np.arange(len(codes)), codes)), shape=(len(codes), len(uniques))
    )
    return QueryAggregation(matrix, np.asarray(uniques, dtype=object))


def per_query_means(terms: NDArray[np.float64], aggregation: QueryAggregation) -> NDArray[np.float64]:
    """Per-query mean over pages of the page sums of `terms` ([rows] -> [Q], or [B, rows] -> [B, Q])."""
    return np.asarray((aggregation.matrix.T @ np.asarray(terms).T).T)


def paired_bootstrap_with_curves(
    control: NDArray[np.float64],
    candidate: NDArray[np.float64],
    control_replicates: NDArray[np.float64] | None = None,
    candidate_replicates: NDArray[np.float64] | None = None,
    *,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 20251016,
) -> PairedDelta:
    """Delta = mean_q(candidate) - mean_q(control), percentile interval over a two-stage bootstrap.

    `control`, `candidate`: per-query values [Q] under the point curve. `*_replicates` [B, Q]: the
    same under B bootstrap curves of the examination model; resample b draws Q queries with
    replacement and evaluates them under curve b mod B, so the interval carries both the
    query sampling and the propensity estimate's uncertainty. Without replicates it is the plain
    paired query bootstrap. Identical arms (an A/A replay) give exactly 0 and [0, 0].
    """
    control = np.asarray(control, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if control.shape != candidate.shape or control.ndim != 1:
        raise ValueError("control and candidate must be per-query vectors of one length")
    n_queries = len(control)
    if n_queries == 0:
        nan = float("nan")
        return PairedDelta(nan, nan, nan, nan, nan, 0)
    control_value, candidate_value = float(control.mean()), float(candidate.mean())
    if (control_replicates is None) != (candidate_replicates is None):
        raise ValueError("give curve replicates for both arms or for neither")
    identical = np.array_equal(control, candidate) and (
        control_replicates is None
        or candidate_replicates is None
        or np.array_equal(control_replicates, candidate_replicates)
    )
    if identical:
        return PairedDelta(control_value, candidate_value, 0.0, 0.0, 0.0, n_queries)
    if n_queries < 2:
        return PairedDelta(control_value, candidate_value, candidate_value - control_value, float("nan"),
                           float("nan"), n_queries)  # fmt: skip
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_queries, size=(n_resamples, n_queries))
    if control_replicates is None or candidate_replicates is None:
        difference = candidate - control
        deltas = difference[draws].mean(axis=1)
    else:
        if control_replicates.shape != candidate_replicates.shape or control_replicates.shape[1:] != (n_queries,):
            raise ValueError(f"curve replicates must be [B, {n_queries}] for both arms")
        # Resample b uses curve b (cycling when there are fewer curves than resamples).
        curve_of = np.arange(n_resamples) % control_replicates.shape[0]
        difference = candidate_replicates[curve_of] - control_replicates[curve_of]
        deltas = np.take_along_axis(difference, draws, axis=1).mean(axis=1)
    alpha = 1.0 - confidence_level
    low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    return PairedDelta(
        control_value, candidate_value, candidate_value - control_value, float(low), float(high), n_queries
    )
