"""Counterfactual click estimates of both orders from the logged clicks (label sources
`clicks_ips` and `clicks_snips`), with the click model they rest on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smar.replay.measures import ALL_SEGMENT, ARMS, CLICKS, PER_QUERY_COLUMNS, MetricConfig
from smar.replay.ope import fit_position_based_model, ips, snips
from smar.vocabulary import CLICKS_IPS, CLICKS_SNIPS

log = logging.getLogger(__name__)

_SEPARATOR = "\u001f"  # joins ds and request_id into one page key; never occurs in ids


@dataclass(frozen=True)
class ClickModelSummary:
    """Where the click propensities came from, for the report; `skipped_reason` when not estimated."""

    propensity_source: str  # "position_based_model" or "logged"
    examination: tuple[float, ...]  # gamma_r for r = 1..max position (PBM), empty otherwise
    iterations: int
    converged: bool
    position_variation: float  # fraction of (query, item) pairs logged at >= 2 positions
    skipped_reason: str | None = None


def position_variation(query_ids: pd.Series, item_ids: pd.Series, positions: pd.Series) -> float:
    """Fraction of (query, item) pairs logged at two or more distinct positions.

    A position-based model separates examination from attractiveness only through items that
    moved: if every pair sits at one position, gamma_r * alpha_qi fits every click rate with any
    gamma, so the EM's examination curve is arbitrary (not identifiable).
    """
    frame = pd.DataFrame(
        {"query_id": query_ids.to_numpy(), "item_id": item_ids.to_numpy(), "position": positions.to_numpy()}
    )
    if frame.empty:
        return 0.0
    return float((frame.groupby(["query_id", "item_id"])["position"].nunique() > 1).mean())


def click_propensity_source(impressions: pd.DataFrame) -> str:
    """ "logged" when every impression carries logging_propensity, "position_based_model" when none does."""
    present = impressions["logging_propensity"].notna()
    if present.all() and len(present):
        return "logged"
    if not present.any():
        return "position_based_model"
    raise ValueError(
        f"{int(present.sum())} of {len(present)} impressions carry logging_propensity and the rest do not; "
        "the replay will not mix logged and modelled propensities (filter the scope or fill them)"
    )


def click_estimates_by_query(impressions: pd.DataFrame, config: MetricConfig) -> tuple[pd.DataFrame, ClickModelSummary]:
    """Per query: IPS and SNIPS estimates of clicks@k per page under each arm's order.

    Position-based model (the default, Chuklin et al. 2015): fit P(click) = gamma_r * alpha_qi
    by EM on the scope's logged clicks (`fit_position_based_model`). An item logged at p and
    placed at t by the arm gets reward c * [t <= k] and weight gamma_t / gamma_p, so
    E[c * w] = alpha * gamma_t * [t <= k], its expected clicks in the top k. Weights are clipped
    at `max_importance_weight` (a little bias for much less variance). Per query,
    IPS = sum(c * [t <= k] * w) / pages, computed as `ope.ips(...) * rows / pages`, and
    SNIPS = `ope.snips(...) * rows / pages` (normalised by the mean weight). When an arm keeps the
    logged order every weight is 1 and both equal the observed clicks in the top k per page.

    Logged propensities (every impression carries `logging_propensity`, the probability that
    the logging policy showed the item at its position): the item-position model of Li et al.
    (2018): reward c * [p <= k], logging = logged propensity, target = 1 if the arm puts the
    item at its logged position p, else 0.
    """
    source = click_propensity_source(impressions)
    variation = position_variation(impressions["query_id"], impressions["item_id"], impressions["position"])
    if source == "position_based_model" and variation < config.min_position_variation:
        reason = (
            f"click estimates skipped: only {variation:.1%} of (query, item) pairs were logged at more than "
            f"one position (min_position_variation={config.min_position_variation:.1%}), so a position-based "
            "click model cannot separate position bias from relevance. Log propensities, or randomise a "
            "slice of traffic (e.g. pairwise swaps), to estimate clicks counterfactually."
        )
        log.warning("%s", reason)
        return pd.DataFrame(columns=list(PER_QUERY_COLUMNS)), ClickModelSummary(source, (), 0, False, variation, reason)
    if source == "position_based_model":
        model = fit_position_based_model(
            impressions["query_id"].to_numpy(), impressions["item_id"].to_numpy(),
            impressions["position"].to_numpy(), impressions["clicked"].to_numpy(),
        )  # fmt: skip
        examination = model.examination
        needed = set(impressions["position"].astype(int)) | {
            int(rank) for arm in ARMS for rank in impressions[f"{arm}_rank"]
        }
        unusable = sorted(rank for rank in needed if rank > len(examination) or not examination[rank - 1] > 0)
        if unusable:
            # An item logged where the model says nobody looks cannot be reweighted (w = gamma_t / 0),
            # nor can an item be moved to a rank the log never showed (gamma unknown).
            reason = (
                f"click estimates skipped: the position-based model has no positive examination estimate for "
                f"positions {unusable[:10]} (never shown, or never clicked), so those impressions cannot be reweighted"
            )
            log.warning("%s", reason)
            curve = tuple(float(value) for value in examination)
            return pd.DataFrame(columns=list(PER_QUERY_COLUMNS)), ClickModelSummary(
                source, curve, model.iterations, model.converged, variation, reason
            )
        summary = ClickModelSummary(
            source, tuple(float(value) for value in examination), model.iterations, model.converged, variation
        )
        logging_propensity = examination[impressions["position"].to_numpy(dtype=np.int64) - 1]
    else:
        summary = ClickModelSummary(source, (), 0, True, variation)
        logging_propensity = impressions["logging_propensity"].to_numpy(dtype=np.float64)

    columns: dict[str, np.ndarray] = {"logging": logging_propensity}
    clicked = impressions["clicked"].to_numpy(dtype=np.float64)
    position = impressions["position"].to_numpy(dtype=np.int64)
    for arm in ARMS:
        rank = impressions[f"{arm}_rank"].to_numpy(dtype=np.int64)
        for k in config.click_cutoffs:
            if source == "position_based_model":
                # Clipping the target propensity at max_weight * logging clips the weight itself.
                columns[f"{arm}_target"] = np.minimum(
                    examination[rank - 1], config.max_importance_weight * logging_propensity
                )
                columns[f"{arm}_reward_{k}"] = clicked * (rank <= k)
            else:
                columns[f"{arm}_target"] = (rank == position).astype(np.float64)
                columns[f"{arm}_reward_{k}"] = clicked * (position <= k)
    weights = pd.DataFrame(columns)
    weights["query_id"] = impressions["query_id"].to_numpy()
    weights["page"] = (impressions["ds"].astype(str) + _SEPARATOR + impressions["request_id"].astype(str)).to_numpy()

    rows = []
    for query_id, group in weights.groupby("query_id", sort=True):
        rows_per_page = len(group) / group["page"].nunique()
        for k in config.click_cutoffs:
            for label_source, estimator in ((CLICKS_IPS, ips), (CLICKS_SNIPS, snips)):
                values = {}
                for arm in ARMS:
                    target = group[f"{arm}_target"]
                    if estimator is snips and not (target > 0).any():
                        # SNIPS is undefined when the arm puts no weight on this query's logged rows.
                        values[arm] = np.nan
                        continue
                    values[arm] = estimator(group[f"{arm}_reward_{k}"], group["logging"], target) * rows_per_page
                rows.append(
                    (CLICKS, ALL_SEGMENT, k, label_source, query_id, values["control"], 1.0, values["candidate"], 1.0)
                )
    per_query = pd.DataFrame(rows, columns=list(PER_QUERY_COLUMNS))
    defined = per_query[["control_numerator", "candidate_numerator"]].notna().all(axis=1)
    return per_query[defined].reset_index(drop=True), summary
