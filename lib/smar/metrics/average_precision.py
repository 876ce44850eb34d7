"""Average precision (MAP when averaged over queries)."""

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
    refuse_average_ties,
)


def average_precision(
    relevance: ArrayLike,
    scores: ArrayLike,
    *,
    k: int | None = None,
    doc_ids: Sequence[str] | NDArray[np.generic] | None = None,
    ties: Ties = "doc_id_desc",
    relevance_threshold: float = DEFAULT_RELEVANCE_THRESHOLD,
    empty: float | None = None,
    judged_relevance: ArrayLike | None = None,
) -> float:
    """AP@k = (1 / R) * sum over relevant ranks r <= k of P@r, R = number of relevant judged docs.

    Relevant means grade >= `relevance_threshold` (trec_eval -l, default 1). R counts every
    judged document of the query (`judged_relevance`, default the retrieved grades), so relevant
    documents never retrieved pull AP down: trec_eval's `map` (k=None) and `map_cut_k`. A query
    with R = 0 gets `empty` (None gives NaN: left out of means). ties="average" is refused.
    """
    refuse_average_ties(ties, "average_precision")
    judged = relevance if judged_relevance is None else judged_relevance
    relevant_count = count_relevant(judged, relevance_threshold)
    if relevant_count == 0:
        return empty_value(empty)
    grades, _ = ranked_grades(relevance, scores, doc_ids=doc_ids, ties=ties)
    hits = (grades >= relevance_threshold) & (cutoff_mask(len(grades), k) > 0)
    precision_at_rank = np.cumsum(hits) / np.arange(1, len(grades) + 1)
    return float(precision_at_rank[hits].sum() / relevant_count)
