"""Discounted cumulative gain and its normalised form, NDCG (Jarvelin and Kekalainen, 2002)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smar.metrics.conventions import (
    Gain,
    Ties,
    as_float_array,
    cutoff_mask,
    empty_value,
    gain_values,
    position_discounts,
    ranked_grades,
    tie_averaged_discounts,
)


def dcg_at(
    relevance: ArrayLike,
    scores: ArrayLike,
    *,
    k: int | None = None,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    gain: Gain = "linear",
    ties: Ties = "doc_id_desc",
) -> float:
    """DCG@k = sum over ranks r <= k of gain(rel_r) / log2(r + 1); k=None uses every rank.

    `relevance` and `scores` are per retrieved document of one query ([n_docs]). With
    ties="average" each rank's discount is the mean discount of its tie group (scikit-learn).
    """
    grades, sorted_scores = ranked_grades(relevance, scores, doc_ids=doc_ids, ties=ties)
    discounts = position_discounts(len(grades)) * cutoff_mask(len(grades), k)
    if ties == "average":
        discounts = tie_averaged_discounts(sorted_scores, discounts)
    return float(np.dot(gain_values(grades, gain), discounts))


def ideal_dcg_at(judged_relevance: ArrayLike, *, k: int | None = None, gain: Gain = "linear") -> float:
    """Ideal DCG@k: the DCG of the judged documents sorted by grade, best first, cut at k."""
    gains = np.sort(gain_values(as_float_array(judged_relevance, "judged_relevance"), gain))[::-1]
    if k is not None:
        gains = gains[:k]
    return float(np.dot(gains, position_discounts(len(gains))))


def ndcg_at(
    relevance: ArrayLike,
    scores: ArrayLike,
    *,
    k: int | None = None,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    gain: Gain = "linear",
    ties: Ties = "doc_id_desc",
    empty: float | None = None,
    judged_relevance: ArrayLike | None = None,
) -> float:
    """NDCG@k = DCG@k / ideal DCG@k, with gain, tie rule and empty-query value as given.

    The ideal ranking is over `judged_relevance`, the grades of every judged document of the
    query whether retrieved or not (trec_eval); by default the retrieved documents' own grades
    (LightGBM, scikit-learn). k=None: DCG over all retrieved documents and ideal DCG over all
    judged ones (trec_eval's `ndcg`); with k both are cut at k (`ndcg_cut_k`). When the ideal
    DCG is 0 (nothing relevant) the result is `empty` (None gives NaN: left out of means).
    """
    ideal = ideal_dcg_at(relevance if judged_relevance is None else judged_relevance, k=k, gain=gain)
    if ideal <= 0.0:
        return empty_value(empty)
    return dcg_at(relevance, scores, k=k, doc_ids=doc_ids, gain=gain, ties=ties) / ideal
