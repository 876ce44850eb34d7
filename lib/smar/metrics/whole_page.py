"""Whole-page metrics for a mixed result page (web, image, video, LLM answer).

A page-level NDCG says how good the page is; these say why: whether each modality's own order
survived the merge (per-modality NDCG), whether the merge put better items of one modality
above worse items of another (cross-modal PNR), and how much of the top of the page each
modality gets (exposure share).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smar.metrics.conventions import (
    Gain,
    Ties,
    as_float_array,
    check_same_length,
    cutoff_mask,
    ranking_order,
    tie_averaged_discounts,
)
from smar.metrics.ndcg import ndcg_at


def _labels(values: Sequence[object] | NDArray[np.generic], name: str) -> NDArray[np.object_]:
    array = np.asarray([str(value) for value in values], dtype=object)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional")
    return array


def per_modality_ndcg(
    relevance: ArrayLike,
    scores: ArrayLike,
    modalities: Sequence[str] | NDArray[np.generic],
    *,
    k: int | None = None,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    gain: Gain = "linear",
    ties: Ties = "doc_id_desc",
    empty: float | None = None,
) -> dict[str, float]:
    """{modality: NDCG@k of the sub-list of that modality's items}, in the page's score order.

    Order quality inside one modality: the items of modality m keep their relative order from
    `scores`, and are compared with their own ideal order (their grades sorted). k counts
    positions inside the sub-list. Gain, ties and `empty` (a modality whose items all have grade
    <= 0) follow `ndcg_at`. Modalities are keyed as strings, sorted.
    """
    grades = as_float_array(relevance, "relevance")
    score_array = as_float_array(scores, "scores")
    labels = _labels(modalities, "modalities")
    check_same_length(relevance=grades, scores=score_array, modalities=labels, doc_ids=doc_ids)
    ids = None if doc_ids is None else np.asarray([str(doc_id) for doc_id in doc_ids], dtype=object)
    result: dict[str, float] = {}
    for modality in sorted(set(labels.tolist())):
        member = labels == modality
        result[modality] = ndcg_at(
            grades[member],
            score_array[member],
            k=k,
            doc_ids=None if ids is None else ids[member],
            gain=gain,
            ties=ties,
            empty=empty,
        )
    return result


@dataclass(frozen=True)
class PairCounts:
    """Cross-modal pairs with different grades, by how the scores order them."""

    concordant: int
    discordant: int
    tied: int

    @property
    def pnr(self) -> float:
        """(concordant + tied / 2) / (discordant + tied / 2); inf if only concordant, NaN if no pairs."""
        correct = self.concordant + 0.5 * self.tied
        wrong = self.discordant + 0.5 * self.tied
        if wrong == 0:
            return float("inf") if correct > 0 else float("nan")
        return correct / wrong


def cross_modal_pair_counts(
    relevance: ArrayLike,
    scores: ArrayLike,
    modalities: Sequence[str] | NDArray[np.generic],
) -> PairCounts:
    """Count pairs (i, j) from different modalities with rel_i > rel_j by the sign of s_i - s_j.

    Concordant: s_i > s_j; discordant: s_i < s_j; tied: s_i == s_j. Pairs of equal grade, and
    pairs inside one modality, are not counted. O(n^2) in the page size ([n_items]).
    """
    grades = as_float_array(relevance, "relevance")
    score_array = as_float_array(scores, "scores")
    labels = _labels(modalities, "modalities")
    check_same_length(relevance=grades, scores=score_array, modalities=labels)
    if np.isnan(score_array).any():
        raise ValueError("scores contain NaN; a NaN score cannot be ranked")
    better = grades[:, None] > grades[None, :]
    cross = labels[:, None] != labels[None, :]
    considered = better & cross
    score_difference = score_array[:, None] - score_array[None, :]
    return PairCounts(
        concordant=int((considered & (score_difference > 0)).sum()),
        discordant=int((considered & (score_difference < 0)).sum()),
        tied=int((considered & (score_difference == 0)).sum()),
    )


def cross_modal_pnr(
    relevance: ArrayLike,
    scores: ArrayLike,
    modalities: Sequence[str] | NDArray[np.generic],
) -> float:
    """Cross-modal positive-negative ratio: correctly ordered / mis-ordered cross-modal pairs.

    Over pairs of items from different modalities with different grades (see
    `cross_modal_pair_counts`). A pair with equal scores counts half correct and half
    mis-ordered, so a ranker cannot gain by emitting ties: PNR = (C + T/2) / (D + T/2). It is
    inf when every pair is correctly ordered and NaN when the page has no such pair. To pool
    pages, sum their `PairCounts` and take `.pnr` of the total.
    """
    return cross_modal_pair_counts(relevance, scores, modalities).pnr


def modality_exposure_share(
    scores: ArrayLike,
    modalities: Sequence[str] | NDArray[np.generic],
    *,
    k: int,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    ties: Ties = "doc_id_desc",
) -> dict[str, float]:
    """{modality: share of the top min(k, n) positions it holds}; the shares sum to 1.

    Every modality on the page is listed, with 0.0 when it has no item in the top k. With
    ties="average" a tie group straddling rank k shares the remaining slots in expectation.
    """
    score_array = as_float_array(scores, "scores")
    labels = _labels(modalities, "modalities")
    check_same_length(scores=score_array, modalities=labels, doc_ids=doc_ids)
    if len(labels) == 0:
        return {}
    order = ranking_order(score_array, doc_ids=doc_ids, ties=ties)
    inside = cutoff_mask(len(order), k)
    if ties == "average":
        inside = tie_averaged_discounts(score_array[order], inside)
    slots = inside.sum()
    ranked_labels = labels[order]
    return {
        modality: float(inside[ranked_labels == modality].sum() / slots) for modality in sorted(set(labels.tolist()))
    }
