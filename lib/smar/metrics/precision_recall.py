"""Precision and recall at a cutoff."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smar.metrics.conventions import (
    DEFAULT_RELEVANCE_THRESHOLD,
    Ties,
    count_relevant,
    cutoff_mask,
    empty_value,
    ranked_grades,
    tie_averaged_discounts,
)


def _relevant_in_top_k(
    relevance: ArrayLike,
    scores: ArrayLike,
    *,
    k: int,
    doc_ids: Sequence[str] | NDArray[np.generic] | None,
    ties: Ties,
    relevance_threshold: float,
) -> float:
    # Expected count under random tie breaking when ties="average": a tie group straddling rank
    # k contributes its relevant share of the slots it keeps inside the cutoff.
    grades, sorted_scores = ranked_grades(relevance, scores, doc_ids=doc_ids, ties=ties)
    inside = cutoff_mask(len(grades), k)
    if ties == "average":
        inside = tie_averaged_discounts(sorted_scores, inside)
    return float(np.dot((grades >= relevance_threshold).astype(np.float64), inside))


def precision_at(
    relevance: ArrayLike,
    scores: ArrayLike,
    *,
    k: int,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    ties: Ties = "doc_id_desc",
    relevance_threshold: float = DEFAULT_RELEVANCE_THRESHOLD,
    empty: float | None = None,
    judged_relevance: ArrayLike | None = None,
) -> float:
    """P@k = (number of documents with grade >= threshold in ranks 1..k) / k.

    Divides by k even when fewer than k documents were retrieved (trec_eval `P_k`). A query with
    no relevant judged document (`judged_relevance`, default the retrieved grades) gets `empty`
    (None gives NaN: left out of means). ties="average" gives the expectation over tie orders.
    """
    judged = relevance if judged_relevance is None else judged_relevance
    if count_relevant(judged, relevance_threshold) == 0:
        return empty_value(empty)
    found = _relevant_in_top_k(
        relevance, scores, k=k, doc_ids=doc_ids, ties=ties, relevance_threshold=relevance_threshold
    )
    return found / k


def recall_at(
    relevance: ArrayLike,
    scores: ArrayLike,
    *,
    k: int,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    ties: Ties = "doc_id_desc",
    relevance_threshold: float = DEFAULT_RELEVANCE_THRESHOLD,
    empty: float | None = None,
    judged_relevance: ArrayLike | None = None,
) -> float:
    """Recall@k = (relevant documents in ranks 1..k) / (relevant judged documents), trec_eval `recall_k`.

    Relevant: grade >= threshold. The denominator counts `judged_relevance` (default the
    retrieved grades). A query with none gets `empty` (None gives NaN: left out of means).
    """
    judged = relevance if judged_relevance is None else judged_relevance
    relevant_count = count_relevant(judged, relevance_threshold)
    if relevant_count == 0:
        return empty_value(empty)
    found = _relevant_in_top_k(
        relevance, scores, k=k, doc_ids=doc_ids, ties=ties, relevance_threshold=relevance_threshold
    )
    return found / relevant_count
